use refresh_kit_tests::{
    Spec, assert_documented_request, assert_request, capture_request, check_response_examples,
};
use refresh_wechat_open::Client;
use refresh_wechat_open::operations::{GET_COMPONENT_TOKEN, QUERY_AUTH, REFRESH_AUTHORIZER_TOKEN};
use refresh_wechat_open::types::{AuthorizerTokenRequest, ComponentTokenRequest, QueryAuthRequest};

fn spec() -> Spec {
    Spec::load("wechat-open")
}

/// The vendor's newer pages name the component token `access_token`; the spec sends `component_access_token`,
/// the older name the server also accepts (the spec's description says why).
const COMPONENT_TOKEN_ALIAS: &[(&str, &str)] = &[("access_token", "component_access_token")];

#[test]
fn every_operation_is_covered() {
    crate::assert_covers_every_operation(
        &spec(),
        &[&QUERY_AUTH, &REFRESH_AUTHORIZER_TOKEN, &GET_COMPONENT_TOKEN],
    );
}

#[tokio::test]
async fn query_auth_request_is_the_documented_one() {
    let spec = spec();
    let token = spec.parameter_example(&QUERY_AUTH, "component_access_token");
    for example in spec.request_examples(&QUERY_AUTH) {
        let body: QueryAuthRequest = serde_json::from_value(example.value.clone()).unwrap();
        let t = token.clone();
        let captured = capture_request(
            &QUERY_AUTH,
            &spec.success_answer(&QUERY_AUTH),
            |base| async move {
                Client::new(&base)
                    .query_auth()
                    .component_access_token(t)
                    .body(body)
                    .send()
                    .await
            },
        )
        .await;
        assert_request(&spec, &QUERY_AUTH, Some(&example), &captured);
        assert_documented_request(&spec, &QUERY_AUTH, &captured, COMPONENT_TOKEN_ALIAS);
    }
}

#[tokio::test]
async fn refresh_authorizer_token_request_is_the_documented_one() {
    let spec = spec();
    let token = spec.parameter_example(&REFRESH_AUTHORIZER_TOKEN, "component_access_token");
    for example in spec.request_examples(&REFRESH_AUTHORIZER_TOKEN) {
        let body: AuthorizerTokenRequest = serde_json::from_value(example.value.clone()).unwrap();
        let t = token.clone();
        let captured = capture_request(
            &REFRESH_AUTHORIZER_TOKEN,
            &spec.success_answer(&REFRESH_AUTHORIZER_TOKEN),
            |base| async move {
                Client::new(&base)
                    .refresh_authorizer_token()
                    .component_access_token(t)
                    .body(body)
                    .send()
                    .await
            },
        )
        .await;
        assert_request(&spec, &REFRESH_AUTHORIZER_TOKEN, Some(&example), &captured);
        assert_documented_request(&spec, &REFRESH_AUTHORIZER_TOKEN, &captured, &[]);
    }
}

#[tokio::test]
async fn get_component_token_request_carries_the_documented_fields() {
    let spec = spec();
    for example in spec.request_examples(&GET_COMPONENT_TOKEN) {
        let body: ComponentTokenRequest = serde_json::from_value(example.value.clone()).unwrap();
        let captured = capture_request(
            &GET_COMPONENT_TOKEN,
            &spec.success_answer(&GET_COMPONENT_TOKEN),
            |base| async move {
                Client::new(&base)
                    .get_component_token()
                    .body(body)
                    .send()
                    .await
            },
        )
        .await;
        assert_request(&spec, &GET_COMPONENT_TOKEN, Some(&example), &captured);
        assert!(
            captured.query.is_empty(),
            "the component token call carries no token"
        );
    }
}

#[tokio::test]
async fn responses_decode_without_loss() {
    let spec = spec();
    check_response_examples(&spec, &QUERY_AUTH, |base| async move {
        let body = QueryAuthRequest {
            component_appid: "a".into(),
            authorization_code: "c".into(),
        };
        Client::new(&base)
            .query_auth()
            .component_access_token("t")
            .body(body)
            .send()
            .await
    })
    .await;
    check_response_examples(&spec, &REFRESH_AUTHORIZER_TOKEN, |base| async move {
        let body = AuthorizerTokenRequest {
            component_appid: "a".into(),
            authorizer_appid: "b".into(),
            authorizer_refresh_token: "r".into(),
        };
        Client::new(&base)
            .refresh_authorizer_token()
            .component_access_token("t")
            .body(body)
            .send()
            .await
    })
    .await;
    check_response_examples(&spec, &GET_COMPONENT_TOKEN, |base| async move {
        let body = ComponentTokenRequest {
            component_appid: "a".into(),
            component_appsecret: "s".into(),
            component_verify_ticket: "v".into(),
        };
        Client::new(&base)
            .get_component_token()
            .body(body)
            .send()
            .await
    })
    .await;
}
