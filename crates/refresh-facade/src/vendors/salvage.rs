//! Keeping the tokens of an answer whose other fields are not what the spec says.
//!
//! Once a vendor has answered a refresh, the old refresh token may be used up: dropping an answer because some
//! field unrelated to the tokens came as another JSON type (a number for a string, an object for an array) would
//! lose the only live credential. When the generated client cannot decode a 2xx answer, the facade reads the raw
//! body (progenitor keeps it) at the places the spec marks with `x-token-role` (the generated
//! `Operation::tokens`), and at its error-code fields:
//!
//! - a readable code that is not the success value is the vendor's error, as usual;
//! - otherwise an answer that carries an access token succeeds, and the `TokenSet` says what did not match
//!   ([`crate::TokenSet::anomalies`]); a tracing warning says the same. Anomalies name fields and JSON types,
//!   never values.

use refresh_runtime::{CodeField, Operation, Secret, TokenRole};
use serde_json::Value;

use crate::error::{CodeKinds, ErrorKind, Redactor, RefreshError, Said, looks_like_a_code};
use crate::expiry::ExpiryHint;

/// The tokens and expiry read from an answer the generated types could not decode.
#[derive(Debug)]
pub(crate) struct Salvaged {
    /// The answer's status, where the operation decodes only one.
    pub status: Option<u16>,
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub expiry: Expiry,
    /// What did not match the documentation, and how the tokens were read.
    pub anomalies: Vec<String>,
}

/// An expiry as read from the raw answer.
#[derive(Debug)]
pub(crate) enum Expiry {
    Seconds(i64),
    SecondsText(String),
    EpochMillis(i64),
    Instant(String),
    Absent,
}

impl Salvaged {
    /// The normalized tokens, with `extras` (what the vendor says besides the tokens is not read from an answer
    /// that does not match its documentation).
    #[cfg_attr(
        not(any(
            feature = "isolarcloud",
            feature = "misa-cukcuk",
            feature = "wechat-open",
            feature = "ekuaibao"
        )),
        expect(
            dead_code,
            reason = "Sugon AC reads its salvaged token by its own rules"
        )
    )]
    pub fn into_token_set(
        self,
        vendor: crate::Vendor,
        extras: crate::token::VendorExtras,
        grant: &crate::grant::RefreshGrant,
        sent_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::token::TokenSet, RefreshError> {
        let Salvaged {
            status,
            access_token,
            refresh_token,
            expiry,
            anomalies,
        } = self;
        super::Answer {
            access_token,
            refresh_token,
            token_type: None,
            expiry: expiry.hint(),
            extras,
            anomalies,
        }
        .into_token_set(vendor, grant, sent_at, status)
    }
}

impl Expiry {
    /// The expiry, in the form [`crate::expiry::resolve`] reads.
    pub fn hint(&self) -> ExpiryHint<'_> {
        match self {
            Expiry::Seconds(seconds) => ExpiryHint::Seconds(*seconds),
            Expiry::SecondsText(text) => ExpiryHint::SecondsText(text),
            Expiry::EpochMillis(millis) => ExpiryHint::EpochMillis(*millis),
            Expiry::Instant(text) => ExpiryHint::Rfc3339(text),
            Expiry::Absent => ExpiryHint::Absent,
        }
    }
}

/// What the salvage needs to know about the vendor.
pub(crate) struct Vendor<'a> {
    pub kinds: &'a CodeKinds,
    pub code_fields: &'a [CodeField],
    pub redactor: &'a Redactor<'a>,
}

/// Reads an answer to `operation` that the generated types could not decode (`decode` says why): the vendor's
/// error if the answer carries a readable error code, its tokens otherwise, or a malformed-response error when
/// it carries neither.
pub(crate) fn salvage(
    vendor: &Vendor<'_>,
    operation: &Operation,
    body: &[u8],
    decode: &serde_json::Error,
) -> Result<Salvaged, RefreshError> {
    let status = operation.only_decoded_status();
    let malformed = |what: &str| {
        let detail = format!(
            "the answer {what} (at line {}, column {}), not the documented format",
            decode.line(),
            decode.column()
        );
        RefreshError::new(vendor.kinds.vendor, ErrorKind::MalformedResponse, detail)
            .with_status(status)
    };
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return Err(malformed(match decode.classify() {
            serde_json::error::Category::Eof => "ends early (truncated or empty)",
            _ => "is not JSON",
        }));
    };
    let mut anomalies = vec![format!(
        "the answer does not match the documented types (line {}, column {}); its tokens were read from the fields \
         the spec marks",
        decode.line(),
        decode.column()
    )];
    for field in vendor.code_fields {
        for value in values_at(&answer, field.path) {
            match code_text(value) {
                Some(code) if field.is_success(&code) => {}
                Some(code) => {
                    let said = Said {
                        status,
                        message: None,
                        request_id: None,
                        redactor: vendor.redactor,
                    };
                    return Err(vendor.kinds.code_error(field, &code, &said));
                }
                None if value.is_null() => {}
                None => anomalies.push(format!(
                    "error code `{}` is a {} that is no code: ignored",
                    field.path,
                    type_name(value)
                )),
            }
        }
    }
    let access_token = token(&answer, operation, TokenRole::AccessToken, &mut anomalies);
    let refresh_token = token(&answer, operation, TokenRole::RefreshToken, &mut anomalies);
    let expiry = expiry(&answer, operation, &mut anomalies);
    if access_token.is_none() {
        return Err(malformed(
            "is JSON of the wrong shape or types, with no access token",
        ));
    }
    let salvaged = Salvaged {
        status,
        access_token,
        refresh_token,
        expiry,
        anomalies,
    };
    tracing::warn!(
        vendor = %vendor.kinds.vendor,
        operation = operation.id,
        anomalies = ?salvaged.anomalies,
        "the vendor's answer does not match its documentation; its tokens were kept"
    );
    Ok(salvaged)
}

