use refresh_isolarcloud::Client;
use refresh_isolarcloud::operations::{EXCHANGE_TOKEN, REFRESH_TOKEN};
use refresh_isolarcloud::types::{RefreshTokenRequest, TokenRequest};
use refresh_kit_tests::{Spec, assert_request, capture_request, check_response_examples};

fn spec() -> Spec {
    Spec::load("isolarcloud")
}

#[test]
fn every_operation_is_covered() {
    crate::assert_covers_every_operation(&spec(), &[&REFRESH_TOKEN, &EXCHANGE_TOKEN]);
}

#[tokio::test]
async fn refresh_token_requests_carry_the_documented_body_and_access_key() {
    let spec = spec();
    let access_key = spec.parameter_example(&REFRESH_TOKEN, "x-access-key");
    for example in spec.request_examples(&REFRESH_TOKEN) {
        let body: RefreshTokenRequest = serde_json::from_value(example.value.clone()).unwrap();
        let key = access_key.clone();
        let captured = capture_request(
            &REFRESH_TOKEN,
            &spec.success_answer(&REFRESH_TOKEN),
            |base| async move {
                Client::new(&base)
                    .refresh_token()
                    .x_access_key(key)
                    .body(body)
                    .send()
                    .await
            },
        )
        .await;
        assert_request(&spec, &REFRESH_TOKEN, Some(&example), &captured);
        assert_eq!(captured.headers["x-access-key"], access_key);
        assert_eq!(captured.headers["content-type"], "application/json");
        assert!(
            !captured.headers.contains_key("api-version"),
            "no vendor documents progenitor's api-version"
        );
    }
}

#[tokio::test]
async fn refresh_token_responses_decode_without_loss() {
    let spec = spec();
    check_response_examples(&spec, &REFRESH_TOKEN, |base| async move {
        Client::new(&base)
            .refresh_token()
            .x_access_key("k")
            .body_map(|b| b.refresh_token("r"))
            .send()
            .await
    })
    .await;
}

#[tokio::test]
async fn exchange_token_request_carries_the_documented_fields() {
    let spec = spec();
    let access_key = spec.parameter_example(&EXCHANGE_TOKEN, "x-access-key");
    for example in spec.request_examples(&EXCHANGE_TOKEN) {
        let body: TokenRequest = serde_json::from_value(example.value.clone()).unwrap();
        let key = access_key.clone();
        let captured = capture_request(
            &EXCHANGE_TOKEN,
            &spec.success_answer(&EXCHANGE_TOKEN),
            |base| async move {
                Client::new(&base)
                    .exchange_token()
                    .x_access_key(key)
                    .body(body)
                    .send()
                    .await
            },
        )
        .await;
        assert_request(&spec, &EXCHANGE_TOKEN, Some(&example), &captured);
        assert_eq!(captured.headers["x-access-key"], access_key);
    }
}

#[tokio::test]
async fn exchange_token_responses_decode_without_loss() {
    let spec = spec();
    check_response_examples(&spec, &EXCHANGE_TOKEN, |base| async move {
        let body = TokenRequest {
            appkey: "a".into(),
            grant_type: "authorization_code".into(),
            code: "c".into(),
            redirect_uri: "https://r.example".into(),
        };
        Client::new(&base)
            .exchange_token()
            .x_access_key("k")
            .body(body)
            .send()
            .await
    })
    .await;
}
