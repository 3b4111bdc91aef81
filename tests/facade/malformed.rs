//! A corpus of broken answers, served to every vendor: each must come back as a typed error that names the
//! vendor and the HTTP status, never a panic and never a token.

use std::time::Duration;

use refresh_facade::{ErrorKind, Vendor};
use refresh_kit_tests::{RawAnswer, serve_raw};
use serde_json::Value;

use crate::setup::{grant, refresh_operation, refresher, spec};

/// One broken answer and what it must become.
struct Case {
    name: &'static str,
    answer: RawAnswer,
    kind: ErrorKind,
    status: Status,
}

/// The HTTP status the error must report.
#[derive(Clone, Copy)]
enum Status {
    Known(u16),
    /// An HTTP 200 answer that does not decode: progenitor does not keep its status, so the error reports it
    /// where the operation decodes one status only (not Ekuaibao's 200-or-403).
    UndecodableOk,
    /// None came, or it was lost while reading the body.
    Unknown,
}

fn json_answer(body: &str) -> RawAnswer {
    RawAnswer::http(
        "200 OK",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

/// What an answer whose every type is wrong comes back as (see the "wrong types" case).
fn wrong_types_kind(vendor: Vendor) -> ErrorKind {
    match vendor {
        Vendor::ISolarCloud | Vendor::SugonAc => ErrorKind::InvalidRequest,
        _ => ErrorKind::MalformedResponse,
    }
}

/// What a 401 or 403 means, whatever its body: what the spec documents for the status (Ekuaibao's 403 and MISA's
/// 401: the token is expired or invalid), else the request's credentials were refused.
fn refused_kind(vendor: Vendor, status: u16) -> ErrorKind {
    match (vendor, status) {
        (Vendor::Ekuaibao, 403) | (Vendor::MisaCukcuk, 401) => ErrorKind::ReauthorizationRequired,
        _ => ErrorKind::CredentialsRejected,
    }
}

/// Every string in the sample replaced by a number and every number by a string: the right shape, wrong types.
fn with_wrong_types(value: &Value) -> Value {
    match value {
        Value::String(_) => Value::from(12345),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(_) => Value::String("yes".into()),
        Value::Array(items) => Value::Array(items.iter().map(with_wrong_types).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_wrong_types(v)))
                .collect(),
        ),
        Value::Null => Value::Null,
    }
}

