//! Per-vendor configuration: which vendor, where, and with which application credentials. Deserializable, so
//! that a service switches vendors by changing configuration, not code.

use std::time::Duration;

use crate::vendors;

macro_rules! vendor_config {
    ([] $($(#[$doc:meta])* $variant:ident $name:literal $module:ident $config:ident $extras:ident,)*) => {
        /// Which vendor to refresh with, and its settings. In configuration files: `vendor = "sugon-ac"` (or
        /// `"vendor": "sugon-ac"`) next to the vendor's fields. Each vendor's settings are documented with its
        /// struct.
        #[derive(Clone, Debug, serde::Deserialize)]
        #[serde(tag = "vendor")]
        #[non_exhaustive]
        pub enum VendorConfig {
            $(
                $(#[$doc])*
                #[cfg(feature = $name)]
                #[serde(rename = $name)]
                $variant(vendors::$module::$config),
            )*
        }

        impl VendorConfig {
            /// The vendor this configuration is for.
            pub fn vendor(&self) -> crate::Vendor {
                match self {
                    $(
                        #[cfg(feature = $name)]
                        VendorConfig::$variant(_) => crate::Vendor::$variant,
                    )*
                }
            }

            /// The configured base URL, if one is set (otherwise the vendor's default host is used).
            pub fn base_url(&self) -> Option<&str> {
                match self {
                    $(
                        #[cfg(feature = $name)]
                        VendorConfig::$variant(config) => config.base_url.as_deref(),
                    )*
                }
            }

            /// The same configuration with another base URL, whichever vendor it is for.
            pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
                let base_url = Some(base_url.into());
                match &mut self {
                    $(
                        #[cfg(feature = $name)]
                        VendorConfig::$variant(config) => config.base_url = base_url,
                    )*
                }
                self
            }
        }
    };
}

for_each_vendor!(vendor_config);

/// How the facade talks HTTP. The defaults suit token endpoints: quick to connect, short overall.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Time allowed to open a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Time allowed for a whole refresh, from connecting to the last byte of the answer. Default
    /// [`HttpOptions::DEFAULT_TIMEOUT`].
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(5),
            timeout: HttpOptions::DEFAULT_TIMEOUT,
        }
    }
}

impl HttpOptions {
    /// The longest a whole vendor call takes by default (15 s): the HTTP client's timeout, and the
    /// [`crate::Refresher::call_timeout`] of a refresher whose options say no other.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

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

#[cfg(all(test, feature = "every-vendor"))]
mod tests {
    use super::*;
    use crate::Vendor;

    fn every_vendor() -> Vec<VendorConfig> {
        use crate::vendors::{ekuaibao, isolarcloud, misa_cukcuk, sugon_ac, wechat_open};
        vec![
            VendorConfig::ISolarCloud(isolarcloud::ISolarCloudConfig::new("app", "key")),
            VendorConfig::SugonAc(sugon_ac::SugonAcConfig::new()),
            VendorConfig::MisaCukcuk(misa_cukcuk::MisaCukcukConfig::new("company")),
            VendorConfig::WechatOpen(wechat_open::WechatOpenConfig::new("c", "a")),
            VendorConfig::Ekuaibao(ekuaibao::EkuaibaoConfig::new()),
        ]
    }

    #[test]
    fn the_base_url_is_set_and_read_whichever_the_vendor() {
        let configs = every_vendor();
        assert_eq!(configs.len(), Vendor::ALL.len(), "every vendor");
        for (config, vendor) in configs.into_iter().zip(Vendor::ALL) {
            assert_eq!(config.vendor(), vendor);
            assert_eq!(
                config.base_url(),
                None,
                "{vendor}: the vendor's default host"
            );
            let config = config.with_base_url(format!("http://127.0.0.1:9/{vendor}"));
            assert_eq!(config.vendor(), vendor);
            assert_eq!(
                config.base_url(),
                Some(format!("http://127.0.0.1:9/{vendor}").as_str())
            );
        }
    }

    #[test]
    fn a_configured_base_url_is_checked_and_trimmed() {
        let vendor = Vendor::SugonAc;
        assert_eq!(
            base_url(vendor, None, "https://default.example").unwrap(),
            "https://default.example"
        );
        assert_eq!(
            base_url(vendor, Some("http://127.0.0.1:8080/"), "x").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in ["ftp://host", "not a url", "http://"] {
            assert_eq!(
                base_url(vendor, Some(bad), "x"),
                Err(ConfigError::InvalidBaseUrl {
                    vendor,
                    url: bad.to_owned()
                }),
                "{bad}"
            );
        }
        assert!(required(vendor, "field", " x ").is_ok());
        assert_eq!(
            required(vendor, "field", "  "),
            Err(ConfigError::Missing {
                vendor,
                field: "field"
            })
        );
    }
}
