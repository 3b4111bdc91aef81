//! What the facade sends and how it normalizes, per vendor, against local hosts.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use refresh_facade::{
    ConfigError, EkuaibaoConfig, ErrorKind, ExpirySource, RefreshGrant, Refresher, Rotation,
    SugonAcConfig, Vendor, VendorConfig, VendorExtras,
};
use refresh_kit_tests::capture::operation_host;
use refresh_kit_tests::{RawAnswer, Spec, serve_raw};
use refresh_runtime::Operation;
use refresh_sugon_ac::operations::RENEW_TOKEN;
use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

use crate::setup::{
    ACCESS_KEY, APP_KEY, AUTHORIZER_APPID, COMPANY_CODE, COMPONENT_APPID, COMPONENT_TOKEN, grant,
    refresh_operation, refresher, spec,
};

/// Serves `body` with HTTP 200 as `operation`'s answer, and returns the server (to read what it received).
async fn answering(operation: &Operation, body: serde_json::Value) -> MockServer {
    operation_host(operation, ResponseTemplate::new(200).set_body_json(body)).await
}

async fn received(server: &MockServer) -> wiremock::Request {
    let mut requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    requests.remove(0)
}

#[tokio::test]
async fn every_vendor_refreshes_end_to_end_and_sends_the_documented_request() {
    for vendor in Vendor::ALL {
        let spec = spec(vendor);
        let operation = refresh_operation(vendor);
        let server = answering(operation, spec.success_answer(operation)).await;
        let grant = grant(vendor);
        let tokens = refresher(vendor, &server.uri())
            .refresh(&grant)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tokens.vendor, vendor);
        assert!(!tokens.access_token.expose_secret().is_empty());

        let request = received(&server).await;
        let (method, path) = spec.route(operation);
        assert_eq!(
            (request.method.as_str(), request.url.path()),
            (method.as_str(), path.as_str()),
            "{vendor}"
        );
        assert!(request.headers.get("api-version").is_none());
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let body = || serde_json::from_slice::<serde_json::Value>(&request.body).unwrap();
        let query = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let refresh_token = grant.refresh_token.expose_secret();
        match vendor {
            Vendor::ISolarCloud => {
                assert_eq!(header("x-access-key").as_deref(), Some(ACCESS_KEY));
                assert_eq!(
                    body(),
                    json!({"refresh_token": refresh_token, "appkey": APP_KEY})
                );
            }
            Vendor::SugonAc => {
                assert_eq!(header("token").as_deref(), Some(refresh_token));
                assert_eq!(header("content-type").as_deref(), Some("application/json"));
                assert!(request.body.is_empty());
            }
            Vendor::MisaCukcuk => {
                assert_eq!(
                    body(),
                    json!({"CompanyCode": COMPANY_CODE, "RefreshToken": refresh_token})
                );
            }
            Vendor::WechatOpen => {
                assert_eq!(
                    query("component_access_token").as_deref(),
                    Some(COMPONENT_TOKEN)
                );
                assert_eq!(
                    body(),
                    json!({"component_appid": COMPONENT_APPID, "authorizer_appid": AUTHORIZER_APPID, "authorizer_refresh_token": refresh_token})
                );
            }
            Vendor::Ekuaibao => {
                assert_eq!(query("refreshToken").as_deref(), Some(refresh_token));
                assert_eq!(
                    query("accessToken").as_deref(),
                    grant.access_token.as_ref().map(|t| t.expose_secret())
                );
                assert_eq!(query("expireDate").as_deref(), Some("1"));
                assert_eq!(query("powerCode").as_deref(), Some("219904"));
            }
            _ => unreachable!(),
        }
    }
}

#[tokio::test]
async fn lifetimes_count_from_when_the_request_was_sent() {
    // The answer takes 1.5 s; expires_in 100 s must count from before that.
    let body = br#"{"result_code":"1","result_data":{"code":"1","access_token":"a","refresh_token":"r2","expires_in":"100"}}"#;
    let answer = RawAnswer::http("200 OK", &[("content-type", "application/json")], body);
    let base = serve_raw(RawAnswer::Delayed(
        Duration::from_millis(1500),
        match answer {
            RawAnswer::Bytes(bytes) => bytes,
            _ => unreachable!(),
        },
    ))
    .await;
    let before = Utc::now();
    let tokens = refresher(Vendor::ISolarCloud, &base)
        .refresh(&grant(Vendor::ISolarCloud))
        .await
        .unwrap();
    let after = Utc::now();
    assert!(after - before >= TimeDelta::milliseconds(1500));
    assert!(
        tokens.obtained_at >= before && tokens.obtained_at - before < TimeDelta::milliseconds(500)
    );
    assert_eq!(
        tokens.expires_at - tokens.obtained_at,
        TimeDelta::seconds(100)
    );
    assert_eq!(tokens.expiry_source, ExpirySource::LifetimeSeconds);
    // A rotated iSolarCloud refresh token lives 30 days from issue.
    assert_eq!(
        tokens.refreshable_until,
        Some(tokens.obtained_at + TimeDelta::days(30))
    );
}