fn corpus(vendor: Vendor) -> Vec<Case> {
    let success = spec(vendor)
        .success_answer(refresh_operation(vendor))
        .to_string();
    let truncated = success[..success.len() / 2].to_owned();
    let wrong_types = with_wrong_types(&serde_json::from_str(&success).unwrap()).to_string();
    let html = RawAnswer::http(
        "200 OK",
        &[("content-type", "text/html")],
        b"<html><body><h1>Bad Gateway</h1></body></html>",
    );
    use ErrorKind::*;
    use Status::*;
    vec![
        Case { name: "HTML error page with 200", answer: html, kind: MalformedResponse, status: UndecodableOk },
        Case { name: "empty body", answer: json_answer(""), kind: MalformedResponse, status: UndecodableOk },
        Case { name: "truncated JSON", answer: json_answer(&truncated), kind: MalformedResponse, status: UndecodableOk },
        // Where the sample's success code is a string, it becomes the number 12345: a code the vendor does not
        // document, which is an error of its own; elsewhere the answer has no token left (a token is text).
        Case { name: "wrong types", answer: json_answer(&wrong_types), kind: wrong_types_kind(vendor), status: UndecodableOk },
        Case { name: "unknown envelope", answer: json_answer(r#"{"status":"ok","payload":{}}"#), kind: MalformedResponse, status: Known(200) },
        Case { name: "empty object", answer: json_answer("{}"), kind: MalformedResponse, status: Known(200) },
        Case { name: "JSON array", answer: json_answer("[]"), kind: MalformedResponse, status: UndecodableOk },
        Case { name: "JSON null", answer: json_answer("null"), kind: MalformedResponse, status: UndecodableOk },
        Case {
            name: "plain text with a text content type",
            answer: RawAnswer::http("200 OK", &[("content-type", "text/plain")], b"OK"),
            kind: MalformedResponse,
            status: UndecodableOk,
        },
        // The status line was fine; the failure surfaces while reading the body, where progenitor keeps no status.
        Case { name: "oversized chunked body", answer: RawAnswer::chunked(b' ', 64 * 1024, 32), kind: MalformedResponse, status: Unknown },
        Case {
            name: "redirect",
            answer: RawAnswer::http("302 Found", &[("location", "https://elsewhere.example/")], b""),
            kind: MalformedResponse,
            status: Known(302),
        },
        Case {
            name: "502 HTML from a proxy",
            answer: RawAnswer::http("502 Bad Gateway", &[("content-type", "text/html")], b"<html>502</html>"),
            kind: Transient,
            status: Known(502),
        },
        Case {
            name: "429 with Retry-After",
            answer: RawAnswer::http("429 Too Many Requests", &[("retry-after", "7")], b""),
            kind: Transient,
            status: Known(429),
        },
        // A refusal is a refusal whatever its body: never retried. Where the spec documents the status, it means
        // what the spec says (`refused_kind`).
        Case {
            name: "403 in plain text",
            answer: RawAnswer::http("403 Forbidden", &[("content-type", "text/plain")], b"Forbidden"),
            kind: refused_kind(vendor, 403),
            status: Known(403),
        },
        Case {
            name: "403 HTML page",
            answer: RawAnswer::http("403 Forbidden", &[("content-type", "text/html")], b"<html><h1>403 Forbidden</h1></html>"),
            kind: refused_kind(vendor, 403),
            status: Known(403),
        },
        Case { name: "403 empty", answer: RawAnswer::http("403 Forbidden", &[], b""), kind: refused_kind(vendor, 403), status: Known(403) },
        Case {
            name: "403 JSON in another envelope",
            answer: RawAnswer::http("403 Forbidden", &[("content-type", "application/json")], br#"{"error":"forbidden","status":403}"#),
            kind: refused_kind(vendor, 403),
            status: Known(403),
        },
        Case {
            name: "401 in plain text",
            answer: RawAnswer::http("401 Unauthorized", &[("content-type", "text/plain")], b"Unauthorized"),
            kind: refused_kind(vendor, 401),
            status: Known(401),
        },
        Case { name: "401 empty", answer: RawAnswer::http("401 Unauthorized", &[], b""), kind: refused_kind(vendor, 401), status: Known(401) },
        Case { name: "404 (wrong base URL)", answer: RawAnswer::http("404 Not Found", &[], b""), kind: CredentialsRejected, status: Known(404) },
        Case { name: "connection dropped", answer: RawAnswer::Close, kind: Transient, status: Unknown },
        Case { name: "no answer in time", answer: RawAnswer::Hang, kind: Transient, status: Unknown },
        Case {
            name: "answer dropped mid-body",
            answer: RawAnswer::Bytes(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"code\":".to_vec()),
            kind: Transient,
            status: Unknown,
        },
    ]
}

/// The statuses whose answers the vendor's refresh operation decodes, as its spec lists them.
fn decoded_statuses(vendor: Vendor) -> Vec<u16> {
    let mut statuses: Vec<u16> = spec(vendor)
        .response_examples(refresh_operation(vendor))
        .iter()
        .map(|(status, _)| *status)
        .collect();
    statuses.dedup();
    statuses
}

async fn check_corpus(vendor: Vendor) {
    let cases = corpus(vendor);
    assert!(cases.len() >= 10);
    for case in cases {
        let base = serve_raw(case.answer).await;
        let error = refresher(vendor, &base)
            .refresh(&grant(vendor))
            .await
            .expect_err(case.name);
        let context = format!("{vendor}, {}: {error}", case.name);
        assert_eq!(error.kind(), case.kind, "{context}");
        assert_eq!(error.vendor(), vendor, "{context}");
        let status = match case.status {
            Status::Known(status) => Some(status),
            Status::UndecodableOk => (decoded_statuses(vendor) == [200]).then_some(200),
            Status::Unknown => None,
        };
        assert_eq!(error.http_status(), status, "{context}");
        let shown = format!("{error} {error:?}");
        assert!(
            shown.contains(vendor.as_str()) || shown.contains(&format!("{vendor:?}")),
            "{context}"
        );
        if let Some(status) = status {
            assert!(
                error.to_string().contains(&format!("HTTP {status}")),
                "{context}"
            );
        }
        if case.name == "429 with Retry-After" {
            assert_eq!(
                error.retry_after(),
                Some(Duration::from_secs(7)),
                "{context}"
            );
        }
        let grant = grant(vendor);
        assert!(
            !shown.contains(grant.refresh_token.expose_secret()),
            "{context}: the error shows the refresh token"
        );
    }
}

#[tokio::test]
async fn isolarcloud_malformed_answers_are_typed_errors() {
    check_corpus(Vendor::ISolarCloud).await;
}

#[tokio::test]
async fn sugon_ac_malformed_answers_are_typed_errors() {
    check_corpus(Vendor::SugonAc).await;
}

#[tokio::test]
async fn misa_cukcuk_malformed_answers_are_typed_errors() {
    check_corpus(Vendor::MisaCukcuk).await;
}

#[tokio::test]
async fn wechat_open_malformed_answers_are_typed_errors() {
    check_corpus(Vendor::WechatOpen).await;
}

#[tokio::test]
async fn ekuaibao_malformed_answers_are_typed_errors() {
    check_corpus(Vendor::Ekuaibao).await;
}
