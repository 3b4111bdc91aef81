//! Every documented vendor error code, served in the vendor's own envelope (as its documentation describes it,
//! not through our generated types), must come back as the kind the code table promises.

use refresh_facade::{DocumentedCode, ErrorKind, RefreshError, Vendor, documented_error_codes};
use refresh_wire_tests::capture::operation_host;
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
    refresher(vendor, &server.uri())
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
        (Vendor::Ekuaibao, "errorCode", "500"),
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
