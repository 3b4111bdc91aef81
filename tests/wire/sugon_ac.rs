use refresh_kit_tests::{
    Spec, assert_documented_request, assert_request, capture_request, check_response_examples,
};
use refresh_sugon_ac::Client;
use refresh_sugon_ac::operations::{GET_TOKEN_STATE, GET_TOKENS, RENEW_TOKEN};

fn spec() -> Spec {
    Spec::load("sugon-ac")
}

#[test]
fn every_operation_is_covered() {
    crate::assert_covers_every_operation(&spec(), &[&RENEW_TOKEN, &GET_TOKENS, &GET_TOKEN_STATE]);
}

#[tokio::test]
async fn renew_token_request_is_the_documented_curl() {
    let spec = spec();
    let token = spec.parameter_example(&RENEW_TOKEN, "token");
    let captured = capture_request(
        &RENEW_TOKEN,
        &spec.success_answer(&RENEW_TOKEN),
        |base| async move { Client::new(&base).renew_token().token(token).send().await },
    )
    .await;
    assert_request(&spec, &RENEW_TOKEN, None, &captured);
    // The curl's two headers, `Content-Type: application/json` and the `token`, with the curl's values.
    assert_documented_request(&spec, &RENEW_TOKEN, &captured, &[]);
    // An empty body, announced as such (the vendor's OkHttp and requests samples send this too).
    assert_eq!(captured.headers["content-length"], "0");
}

#[tokio::test]
async fn get_tokens_request_sends_the_credentials_as_headers() {
    let spec = spec();
    let [user, password, org_id] =
        ["user", "password", "orgId"].map(|name| spec.parameter_example(&GET_TOKENS, name));
    let (u, p, o) = (user.clone(), password.clone(), org_id.clone());
    let captured = capture_request(
        &GET_TOKENS,
        &spec.success_answer(&GET_TOKENS),
        |base| async move {
            Client::new(&base)
                .get_tokens()
                .user(u)
                .password(p)
                .org_id(o)
                .send()
                .await
        },
    )
    .await;
    assert_request(&spec, &GET_TOKENS, None, &captured);
    assert_eq!(
        [
            &captured.headers["user"],
            &captured.headers["password"],
            &captured.headers["orgid"]
        ],
        [&user, &password, &org_id]
    );
    assert_eq!(captured.headers["content-type"], "application/json");
    assert_eq!(captured.headers["content-length"], "0");
}

#[tokio::test]
async fn get_token_state_request_is_a_get_with_the_token_header() {
    let spec = spec();
    let token = spec.parameter_example(&GET_TOKEN_STATE, "token");
    let t = token.clone();
    let captured = capture_request(
        &GET_TOKEN_STATE,
        &spec.success_answer(&GET_TOKEN_STATE),
        |base| async move { Client::new(&base).get_token_state().token(t).send().await },
    )
    .await;
    assert_request(&spec, &GET_TOKEN_STATE, None, &captured);
    assert_eq!(captured.headers["token"], token);
    assert!(
        !captured.headers.contains_key("content-length"),
        "a GET announces no body"
    );
}

#[tokio::test]
async fn responses_decode_without_loss() {
    let spec = spec();
    check_response_examples(&spec, &RENEW_TOKEN, |base| async move {
        Client::new(&base).renew_token().token("t").send().await
    })
    .await;
    check_response_examples(&spec, &GET_TOKENS, |base| async move {
        Client::new(&base)
            .get_tokens()
            .user("u")
            .password("p")
            .org_id("o")
            .send()
            .await
    })
    .await;
    check_response_examples(&spec, &GET_TOKEN_STATE, |base| async move {
        Client::new(&base).get_token_state().token("t").send().await
    })
    .await;
}
