//! The whole token lifecycle through the facade, against the sandbox: a first login (`Refresher::obtain`), then
//! refreshes; a new login once a refresh window has closed (on the sandbox's fake clock); WeChat's component
//! token renewed when it expires; and the logins' documented answers.

use std::time::Duration;

use refresh_facade::{
    Clock, ErrorKind, Grant, RefreshGrant, Refresher, Rotation, Secret, SugonAcConfig, TokenSet,
    Vendor, VendorConfig, VendorExtras, WechatOpenConfig,
};
use refresh_kit_tests::capture::operation_host;
use refresh_sandbox::{AccessTokenState, Emulator, Sandbox, SandboxOptions, accounts};
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::setup::{sandbox_config, spec};

/// A refresher for `emulator` at `sandbox`, reading the sandbox's (fake) clock.
fn refresher(sandbox: &Sandbox, emulator: Emulator) -> Refresher {
    let clock = sandbox.clock().clone();
    Refresher::new(sandbox_config(sandbox, emulator))
        .unwrap()
        .with_clock(Clock::from_fn(move || clock.now()))
}

fn component_grant() -> Grant {
    Grant::WechatOpenComponentToken {
        component_appsecret: accounts::WECHAT_COMPONENT_APPSECRET.into(),
        component_verify_ticket: accounts::WECHAT_VERIFY_TICKET.into(),
    }
}

/// The login grant the sandbox accepts for `emulator` (WeChat: with a fresh component token).
async fn login_grant(sandbox: &Sandbox, emulator: Emulator, refresher: &Refresher) -> Grant {
    let code = |emulator| Secret::from(sandbox.authorization_code(emulator).unwrap());
    match emulator {
        Emulator::ISolarCloud => Grant::ISolarCloudAuthorizationCode {
            code: code(emulator),
            redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
        },
        Emulator::SugonAc => Grant::SugonAcPassword {
            user: accounts::SUGON_USER.into(),
            password: accounts::SUGON_PASSWORD.into(),
            org_id: accounts::SUGON_ORG_ID.into(),
        },
        Emulator::WechatOpen => Grant::WechatOpenAuthorizationCode {
            authorization_code: code(emulator),
            component_access_token: refresher
                .obtain(&component_grant())
                .await
                .unwrap()
                .access_token,
        },
        Emulator::Ekuaibao => Grant::EkuaibaoAppCredentials {
            app_key: accounts::EKUAIBAO_APP_KEY.into(),
            app_security: accounts::EKUAIBAO_APP_SECURITY.into(),
        },
        other => unreachable!("{other} has no login"),
    }
}

/// The grant for the next refresh of `tokens`, with the component token a WeChat login presented.
fn next(tokens: &TokenSet, login: &Grant) -> RefreshGrant {
    let grant = RefreshGrant::from(tokens);
    match login {
        Grant::WechatOpenAuthorizationCode {
            component_access_token,
            ..
        } => grant.with_component_access_token(component_access_token.clone()),
        _ => grant,
    }
}

#[tokio::test]
async fn every_vendor_with_a_login_obtains_then_refreshes_twice() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    for emulator in [
        Emulator::ISolarCloud,
        Emulator::SugonAc,
        Emulator::WechatOpen,
        Emulator::Ekuaibao,
    ] {
        let refresher = refresher(&sandbox, emulator);
        let login = login_grant(&sandbox, emulator, &refresher).await;
        let first = refresher
            .obtain(&login)
            .await
            .unwrap_or_else(|e| panic!("{emulator}: {e}"));
        assert_eq!(first.rotation, Rotation::Issued, "{emulator}");
        assert!(
            first.anomalies().is_empty(),
            "{emulator}: {:?}",
            first.anomalies()
        );
        assert!(first.expires_at > first.obtained_at, "{emulator}");
        let second = refresher
            .refresh(&next(&first, &login))
            .await
            .unwrap_or_else(|e| panic!("{emulator}: the login's tokens refresh: {e}"));
        let third = refresher
            .refresh(&next(&second, &login))
            .await
            .unwrap_or_else(|e| panic!("{emulator}: the refreshed tokens refresh: {e}"));
        let keeps = emulator == Emulator::WechatOpen;
        for tokens in [&second, &third] {
            let expected = if keeps {
                Rotation::Unchanged
            } else {
                Rotation::Rotated
            };
            assert_eq!(tokens.rotation, expected, "{emulator}");
        }
        assert_ne!(
            third.access_token, first.access_token,
            "{emulator}: a new access token"
        );
        let uses = if keeps { 2 } else { 1 };
        assert_eq!(
            sandbox.refresh_count(emulator, first.refresh_token.expose_secret()),
            uses,
            "{emulator}: the login's refresh token, used by each refresh until rotated"
        );
    }
}

