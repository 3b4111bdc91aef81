//! Per-vendor test setup: a configuration pointing at a local host, and grants (refresh and login) made of the
//! spec's samples.

use std::time::Duration;

use refresh_facade::{
    EkuaibaoConfig, Grant, HttpOptions, ISolarCloudConfig, MisaCukcukConfig, RefreshError,
    RefreshGrant, Refresher, SugonAcConfig, TokenSet, Vendor, VendorConfig, WechatOpenConfig,
};
use refresh_kit_tests::Spec;
use refresh_runtime::Operation;
use refresh_sandbox::{Emulator, Sandbox, accounts};

pub const ACCESS_KEY: &str = "test-access-key-4f1c";
pub const APP_KEY: &str = "test-app-key";
pub const COMPANY_CODE: &str = "demo-company";
pub const COMPONENT_APPID: &str = "wx-component-appid";
pub const COMPONENT_TOKEN: &str = "test-component-token-9b2e";
pub const AUTHORIZER_APPID: &str = "wxf8b4f85f3a794e77";

/// The spec file of a vendor.
pub fn spec(vendor: Vendor) -> Spec {
    Spec::load(vendor.as_str())
}

/// The spec operation the facade calls to refresh (Ekuaibao: with a validity, as [`config`] sets one).
pub fn refresh_operation(vendor: Vendor) -> &'static Operation {
    match vendor {
        Vendor::ISolarCloud => &refresh_isolarcloud::operations::REFRESH_TOKEN,
        Vendor::SugonAc => &refresh_sugon_ac::operations::RENEW_TOKEN,
        Vendor::MisaCukcuk => &refresh_misa_cukcuk::operations::REFRESH_TOKEN,
        Vendor::WechatOpen => &refresh_wechat_open::operations::REFRESH_AUTHORIZER_TOKEN,
        Vendor::Ekuaibao => &refresh_ekuaibao::operations::REFRESH_TOKEN_WITH_VALIDITY,
        other => unreachable!("no test setup for {other}"),
    }
}

pub fn config(vendor: Vendor, base_url: &str) -> VendorConfig {
    configure(vendor, Some(base_url))
}

/// The test configuration without a base URL: the vendor's default host.
pub fn config_with_default_host(vendor: Vendor) -> VendorConfig {
    configure(vendor, None)
}

fn configure(vendor: Vendor, base_url: Option<&str>) -> VendorConfig {
    let config = match vendor {
        Vendor::ISolarCloud => {
            VendorConfig::ISolarCloud(ISolarCloudConfig::new(APP_KEY, ACCESS_KEY))
        }
        Vendor::SugonAc => VendorConfig::SugonAc(SugonAcConfig::new()),
        Vendor::MisaCukcuk => VendorConfig::MisaCukcuk(MisaCukcukConfig::new(COMPANY_CODE)),
        Vendor::WechatOpen => {
            VendorConfig::WechatOpen(WechatOpenConfig::new(COMPONENT_APPID, AUTHORIZER_APPID))
        }
        Vendor::Ekuaibao => VendorConfig::Ekuaibao(EkuaibaoConfig::new().with_validity_days(1)),
        other => unreachable!("no test setup for {other}"),
    };
    match base_url {
        Some(url) => config.with_base_url(url),
        None => config,
    }
}

/// A refresher for `vendor` at `base_url`, with a short overall timeout so that slow-answer tests are quick.
pub fn refresher(vendor: Vendor, base_url: &str) -> Refresher {
    let http = HttpOptions::default()
        .with_timeout(Duration::from_secs(2))
        .build_client()
        .unwrap();
    Refresher::with_http_client(config(vendor, base_url), http).unwrap()
}

/// The grant of the vendor's documented refresh request.
pub fn grant(vendor: Vendor) -> RefreshGrant {
    let spec = spec(vendor);
    let op = refresh_operation(vendor);
    let body = || spec.request_examples(op)[0].value.clone();
    match vendor {
        Vendor::ISolarCloud => RefreshGrant::new(body()["refresh_token"].as_str().unwrap()),
        Vendor::SugonAc => RefreshGrant::new(spec.parameter_example(op, "token")),
        Vendor::MisaCukcuk => RefreshGrant::new(body()["RefreshToken"].as_str().unwrap()),
        Vendor::WechatOpen => {
            RefreshGrant::new(body()["authorizer_refresh_token"].as_str().unwrap())
                .with_component_access_token(COMPONENT_TOKEN)
        }
        Vendor::Ekuaibao => RefreshGrant::new(spec.parameter_example(op, "refreshToken"))
            .with_access_token(spec.parameter_example(op, "accessToken")),
        other => unreachable!("no test setup for {other}"),
    }
}

fn body_text(spec: &Spec, operation: &Operation, field: &str) -> String {
    spec.request_examples(operation)[0].value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no {field} in the request sample", operation.id))
        .to_owned()
}

