//! Wire tests: for every operation of every spec, the request the generated client sends and what it decodes
//! from every documented response, snapshotted and compared with the vendor's documentation samples.
//!
//! Snapshots are in `snapshots/`, named `<vendor>__<operation>__<request|response>__…`; review changes with
//! `cargo insta review`.

mod bounded_body;
mod ekuaibao;
mod isolarcloud;
mod misa_cukcuk;
mod sugon_ac;
mod wechat_open;

/// Every operation of a spec has wire tests: a new operation without them fails here.
fn assert_covers_every_operation(
    spec: &refresh_kit_tests::Spec,
    tested: &[&refresh_runtime::Operation],
) {
    let mut in_spec = spec.operation_ids();
    in_spec.sort();
    let mut tested: Vec<String> = tested.iter().map(|o| o.id.to_owned()).collect();
    tested.sort();
    assert_eq!(
        in_spec, tested,
        "{}: operations in the spec vs. operations with wire tests",
        spec.vendor
    );
}

/// Tokens in the generated types (`format: password` in the specs) print as `[redacted]` but go over the wire,
/// and come back from it, as they are.
#[test]
fn generated_types_redact_tokens_when_printed_but_not_on_the_wire() {
    let spec = refresh_kit_tests::Spec::load("isolarcloud");
    let sample = spec.success_answer(&refresh_isolarcloud::operations::REFRESH_TOKEN);
    let decoded: refresh_isolarcloud::types::TokenEnvelope =
        serde_json::from_value(sample.clone()).unwrap();
    let token = sample["result_data"]["access_token"].as_str().unwrap();
    for printed in [format!("{decoded:?}"), format!("{decoded:#?}")] {
        assert!(
            !printed.contains(token) && printed.contains("Secret([redacted])"),
            "{printed}"
        );
    }
    let access = decoded
        .result_data
        .as_ref()
        .unwrap()
        .access_token
        .as_ref()
        .unwrap();
    assert_eq!(
        (access.to_string().as_str(), access.expose_secret()),
        ("[redacted]", token)
    );
    assert_eq!(
        serde_json::to_value(&decoded).unwrap()["result_data"]["access_token"],
        token
    );
}

/// The capture host answers only the operation's own method and path: a test that calls another operation
/// gets a 404 and fails, instead of passing against the wrong endpoint.
#[tokio::test]
async fn the_capture_host_serves_only_its_operation() {
    use refresh_isolarcloud::operations::{EXCHANGE_TOKEN, REFRESH_TOKEN};
    let host = refresh_kit_tests::capture::operation_host(
        &REFRESH_TOKEN,
        wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({})),
    )
    .await;
    let client = refresh_isolarcloud::Client::new(&host.uri());
    let wrong = client
        .exchange_token()
        .x_access_key("k")
        .body_map(|b| {
            b.appkey("a")
                .code("c")
                .grant_type("authorization_code")
                .redirect_uri("r")
        })
        .send()
        .await;
    match wrong {
        Err(refresh_isolarcloud::Error::UnexpectedResponse(response)) => {
            assert_eq!(response.status(), 404, "{}", EXCHANGE_TOKEN.path);
        }
        other => panic!("another operation must not be served: {other:?}"),
    }
    let right = client
        .refresh_token()
        .x_access_key("k")
        .body_map(|b| b.refresh_token("r"))
        .send()
        .await;
    assert!(right.is_ok(), "{right:?}");
}
