//! WeChat Open Platform: `api_authorizer_token`; errors come with HTTP 200 as `errcode`/`errmsg`, and the
//! `errmsg` ends with the request id (`rid: …`).
#![cfg(feature = "wechat-open")]

use chrono::{DateTime, Utc};
use refresh_runtime::Operation;
use refresh_wechat_open::error_codes::errcode;
use refresh_wechat_open::operations::{GET_COMPONENT_TOKEN, QUERY_AUTH, REFRESH_AUTHORIZER_TOKEN};
use refresh_wechat_open::types::{AuthorizerTokenRequest, ComponentTokenRequest, QueryAuthRequest};

use super::{Answer, Basis, Exchange};
use crate::config::{ConfigError, base_url, required};
use crate::error::{CodeKinds, ErrorKind::*, Redactor, RefreshError, Said};
use crate::expiry::ExpiryHint;
use crate::grant::{Grant, RefreshGrant};
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
    operations: refresh_wechat_open::operations::ALL,
    codes: &[
        (errcode::SYSTEM_BUSY, Transient),
        // 40001, 40014 and 42001 are about the platform's component access token: renew it and retry.
        (errcode::INVALID_CREDENTIAL, ComponentTokenExpired),
        (errcode::INVALID_APPID, CredentialsRejected),
        (errcode::INVALID_ACCESS_TOKEN, ComponentTokenExpired),
        (errcode::INVALID_CODE, InvalidRequest),
        (errcode::ACCESS_TOKEN_EXPIRED, ComponentTokenExpired),
        (errcode::REFRESH_TOKEN_EXPIRED, ReauthorizationRequired),
        (errcode::RATE_LIMITED, Transient),
        (errcode::ACCOUNT_NOT_AUTHORIZED, ReauthorizationRequired),
        (errcode::API_NOT_AUTHORIZED, CredentialsRejected),
        (errcode::INVALID_REFRESH_TOKEN, ReauthorizationRequired),
    ],
    statuses: &[],
    undocumented: InvalidRequest,
};

/// WeChat Open Platform: the platform's appid and the authorizer (Official Account or Mini Program) whose tokens
/// are refreshed. The platform's component access token is not configuration: it lasts 2 hours, so each refresh
/// takes the current one ([`RefreshGrant::with_component_access_token`]).
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct WechatOpenConfig {
    pub base_url: Option<String>,
    pub component_appid: String,
    pub authorizer_appid: String,
}

impl WechatOpenConfig {
    pub fn new(component_appid: impl Into<String>, authorizer_appid: impl Into<String>) -> Self {
        WechatOpenConfig {
            base_url: None,
            component_appid: component_appid.into(),
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
    /// The authorizer the tokens act for (the platform's appid for a component token).
    pub authorizer_appid: String,
    /// The ids of the permission sets the authorizer granted (`func_info[].funcscope_category.id`). Only the
    /// authorization exchange reports them; `None` after a refresh, which does not.
    pub granted_permissions: Option<Vec<i64>>,
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
        required(VENDOR, "authorizer_appid", &config.authorizer_appid)?;
        Ok(Adapter {
            client: refresh_wechat_open::Client::new_with_client(&base, http),
            config,
        })
    }

    pub(crate) async fn refresh(
        &self,
        grant: &RefreshGrant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets());
        let Some(component_token) = grant
            .component_access_token
            .as_ref()
            .filter(|t| !t.is_blank())
        else {
            let detail = "a WeChat refresh presents the platform's current component access token \
                          (RefreshGrant::with_component_access_token)";
            return Err(RefreshError::new(VENDOR, InvalidRequest, detail));
        };
        let body = AuthorizerTokenRequest {
            component_appid: self.config.component_appid.clone(),
            authorizer_appid: self.config.authorizer_appid.clone(),
            authorizer_refresh_token: grant.refresh_token.clone(),
        };
        let call = self
            .client
            .refresh_authorizer_token()
            .component_access_token(component_token.expose_secret())
            .body(body)
            .send();
        let exchange = exchange(&REFRESH_AUTHORIZER_TOKEN, &redactor);
        exchange
            .read(
                call,
                |status, tokens| {
                    check(status, tokens.errcode, tokens.errmsg.as_deref(), &redactor)?;
                    Ok(Answer {
                        status: Some(status),
                        access_token: tokens.authorizer_access_token,
                        refresh_token: tokens.authorizer_refresh_token,
                        token_type: None,
                        expiry: tokens
                            .expires_in
                            .map_or(ExpiryHint::Absent, ExpiryHint::Seconds),
                        extras: VendorExtras::WechatOpen(self.extras(None, None)),
                        anomalies: Vec::new(),
                    })
                },
                || VendorExtras::WechatOpen(self.extras(None, None)),
            )
            .await?
            .into_token_set(VENDOR, grant, sent_at)
    }

