//! The generated clients read at most `MAX_RESPONSE_BODY_BYTES` of an answer (the hooks templated by xtask; the
//! same code in every vendor crate, exercised here through one).

use std::error::Error as _;

use refresh_isolarcloud::{Client, Error, MAX_RESPONSE_BODY_BYTES};
use refresh_kit_tests::{RawAnswer, serve_raw};

async fn refresh(base: &str) -> Result<refresh_isolarcloud::types::TokenEnvelope, Error> {
    let client = Client::new(base);
    let call = client
        .refresh_token()
        .x_access_key("k")
        .body_map(|b| b.refresh_token("r"));
    call.send().await.map(|r| r.into_inner())
}

fn assert_too_large(result: Result<refresh_isolarcloud::types::TokenEnvelope, Error>) {
    let error = result.expect_err("an oversized answer is an error");
    let Error::ResponseBodyError(reqwest_error) = &error else {
        panic!("expected ResponseBodyError, got {error:?}")
    };
    let mut source = reqwest_error.source();
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            assert_eq!(io.kind(), std::io::ErrorKind::FileTooLarge);
            assert!(
                io.to_string()
                    .contains(&MAX_RESPONSE_BODY_BYTES.to_string()),
                "{io}"
            );
            return;
        }
        source = inner.source();
    }
    panic!("no FileTooLarge in the error's sources: {error:?}");
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_not_read() {
    // 2 MiB in 64 KiB chunks, no Content-Length.
    let base = serve_raw(RawAnswer::chunked(b' ', 64 * 1024, 32)).await;
    assert_too_large(refresh(&base).await);
}

#[tokio::test]
async fn an_announced_length_past_the_limit_is_refused_before_reading() {
    let body = vec![b' '; MAX_RESPONSE_BODY_BYTES + 1];
    let base = serve_raw(RawAnswer::http(
        "200 OK",
        &[("content-type", "application/json")],
        &body,
    ))
    .await;
    assert_too_large(refresh(&base).await);
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read_and_decoded() {
    let mut body = br#"{"result_code":"1","result_data":{"code":"2"}}"#.to_vec();
    body.resize(MAX_RESPONSE_BODY_BYTES, b' ');
    let base = serve_raw(RawAnswer::http(
        "200 OK",
        &[("content-type", "application/json")],
        &body,
    ))
    .await;
    let envelope = refresh(&base)
        .await
        .expect("a body of exactly the limit decodes");
    assert_eq!(
        envelope.result_data.and_then(|d| d.code).as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn every_generated_client_has_the_same_bound() {
    assert_eq!(
        refresh_ekuaibao::MAX_RESPONSE_BODY_BYTES,
        MAX_RESPONSE_BODY_BYTES
    );
    assert_eq!(
        refresh_misa_cukcuk::MAX_RESPONSE_BODY_BYTES,
        MAX_RESPONSE_BODY_BYTES
    );
    assert_eq!(
        refresh_sugon_ac::MAX_RESPONSE_BODY_BYTES,
        MAX_RESPONSE_BODY_BYTES
    );
    assert_eq!(
        refresh_wechat_open::MAX_RESPONSE_BODY_BYTES,
        MAX_RESPONSE_BODY_BYTES
    );
}
