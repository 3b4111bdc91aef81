//! Per-vendor configuration: which vendor, where, and with which application credentials. Deserializable, so
//! that a service switches vendors by changing configuration, not code.

use std::time::Duration;

#[cfg(any(feature = "isolarcloud", feature = "wechat-open"))]
use crate::secret::SecretToken;

/// Which vendor to refresh with, and its settings. In configuration files: `vendor = "sugon-ac"` (or
/// `"vendor": "sugon-ac"`) next to the vendor's fields.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(tag = "vendor", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum VendorConfig {
    #[cfg(feature = "isolarcloud")]
    #[serde(rename = "isolarcloud")]
    ISolarCloud(ISolarCloudConfig),
    #[cfg(feature = "sugon-ac")]
    SugonAc(SugonAcConfig),
    #[cfg(feature = "misa-cukcuk")]
    MisaCukcuk(MisaCukcukConfig),
    #[cfg(feature = "wechat-open")]
    WechatOpen(WechatOpenConfig),
    #[cfg(feature = "ekuaibao")]
    Ekuaibao(EkuaibaoConfig),
}

/// Sungrow iSolarCloud: the app key (sent as `appkey`) and the app's secret key (sent as `x-access-key`).
#[cfg(feature = "isolarcloud")]
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct ISolarCloudConfig {
    /// Defaults to the vendor's first gateway (China); see `refresh_isolarcloud::SERVERS` for the others.
    pub base_url: Option<String>,
    pub app_key: String,
    pub access_key: SecretToken,
}

#[cfg(feature = "isolarcloud")]
impl ISolarCloudConfig {
    pub fn new(app_key: impl Into<String>, access_key: impl Into<SecretToken>) -> Self {
        ISolarCloudConfig {
            base_url: None,
            app_key: app_key.into(),
            access_key: access_key.into(),
        }
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

/// Sugon / SCNet AC: the token renews itself; only the host is configured.
#[cfg(feature = "sugon-ac")]
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct SugonAcConfig {
    /// Defaults to SCNet's public host; deployments have their own.
    pub base_url: Option<String>,
}

#[cfg(feature = "sugon-ac")]
impl SugonAcConfig {
    pub fn new() -> Self {
        SugonAcConfig::default()
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

/// MISA CukCuk: the company (restaurant) code the tokens belong to.
#[cfg(feature = "misa-cukcuk")]
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct MisaCukcukConfig {
    pub base_url: Option<String>,
    pub company_code: String,
}

#[cfg(feature = "misa-cukcuk")]
impl MisaCukcukConfig {
    pub fn new(company_code: impl Into<String>) -> Self {
        MisaCukcukConfig {
            base_url: None,
            company_code: company_code.into(),
        }
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

/// WeChat Open Platform: the platform's appid and its current component access token, and the authorizer
/// (Official Account or Mini Program) whose tokens are refreshed.
#[cfg(feature = "wechat-open")]
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct WechatOpenConfig {
    pub base_url: Option<String>,
    pub component_appid: String,
    /// The platform's own token (2 hours). Errors 40001/40014/42001 mean it must be renewed: they come back as
    /// [`crate::ErrorKind::CredentialsRejected`].
    pub component_access_token: SecretToken,
    pub authorizer_appid: String,
}

#[cfg(feature = "wechat-open")]
impl WechatOpenConfig {
    pub fn new(
        component_appid: impl Into<String>,
        component_access_token: impl Into<SecretToken>,
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

/// Ekuaibao: with `validity_days`, refreshes ask for that validity (`refreshToken/expireDate`); without, the
/// plain refresh (32 days). Either is capped by the company's licence.
#[cfg(feature = "ekuaibao")]
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct EkuaibaoConfig {
    /// Defaults to the standalone host; DingTalk, WeCom and Feishu tenants have their own.
    pub base_url: Option<String>,
    pub validity_days: Option<u32>,
    /// The feature licence code the refreshes carry; the vendor says to pass 219904.
    #[serde(default = "EkuaibaoConfig::default_power_code")]
    pub power_code: String,
}

#[cfg(feature = "ekuaibao")]
impl EkuaibaoConfig {
    /// The licence code the vendor's documentation says to pass.
    pub const DOCUMENTED_POWER_CODE: &'static str = "219904";

    pub fn new() -> Self {
        EkuaibaoConfig {
            base_url: None,
            validity_days: None,
            power_code: Self::default_power_code(),
        }
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
    pub fn with_validity_days(mut self, days: u32) -> Self {
        self.validity_days = Some(days);
        self
    }
    fn default_power_code() -> String {
        Self::DOCUMENTED_POWER_CODE.to_owned()
    }
}

#[cfg(feature = "ekuaibao")]
impl Default for EkuaibaoConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// How the facade talks HTTP. The defaults suit token endpoints: quick to connect, short overall.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Time allowed to open a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Time allowed for a whole refresh, from connecting to the last byte of the answer. Default 15 s.
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
        }
    }
}

impl HttpOptions {
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A `reqwest::Client` with these options, to share between refreshers (connections are reused).
    /// Redirects are not followed: a token endpoint that redirects is misconfigured, and following would carry
    /// the tokens (some in the query string) to another host.
    pub fn build_client(&self) -> Result<reqwest::Client, ConfigError> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))
    }
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{vendor}: base URL {url:?} is not an absolute http(s) URL")]
    InvalidBaseUrl { vendor: crate::Vendor, url: String },
    #[error("{vendor}: {field} must not be empty")]
    Missing {
        vendor: crate::Vendor,
        field: &'static str,
    },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// The base URL to use: the configured one (checked), or the spec's default.
pub(crate) fn base_url(
    vendor: crate::Vendor,
    configured: Option<&str>,
    default: &str,
) -> Result<String, ConfigError> {
    let Some(url) = configured else {
        return Ok(default.to_owned());
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| ConfigError::InvalidBaseUrl {
        vendor,
        url: url.to_owned(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::InvalidBaseUrl {
            vendor,
            url: url.to_owned(),
        });
    }
    // The generated clients append paths that start with '/'.
    Ok(url.trim_end_matches('/').to_owned())
}

/// Rejects an empty required setting.
#[cfg_attr(
    not(any(
        feature = "isolarcloud",
        feature = "misa-cukcuk",
        feature = "wechat-open",
        feature = "ekuaibao"
    )),
    allow(dead_code, reason = "Sugon AC has no required setting")
)]
pub(crate) fn required(
    vendor: crate::Vendor,
    field: &'static str,
    value: &str,
) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(ConfigError::Missing { vendor, field })
    } else {
        Ok(())
    }
}