fn misa_login(app_id: &str, secret_key: &str) -> Grant {
    Grant::MisaCukcukAppSignature {
        app_id: app_id.into(),
        domain: accounts::MISA_COMPANY_CODE.into(),
        secret_key: secret_key.into(),
    }
}

/// MISA CukCuk's OpenPlatform login: a signed request (the secret key never sent) gets a token the emulator
/// accepts; it cannot be refreshed, and its unstated expiry is the conservative one. A wrong key or app is
/// refused with the documented code, and the key appears in no error.
#[tokio::test]
async fn misa_logs_in_by_signature_and_its_token_is_obtained_again_never_refreshed() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::MisaCukcuk))
        .await
        .unwrap();
    let misa = refresher(&sandbox, Emulator::MisaCukcuk);
    let tokens = misa
        .obtain(&misa_login(
            accounts::MISA_APP_ID,
            accounts::MISA_SECRET_KEY,
        ))
        .await
        .unwrap();
    assert_eq!(tokens.rotation, Rotation::NotRefreshable);
    assert!(tokens.refresh_token.is_blank() && !tokens.can_refresh_at(tokens.obtained_at));
    assert_eq!(
        sandbox.access_token_state(Emulator::MisaCukcuk, tokens.access_token.expose_secret()),
        AccessTokenState::Live
    );
    assert_eq!(
        (tokens.expires_at - tokens.obtained_at).to_std().unwrap(),
        refresh_facade::CONSERVATIVE_LIFETIME
    );
    let VendorExtras::MisaCukcuk(extras) = &tokens.extras else {
        panic!("{:?}", tokens.extras)
    };
    assert_eq!(extras.company_code, accounts::MISA_COMPANY_CODE);
    assert_eq!(extras.app_id.as_deref(), Some(accounts::MISA_APP_ID));
    // Nothing to refresh with: refused before any request.
    let sent = sandbox.requests(Emulator::MisaCukcuk).len();
    let error = misa
        .refresh(&RefreshGrant::from(&tokens))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
    assert_eq!(sandbox.requests(Emulator::MisaCukcuk).len(), sent);

    for (grant, code) in [
        (misa_login(accounts::MISA_APP_ID, "not-the-secret-key"), "4"),
        (misa_login("another-app", accounts::MISA_SECRET_KEY), "3"),
    ] {
        let error = misa.obtain(&grant).await.unwrap_err();
        assert_eq!(
            (error.kind(), error.vendor_code()),
            (ErrorKind::CredentialsRejected, Some(code)),
            "{error}"
        );
        assert!(!error.is_retryable(), "{error}");
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("not-the-secret-key") && !shown.contains(accounts::MISA_SECRET_KEY),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_grant_of_another_vendor_is_unsupported_and_nothing_is_sent() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::Ekuaibao))
        .await
        .unwrap();
    let ekuaibao = refresher(&sandbox, Emulator::Ekuaibao);
    let error = ekuaibao.obtain(&component_grant()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert!(
        error.detail().contains("the grant is for wechat-open"),
        "{error}"
    );
    assert!(sandbox.requests(Emulator::Ekuaibao).is_empty());
}

