//! WeChat Open Platform: `api_authorizer_token`; errors come with HTTP 200 as `errcode`/`errmsg`.

use chrono::Utc;
use refresh_wechat_open::Secret;
use refresh_wechat_open::types::AuthorizerTokenRequest;

use super::{Answer, no_documented_error, send};
use crate::config::{ConfigError, WechatOpenConfig, base_url, required};
use crate::error::{CodeTable, ErrorKind::*, Redactor, RefreshError};
use crate::expiry::ExpiryHint;
use crate::grant::RefreshGrant;
use crate::token::{TokenSet, VendorExtras, WechatOpenExtras};
use crate::vendor::Vendor;

const VENDOR: Vendor = Vendor::WechatOpen;

const ERRCODES: CodeTable = CodeTable {
    vendor: VENDOR,
    field: "errcode",
    codes: &[
        ("-1", Transient, "system busy, retry later"),
        (
            "40001",
            CredentialsRejected,
            "invalid credential: the component access token is invalid or not the latest",
        ),
        ("40013", CredentialsRejected, "invalid appid"),
        (
            "40014",
            CredentialsRejected,
            "invalid access token (the component access token)",
        ),
        ("40029", InvalidRequest, "invalid code"),
        (
            "42001",
            CredentialsRejected,
            "access token expired (the component access token: renew it)",
        ),
        ("42002", ReauthorizationRequired, "refresh token expired"),
        ("45009", Transient, "rate limit"),
        (
            "61003",
            ReauthorizationRequired,
            "the account is not authorized to the platform",
        ),
        (
            "61007",
            CredentialsRejected,
            "API not authorized to the platform",
        ),
        ("61023", ReauthorizationRequired, "invalid refresh token"),
    ],
    undocumented: InvalidRequest,
};

pub(crate) const CODE_TABLES: &[CodeTable] = &[ERRCODES];

#[derive(Clone, Debug)]
pub(crate) struct Adapter {
    client: refresh_wechat_open::Client,
    config: WechatOpenConfig,
}

impl Adapter {
    pub(crate) fn new(
        config: WechatOpenConfig,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let base = base_url(
            VENDOR,
            config.base_url.as_deref(),
            refresh_wechat_open::DEFAULT_BASE_URL,
        )?;
        required(VENDOR, "component_appid", &config.component_appid)?;
        required(
            VENDOR,
            "component_access_token",
            config.component_access_token.expose_secret(),
        )?;
        required(VENDOR, "authorizer_appid", &config.authorizer_appid)?;
        Ok(Adapter {
            client: refresh_wechat_open::Client::new_with_client(&base, http),
            config,
        })
    }

    pub(crate) async fn refresh(&self, grant: &RefreshGrant) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(
            grant
                .secrets()
                .chain([self.config.component_access_token.expose_secret()]),
        );
        let body = AuthorizerTokenRequest {
            component_appid: self.config.component_appid.clone(),
            authorizer_appid: self.config.authorizer_appid.clone(),
            authorizer_refresh_token: grant.refresh_token.expose_secret().into(),
        };
        let sent_at = Utc::now();
        let call = self
            .client
            .refresh_authorizer_token()
            .component_access_token(self.config.component_access_token.expose_secret())
            .body(body)
            .send();
        let decoded = refresh_wechat_open::decoded_statuses("refresh_authorizer_token");
        let (status, tokens) = send(
            VENDOR,
            decoded,
            &redactor,
            call,
            no_documented_error(VENDOR),
        )
        .await?;

        if let Some(code) = tokens.errcode.filter(|code| *code != 0) {
            return Err(ERRCODES.error(
                &code.to_string(),
                tokens.errmsg.as_deref(),
                status,
                &redactor,
            ));
        }
        Answer {
            access_token: tokens.authorizer_access_token.map(Secret::into_exposed),
            refresh_token: tokens.authorizer_refresh_token.map(Secret::into_exposed),
            token_type: None,
            expiry: tokens
                .expires_in
                .map_or(ExpiryHint::Absent, ExpiryHint::Seconds),
            extras: VendorExtras::WechatOpen(WechatOpenExtras {
                authorizer_appid: self.config.authorizer_appid.clone(),
                granted_permissions: None,
            }),
        }
        .into_token_set(VENDOR, grant, sent_at, status)
    }
}
