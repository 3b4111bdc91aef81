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

use refresh_runtime::{Operation, Secret, TokenRole};
use serde_json::Value;

use super::{Answer, Exchange};
use crate::Anomaly;
use crate::error::{ErrorKind, RefreshError, Said, looks_like_a_code};
use crate::expiry::ExpiryHint;
use crate::token::VendorExtras;

/// Reads an answer of `exchange` that the generated types could not decode (`decode` says why): the vendor's
/// error if the answer carries a readable error code, its tokens otherwise (with `unread` as its extras: nothing
/// else of such an answer is read), or a malformed-response error when it carries neither.
pub(crate) fn salvage(
    exchange: &Exchange<'_>,
    body: &[u8],
    decode: &serde_json::Error,
    unread: VendorExtras,
) -> Result<Answer, RefreshError> {
    let (operation, kinds) = (exchange.operation, exchange.kinds);
    let status = operation.only_decoded_status();
    let malformed = |what: &str| {
        let detail = format!(
            "the answer {what} (at line {}, column {}), not the documented format",
            decode.line(),
            decode.column()
        );
        RefreshError::new(kinds.vendor, ErrorKind::MalformedResponse, detail).with_status(status)
    };
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return Err(malformed(match decode.classify() {
            serde_json::error::Category::Eof => "ends early (truncated or empty)",
            _ => "is not JSON",
        }));
    };
    let mut anomalies = vec![Anomaly::UndocumentedTypes {
        line: decode.line(),
        column: decode.column(),
    }];
    for field in kinds.code_fields {
        for value in values_at(&answer, field.path) {
            match code_text(value) {
                Some(code) => {
                    let said = Said {
                        status,
                        message: None,
                        request_id: None,
                        redactor: exchange.redactor,
                    };
                    kinds.check(field, Some(&code), &said)?;
                }
                None if value.is_null() => {}
                None => anomalies.push(Anomaly::CodeNotACode {
                    field: field.path.to_owned(),
                    found: type_name(value),
                }),
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
    tracing::warn!(
        vendor = %kinds.vendor,
        operation = operation.id,
        ?anomalies,
        "the vendor's answer does not match its documentation; its tokens were kept"
    );
    Ok(Answer {
        status,
        access_token,
        refresh_token,
        token_type: None,
        expiry,
        extras: unread,
        anomalies,
    })
}

/// The first token with `role`, in the spec's order of its fields: a non-blank string.
fn token(
    answer: &Value,
    operation: &Operation,
    role: TokenRole,
    anomalies: &mut Vec<Anomaly>,
) -> Option<Secret> {
    for path in operation.token_paths(role) {
        for value in values_at(answer, path) {
            match value {
                Value::String(text) if !text.trim().is_empty() => {
                    return Some(Secret::new(text.as_str()));
                }
                Value::Null => {}
                // A token is text; anything else in its place is not a token, and is not taken for one.
                other => anomalies.push(Anomaly::TokenNotText {
                    field: path.to_string(),
                    found: type_name(other),
                }),
            }
        }
    }
    None
}

/// The expiry: a lifetime in seconds or an instant, a number or a numeric text, wherever the spec marks one.
fn expiry(answer: &Value, operation: &Operation, anomalies: &mut Vec<Anomaly>) -> ExpiryHint {
    for path in operation.token_paths(TokenRole::ExpiresIn) {
        for value in values_at(answer, path) {
            match value {
                Value::Number(number) => {
                    if let Some(seconds) = number.as_i64() {
                        return ExpiryHint::Seconds(seconds);
                    }
                }
                Value::String(text) => return ExpiryHint::SecondsText(text.clone()),
                _ => {}
            }
        }
    }
    for path in operation.token_paths(TokenRole::ExpiresAt) {
        for value in values_at(answer, path) {
            match value {
                Value::Number(number) => {
                    if let Some(millis) = number.as_i64() {
                        return ExpiryHint::EpochMillis(millis);
                    }
                }
                Value::String(text) => {
                    return match text.trim().parse::<i64>() {
                        Ok(millis) => ExpiryHint::EpochMillis(millis),
                        Err(_) => ExpiryHint::Rfc3339(text.clone()),
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
        anomalies.push(Anomaly::NoReadableExpiry);
    }
    ExpiryHint::Absent
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

#[cfg(all(test, feature = "ekuaibao"))]
mod tests {
    use refresh_runtime::{CodeField, ErrorCode, TokenField};
    use serde_json::json;

    use super::*;
    use crate::error::{CodeKinds, Redactor};

    const UNAUTHORIZED: ErrorCode = ErrorCode {
        field: "status.code",
        code: "7",
        name: "UNAUTHORIZED",
        meaning: "unauthorized",
        source: "the page",
    };
    const STATUS_CODE: CodeField = CodeField {
        path: "status.code",
        success: Some("0"),
        codes: &[UNAUTHORIZED],
    };
    const KINDS: CodeKinds = CodeKinds {
        vendor: crate::Vendor::WechatOpen,
        code_fields: &[STATUS_CODE],
        operations: &[],
        codes: &[(UNAUTHORIZED, ErrorKind::CredentialsRejected)],
        statuses: &[],
        undocumented: ErrorKind::InvalidRequest,
    };
    const REFRESH: Operation = Operation {
        id: "refresh",
        method: "POST",
        path: "/refresh",
        statuses: &[refresh_runtime::DocumentedStatus {
            status: 200,
            decoded: true,
            description: "the tokens",
        }],
        empty_body_content_type: None,
        tokens: &[
            TokenField {
                role: TokenRole::AccessToken,
                path: "data.access",
            },
            TokenField {
                role: TokenRole::RefreshToken,
                path: "data.refresh",
            },
            TokenField {
                role: TokenRole::ExpiresIn,
                path: "data.expires_in",
            },
            TokenField {
                role: TokenRole::ExpiresAt,
                path: "data.expires_at",
            },
        ],
    };

    /// Salvages `answer` as an answer to [`REFRESH`] whose typed decode failed.
    fn read(answer: &str) -> Result<Answer, RefreshError> {
        // The decode error progenitor would keep: the JSON's own, or (for valid JSON) a type mismatch.
        let decode = serde_json::from_str::<Value>(answer)
            .err()
            .unwrap_or_else(|| serde_json::from_str::<u8>(answer).unwrap_err());
        let redactor = Redactor::new(["secret-refresh-token"]);
        let exchange = Exchange {
            operation: &REFRESH,
            kinds: &KINDS,
            redactor: &redactor,
        };
        let unread = VendorExtras::Ekuaibao(crate::EkuaibaoExtras {
            corporation_id: None,
        });
        salvage(&exchange, answer.as_bytes(), &decode, unread)
    }

    fn tokens(data: Value) -> String {
        json!({"status": {"code": 0}, "data": data, "other": {"drifted": true}}).to_string()
    }

    #[test]
    fn tokens_are_read_where_the_spec_marks_them() {
        let salvaged = read(&tokens(
            json!({"access": "new-access", "refresh": "secret-refresh-token"}),
        ))
        .unwrap();
        assert_eq!(salvaged.status, Some(200));
        assert_eq!(salvaged.access_token.unwrap().expose_secret(), "new-access");
        assert_eq!(
            salvaged.refresh_token.unwrap().expose_secret(),
            "secret-refresh-token"
        );
        assert!(
            matches!(salvaged.anomalies[0], Anomaly::UndocumentedTypes { .. }),
            "{:?}",
            salvaged.anomalies
        );
        assert!(
            salvaged
                .anomalies
                .iter()
                .all(|a| !a.to_string().contains("secret-refresh-token")),
            "{:?}",
            salvaged.anomalies
        );
    }

    #[test]
    fn a_blank_or_non_text_token_is_no_token() {
        for access in [json!("  "), json!(12345), json!({"token": "x"})] {
            let error = read(&tokens(json!({"access": access}))).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::MalformedResponse, "{access}");
            assert!(error.detail().contains("no access token"), "{error}");
        }
        let anomalies = read(&tokens(json!({"access": "a", "refresh": 7})))
            .unwrap()
            .anomalies;
        assert!(
            anomalies.contains(&Anomaly::TokenNotText {
                field: "data.refresh".into(),
                found: "number"
            }),
            "{anomalies:?}"
        );
    }

    #[test]
    fn a_readable_error_code_is_the_vendors_error_and_a_null_or_odd_one_says_nothing() {
        let refused = json!({"status": {"code": 7}, "data": {"access": "a"}}).to_string();
        let error = read(&refused).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::CredentialsRejected, "{error}");
        assert_eq!(error.vendor_code(), Some("7"));

        let null = json!({"status": {"code": null}, "data": {"access": "a"}}).to_string();
        let anomalies = read(&null).unwrap().anomalies;
        assert_eq!(
            anomalies.len(),
            2,
            "no anomaly for a null code: {anomalies:?}"
        );

        let odd = json!({"status": {"code": [1]}, "data": {"access": "a"}}).to_string();
        let anomalies = read(&odd).unwrap().anomalies;
        assert!(
            anomalies.contains(&Anomaly::CodeNotACode {
                field: "status.code".into(),
                found: "array"
            }),
            "{anomalies:?}"
        );
    }

    #[test]
    fn every_expiry_form_is_read() {
        let expiry = |data: Value| read(&tokens(data)).unwrap().expiry;
        let with = |key: &str, value: Value| {
            let mut data = json!({"access": "a"});
            data[key] = value;
            data
        };
        assert!(matches!(
            expiry(with("expires_in", json!(7200))),
            ExpiryHint::Seconds(7200)
        ));
        assert!(
            matches!(expiry(with("expires_in", json!("7200"))), ExpiryHint::SecondsText(t) if t == "7200")
        );
        assert!(matches!(
            expiry(with("expires_at", json!(1_641_626_383_724i64))),
            ExpiryHint::EpochMillis(1_641_626_383_724)
        ));
        assert!(matches!(
            expiry(with("expires_at", json!("1641626383724"))),
            ExpiryHint::EpochMillis(1_641_626_383_724)
        ));
        assert!(matches!(
            expiry(with("expires_at", json!("2025-06-25T18:44:15.6186183+07:00"))),
            ExpiryHint::Rfc3339(t) if t.starts_with("2025-06-25")
        ));
        let unreadable = read(&tokens(with("expires_in", json!({"s": 1})))).unwrap();
        assert!(matches!(unreadable.expiry, ExpiryHint::Absent));
        assert!(unreadable.anomalies.contains(&Anomaly::NoReadableExpiry));
    }

    #[test]
    fn an_answer_that_is_no_json_says_how() {
        let truncated = read(r#"{"data": {"access": "#).unwrap_err();
        assert_eq!(truncated.kind(), ErrorKind::MalformedResponse);
        assert!(truncated.detail().contains("ends early"), "{truncated}");
        let html = read("<html>502</html>").unwrap_err();
        assert!(html.detail().contains("is not JSON"), "{html}");
        assert_eq!(html.http_status(), Some(200));
    }

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
