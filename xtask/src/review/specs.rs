//! What changed between two versions of one spec, in the terms a user of the generated client meets: operations,
//! their parameters, the fields of their requests and answers, the documented error codes, and the servers.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_yaml::Value;

use crate::codegen::{answers, error_codes};

/// Everything a spec says that a change can add, remove or alter, keyed so that two versions compare.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Surface {
    /// operation id → `METHOD /path`.
    pub operations: BTreeMap<String, String>,
    /// `operation id`, `in name` → "required" or "optional".
    pub parameters: BTreeMap<(String, String), String>,
    /// `operation id`, `request` or `answer HTTP <status>`, field path → its type.
    pub fields: BTreeMap<(String, String, String), String>,
    /// field path, code → meaning.
    pub codes: BTreeMap<(String, String), String>,
    pub servers: Vec<String>,
}

impl Surface {
    /// The surface of `text`, a spec; a spec that does not parse has none, and says so.
    pub fn read(text: &str) -> Result<Surface, String> {
        let spec: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut surface = Surface {
            servers: spec
                .get("servers")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|server| server.get("url")?.as_str().map(str::to_owned))
                .collect(),
            ..Surface::default()
        };
        let paths = spec.get("paths").and_then(Value::as_mapping);
        for (path, item) in paths.into_iter().flatten() {
            let path = path.as_str().unwrap_or("?");
            for (method, operation) in item.as_mapping().into_iter().flatten() {
                let method = method.as_str().unwrap_or("?");
                if operation.get("responses").is_none() {
                    continue;
                }
                let id = operation
                    .get("operationId")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("{method} {path}"), str::to_owned);
                surface
                    .operations
                    .insert(id.clone(), format!("{} {path}", method.to_uppercase()));
                surface.read_operation(&spec, &id, operation);
            }
        }
        if let Ok(fields) = error_codes::read(&spec) {
            for field in fields {
                for code in field.codes {
                    surface
                        .codes
                        .insert((field.path.clone(), code.code), code.meaning);
                }
            }
        }
        Ok(surface)
    }

    fn read_operation(&mut self, spec: &Value, id: &str, operation: &Value) {
        let parameters = operation.get("parameters").and_then(Value::as_sequence);
        for parameter in parameters.into_iter().flatten() {
            let Some(parameter) = answers::resolve(spec, parameter, "parameters") else {
                continue;
            };
            let name = parameter.get("name").and_then(Value::as_str).unwrap_or("?");
            let place = parameter.get("in").and_then(Value::as_str).unwrap_or("?");
            let required = parameter.get("required").and_then(Value::as_bool) == Some(true);
            let required = if required { "required" } else { "optional" };
            self.parameters
                .insert((id.to_owned(), format!("{place} {name}")), required.into());
        }
        let request = operation
            .get("requestBody")
            .and_then(|body| answers::resolve(spec, body, "requestBodies"));
        self.read_content(spec, id, "request", request);
        let responses = operation.get("responses").and_then(Value::as_mapping);
        for (status, response) in responses.into_iter().flatten() {
            let status = match status {
                Value::Number(number) => number.to_string(),
                other => other.as_str().unwrap_or("?").to_owned(),
            };
            let response = answers::resolve(spec, response, "responses");
            self.read_content(spec, id, &format!("answer HTTP {status}"), response);
        }
    }

    /// The fields of every media type's schema under `holder` (a request body or a response).
    fn read_content(&mut self, spec: &Value, id: &str, side: &str, holder: Option<&Value>) {
        let content = holder
            .and_then(|h| h.get("content"))
            .and_then(Value::as_mapping);
        for (_, media) in content.into_iter().flatten() {
            let Some(schema) = media.get("schema") else {
                continue;
            };
            answers::walk_schema(spec, schema, "", &mut Vec::new(), &mut |path, node| {
                if path.is_empty() {
                    return;
                }
                let kind = type_of(node);
                let key = (id.to_owned(), side.to_owned(), path.to_owned());
                // A field reached as several shapes (oneOf) lists them all.
                let entry = self.fields.entry(key).or_default();
                if !kind.is_empty() && !entry.split(" | ").any(|k| k == kind) {
                    if !entry.is_empty() {
                        entry.push_str(" | ");
                    }
                    entry.push_str(&kind);
                }
            });
        }
    }
}

/// `type` (with `format`), as the spec writes it; empty for a node that only combines others.
fn type_of(schema: &Value) -> String {
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
    match schema.get("format").and_then(Value::as_str) {
        Some(format) if !kind.is_empty() => format!("{kind} ({format})"),
        _ => kind.to_owned(),
    }
}

