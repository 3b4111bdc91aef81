//! Vendor error codes, read from `x-error-codes` on the fields of the answers that carry them.
//!
//! The extension sits on the property schema of the field (iSolarCloud's `result_data.code`, WeChat's `errcode`):
//!
//! ```yaml
//! code:
//!   type: string
//!   x-error-codes:
//!     success: "1"                   # the value that means no error, where the vendor sends one
//!     source: the Refresh Token page # which vendor page documents the codes (a code may name its own)
//!     codes:
//!       - { code: "2", name: NO_AUTHORIZATION_INFORMATION, meaning: no authorization information }
//! ```
//!
//! The field's JSON path (`result_data.code`) is found by walking every operation's response schemas, so it is
//! written once, by the schema's own structure.

use serde_yaml::Value;

use super::answers;

/// The extension's key.
pub const EXTENSION: &str = "x-error-codes";

/// A field of a vendor's answers that carries error codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeField {
    /// The JSON path of the field in the answer (`result_data.code`).
    pub path: String,
    pub success: Option<String>,
    pub codes: Vec<Code>,
}

/// One documented code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code {
    /// As the vendor sends it, as text.
    pub code: String,
    /// The generated constant's name.
    pub name: String,
    pub meaning: String,
    /// Which vendor page documents it (the field's `source` unless the code names its own).
    pub source: String,
}

impl CodeField {
    /// The name of the generated module of this field (`result_data.code` → `result_data_code`).
    pub fn module_name(&self) -> String {
        snake_case(&self.path)
    }
}

/// Every field carrying error codes in the answers of the spec's operations, in the order the spec first
/// reaches them; or every problem with the extension, located in the spec.
pub fn read(spec: &Value) -> Result<Vec<CodeField>, Vec<String>> {
    let mut fields: Vec<CodeField> = Vec::new();
    let mut reached: Vec<*const Value> = Vec::new();
    let mut problems = Vec::new();
    for operation in answers::operations(spec) {
        answers::walk(spec, operation, &mut |path, schema| {
            // A schema reached through several operations is read once.
            let Some(extension) = schema.get(EXTENSION) else {
                return;
            };
            if reached.contains(&(extension as *const Value)) {
                return;
            }
            reached.push(extension);
            let at = format!("{EXTENSION} of `{path}`");
            let Some(field) = parse(path, extension, &at, &mut problems) else {
                return;
            };
            match fields.iter().find(|f| f.path == field.path) {
                Some(known) if *known != field => problems.push(format!(
                    "{at}: two schemas give this field different codes; write them once"
                )),
                Some(_) => {}
                None => fields.push(field),
            }
        });
    }
    problems.extend(
        answers::unreached(spec, EXTENSION, &reached)
            .into_iter()
            .map(|at| {
                format!("{at}.{EXTENSION}: not on a field of any operation's answer (no response schema reaches it)")
            }),
    );
    if problems.is_empty() {
        Ok(fields)
    } else {
        Err(problems)
    }
}

