//! What a login ([`Grant`]) and a refresh ([`RefreshGrant`]) start from.

use chrono::{DateTime, Utc};

use refresh_runtime::Secret;

use crate::token::TokenSet;

/// The tokens a refresh presents to the vendor.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RefreshGrant {
    /// The refresh token; for Sugon AC, the current token itself.
    pub refresh_token: Secret,
    /// The current access token. Ekuaibao requires it; the others ignore it.
    pub access_token: Option<Secret>,
    /// Until when the refresh token can be used, where known (carried over when the vendor does not rotate).
    pub refreshable_until: Option<DateTime<Utc>>,
    /// WeChat: the platform's current component access token, which every authorizer refresh presents. It lasts
    /// 2 hours: renew it ([`Grant::WechatOpenComponentToken`]) when a refresh fails with
    /// [`crate::ErrorKind::ComponentTokenExpired`]. The others ignore it.
    pub component_access_token: Option<Secret>,
}

impl RefreshGrant {
    pub fn new(refresh_token: impl Into<Secret>) -> Self {
        RefreshGrant {
            refresh_token: refresh_token.into(),
            access_token: None,
            refreshable_until: None,
            component_access_token: None,
        }
    }

    pub fn with_access_token(mut self, access_token: impl Into<Secret>) -> Self {
        self.access_token = Some(access_token.into());
        self
    }

    /// WeChat: the component access token this refresh presents (see [`RefreshGrant::component_access_token`]).
    pub fn with_component_access_token(mut self, token: impl Into<Secret>) -> Self {
        self.component_access_token = Some(token.into());
        self
    }

    /// The secrets of the grant, to keep them out of vendor messages.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.refresh_token.expose_secret())
            .chain(self.access_token.as_ref().map(|t| t.expose_secret()))
            .chain(
                self.component_access_token
                    .as_ref()
                    .map(|t| t.expose_secret()),
            )
    }
}

impl From<&TokenSet> for RefreshGrant {
    /// The grant for the next refresh of `tokens`.
    fn from(tokens: &TokenSet) -> Self {
        RefreshGrant {
            refresh_token: tokens.refresh_token.clone(),
            access_token: Some(tokens.access_token.clone()),
            refreshable_until: tokens.refreshable_until,
            component_access_token: None,
        }
    }
}

/// How to obtain first tokens ([`crate::Refresher::obtain`]): one variant per login endpoint the vendors document.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Grant {
    /// iSolarCloud (`/openapi/apiManage/token`): the authorization code the user's browser brought back, and
    /// the redirect URI it was issued for.
    ISolarCloudAuthorizationCode { code: Secret, redirect_uri: String },
    /// Sugon AC (`/ac/openapi/v2/tokens`): the user's name, password and organization id. The answer has one
    /// token per compute region: the one [`crate::SugonAcConfig::cluster_id`] names (default: the platform
    /// token, clusterId 0) is returned, the others are in the extras.
    SugonAcPassword {
        user: String,
        password: Secret,
        org_id: String,
    },
    /// WeChat (`api_query_auth`): the authorization code the platform received in its callback, exchanged with
    /// the platform's current component access token for the authorizer's tokens.
    WechatOpenAuthorizationCode {
        authorization_code: Secret,
        component_access_token: Secret,
    },
    /// WeChat (`api_component_token`): the platform's own component access token (2 hours), from its appsecret
    /// and the latest verify ticket WeChat pushed. It is obtained again, never refreshed
    /// ([`crate::Rotation::NotRefreshable`]).
    WechatOpenComponentToken {
        component_appsecret: Secret,
        component_verify_ticket: Secret,
    },
    /// Ekuaibao (`getAccessToken`): the app's appKey and appSecurity.
    EkuaibaoAppCredentials {
        app_key: String,
        app_security: Secret,
    },
    /// MISA CukCuk (OpenPlatform `account/login`): the app's id (public clients use `CUKCUKOpenPlatform`), the
    /// connection's domain (its company code) and the app's secret key, which signs each login and is never
    /// sent. The answer has no refresh token: its access token is obtained again, never refreshed
    /// ([`crate::Rotation::NotRefreshable`]), and says nothing of its expiry, so the conservative lifetime
    /// applies ([`crate::CONSERVATIVE_LIFETIME`]).
    MisaCukcukAppSignature {
        app_id: String,
        domain: String,
        secret_key: Secret,
    },
}

impl Grant {
    /// The vendor whose login this grant is for.
    pub fn vendor(&self) -> crate::Vendor {
        use crate::Vendor;
        match self {
            Grant::ISolarCloudAuthorizationCode { .. } => Vendor::ISolarCloud,
            Grant::SugonAcPassword { .. } => Vendor::SugonAc,
            Grant::WechatOpenAuthorizationCode { .. } | Grant::WechatOpenComponentToken { .. } => {
                Vendor::WechatOpen
            }
            Grant::EkuaibaoAppCredentials { .. } => Vendor::Ekuaibao,
            Grant::MisaCukcukAppSignature { .. } => Vendor::MisaCukcuk,
        }
    }

    /// The secrets of the grant, to keep them out of vendor messages.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        let secrets: Vec<&Secret> = match self {
            Grant::ISolarCloudAuthorizationCode { code, .. } => vec![code],
            Grant::SugonAcPassword { password, .. } => vec![password],
            Grant::WechatOpenAuthorizationCode {
                authorization_code,
                component_access_token,
            } => vec![authorization_code, component_access_token],
            Grant::WechatOpenComponentToken {
                component_appsecret,
                component_verify_ticket,
            } => vec![component_appsecret, component_verify_ticket],
            Grant::EkuaibaoAppCredentials { app_security, .. } => vec![app_security],
            Grant::MisaCukcukAppSignature { secret_key, .. } => vec![secret_key],
        };
        secrets.into_iter().map(Secret::expose_secret).collect()
    }
}