/// Past the vendor's refresh window the refresh is refused as a new login's business, and a new login works.
#[tokio::test]
async fn sugon_and_ekuaibao_log_in_again_after_the_refresh_window_closes() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    for emulator in [Emulator::SugonAc, Emulator::Ekuaibao] {
        let refresher = refresher(&sandbox, emulator);
        let login = login_grant(&sandbox, emulator, &refresher).await;
        let tokens = refresher.obtain(&login).await.unwrap();
        let deadline = tokens
            .refreshable_until
            .unwrap_or_else(|| panic!("{emulator} has a refresh window"));
        let clock = sandbox.clock();
        assert!(tokens.can_refresh_at(clock.now()), "{emulator}");
        let past = (deadline - clock.now()).to_std().unwrap() + Duration::from_secs(60);
        clock.advance(past);
        assert!(!tokens.can_refresh_at(clock.now()), "{emulator}");

        let refused = refresher.refresh(&next(&tokens, &login)).await.unwrap_err();
        assert_eq!(
            refused.kind(),
            ErrorKind::ReauthorizationRequired,
            "{emulator}: {refused}"
        );
        let again = refresher.obtain(&login).await.unwrap();
        assert_eq!(again.rotation, Rotation::Issued);
        refresher
            .refresh(&next(&again, &login))
            .await
            .unwrap_or_else(|e| panic!("{emulator}: the new login refreshes: {e}"));
    }
}

/// The component token lasts 2 hours. Its expiry is its own kind, so that the caller renews it and retries at
/// once; the authorizer's refresh token is untouched.
#[tokio::test]
async fn wechat_renews_an_expired_component_token_and_retries() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::WechatOpen))
        .await
        .unwrap();
    let refresher = refresher(&sandbox, Emulator::WechatOpen);
    let component = refresher.obtain(&component_grant()).await.unwrap();
    assert_eq!(component.rotation, Rotation::NotRefreshable);
    assert!(component.refresh_token.is_blank());
    assert!(!component.can_refresh_at(component.obtained_at));
    let lifetime = component.expires_at - component.obtained_at;
    assert_eq!(lifetime.num_seconds(), 7200, "the documented 2 hours");
    let sent = sandbox.requests(Emulator::WechatOpen).len();
    let not_refreshable = refresher
        .refresh(&RefreshGrant::from(&component))
        .await
        .unwrap_err();
    assert_eq!(
        not_refreshable.kind(),
        ErrorKind::InvalidRequest,
        "{not_refreshable}"
    );
    assert_eq!(
        sandbox.requests(Emulator::WechatOpen).len(),
        sent,
        "nothing sent"
    );

    let login = Grant::WechatOpenAuthorizationCode {
        authorization_code: sandbox
            .authorization_code(Emulator::WechatOpen)
            .unwrap()
            .into(),
        component_access_token: component.access_token.clone(),
    };
    let authorizer = refresher.obtain(&login).await.unwrap();
    sandbox.clock().advance(Duration::from_secs(7200 + 60));

    let grant = RefreshGrant::from(&authorizer).with_component_access_token(component.access_token);
    let expired = refresher.refresh(&grant).await.unwrap_err();
    assert_eq!(
        expired.kind(),
        ErrorKind::ComponentTokenExpired,
        "{expired}"
    );
    assert!(expired.is_component_token_expired() && !expired.is_credentials_rejected());
    assert_eq!(expired.vendor_code(), Some("42001"));

    let renewed = refresher.obtain(&component_grant()).await.unwrap();
    let retried = refresher
        .refresh(&grant.with_component_access_token(renewed.access_token))
        .await
        .unwrap();
    assert_eq!(retried.refresh_token, authorizer.refresh_token);

    // A wrong appid is not a component token to renew.
    let wrong = Refresher::new(VendorConfig::WechatOpen(
        WechatOpenConfig::new("wx-not-the-platform", accounts::WECHAT_AUTHORIZER_APPID)
            .with_base_url(sandbox.base_url(Emulator::WechatOpen).unwrap()),
    ))
    .unwrap();
    let refused = wrong.obtain(&component_grant()).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::CredentialsRejected, "{refused}");
    assert_eq!(refused.vendor_code(), Some("40013"));
}