#[tokio::test]
async fn an_omitted_refresh_token_is_carried_over_with_its_deadline() {
    let server = answering(&refresh_isolarcloud::operations::REFRESH_TOKEN, json!({"result_code": "1", "result_data": {"code": "1", "access_token": "new-access", "expires_in": 172799}})).await;
    let deadline = Utc::now() + TimeDelta::days(12);
    let mut grant = RefreshGrant::new("old-refresh-token");
    grant.refreshable_until = Some(deadline);
    let tokens = refresher(Vendor::ISolarCloud, &server.uri())
        .refresh(&grant)
        .await
        .unwrap();
    assert_eq!(tokens.rotation, Rotation::CarriedOver);
    assert!(!tokens.rotated());
    assert_eq!(tokens.refresh_token.expose_secret(), "old-refresh-token");
    assert_eq!(tokens.refreshable_until, Some(deadline));
}

#[tokio::test]
async fn the_same_refresh_token_back_is_unchanged_not_rotated() {
    let server = answering(&refresh_wechat_open::operations::REFRESH_AUTHORIZER_TOKEN, json!({"authorizer_access_token": "new-access", "expires_in": 7200, "authorizer_refresh_token": "same-refresh-token"})).await;
    let tokens = refresher(Vendor::WechatOpen, &server.uri())
        .refresh(
            &RefreshGrant::new("same-refresh-token").with_component_access_token(COMPONENT_TOKEN),
        )
        .await
        .unwrap();
    assert_eq!(tokens.rotation, Rotation::Unchanged);
    assert_eq!(
        tokens.refreshable_until, None,
        "WeChat sets no timer on refresh tokens"
    );
    let VendorExtras::WechatOpen(extras) = &tokens.extras else {
        panic!("{:?}", tokens.extras)
    };
    assert_eq!(extras.authorizer_appid, AUTHORIZER_APPID);
    assert!(extras.granted_permissions.is_none());
}

#[tokio::test]
async fn sugon_expiry_and_window_come_from_the_new_tokens_claim() {
    let spec = spec(Vendor::SugonAc);
    let server = answering(&RENEW_TOKEN, spec.success_answer(&RENEW_TOKEN)).await;
    let tokens = refresher(Vendor::SugonAc, &server.uri())
        .refresh(&grant(Vendor::SugonAc))
        .await
        .unwrap();
    // The sample's new token carries expireTime "1634178984498".
    assert_eq!(tokens.expires_at.timestamp_millis(), 1_634_178_984_498);
    assert_eq!(tokens.expiry_source, ExpirySource::TokenClaim);
    assert_eq!(
        tokens.refreshable_until,
        Some(tokens.expires_at + TimeDelta::hours(24))
    );
    assert!(tokens.rotated());
    assert!(
        tokens.refresh_token == tokens.access_token,
        "the token renews itself"
    );
    assert!(!tokens.can_refresh_at(tokens.expires_at + TimeDelta::hours(25)));
    assert!(tokens.can_refresh_at(tokens.expires_at + TimeDelta::hours(23)));
}

#[tokio::test]
async fn sugon_region_list_answers_pick_the_old_tokens_region() {
    let spec = spec(Vendor::SugonAc);
    let old = spec.parameter_example(&RENEW_TOKEN, "token"); // clusterId 11112
    let new_token = |cluster: &str| {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"clusterId":"{cluster}","expireTime":"1900000000000"}}"#
        ));
        format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig")
    };
    let server = answering(
        &RENEW_TOKEN,
        json!({"code": "0", "msg": "success", "data": [
            {"clusterId": "0", "clusterName": "ac", "token": new_token("0")},
            {"clusterId": "11112", "clusterName": "region", "token": new_token("11112")},
        ]}),
    )
    .await;
    let tokens = refresher(Vendor::SugonAc, &server.uri())
        .refresh(&RefreshGrant::new(old))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), new_token("11112"));
    let VendorExtras::SugonAc(extras) = &tokens.extras else {
        panic!()
    };
    assert_eq!(extras.claims.cluster_id.as_deref(), Some("11112"));
}

#[tokio::test]
async fn sugon_rejects_a_non_token_in_data() {
    let server = answering(
        &RENEW_TOKEN,
        json!({"code": "0", "msg": "success", "data": "token is valid"}),
    )
    .await;
    let error = refresher(Vendor::SugonAc, &server.uri())
        .refresh(&grant(Vendor::SugonAc))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MalformedResponse, "{error}");
}