    /// The authorization exchange (`api_query_auth`) or the component token (`api_component_token`).
    pub(crate) async fn obtain(
        &self,
        grant: &Grant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets());
        match grant {
            Grant::WechatOpenAuthorizationCode {
                authorization_code,
                component_access_token,
            } => {
                let body = QueryAuthRequest {
                    component_appid: self.config.component_appid.clone(),
                    authorization_code: authorization_code.clone(),
                };
                let call = self
                    .client
                    .query_auth()
                    .component_access_token(component_access_token.expose_secret())
                    .body(body)
                    .send();
                let exchange = exchange(&QUERY_AUTH, &redactor);
                exchange
                    .read(
                        call,
                        |status, answer| {
                            check(status, answer.errcode, answer.errmsg.as_deref(), &redactor)?;
                            let info = answer.authorization_info.unwrap_or_default();
                            let granted: Vec<i64> = info
                                .func_info
                                .iter()
                                .filter_map(|f| f.funcscope_category.as_ref()?.id)
                                .collect();
                            Ok(Answer {
                                status: Some(status),
                                access_token: info.authorizer_access_token,
                                refresh_token: info.authorizer_refresh_token,
                                token_type: None,
                                expiry: info
                                    .expires_in
                                    .map_or(ExpiryHint::Absent, ExpiryHint::Seconds),
                                extras: VendorExtras::WechatOpen(
                                    self.extras(info.authorizer_appid, Some(granted)),
                                ),
                                anomalies: Vec::new(),
                            })
                        },
                        || VendorExtras::WechatOpen(self.extras(None, None)),
                    )
                    .await?
                    .into_token_set(VENDOR, Basis::Login, sent_at)
            }
            Grant::WechatOpenComponentToken {
                component_appsecret,
                component_verify_ticket,
            } => {
                let body = ComponentTokenRequest {
                    component_appid: self.config.component_appid.clone(),
                    component_appsecret: component_appsecret.clone(),
                    component_verify_ticket: component_verify_ticket.clone(),
                };
                let call = self.client.get_component_token().body(body).send();
                let exchange = exchange(&GET_COMPONENT_TOKEN, &redactor);
                let component = || WechatOpenExtras {
                    authorizer_appid: self.config.component_appid.clone(),
                    granted_permissions: None,
                };
                exchange
                    .read(
                        call,
                        |status, answer| {
                            check(status, answer.errcode, answer.errmsg.as_deref(), &redactor)?;
                            Ok(Answer {
                                status: Some(status),
                                access_token: answer.component_access_token,
                                refresh_token: None,
                                token_type: None,
                                expiry: answer
                                    .expires_in
                                    .map_or(ExpiryHint::Absent, ExpiryHint::Seconds),
                                extras: VendorExtras::WechatOpen(component()),
                                anomalies: Vec::new(),
                            })
                        },
                        || VendorExtras::WechatOpen(component()),
                    )
                    .await?
                    .into_token_set(VENDOR, Basis::Unrefreshable, sent_at)
            }
            _ => Err(super::not_this_vendors(VENDOR, grant)),
        }
    }

    /// The extras of an authorizer's tokens: the answer's appid where it sends one, else the configured one.
    fn extras(&self, appid: Option<String>, granted: Option<Vec<i64>>) -> WechatOpenExtras {
        WechatOpenExtras {
            authorizer_appid: appid
                .filter(|appid| !appid.trim().is_empty())
                .unwrap_or_else(|| self.config.authorizer_appid.clone()),
            granted_permissions: granted,
        }
    }
}

fn exchange<'a>(operation: &'static Operation, redactor: &'a Redactor<'a>) -> Exchange<'a> {
    Exchange {
        operation,
        kinds: &CODE_KINDS,
        redactor,
    }
}

/// The vendor's error when an answer (HTTP 200 either way) carries an `errcode` other than 0.
fn check(
    status: u16,
    code: Option<i64>,
    message: Option<&str>,
    redactor: &Redactor<'_>,
) -> Result<(), RefreshError> {
    let said = Said {
        status: Some(status),
        message,
        request_id: message.and_then(request_id),
        redactor,
    };
    let code = code.map(|code| code.to_string());
    CODE_KINDS.check(&errcode::FIELD, code.as_deref(), &said)
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