/// The authorization exchange reports the permission sets granted (`func_info`), from the vendor's sample.
#[tokio::test]
async fn wechat_login_reports_the_granted_permission_sets() {
    use refresh_wechat_open::operations::QUERY_AUTH;
    let sample = spec(Vendor::WechatOpen).success_answer(&QUERY_AUTH);
    let server = operation_host(
        &QUERY_AUTH,
        ResponseTemplate::new(200).set_body_json(sample),
    )
    .await;
    // Configured for another authorizer than the answer names: the answer's appid is what the tokens act for.
    let config = WechatOpenConfig::new("appid_value", "wx-configured-authorizer")
        .with_base_url(server.uri());
    let refresher = Refresher::new(VendorConfig::WechatOpen(config)).unwrap();
    let grant = Grant::WechatOpenAuthorizationCode {
        authorization_code: "auth_code_value".into(),
        component_access_token: "COMPONENT_ACCESS_TOKEN".into(),
    };
    let tokens = refresher.obtain(&grant).await.unwrap();
    let VendorExtras::WechatOpen(extras) = &tokens.extras else {
        panic!("{:?}", tokens.extras)
    };
    assert_eq!(extras.granted_permissions, Some(vec![1, 2, 3]));
    assert_eq!(extras.authorizer_appid, "wxf8b4f85f3a794e77");
    assert_eq!(
        tokens.refresh_token.expose_secret(),
        "dTo-YCXPL4llX-u1W1pPpnp8Hgm4wpJtlR6iV0doKdY"
    );
}

/// Sugon AC answers a login with a token per region: the configured one (default: the platform's, clusterId 0)
/// is returned and the others are in the extras; a region whose token is null is a suspended account.
#[tokio::test]
async fn sugon_login_returns_the_configured_region() {
    use refresh_sugon_ac::operations::GET_TOKENS;
    let sample = spec(Vendor::SugonAc).success_answer(&GET_TOKENS);
    let server = operation_host(
        &GET_TOKENS,
        ResponseTemplate::new(200).set_body_json(&sample),
    )
    .await;
    let grant = Grant::SugonAcPassword {
        user: "slurmtest".into(),
        password: "example-password".into(),
        org_id: "6048ce7ba15c2af2e8cec12991ec13cf".into(),
    };
    let at = |cluster: Option<&str>| {
        let mut config = SugonAcConfig::new().with_base_url(server.uri());
        if let Some(cluster) = cluster {
            config = config.with_cluster_id(cluster);
        }
        Refresher::new(VendorConfig::SugonAc(config)).unwrap()
    };
    let tokens = at(None).obtain(&grant).await.unwrap();
    assert_eq!(
        tokens.access_token.expose_secret(),
        sample["data"][0]["token"].as_str().unwrap()
    );
    assert_eq!(tokens.rotation, Rotation::Issued);
    let VendorExtras::SugonAc(extras) = &tokens.extras else {
        panic!()
    };
    assert_eq!(extras.other_regions.len(), 1);
    assert_eq!(extras.other_regions[0].cluster_id, "11112");
    assert!(extras.other_regions[0].token.is_none());

    let suspended = at(Some("11112")).obtain(&grant).await.unwrap_err();
    assert_eq!(
        suspended.kind(),
        ErrorKind::CredentialsRejected,
        "{suspended}"
    );
    assert!(suspended.detail().contains("suspended"), "{suspended}");
    let unknown = at(Some("999")).obtain(&grant).await.unwrap_err();
    assert!(unknown.detail().contains("no region 999"), "{unknown}");

    // No region says it is the platform's: the default takes the first token rather than lose the login, and
    // says so; the platform region is also found by its name when its id is unreadable.
    let token = sample["data"][0]["token"].clone();
    for (regions, anomaly) in [
        (
            json!([{"clusterId": "5", "clusterName": "east", "token": token}]),
            true,
        ),
        (
            json!([{"clusterId": null, "clusterName": "ac", "token": token}]),
            false,
        ),
    ] {
        let server = operation_host(
            &GET_TOKENS,
            ResponseTemplate::new(200)
                .set_body_json(json!({"code": "0", "msg": "success", "data": regions})),
        )
        .await;
        let config = SugonAcConfig::new().with_base_url(server.uri());
        let tokens = Refresher::new(VendorConfig::SugonAc(config))
            .unwrap()
            .obtain(&grant)
            .await
            .unwrap();
        assert_eq!(tokens.access_token.expose_secret(), token.as_str().unwrap());
        assert_eq!(
            !tokens.anomalies().is_empty(),
            anomaly,
            "{:?}",
            tokens.anomalies()
        );
    }
}