fn parse(path: &str, extension: &Value, at: &str, problems: &mut Vec<String>) -> Option<CodeField> {
    let before = problems.len();
    let Some(map) = extension.as_mapping() else {
        problems.push(format!(
            "{at} must be a mapping with `codes` (and optionally `success`)"
        ));
        return None;
    };
    for key in map.keys() {
        if !matches!(key.as_str(), Some("codes" | "success" | "source")) {
            let key = key.as_str().unwrap_or("?");
            problems.push(format!(
                "{at}: unknown key {key:?} (known: codes, success, source)"
            ));
        }
    }
    let source = extension.get("source").and_then(Value::as_str);
    if !source.is_some_and(is_table_cell) {
        problems.push(format!(
            "{at}.source must say, in one line without `|`, which vendor page documents the codes"
        ));
    }
    let success = match extension.get("success") {
        None => None,
        Some(value) => scalar(value).or_else(|| {
            problems.push(format!("{at}.success must be a string or a number"));
            None
        }),
    };
    let mut codes: Vec<Code> = Vec::new();
    match extension.get("codes").and_then(Value::as_sequence) {
        Some(entries) if !entries.is_empty() => {
            for (index, entry) in entries.iter().enumerate() {
                let at = format!("{at}.codes[{index}]");
                let code = entry.get("code").and_then(scalar);
                let name = entry.get("name").and_then(Value::as_str);
                let meaning = entry.get("meaning").and_then(Value::as_str);
                let (Some(code), Some(name), Some(meaning)) = (code, name, meaning) else {
                    problems.push(format!(
                        "{at} needs `code` (string or number), `name` and `meaning` (strings)"
                    ));
                    continue;
                };
                if !is_constant_name(name) {
                    problems.push(format!(
                        "{at}: name {name:?} must be SCREAMING_SNAKE_CASE (it names a constant)"
                    ));
                }
                if !is_table_cell(meaning) {
                    problems.push(format!(
                        "{at}: meaning must be one non-empty line without `|` (it is a table cell)"
                    ));
                }
                if codes.iter().any(|c| c.code == code) {
                    problems.push(format!("{at}: code {code:?} is listed twice"));
                }
                if codes.iter().any(|c| c.name == name) {
                    problems.push(format!("{at}: name {name} is used twice"));
                }
                if success.as_deref() == Some(code.as_str()) {
                    problems.push(format!("{at}: code {code:?} is the success value"));
                }
                let own_source = entry.get("source").and_then(Value::as_str);
                if own_source.is_some_and(|s| !is_table_cell(s)) {
                    problems.push(format!(
                        "{at}.source must be one non-empty line without `|`"
                    ));
                }
                codes.push(Code {
                    code,
                    name: name.to_owned(),
                    meaning: meaning.to_owned(),
                    source: own_source.or(source).unwrap_or("").to_owned(),
                });
            }
        }
        _ => problems.push(format!("{at}.codes must be a non-empty list")),
    }
    (problems.len() == before).then(|| CodeField {
        path: path.to_owned(),
        success,
        codes,
    })
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Text that fits one cell of ERROR_CODES.md's tables: one non-empty line without `|`.
fn is_table_cell(text: &str) -> bool {
    !text.trim().is_empty() && !text.contains('\n') && !text.contains('|')
}

fn is_constant_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// `result_data.code` → `result_data_code`, `ErrorType` → `error_type`, `errorCode` → `error_code`.
pub fn snake_case(path: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            previous_lower = true;
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    out.trim_end_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extension: &str) -> Value {
        serde_yaml::from_str(&format!(
            r#"
paths:
  /refresh:
    post:
      responses:
        '200':
          $ref: '#/components/responses/Answer'
components:
  responses:
    Answer:
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/Envelope'
  schemas:
    Envelope:
      allOf:
        - type: object
          properties:
            result_data:
              $ref: '#/components/schemas/Result'
    Result:
      type: object
      properties:
        code:
          type: string
          x-error-codes: {extension}
        nested:
          $ref: '#/components/schemas/Result'
"#
        ))
        .unwrap()
    }

    #[test]
    fn a_field_is_found_through_refs_and_all_of_with_its_json_path() {
        let fields = read(&spec(
            r#"{success: "1", source: the refresh page, codes: [{code: "2", name: NO_AUTH, meaning: no authorization}, {code: -1, name: FAILED, meaning: failed, source: the error list}]}"#,
        ))
        .unwrap();
        assert_eq!(
            fields,
            [CodeField {
                path: "result_data.code".into(),
                success: Some("1".into()),
                codes: vec![
                    Code {
                        code: "2".into(),
                        name: "NO_AUTH".into(),
                        meaning: "no authorization".into(),
                        source: "the refresh page".into(),
                    },
                    Code {
                        code: "-1".into(),
                        name: "FAILED".into(),
                        meaning: "failed".into(),
                        source: "the error list".into(),
                    },
                ],
            }]
        );
        assert_eq!(fields[0].module_name(), "result_data_code");
    }

    #[test]
    fn malformed_extensions_are_reported_where_they_are() {
        let problems = read(&spec(
            r#"{source: s, codes: [{code: "2", name: no_auth, meaning: x}, {code: "2", name: OTHER, meaning: "a | b"}, {name: X}], extra: 1}"#,
        ))
        .unwrap_err();
        let text = problems.join("\n");
        for expected in [
            "x-error-codes of `result_data.code`: unknown key \"extra\"",
            "codes[0]: name \"no_auth\" must be SCREAMING_SNAKE_CASE",
            "codes[1]: meaning must be one non-empty line without `|`",
            "codes[1]: code \"2\" is listed twice",
            "codes[2] needs `code` (string or number), `name` and `meaning`",
        ] {
            assert!(text.contains(expected), "{expected}\nin:\n{text}");
        }
        let empty = read(&spec("{codes: []}")).unwrap_err().join("\n");
        assert!(empty.contains(".codes must be a non-empty list"), "{empty}");
        assert!(empty.contains(".source must say"), "{empty}");
        let success = read(&spec(
            r#"{success: "2", source: s, codes: [{code: "2", name: A, meaning: a}]}"#,
        ))
        .unwrap_err()
        .join("\n");
        assert!(success.contains("is the success value"), "{success}");
    }

    #[test]
    fn an_extension_no_answer_reaches_is_reported() {
        let mut document = spec(r#"{source: s, codes: [{code: "2", name: A, meaning: a}]}"#);
        let unused: Value = serde_yaml::from_str(
            r#"{type: object, properties: {errcode: {type: integer, x-error-codes: {source: s, codes: [{code: 1, name: B, meaning: b}]}}}}"#,
        )
        .unwrap();
        document["components"]["schemas"]
            .as_mapping_mut()
            .unwrap()
            .insert("Unused".into(), unused);
        let problems = read(&document).unwrap_err();
        assert_eq!(
            problems,
            [
                "components.schemas.Unused.properties.errcode.x-error-codes: not on a field of any operation's answer (no response schema reaches it)"
            ]
        );
        // Inside a list (allOf), too.
        let mut document = spec(r#"{source: s, codes: [{code: "2", name: A, meaning: a}]}"#);
        let listed: Value = serde_yaml::from_str(
            r#"{allOf: [{type: object, properties: {errcode: {type: integer, x-error-codes: {source: s, codes: [{code: 1, name: B, meaning: b}]}}}}]}"#,
        )
        .unwrap();
        document["components"]["schemas"]
            .as_mapping_mut()
            .unwrap()
            .insert("Listed".into(), listed);
        assert_eq!(
            read(&document).unwrap_err(),
            [
                "components.schemas.Listed.allOf[0].properties.errcode.x-error-codes: not on a field of any operation's answer (no response schema reaches it)"
            ]
        );
    }

    /// Each rule of a code entry, alone: a blank code, a name that is not SCREAMING_SNAKE_CASE, a multi-line
    /// meaning.
    #[test]
    fn each_entry_rule_holds_alone() {
        for (entry, expected) in [
            (
                r#"{code: " ", name: A, meaning: a}"#,
                "needs `code` (string or number)",
            ),
            (
                r#"{code: "1", name: NoAuth, meaning: a}"#,
                "name \"NoAuth\" must be SCREAMING_SNAKE_CASE",
            ),
            (
                r#"{code: "1", name: A, meaning: "two\nlines"}"#,
                "meaning must be one non-empty line",
            ),
            (
                r#"{code: "1", name: A, meaning: " "}"#,
                "meaning must be one non-empty line",
            ),
        ] {
            let problems = read(&spec(&format!("{{source: s, codes: [{entry}]}}")))
                .unwrap_err()
                .join("\n");
            assert!(problems.contains(expected), "{entry}: {problems}");
        }
        assert!(
            read(&spec(
                r#"{source: s, codes: [{code: "1", name: A_1, meaning: a}]}"#
            ))
            .is_ok()
        );
        for source in [r#"" ""#, r#""a | b""#, r#""two\nlines""#] {
            let field = read(&spec(&format!(
                r#"{{source: {source}, codes: [{{code: "1", name: A, meaning: a}}]}}"#
            )))
            .unwrap_err()
            .join("\n");
            assert!(field.contains(".source must say"), "{source}: {field}");
            let own = read(&spec(&format!(
                r#"{{source: s, codes: [{{code: "1", name: A, meaning: a, source: {source}}}]}}"#
            )))
            .unwrap_err()
            .join("\n");
            assert!(
                own.contains("codes[0].source must be one non-empty line"),
                "{source}: {own}"
            );
        }
    }

    /// The same field reached through two schemas: one table written twice is fine, two tables are not.
    #[test]
    fn a_field_has_one_table() {
        let two_schemas = |second: &str| -> Value {
            let mut document = spec(r#"{source: s, codes: [{code: "1", name: A, meaning: a}]}"#);
            let other: Value = serde_yaml::from_str(&format!(
                "{{type: object, properties: {{result_data: {{type: object, properties: {{code: {{type: string, x-error-codes: {second}}}}}}}}}}}"
            ))
            .unwrap();
            let envelope = &mut document["components"]["schemas"]["Envelope"]["allOf"];
            envelope.as_sequence_mut().unwrap().push(other);
            document
        };
        assert!(
            read(&two_schemas(
                r#"{source: s, codes: [{code: "1", name: A, meaning: a}]}"#
            ))
            .is_ok()
        );
        let problems = read(&two_schemas(
            r#"{source: s, codes: [{code: "2", name: B, meaning: b}]}"#,
        ))
        .unwrap_err()
        .join("\n");
        assert!(
            problems.contains("two schemas give this field different codes"),
            "{problems}"
        );
    }

    #[test]
    fn field_paths_become_module_names() {
        for (path, module) in [
            ("result_data.code", "result_data_code"),
            ("errcode", "errcode"),
            ("ErrorType", "error_type"),
            ("errorCode", "error_code"),
            ("value.errorCode", "value_error_code"),
            ("items[].code", "items_code"),
        ] {
            assert_eq!(snake_case(path), module, "{path}");
        }
    }
}