#[tokio::test]
async fn ekuaibao_needs_the_access_token_and_sends_nothing_without_it() {
    let server = answering(
        &refresh_ekuaibao::operations::REFRESH_TOKEN_WITH_VALIDITY,
        json!({}),
    )
    .await;
    let error = refresher(Vendor::Ekuaibao, &server.uri())
        .refresh(&RefreshGrant::new("refresh-only"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn ekuaibao_without_a_validity_uses_the_plain_refresh() {
    let spec = Spec::load("ekuaibao");
    let server = answering(
        &refresh_ekuaibao::operations::REFRESH_TOKEN,
        spec.success_answer(&refresh_ekuaibao::operations::REFRESH_TOKEN),
    )
    .await;
    let config = VendorConfig::Ekuaibao(EkuaibaoConfig::new().with_base_url(server.uri()));
    let tokens = Refresher::new(config)
        .unwrap()
        .refresh(&grant(Vendor::Ekuaibao))
        .await
        .unwrap();
    assert_eq!(
        received(&server).await.url.path(),
        spec.route(&refresh_ekuaibao::operations::REFRESH_TOKEN).1
    );
    // Only before expiry: the window closes with the access token.
    assert_eq!(tokens.refreshable_until, Some(tokens.expires_at));
    assert_eq!(tokens.expiry_source, ExpirySource::VendorInstant);
}

#[test]
fn the_default_power_code_is_the_documented_one() {
    let spec = Spec::load("ekuaibao");
    assert_eq!(
        EkuaibaoConfig::DOCUMENTED_POWER_CODE,
        spec.parameter_example(&refresh_ekuaibao::operations::REFRESH_TOKEN, "powerCode")
    );
    assert_eq!(
        EkuaibaoConfig::new().power_code,
        EkuaibaoConfig::DOCUMENTED_POWER_CODE
    );
}

#[test]
fn configurations_deserialize_by_vendor_name() {
    let config: VendorConfig =
        serde_json::from_value(json!({"vendor": "ekuaibao", "validity_days": 7})).unwrap();
    let VendorConfig::Ekuaibao(ekuaibao) = &config else {
        panic!("{config:?}")
    };
    assert_eq!(
        (ekuaibao.validity_days, ekuaibao.power_code.as_str()),
        (Some(7), "219904")
    );
    let config: VendorConfig = serde_json::from_value(json!({
        "vendor": "isolarcloud", "app_key": "k", "access_key": "secret-key-value", "base_url": "https://gateway.isolarcloud.eu"
    }))
    .unwrap();
    assert!(
        !format!("{config:?}").contains("secret-key-value"),
        "{config:?}"
    );
    assert!(Refresher::new(config).is_ok());
    let unknown = serde_json::from_value::<VendorConfig>(json!({"vendor": "acme"}));
    assert!(unknown.is_err());
}

#[test]
fn bad_configurations_are_refused_up_front() {
    for url in ["not a url", "ftp://host/", "/relative/path"] {
        let error = Refresher::new(VendorConfig::SugonAc(
            SugonAcConfig::new().with_base_url(url),
        ))
        .unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidBaseUrl { .. }),
            "{error}"
        );
    }
    let empty = serde_json::from_value::<VendorConfig>(
        json!({"vendor": "misa-cukcuk", "company_code": " "}),
    )
    .unwrap();
    assert!(matches!(
        Refresher::new(empty).unwrap_err(),
        ConfigError::Missing {
            field: "company_code",
            ..
        }
    ));
}

#[test]
fn default_base_urls_are_the_specs_first_servers() {
    for vendor in Vendor::ALL {
        let first = spec(vendor).first_server();
        let refresher = Refresher::new(crate::setup::config_with_default_host(vendor)).unwrap();
        assert_eq!(
            format!("{refresher:?}").matches(&first).count(),
            1,
            "{vendor}: {first}"
        );
    }
}

/// A blank token is no token: a blank access token fails the refresh (malformed), a blank refresh token is
/// carried over from the grant.
#[tokio::test]
async fn blank_tokens_are_no_tokens() {
    let operation = &refresh_isolarcloud::operations::REFRESH_TOKEN;
    let server = answering(
        operation,
        json!({"result_code": "1", "result_data": {"code": "1", "access_token": "  ", "refresh_token": "new-refresh", "expires_in": 100}}),
    )
    .await;
    let error = refresher(Vendor::ISolarCloud, &server.uri())
        .refresh(&grant(Vendor::ISolarCloud))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MalformedResponse, "{error}");

    let server = answering(
        operation,
        json!({"result_code": "1", "result_data": {"code": "1", "access_token": "new-access", "refresh_token": " ", "expires_in": 100}}),
    )
    .await;
    let grant = grant(Vendor::ISolarCloud);
    let tokens = refresher(Vendor::ISolarCloud, &server.uri())
        .refresh(&grant)
        .await
        .unwrap();
    assert_eq!(tokens.rotation, Rotation::CarriedOver);
    assert_eq!(tokens.refresh_token, grant.refresh_token);
}
