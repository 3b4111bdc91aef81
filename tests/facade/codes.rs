//! Every documented vendor error code, served in the vendor's own envelope (as its documentation describes it,
//! not through our generated types), must come back as the kind the code table promises.

use chrono::{DateTime, TimeDelta};
use refresh_facade::{
    Clock, DocumentedCode, ErrorKind, RefreshError, RefreshGrant, Vendor, documented_error_codes,
};
use refresh_kit_tests::capture::operation_host;
use refresh_sugon_ac::operations::RENEW_TOKEN;
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::setup::{grant, refresh_operation, refresher};

/// The answers that carry `code` in the vendor's documented failure format: `(HTTP status, body)`.
fn failure_answers(vendor: Vendor, field: &str, code: &str) -> Vec<(u16, Option<Value>)> {
    let number = || code.parse::<i64>().expect("a numeric code");
    match (vendor, field) {
        (Vendor::ISolarCloud, "result_data.code") => vec![(
            200,
            Some(
                json!({"req_serial_num": "20240911802345e5a9af16fc256e7e6b", "result_code": "1", "result_msg": "success", "result_data": {"code": code}}),
            ),
        )],
        (Vendor::ISolarCloud, "result_code") => vec![(
            200,
            Some(
                json!({"req_serial_num": "20240911802345e5a9af16fc256e7e6b", "result_code": code, "result_msg": "gateway refused"}),
            ),
        )],
        (Vendor::SugonAc, "code") => vec![(200, Some(json!({"code": code, "msg": "失败"})))],
        (Vendor::MisaCukcuk, "ErrorType") => vec![(
            200,
            Some(
                json!({"Data": null, "Success": false, "ErrorMessage": "refused", "ErrorType": number(), "Total": 0}),
            ),
        )],
        (Vendor::WechatOpen, "errcode") => {
            vec![(200, Some(json!({"errcode": number(), "errmsg": "refused"})))]
        }
        // The failure envelope may come with HTTP 200 or 403: both.
        (Vendor::Ekuaibao, "errorCode") => {
            let body = json!({"errorCode": number(), "errorMessage": "未授权", "errorDetails": null, "code": null, "data": null});
            vec![(200, Some(body.clone())), (403, Some(body))]
        }
        other => panic!("no failure format for {other:?}: add one with the new code table"),
    }
}

async fn refresh_against(vendor: Vendor, status: u16, body: Option<Value>) -> RefreshError {
    let mut answer = ResponseTemplate::new(status);
    if let Some(body) = body {
        answer = answer.set_body_json(body);
    }
    let server = operation_host(refresh_operation(vendor), answer).await;
    // When the documented sample token (Sugon AC's JWT) expired: the codes read as documented, not as a token
    // too old to renew (`sugon_reads_the_age_of_the_token_a_10004_refused`).
    let sample_expiry = DateTime::from_timestamp_millis(SUGON_SAMPLE_EXPIRE_TIME).unwrap();
    refresher(vendor, &server.uri())
        .with_clock(Clock::from_fn(move || sample_expiry))
        .refresh(&grant(vendor))
        .await
        .expect_err("a documented failure")
}

#[tokio::test]
async fn every_documented_code_maps_to_its_kind() {
    let codes = documented_error_codes();
    assert!(
        codes.len() >= 38,
        "all five vendors' tables are compiled in"
    );
    for DocumentedCode {
        vendor,
        field,
        code,
        kind,
        ..
    } in codes
    {
        for (status, body) in failure_answers(vendor, field, code) {
            let error = refresh_against(vendor, status, body).await;
            let context = format!("{vendor} {field} {code} with HTTP {status}: {error}");
            assert_eq!(error.kind(), kind, "{context}");
            assert_eq!(error.vendor(), vendor, "{context}");
            assert_eq!(error.vendor_code(), Some(code), "{context}");
            assert_eq!(error.http_status(), Some(status), "{context}");
            assert_eq!(error.is_retryable(), kind.is_retryable(), "{context}");
            // iSolarCloud's envelope carries a request id on every answer; the others' do not here.
            let request_id =
                (vendor == Vendor::ISolarCloud).then_some("20240911802345e5a9af16fc256e7e6b");
            assert_eq!(error.request_id(), request_id, "{context}");
        }
    }
}