/// The first token with `role`, in the spec's order of its fields: a non-blank string.
fn token(
    answer: &Value,
    operation: &Operation,
    role: TokenRole,
    anomalies: &mut Vec<String>,
) -> Option<Secret> {
    for path in operation.token_paths(role) {
        for value in values_at(answer, path) {
            match value {
                Value::String(text) if !text.trim().is_empty() => {
                    return Some(Secret::new(text.as_str()));
                }
                Value::Null => {}
                // A token is text; anything else in its place is not a token, and is not taken for one.
                other => anomalies.push(format!(
                    "`{path}` is a {}, not a token: ignored",
                    type_name(other)
                )),
            }
        }
    }
    None
}

/// The expiry: a lifetime in seconds or an instant, a number or a numeric text, wherever the spec marks one.
fn expiry(answer: &Value, operation: &Operation, anomalies: &mut Vec<String>) -> Expiry {
    for path in operation.token_paths(TokenRole::ExpiresIn) {
        for value in values_at(answer, path) {
            match value {
                Value::Number(number) => {
                    if let Some(seconds) = number.as_i64() {
                        return Expiry::Seconds(seconds);
                    }
                }
                Value::String(text) => return Expiry::SecondsText(text.clone()),
                _ => {}
            }
        }
    }
    for path in operation.token_paths(TokenRole::ExpiresAt) {
        for value in values_at(answer, path) {
            match value {
                Value::Number(number) => {
                    if let Some(millis) = number.as_i64() {
                        return Expiry::EpochMillis(millis);
                    }
                }
                Value::String(text) => {
                    return match text.trim().parse::<i64>() {
                        Ok(millis) => Expiry::EpochMillis(millis),
                        Err(_) => Expiry::Instant(text.clone()),
                    };
                }
                _ => {}
            }
        }
    }
    if operation
        .tokens
        .iter()
        .any(|f| matches!(f.role, TokenRole::ExpiresIn | TokenRole::ExpiresAt))
    {
        anomalies.push("no readable expiry: the conservative lifetime applies".to_owned());
    }
    Expiry::Absent
}

/// The values at a JSON path (`a.b`; `a[].b` for `b` of every element of the array `a`), in order.
fn values_at<'v>(value: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut current = vec![value];
    for segment in path.split('.') {
        let (name, each) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment, false),
        };
        current = current
            .into_iter()
            .filter_map(|v| v.get(name))
            .flat_map(|v| match (each, v) {
                (true, Value::Array(items)) => items.iter().collect(),
                (true, _) => Vec::new(),
                (false, v) => vec![v],
            })
            .collect();
    }
    current
}

/// A code as text: a whole number, or a string shaped like a code (anything else says nothing, and may be a
/// value that must not be repeated).
fn code_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if looks_like_a_code(text) => Some(text.trim().to_owned()),
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_reach_fields_and_every_element_of_arrays() {
        let answer =
            json!({"a": {"b": 1}, "list": [{"t": "x"}, {"t": null}, {"u": 2}], "s": "text"});
        assert_eq!(values_at(&answer, "a.b"), [&json!(1)]);
        assert_eq!(values_at(&answer, "list[].t"), [&json!("x"), &json!(null)]);
        assert_eq!(values_at(&answer, "s"), [&json!("text")]);
        assert!(values_at(&answer, "s[].t").is_empty());
        assert!(values_at(&answer, "a.missing").is_empty());
    }

    #[test]
    fn codes_are_strings_or_whole_numbers() {
        assert_eq!(code_text(&json!("E912")), Some("E912".into()));
        assert_eq!(code_text(&json!(" 1 ")), Some("1".into()));
        assert_eq!(code_text(&json!(-1)), Some("-1".into()));
        assert_eq!(code_text(&json!(1.5)), None);
        assert_eq!(code_text(&json!(true)), None);
        assert_eq!(code_text(&json!("")), None);
        assert_eq!(code_text(&json!({"code": 1})), None);
        assert_eq!(
            code_text(&json!("CANARY7d1e0c9bRefreshKit")),
            None,
            "not shaped like a code"
        );
    }

    #[test]
    fn type_names_are_json_names() {
        let names: Vec<&str> = [
            json!(null),
            json!(true),
            json!(1),
            json!("s"),
            json!([]),
            json!({}),
        ]
        .iter()
        .map(type_name)
        .collect();
        assert_eq!(
            names,
            ["null", "boolean", "number", "string", "array", "object"]
        );
    }
}
