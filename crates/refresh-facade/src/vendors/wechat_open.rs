//! WeChat Open Platform: `api_authorizer_token`; errors come with HTTP 200 as `errcode`/`errmsg`, and the
//! `errmsg` ends with the request id (`rid: …`).

use chrono::Utc;
use refresh_runtime::Secret;
use refresh_wechat_open::error_codes::errcode;
use refresh_wechat_open::operations::REFRESH_AUTHORIZER_TOKEN;
use refresh_wechat_open::types::{AuthorizerTokenRequest, FuncInfo};

use super::{Answer, Answered, Exchange};
use crate::config::{ConfigError, base_url, required};
use crate::error::{CodeKinds, ErrorKind::*, Redactor, RefreshError, Said};
use crate::expiry::ExpiryHint;
use crate::grant::RefreshGrant;
use crate::token::{TokenSet, VendorExtras};
use crate::vendor::{RefreshWindow, Vendor};

const VENDOR: Vendor = Vendor::WechatOpen;

/// The authorizer refresh token lives until the user authorizes again: no timer.
pub(crate) const REFRESH_WINDOW: RefreshWindow =
    RefreshWindow::WhileRefreshTokenLives { lifetime: None };

/// What each documented code means for a caller.
pub(crate) const CODE_KINDS: CodeKinds = CodeKinds {
    vendor: VENDOR,
    code_fields: refresh_wechat_open::error_codes::ALL,
    codes: &[
        (errcode::SYSTEM_BUSY, Transient),
        // 40001, 40014 and 42001 are about the platform's component access token: renew it.
        (errcode::INVALID_CREDENTIAL, CredentialsRejected),
        (errcode::INVALID_APPID, CredentialsRejected),
        (errcode::INVALID_ACCESS_TOKEN, CredentialsRejected),
        (errcode::INVALID_CODE, InvalidRequest),
        (errcode::ACCESS_TOKEN_EXPIRED, CredentialsRejected),
        (errcode::REFRESH_TOKEN_EXPIRED, ReauthorizationRequired),
        (errcode::RATE_LIMITED, Transient),
        (errcode::ACCOUNT_NOT_AUTHORIZED, ReauthorizationRequired),
        (errcode::API_NOT_AUTHORIZED, CredentialsRejected),
        (errcode::INVALID_REFRESH_TOKEN, ReauthorizationRequired),
    ],
    statuses: &[],
    undocumented: InvalidRequest,
};

/// WeChat Open Platform: the platform's appid and its current component access token, and the authorizer
/// (Official Account or Mini Program) whose tokens are refreshed.
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct WechatOpenConfig {
    pub base_url: Option<String>,
    pub component_appid: String,
    /// The platform's own token (2 hours). Errors 40001/40014/42001 mean it must be renewed: they come back as
    /// [`crate::ErrorKind::CredentialsRejected`].
    pub component_access_token: Secret,
    pub authorizer_appid: String,
}

impl WechatOpenConfig {
    pub fn new(
        component_appid: impl Into<String>,
        component_access_token: impl Into<Secret>,
        authorizer_appid: impl Into<String>,
    ) -> Self {
        WechatOpenConfig {
            base_url: None,
            component_appid: component_appid.into(),
            component_access_token: component_access_token.into(),
            authorizer_appid: authorizer_appid.into(),
        }
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

/// What WeChat says besides the tokens.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WechatOpenExtras {
    pub authorizer_appid: String,
    /// The permission sets the authorizer granted. Only the authorization exchange (`api_query_auth`) reports
    /// them; a refresh does not, so this is `None` after a refresh.
    pub granted_permissions: Option<Vec<FuncInfo>>,
}

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
            authorizer_refresh_token: grant.refresh_token.clone(),
        };
        let sent_at = Utc::now();
        let call = self
            .client
            .refresh_authorizer_token()
            .component_access_token(self.config.component_access_token.expose_secret())
            .body(body)
            .send();
        let exchange = Exchange {
            operation: &REFRESH_AUTHORIZER_TOKEN,
            kinds: &CODE_KINDS,
            redactor: &redactor,
        };
        let extras = WechatOpenExtras {
            authorizer_appid: self.config.authorizer_appid.clone(),
            granted_permissions: None,
        };
        let (status, tokens) = match exchange.send(call).await? {
            Answered::Typed { status, body } => (status, body),
            Answered::Salvaged(salvaged) => {
                let extras = VendorExtras::WechatOpen(extras);
                return salvaged.into_token_set(VENDOR, extras, grant, sent_at);
            }
        };

        let message = tokens.errmsg.as_deref();
        let said = Said {
            status: Some(status),
            message,
            request_id: message.and_then(request_id),
            redactor: &redactor,
        };
        let code = tokens.errcode.map(|code| code.to_string());
        CODE_KINDS.check(&errcode::FIELD, code.as_deref(), &said)?;
        Answer {
            access_token: tokens.authorizer_access_token,
            refresh_token: tokens.authorizer_refresh_token,
            token_type: None,
            expiry: tokens
                .expires_in
                .map_or(ExpiryHint::Absent, ExpiryHint::Seconds),
            extras: VendorExtras::WechatOpen(extras),
            anomalies: Vec::new(),
        }
        .into_token_set(VENDOR, grant, sent_at, status)
    }
}

/// The request id WeChat appends to `errmsg` (`"invalid credential … rid: 6571f2a1-0b1c2d3e-4f5a6b7c"`).
fn request_id(errmsg: &str) -> Option<&str> {
    let (_, after) = errmsg.rsplit_once("rid:")?;
    after.split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_id_is_read_from_the_end_of_errmsg() {
        assert_eq!(
            request_id(
                "invalid credential, access_token is invalid or not latest rid: 6571f2a1-0b1c2d3e-4f5a6b7c"
            ),
            Some("6571f2a1-0b1c2d3e-4f5a6b7c")
        );
        assert_eq!(request_id("rid:abc-1 "), Some("abc-1"));
        assert_eq!(request_id("invalid refresh token"), None);
        assert_eq!(request_id("ends with rid:"), None);
    }
}