/// A documented HTTP error status that carries no code is read with the spec's description; the status is
/// `http_status()`, never a vendor code.
#[tokio::test]
async fn documented_statuses_without_a_code_are_not_vendor_codes() {
    let misa = refresh_against(Vendor::MisaCukcuk, 401, None).await;
    assert_eq!(misa.kind(), ErrorKind::ReauthorizationRequired, "{misa}");
    assert_eq!(misa.http_status(), Some(401), "{misa}");
    assert_eq!(misa.vendor_code(), None, "{misa}");
    assert!(
        misa.detail().contains("The token is expired or invalid"),
        "the spec's description: {misa}"
    );
    let ekuaibao = refresh_against(
        Vendor::Ekuaibao,
        403,
        Some(json!({"errorMessage": "未授权"})),
    )
    .await;
    assert_eq!(
        ekuaibao.kind(),
        ErrorKind::ReauthorizationRequired,
        "{ekuaibao}"
    );
    assert_eq!(ekuaibao.http_status(), Some(403), "{ekuaibao}");
    assert_eq!(ekuaibao.vendor_code(), None, "{ekuaibao}");
    assert_eq!(ekuaibao.vendor_message(), Some("未授权"), "{ekuaibao}");
}

/// WeChat puts the request id at the end of `errmsg`; it is read out, scrubbed like the message.
#[tokio::test]
async fn wechat_request_ids_are_read_from_errmsg() {
    let body = json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest rid: 6571f2a1-0b1c2d3e-4f5a6b7c"});
    let error = refresh_against(Vendor::WechatOpen, 200, Some(body)).await;
    assert_eq!(error.vendor_code(), Some("40001"), "{error}");
    assert_eq!(
        error.request_id(),
        Some("6571f2a1-0b1c2d3e-4f5a6b7c"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("request id 6571f2a1-0b1c2d3e-4f5a6b7c"),
        "{error}"
    );
}

#[tokio::test]
async fn an_undocumented_code_keeps_the_vendors_code_and_message() {
    for (vendor, field, code) in [
        (Vendor::ISolarCloud, "result_data.code", "77"),
        (Vendor::ISolarCloud, "result_code", "E123"),
        (Vendor::SugonAc, "code", "10099"),
        (Vendor::MisaCukcuk, "ErrorType", "55"),
        (Vendor::WechatOpen, "errcode", "48001"),
        (Vendor::Ekuaibao, "errorCode", "4001"),
    ] {
        for (status, body) in failure_answers(vendor, field, code) {
            let error = refresh_against(vendor, status, body).await;
            assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
            assert_eq!(error.vendor_code(), Some(code), "{error}");
            assert!(error.to_string().contains("does not document"), "{error}");
            // iSolarCloud's refresh outcome comes with the envelope's "success", which is no message.
            let has_message = (vendor, field) != (Vendor::ISolarCloud, "result_data.code");
            assert_eq!(error.vendor_message().is_some(), has_message, "{error}");
        }
    }
}

/// The `expireTime` claim of the token in Sugon AC's documented renewal request.
const SUGON_SAMPLE_EXPIRE_TIME: i64 = 1_686_908_509_231;

/// Sugon AC's page never says which code the renewal of a too-old token gets; the token says how old it is. A
/// 10004 for a token expired more than 24 hours ago asks for a new login; any other 10004 is what it documents.
#[tokio::test]
async fn sugon_reads_the_age_of_the_token_a_10004_refused() {
    let expired = DateTime::from_timestamp_millis(SUGON_SAMPLE_EXPIRE_TIME).unwrap();
    let body = json!({"code": "10004", "msg": "参数无效"});
    for (age, kind) in [
        (TimeDelta::hours(-1), ErrorKind::InvalidRequest),
        (TimeDelta::hours(23), ErrorKind::InvalidRequest),
        (TimeDelta::hours(24), ErrorKind::InvalidRequest),
        (
            TimeDelta::hours(24) + TimeDelta::seconds(1),
            ErrorKind::ReauthorizationRequired,
        ),
        (TimeDelta::days(400), ErrorKind::ReauthorizationRequired),
    ] {
        let server = operation_host(
            &RENEW_TOKEN,
            ResponseTemplate::new(200).set_body_json(&body),
        )
        .await;
        let now = expired + age;
        let error = refresher(Vendor::SugonAc, &server.uri())
            .with_clock(Clock::from_fn(move || now))
            .refresh(&grant(Vendor::SugonAc))
            .await
            .expect_err("a refusal");
        assert_eq!(error.kind(), kind, "{age}: {error}");
        assert_eq!(error.vendor_code(), Some("10004"), "{error}");
    }
    // A token without a readable expiry is no evidence: the code's documented meaning.
    let server = operation_host(
        &RENEW_TOKEN,
        ResponseTemplate::new(200).set_body_json(&body),
    )
    .await;
    let error = refresher(Vendor::SugonAc, &server.uri())
        .refresh(&RefreshGrant::new("a.bm90IGpzb24.c"))
        .await
        .expect_err("a refusal");
    assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
}

/// Ekuaibao's codes are HTTP statuses: an undocumented 5xx is its server failing, and passes.
#[tokio::test]
async fn ekuaibao_server_failure_codes_are_transient() {
    for code in [500, 502, 503] {
        let body = json!({"errorCode": code, "errorMessage": "服务器错误"});
        let error = refresh_against(Vendor::Ekuaibao, 200, Some(body.clone())).await;
        assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
        let sent = code.to_string();
        assert_eq!(error.vendor_code(), Some(sent.as_str()), "{error}");
        // With the HTTP status it mirrors: a status the spec does not document, transient as every 5xx.
        let error = refresh_against(Vendor::Ekuaibao, code, Some(body)).await;
        assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
    }
}

/// Ekuaibao's auth pages show the failure nested in the success wrapper, `errorDetail` singular: it is the
/// documented error, not a malformed answer.
#[tokio::test]
async fn ekuaibao_nested_failures_are_the_documented_error() {
    let body = json!({"value": {"errorCode": 403, "errorMessage": "未授权", "errorDetail": null}});
    for status in [200, 403] {
        let error = refresh_against(Vendor::Ekuaibao, status, Some(body.clone())).await;
        assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired, "{error}");
        assert_eq!(error.vendor_code(), Some("403"), "{error}");
        assert_eq!(error.vendor_message(), Some("未授权"), "{error}");
        assert_eq!(error.http_status(), Some(status), "{error}");
    }
}

/// iSolarCloud documents its codes as strings, and may send them as numbers: both read alike, and the envelope's
/// "success" is not reported as the failure's message.
#[tokio::test]
async fn isolarcloud_codes_as_numbers_read_like_strings() {
    for code in [json!("2"), json!(2)] {
        let body = json!({"req_serial_num": "20240911802345e5a9af16fc256e7e6b", "result_code": "1", "result_msg": "success", "result_data": {"code": code}});
        let error = refresh_against(Vendor::ISolarCloud, 200, Some(body)).await;
        assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired, "{error}");
        assert_eq!(error.vendor_code(), Some("2"), "{error}");
        assert!(
            error.detail().contains("no authorization information"),
            "{error}"
        );
        assert_eq!(error.vendor_message(), None, "{error}");
    }
    let gateway = json!({"result_code": 1, "result_msg": "success", "result_data": {"code": -2}});
    let error = refresh_against(Vendor::ISolarCloud, 200, Some(gateway)).await;
    assert_eq!(error.vendor_code(), Some("-2"), "{error}");
    assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired, "{error}");
}
