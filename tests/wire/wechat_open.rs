use refresh_wechat_open::Client;
use refresh_wechat_open::types::{AuthorizerTokenRequest, ComponentTokenRequest, QueryAuthRequest};
use refresh_wire_tests::{
    Spec, assert_documented_request, assert_request, capture_request, check_response_examples,
};

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
        &[
            "query_auth",
            "refresh_authorizer_token",
            "get_component_token",
        ],
    );
}

#[tokio::test]
async fn query_auth_request_is_the_documented_one() {
    let spec = spec();
    let token = spec.parameter_example("query_auth", "component_access_token");
    for example in spec.request_examples("query_auth") {
        let body: QueryAuthRequest = serde_json::from_value(example.value.clone()).unwrap();
        let t = token.clone();
        let captured = capture_request(&spec.success_answer("query_auth"), |base| async move {
            Client::new(&base)
                .query_auth()
                .component_access_token(t)
                .body(body)
                .send()
                .await
        })
        .await;
        assert_request(&spec, "query_auth", Some(&example), &captured);
        assert_documented_request(&spec, "query_auth", &captured, COMPONENT_TOKEN_ALIAS);
    }
}

#[tokio::test]
async fn refresh_authorizer_token_request_is_the_documented_one() {
    let spec = spec();
    let token = spec.parameter_example("refresh_authorizer_token", "component_access_token");
    for example in spec.request_examples("refresh_authorizer_token") {
        let body: AuthorizerTokenRequest = serde_json::from_value(example.value.clone()).unwrap();
        let t = token.clone();
        let captured = capture_request(
            &spec.success_answer("refresh_authorizer_token"),
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
        assert_request(&spec, "refresh_authorizer_token", Some(&example), &captured);
        assert_documented_request(&spec, "refresh_authorizer_token", &captured, &[]);
    }
}

#[tokio::test]
async fn get_component_token_request_carries_the_documented_fields() {
    let spec = spec();
    for example in spec.request_examples("get_component_token") {
        let body: ComponentTokenRequest = serde_json::from_value(example.value.clone()).unwrap();
        let captured = capture_request(
            &spec.success_answer("get_component_token"),
            |base| async move {
                Client::new(&base)
                    .get_component_token()
                    .body(body)
                    .send()
                    .await
            },
        )
        .await;
        assert_request(&spec, "get_component_token", Some(&example), &captured);
        assert!(
            captured.query.is_empty(),
            "the component token call carries no token"
        );
    }
}

#[tokio::test]
async fn responses_decode_without_loss() {
    let spec = spec();
    check_response_examples(&spec, "query_auth", |base| async move {
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
    check_response_examples(&spec, "refresh_authorizer_token", |base| async move {
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
    check_response_examples(&spec, "get_component_token", |base| async move {
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