/// The Markdown lines that say how `after` differs from `before`; empty when a user meets no difference.
pub fn describe(before: &Surface, after: &Surface) -> String {
    let mut out = String::new();
    let (added, removed, changed) = compare(&before.operations, &after.operations);
    for (id, route) in added {
        let _ = writeln!(out, "- operation added: `{id}` (`{route}`)");
    }
    for (id, route) in removed {
        let _ = writeln!(out, "- **operation removed**: `{id}` (`{route}`)");
    }
    for (id, (was, now)) in changed {
        let _ = writeln!(out, "- **operation moved**: `{id}` from `{was}` to `{now}`");
    }
    let (added, removed, changed) = compare(&before.parameters, &after.parameters);
    for ((id, name), required) in added {
        let _ = writeln!(out, "- `{id}`: parameter added: `{name}` ({required})");
    }
    for ((id, name), _) in removed {
        let _ = writeln!(out, "- **`{id}`: parameter removed**: `{name}`");
    }
    for ((id, name), (was, now)) in changed {
        let _ = writeln!(out, "- `{id}`: parameter `{name}` is now {now} (was {was})");
    }
    let (added, removed, changed) = compare(&before.fields, &after.fields);
    for ((id, side, path), kind) in added {
        let _ = writeln!(out, "- `{id}` {side}: field added: `{path}` ({kind})");
    }
    for ((id, side, path), _) in removed {
        let _ = writeln!(out, "- **`{id}` {side}: field removed**: `{path}`");
    }
    for ((id, side, path), (was, now)) in changed {
        let _ = writeln!(
            out,
            "- **`{id}` {side}: field `{path}` changed type**: {was} → {now}"
        );
    }
    let (added, removed, changed) = compare(&before.codes, &after.codes);
    for ((field, code), meaning) in added {
        let _ = writeln!(out, "- error code added: `{field}` = `{code}` ({meaning})");
    }
    for ((field, code), meaning) in removed {
        let _ = writeln!(
            out,
            "- **error code removed**: `{field}` = `{code}` ({meaning})"
        );
    }
    for ((field, code), (was, now)) in changed {
        let _ = writeln!(
            out,
            "- error code `{field}` = `{code}` now means: {now} (was: {was})"
        );
    }
    if before.servers != after.servers {
        let _ = writeln!(
            out,
            "- **servers**: `{}` → `{}`",
            before.servers.join(", "),
            after.servers.join(", ")
        );
    }
    out
}

type Compared<'a, K, V> = (
    Vec<(&'a K, &'a V)>,
    Vec<(&'a K, &'a V)>,
    Vec<(&'a K, (&'a V, &'a V))>,
);

/// What `after` adds to `before`, removes from it, and changes in it.
fn compare<'a, K: Ord, V: PartialEq>(
    before: &'a BTreeMap<K, V>,
    after: &'a BTreeMap<K, V>,
) -> Compared<'a, K, V> {
    let added = after
        .iter()
        .filter(|(key, _)| !before.contains_key(key))
        .collect();
    let removed = before
        .iter()
        .filter(|(key, _)| !after.contains_key(key))
        .collect();
    let changed = after
        .iter()
        .filter_map(|(key, now)| match before.get(key) {
            Some(was) if was != now => Some((key, (was, now))),
            _ => None,
        })
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
openapi: 3.0.3
servers: [{url: "https://a.example"}]
paths:
  /token:
    post:
      operationId: refresh
      parameters:
        - {name: powerCode, in: query, required: true, schema: {type: string}}
        - {name: expireDate, in: query, schema: {type: integer}}
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Param'}
      responses:
        '200':
          content:
            application/json:
              schema:
                type: object
                properties:
                  code:
                    type: integer
                    x-error-codes:
                      source: the page
                      codes: [{code: 1, name: BAD, meaning: bad}]
                  token: {type: string, format: password}
components:
  schemas:
    Param:
      type: object
      properties:
        refresh: {type: string}
"#;

    fn surface(text: &str) -> Surface {
        Surface::read(text).unwrap()
    }

    #[test]
    fn a_spec_reads_as_operations_parameters_fields_codes_and_servers() {
        let s = surface(SPEC);
        assert_eq!(s.operations["refresh"], "POST /token");
        assert_eq!(
            s.parameters[&("refresh".into(), "query powerCode".into())],
            "required"
        );
        assert_eq!(
            s.fields[&("refresh".into(), "request".into(), "refresh".into())],
            "string"
        );
        assert_eq!(
            s.fields[&("refresh".into(), "answer HTTP 200".into(), "token".into())],
            "string (password)"
        );
        assert_eq!(s.codes[&("code".into(), "1".into())], "bad");
        assert_eq!(s.servers, ["https://a.example"]);
    }

    /// A field of several shapes lists each once; a node without a type adds none, and a format alone is no type.
    #[test]
    fn a_field_of_several_shapes_lists_each_type_once() {
        let text = SPEC.replace(
            "                  token: {type: string, format: password}",
            "                  token: {type: string, format: password}\n                  \
             either: {oneOf: [{type: string}, {type: integer}, {type: string}]}\n                  \
             id: {format: uuid}",
        );
        let s = surface(&text);
        let field = |name: &str| {
            s.fields[&("refresh".into(), "answer HTTP 200".into(), name.into())].clone()
        };
        assert_eq!(field("either"), "string | integer");
        assert_eq!(field("id"), "");
    }

    #[test]
    fn an_unchanged_spec_describes_nothing() {
        assert_eq!(describe(&surface(SPEC), &surface(SPEC)), "");
    }

    #[test]
    fn each_kind_of_change_is_described_and_removals_stand_out() {
        let edited = SPEC
            .replace(
                "        - {name: expireDate, in: query, schema: {type: integer}}\n",
                "",
            )
            .replace("{name: powerCode, in: query, required: true", "{name: powerCode, in: query")
            .replace(
                "codes: [{code: 1, name: BAD, meaning: bad}]",
                "codes: [{code: 1, name: BAD, meaning: bad}, {code: 2, name: WORSE, meaning: worse}]",
            )
            .replace(
                "token: {type: string, format: password}",
                "token: {type: string, format: password}\n                  expires: {type: integer}",
            )
            .replace("refresh: {type: string}", "refresh: {type: integer}")
            .replace("https://a.example", "https://b.example");
        let text = describe(&surface(SPEC), &surface(&edited));
        let expected = [
            "- **`refresh`: parameter removed**: `query expireDate`",
            "- `refresh`: parameter `query powerCode` is now optional (was required)",
            "- `refresh` answer HTTP 200: field added: `expires` (integer)",
            "- **`refresh` request: field `refresh` changed type**: string → integer",
            "- error code added: `code` = `2` (worse)",
            "- **servers**: `https://a.example` → `https://b.example`",
        ];
        for line in expected {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(text.lines().count(), expected.len(), "{text}");
    }
}