/// Every login operation of `vendor` with the grant of its documented request. MISA CukCuk's secret key is never
/// sent: its sample was signed with the sandbox's (the sample's summary says so).
pub fn login_grants(vendor: Vendor) -> Vec<(&'static Operation, Grant)> {
    use refresh_ekuaibao::operations::GET_ACCESS_TOKEN;
    use refresh_isolarcloud::operations::EXCHANGE_TOKEN;
    use refresh_sugon_ac::operations::GET_TOKENS;
    use refresh_wechat_open::operations::{GET_COMPONENT_TOKEN, QUERY_AUTH};
    let spec = spec(vendor);
    match vendor {
        Vendor::ISolarCloud => vec![(
            &EXCHANGE_TOKEN,
            Grant::ISolarCloudAuthorizationCode {
                code: body_text(&spec, &EXCHANGE_TOKEN, "code").into(),
                redirect_uri: body_text(&spec, &EXCHANGE_TOKEN, "redirect_uri"),
            },
        )],
        Vendor::SugonAc => vec![(
            &GET_TOKENS,
            Grant::SugonAcPassword {
                user: spec.parameter_example(&GET_TOKENS, "user"),
                password: spec.parameter_example(&GET_TOKENS, "password").into(),
                org_id: spec.parameter_example(&GET_TOKENS, "orgId"),
            },
        )],
        Vendor::WechatOpen => vec![
            (
                &QUERY_AUTH,
                Grant::WechatOpenAuthorizationCode {
                    authorization_code: body_text(&spec, &QUERY_AUTH, "authorization_code").into(),
                    component_access_token: spec
                        .parameter_example(&QUERY_AUTH, "component_access_token")
                        .into(),
                },
            ),
            (
                &GET_COMPONENT_TOKEN,
                Grant::WechatOpenComponentToken {
                    component_appsecret: body_text(
                        &spec,
                        &GET_COMPONENT_TOKEN,
                        "component_appsecret",
                    )
                    .into(),
                    component_verify_ticket: body_text(
                        &spec,
                        &GET_COMPONENT_TOKEN,
                        "component_verify_ticket",
                    )
                    .into(),
                },
            ),
        ],
        Vendor::MisaCukcuk => vec![(
            &refresh_misa_cukcuk::operations::LOGIN,
            Grant::MisaCukcukAppSignature {
                app_id: body_text(&spec, &refresh_misa_cukcuk::operations::LOGIN, "AppID"),
                domain: body_text(&spec, &refresh_misa_cukcuk::operations::LOGIN, "Domain"),
                secret_key: accounts::MISA_SECRET_KEY.into(),
            },
        )],
        Vendor::Ekuaibao => vec![(
            &GET_ACCESS_TOKEN,
            Grant::EkuaibaoAppCredentials {
                app_key: body_text(&spec, &GET_ACCESS_TOKEN, "appKey"),
                app_security: body_text(&spec, &GET_ACCESS_TOKEN, "appSecurity").into(),
            },
        )],
        _ => Vec::new(),
    }
}

/// The instant a login of `vendor` must be sent at to reproduce its documented request: MISA CukCuk signs the
/// time it sends (`LoginTime`); the others send none.
pub fn documented_login_instant(vendor: Vendor) -> Option<chrono::DateTime<chrono::Utc>> {
    let operation = &refresh_misa_cukcuk::operations::LOGIN;
    (vendor == Vendor::MisaCukcuk).then(|| {
        let sent = body_text(&spec(vendor), operation, "LoginTime");
        chrono::DateTime::parse_from_rfc3339(&sent)
            .expect("the sample's LoginTime is RFC 3339")
            .to_utc()
    })
}

/// What a test asks the facade: a refresh, or a login.
pub enum Call {
    Refresh(RefreshGrant),
    Login(Grant),
}

impl Call {
    pub async fn send(&self, refresher: &Refresher) -> Result<TokenSet, RefreshError> {
        match self {
            Call::Refresh(grant) => refresher.refresh(grant).await,
            Call::Login(grant) => refresher.obtain(grant).await,
        }
    }
}

/// The configuration of `emulator` at `sandbox`, with the accounts the sandbox accepts.
pub fn sandbox_config(sandbox: &Sandbox, emulator: Emulator) -> VendorConfig {
    let config = match emulator {
        Emulator::ISolarCloud => VendorConfig::ISolarCloud(ISolarCloudConfig::new(
            accounts::ISOLARCLOUD_APP_KEY,
            accounts::ISOLARCLOUD_ACCESS_KEY,
        )),
        Emulator::SugonAc => VendorConfig::SugonAc(SugonAcConfig::new()),
        Emulator::MisaCukcuk => {
            VendorConfig::MisaCukcuk(MisaCukcukConfig::new(accounts::MISA_COMPANY_CODE))
        }
        Emulator::WechatOpen => VendorConfig::WechatOpen(WechatOpenConfig::new(
            accounts::WECHAT_COMPONENT_APPID,
            accounts::WECHAT_AUTHORIZER_APPID,
        )),
        Emulator::Ekuaibao => VendorConfig::Ekuaibao(EkuaibaoConfig::new().with_validity_days(7)),
        other => unreachable!("no sandbox setup for {other}"),
    };
    config.with_base_url(
        sandbox
            .base_url(emulator)
            .expect("the emulator was started"),
    )
}
