use refresh_ekuaibao::Client;
use refresh_ekuaibao::operations::{GET_ACCESS_TOKEN, REFRESH_TOKEN, REFRESH_TOKEN_WITH_VALIDITY};
use refresh_ekuaibao::types::AppCredentials;
use refresh_kit_tests::{
    Spec, assert_documented_request, assert_request, capture_request, check_response_examples,
};

fn spec() -> Spec {
    Spec::load("ekuaibao")
}

#[test]
fn every_operation_is_covered() {
    crate::assert_covers_every_operation(
        &spec(),
        &[
            &REFRESH_TOKEN_WITH_VALIDITY,
            &REFRESH_TOKEN,
            &GET_ACCESS_TOKEN,
        ],
    );
}

#[tokio::test]
async fn refresh_with_validity_request_is_the_documented_curl() {
    let spec = spec();
    let op = &REFRESH_TOKEN_WITH_VALIDITY;
    let [access, refresh, days, power] = ["accessToken", "refreshToken", "expireDate", "powerCode"]
        .map(|name| spec.parameter_example(op, name));
    let captured = capture_request(op, &spec.success_answer(op), |base| async move {
        Client::new(&base)
            .refresh_token_with_validity()
            .access_token(access)
            .refresh_token(refresh)
            .expire_date(days)
            .power_code(power)
            .send()
            .await
    })
    .await;
    assert_request(&spec, op, None, &captured);
    // Exactly the curl's four query parameters with the curl's values (compared decoded: the client
    // percent-encodes the tokens' `:`, which the curl leaves bare; the raw form is in the snapshot).
    assert_documented_request(&spec, op, &captured, &[]);
    assert_eq!(captured.headers["content-length"], "0");
    assert!(
        !captured.headers.contains_key("content-type"),
        "the curl sends no body and no content type"
    );
}

#[tokio::test]
async fn plain_refresh_request_carries_the_tokens_and_power_code_in_the_query() {
    let spec = spec();
    let [access, refresh, power] = ["accessToken", "refreshToken", "powerCode"]
        .map(|name| spec.parameter_example(&REFRESH_TOKEN, name));
    let (a, r, p) = (access.clone(), refresh.clone(), power.clone());
    let captured = capture_request(
        &REFRESH_TOKEN,
        &spec.success_answer(&REFRESH_TOKEN),
        |base| async move {
            Client::new(&base)
                .refresh_token()
                .access_token(a)
                .refresh_token(r)
                .power_code(p)
                .send()
                .await
        },
    )
    .await;
    assert_request(&spec, &REFRESH_TOKEN, None, &captured);
    assert_eq!(
        captured.query,
        [
            ("accessToken", access),
            ("powerCode", power),
            ("refreshToken", refresh)
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into()
    );
}

#[tokio::test]
async fn get_access_token_request_carries_the_documented_fields() {
    let spec = spec();
    for example in spec.request_examples(&GET_ACCESS_TOKEN) {
        let body: AppCredentials = serde_json::from_value(example.value.clone()).unwrap();
        let captured = capture_request(
            &GET_ACCESS_TOKEN,
            &spec.success_answer(&GET_ACCESS_TOKEN),
            |base| async move {
                Client::new(&base)
                    .get_access_token()
                    .body(body)
                    .send()
                    .await
            },
        )
        .await;
        assert_request(&spec, &GET_ACCESS_TOKEN, Some(&example), &captured);
    }
}

#[tokio::test]
async fn responses_decode_without_loss_with_http_200_and_403() {
    let spec = spec();
    check_response_examples(&spec, &REFRESH_TOKEN_WITH_VALIDITY, |base| async move {
        Client::new(&base)
            .refresh_token_with_validity()
            .access_token("a")
            .refresh_token("r")
            .expire_date("1")
            .power_code("219904")
            .send()
            .await
    })
    .await;
    check_response_examples(&spec, &REFRESH_TOKEN, |base| async move {
        Client::new(&base)
            .refresh_token()
            .access_token("a")
            .refresh_token("r")
            .power_code("219904")
            .send()
            .await
    })
    .await;
    check_response_examples(&spec, &GET_ACCESS_TOKEN, |base| async move {
        let body = AppCredentials {
            app_key: "k".into(),
            app_security: "s".into(),
        };
        Client::new(&base)
            .get_access_token()
            .body(body)
            .send()
            .await
    })
    .await;
}