/// A login's secrets (password, app secret, authorization code, ticket) never come back in an error, even when
/// the vendor echoes them in its message.
#[tokio::test]
async fn login_errors_never_repeat_the_grants_secrets() {
    use refresh_ekuaibao::operations::GET_ACCESS_TOKEN;
    use refresh_isolarcloud::operations::EXCHANGE_TOKEN;
    use refresh_sugon_ac::operations::GET_TOKENS;
    use refresh_wechat_open::operations::{GET_COMPONENT_TOKEN, QUERY_AUTH};
    const SECRET: &str = "canary-login-secret-5d1f";
    const OTHER: &str = "canary-second-secret-77ab";
    let echo = format!("refused {SECRET} and {OTHER}");
    let cases = [
        (
            Vendor::ISolarCloud,
            &EXCHANGE_TOKEN,
            Grant::ISolarCloudAuthorizationCode {
                code: SECRET.into(),
                redirect_uri: "https://app.example/cb".into(),
            },
            json!({"result_code": "2", "result_msg": echo}),
        ),
        (
            Vendor::SugonAc,
            &GET_TOKENS,
            Grant::SugonAcPassword {
                user: "u".into(),
                password: SECRET.into(),
                org_id: "o".into(),
            },
            json!({"code": "10004", "msg": echo}),
        ),
        (
            Vendor::WechatOpen,
            &QUERY_AUTH,
            Grant::WechatOpenAuthorizationCode {
                authorization_code: SECRET.into(),
                component_access_token: OTHER.into(),
            },
            json!({"errcode": 40029, "errmsg": echo}),
        ),
        (
            Vendor::WechatOpen,
            &GET_COMPONENT_TOKEN,
            Grant::WechatOpenComponentToken {
                component_appsecret: SECRET.into(),
                component_verify_ticket: OTHER.into(),
            },
            json!({"errcode": 40013, "errmsg": echo}),
        ),
        (
            Vendor::Ekuaibao,
            &GET_ACCESS_TOKEN,
            Grant::EkuaibaoAppCredentials {
                app_key: "k".into(),
                app_security: SECRET.into(),
            },
            json!({"errorCode": 403, "errorMessage": echo}),
        ),
    ];
    for (vendor, operation, grant, failure) in cases {
        let server =
            operation_host(operation, ResponseTemplate::new(200).set_body_json(failure)).await;
        let error = crate::setup::refresher(vendor, &server.uri())
            .obtain(&grant)
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(SECRET), "{}: {shown}", operation.id);
        let both = matches!(
            grant,
            Grant::WechatOpenAuthorizationCode { .. } | Grant::WechatOpenComponentToken { .. }
        );
        assert_eq!(!shown.contains(OTHER), both, "{}: {shown}", operation.id);
        assert!(
            error.vendor_message().unwrap().contains("[redacted]"),
            "{}: {error}",
            operation.id
        );
    }
}

/// A Sugon AC login's only parameters are the credentials: its 10004 ("invalid parameter") is a refused
/// credential; its other codes keep their documented kinds.
#[tokio::test]
async fn a_sugon_login_refused_for_an_invalid_parameter_is_a_refused_credential() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::SugonAc))
        .await
        .unwrap();
    let refresher = refresher(&sandbox, Emulator::SugonAc);
    let wrong = Grant::SugonAcPassword {
        user: accounts::SUGON_USER.into(),
        password: "not-the-password".into(),
        org_id: accounts::SUGON_ORG_ID.into(),
    };
    let refused = refresher.obtain(&wrong).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::CredentialsRejected, "{refused}");
    assert_eq!(refused.vendor_code(), Some("10004"));

    use refresh_sugon_ac::operations::GET_TOKENS;
    for (code, kind) in [
        ("10001", ErrorKind::Transient),
        ("10003", ErrorKind::InvalidRequest),
    ] {
        let answer = json!({"code": code, "msg": "失败"});
        let server = operation_host(
            &GET_TOKENS,
            ResponseTemplate::new(200).set_body_json(answer),
        )
        .await;
        let error = crate::setup::refresher(Vendor::SugonAc, &server.uri())
            .obtain(&wrong)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
    }
}
