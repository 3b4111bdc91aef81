//! The normalized result of a refresh.

use chrono::{DateTime, Utc};

use crate::secret::SecretToken;
use crate::vendor::Vendor;

/// Fresh tokens from any vendor, in one shape.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenSet {
    pub vendor: Vendor,
    pub access_token: SecretToken,
    /// The token to refresh with next time: the vendor's new one, or the old one carried over where the vendor
    /// returned none (see [`TokenSet::rotation`]). For Sugon AC, whose token renews itself, the access token.
    pub refresh_token: SecretToken,
    /// The vendor's token type, where it says one ("bearer").
    pub token_type: Option<String>,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// Where `expires_at` comes from.
    pub expiry_source: ExpirySource,
    /// When the refresh request was sent: relative lifetimes count from here.
    pub obtained_at: DateTime<Utc>,
    /// The last moment a refresh can succeed, where the vendor's window and the answer fix one
    /// ([`Vendor::refresh_window`]); `None` where no deadline is known. Past it, a new login is needed.
    pub refreshable_until: Option<DateTime<Utc>>,
    pub rotation: Rotation,
    /// What else the vendor said, typed.
    pub extras: VendorExtras,
}

impl TokenSet {
    /// True when the vendor returned a new refresh token (the old one may be used up).
    pub fn rotated(&self) -> bool {
        self.rotation == Rotation::Rotated
    }

    /// True when, at `now`, the vendor's window still allows a refresh (unknown deadlines count as open).
    pub fn can_refresh_at(&self, now: DateTime<Utc>) -> bool {
        self.refreshable_until
            .is_none_or(|deadline| now <= deadline)
    }
}

/// What happened to the refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The vendor returned a new refresh token; keep it, the old one may no longer work.
    Rotated,
    /// The vendor returned the refresh token it was given.
    Unchanged,
    /// The vendor returned no refresh token; the old one was carried over and stays valid.
    CarriedOver,
}

/// Where a [`TokenSet::expires_at`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpirySource {
    /// A lifetime in seconds (`expires_in`), counted from when the request was sent.
    LifetimeSeconds,
    /// An absolute instant the vendor sent (MISA's `Expire_Date`, Ekuaibao's `expireTime`).
    VendorInstant,
    /// The `expireTime` claim of the token itself (Sugon AC's JWT; read, not verified).
    TokenClaim,
    /// The vendor said nothing readable: [`crate::CONSERVATIVE_LIFETIME`] from when the request was sent.
    ConservativeDefault,
}

/// What a vendor says besides the tokens, in typed form.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum VendorExtras {
    #[cfg(feature = "isolarcloud")]
    ISolarCloud(ISolarCloudExtras),
    #[cfg(feature = "sugon-ac")]
    SugonAc(SugonAcClaims),
    #[cfg(feature = "misa-cukcuk")]
    MisaCukcuk(MisaCukcukExtras),
    #[cfg(feature = "wechat-open")]
    WechatOpen(WechatOpenExtras),
    #[cfg(feature = "ekuaibao")]
    Ekuaibao(EkuaibaoExtras),
}

#[cfg(feature = "isolarcloud")]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ISolarCloudExtras {
    /// The vendor's request sequence number, for support requests.
    pub req_serial_num: Option<String>,
}

/// The claims of a Sugon AC token (a JWT), read without verifying its signature (the key is the vendor's).
#[cfg(feature = "sugon-ac")]
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SugonAcClaims {
    pub compute_user: Option<String>,
    pub account_status: Option<String>,
    pub creator: Option<String>,
    pub role: Option<String>,
    /// Milliseconds since the epoch, as a string.
    pub expire_time: Option<String>,
    pub cluster_id: Option<String>,
    pub invoker: Option<String>,
    pub user: Option<String>,
    pub user_id: Option<String>,
    /// Claims not listed above.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[cfg(feature = "misa-cukcuk")]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MisaCukcukExtras {
    pub app_id: Option<String>,
    /// The company (restaurant chain) the token is for, from the configuration.
    pub company_code: String,
    pub branches: Vec<refresh_misa_cukcuk::types::BranchResult>,
    pub main_currency: Option<String>,
    pub request_timeout: Option<i32>,
}

#[cfg(feature = "wechat-open")]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WechatOpenExtras {
    pub authorizer_appid: String,
    /// The permission sets the authorizer granted. Only the authorization exchange (`api_query_auth`) reports
    /// them; a refresh does not, so this is `None` after a refresh.
    pub granted_permissions: Option<Vec<refresh_wechat_open::types::FuncInfo>>,
}

#[cfg(feature = "ekuaibao")]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EkuaibaoExtras {
    /// The company id.
    pub corporation_id: Option<String>,
}
