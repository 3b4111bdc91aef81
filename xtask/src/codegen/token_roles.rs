//! Where each operation's answer carries its tokens and their expiry: `x-token-role` on those fields.
//!
//! ```yaml
//! access_token:
//!   type: string
//!   format: password
//!   x-token-role: access_token        # or refresh_token, expires_in, expires_at
//! ```
//!
//! The generated `Operation::tokens` lists them with their JSON paths, so that the facade can still read the
//! tokens from an answer whose other fields are not what the spec says (a rotated refresh token is never
//! thrown away for a field that has nothing to do with it).

use serde_yaml::Value;

use super::answers;

/// The extension's key.
pub const EXTENSION: &str = "x-token-role";

/// The roles a field may have, and the `refresh_runtime::TokenRole` variant of each.
const ROLES: [(&str, &str); 4] = [
    ("access_token", "AccessToken"),
    ("refresh_token", "RefreshToken"),
    ("expires_in", "ExpiresIn"),
    ("expires_at", "ExpiresAt"),
];

/// One field of an answer with a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenField {
    /// The `refresh_runtime::TokenRole` variant.
    pub variant: &'static str,
    /// The JSON path (`result_data.access_token`, `data[].token`).
    pub path: String,
}

/// For every operation (by `operationId`), the fields of its answers that carry a role, in the order the spec
/// reaches them; or every problem with the extension, located in the spec.
pub fn read(spec: &Value) -> Result<Vec<(String, Vec<TokenField>)>, Vec<String>> {
    let mut operations = Vec::new();
    let mut reached: Vec<*const Value> = Vec::new();
    let mut problems = Vec::new();
    for operation in answers::operations(spec) {
        let id = operation
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let mut fields: Vec<TokenField> = Vec::new();
        answers::walk(spec, operation, &mut |path, schema| {
            let Some(extension) = schema.get(EXTENSION) else {
                return;
            };
            reached.push(extension);
            let role = extension.as_str().unwrap_or("");
            let Some((_, variant)) = ROLES.iter().find(|(name, _)| *name == role) else {
                let names: Vec<&str> = ROLES.iter().map(|(name, _)| *name).collect();
                let problem = format!(
                    "{EXTENSION} of `{path}` ({id}): {extension:?} is not one of {}",
                    names.join(", ")
                );
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
                return;
            };
            let field = TokenField {
                variant,
                path: path.to_owned(),
            };
            if !fields.contains(&field) {
                fields.push(field);
            }
        });
        operations.push((id, fields));
    }
    problems.extend(
        answers::unreached(spec, EXTENSION, &reached)
            .into_iter()
            .map(|at| format!("{at}.{EXTENSION}: not on a field of any operation's answer")),
    );
    if problems.is_empty() {
        Ok(operations)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(role: &str) -> Value {
        serde_yaml::from_str(&format!(
            r#"
paths:
  /refresh:
    post:
      operationId: refresh
      responses:
        '200':
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Envelope'
        '403':
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Envelope'
  /state:
    get:
      operationId: state
      responses:
        '200':
          description: no body
components:
  schemas:
    Envelope:
      type: object
      properties:
        data:
          oneOf:
            - type: string
              x-token-role: {role}
            - type: array
              items:
                type: object
                properties:
                  token:
                    type: string
                    x-token-role: access_token
        expires_in:
          type: integer
          x-token-role: expires_in
"#
        ))
        .unwrap()
    }

    #[test]
    fn roles_are_found_with_their_paths_once_per_operation() {
        let operations = read(&spec("refresh_token")).unwrap();
        let field = |variant, path: &str| TokenField {
            variant,
            path: path.to_owned(),
        };
        assert_eq!(
            operations,
            [
                (
                    "refresh".to_owned(),
                    vec![
                        field("RefreshToken", "data"),
                        field("AccessToken", "data[].token"),
                        field("ExpiresIn", "expires_in"),
                    ]
                ),
                ("state".to_owned(), vec![]),
            ]
        );
    }

    #[test]
    fn an_unknown_role_is_reported_where_it_is() {
        let problems = read(&spec("bearer")).unwrap_err();
        assert_eq!(
            problems,
            [
                "x-token-role of `data` (refresh): String(\"bearer\") is not one of access_token, refresh_token, expires_in, expires_at"
            ]
        );
    }
}
