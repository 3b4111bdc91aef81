//! One normalized token refresh over the refresh-kit vendor clients: one [`Refresher`], one [`TokenSet`], one
//! [`RefreshError`], whichever vendor the configuration names.
//!
//! ```no_run
//! use refresh_facade::{EkuaibaoConfig, RefreshGrant, Refresher, VendorConfig};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Usually deserialized from configuration: {"vendor": "ekuaibao", "validity_days": 7}
//! let refresher = Refresher::new(VendorConfig::Ekuaibao(EkuaibaoConfig::new().with_validity_days(7)))?;
//! let grant = RefreshGrant::new("ID_3vMMouDbHqM:djg8LshfUkfM00").with_access_token("ID_3vMMouDbGqM:djg8LshfUkfM00");
//! match refresher.refresh(&grant).await {
//!     Ok(tokens) => {
//!         // Store both tokens before using them: the vendor rotated the refresh token.
//!         println!("valid until {} (rotated: {})", tokens.expires_at, tokens.rotated());
//!         let next = RefreshGrant::from(&tokens);
//!         # let _ = next;
//!     }
//!     Err(error) if error.is_retryable() => eprintln!("try again later: {error}"),
//!     Err(error) if error.is_reauthorization_required() => eprintln!("a new login is needed: {error}"),
//!     Err(error) => return Err(error.into()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! One per vendor (`isolarcloud`, `sugon-ac`, `misa-cukcuk`, `wechat-open`, `ekuaibao`), all on by default:
//! `default-features = false, features = ["ekuaibao"]` compiles one vendor client.
//!
//! ## Tokens
//!
//! Tokens are [`SecretToken`]s: `Debug`/`Display` print `[redacted]`, memory is zeroized on drop, and no error
//! or log line of this crate carries one. [`TokenSet::expires_at`] is absolute, normalized from each vendor's
//! form: lifetimes in seconds (number or string) counted from when the request was **sent**; MISA's RFC 3339
//! instant with 7 fractional digits and an offset; Ekuaibao's milliseconds since the epoch; Sugon AC's JWT
//! `expireTime` claim (read, not verified). A vendor that says nothing readable gets
//! [`CONSERVATIVE_LIFETIME`] (10 minutes), never "never expires"; an unreadable expiry never fails a refresh,
//! since the vendor may already have rotated the refresh token. [`TokenSet::rotation`] says whether the refresh
//! token was rotated, returned unchanged, or carried over because the vendor sent none.
//!
//! ## Refresh windows
//!
//! [`Vendor::refresh_window`] says how long each vendor accepts a refresh (Ekuaibao: only before the access token
//! expires; Sugon AC: up to 24 hours after; iSolarCloud: while the 30-day refresh token lives; WeChat: until
//! the user authorizes again; MISA: undocumented), and [`TokenSet::refreshable_until`] applies it.
//!
//! ## Errors
//!
//! Every failure is a [`RefreshError`] of one [`ErrorKind`], carrying the vendor, the HTTP status, and the
//! vendor's own code and message (`vendor_code`, `vendor_message`), with `is_retryable()` and `is_*` helpers.
//! Answers that are not what the vendor documents never panic: they are `malformed_response`. Bodies over
//! 1 MiB are not read. HTTP: one shared `reqwest::Client` per [`HttpOptions`] (5 s to connect, 15 s in all by
//! default), redirects not followed.
//!
#![doc = include_str!("../ERROR_CODES.md")]

#[cfg(not(any(
    feature = "isolarcloud",
    feature = "sugon-ac",
    feature = "misa-cukcuk",
    feature = "wechat-open",
    feature = "ekuaibao"
)))]
compile_error!(
    "refresh-facade needs at least one vendor feature: isolarcloud, sugon-ac, misa-cukcuk, wechat-open, ekuaibao"
);

mod config;
mod error;
mod expiry;
mod grant;
mod refresher;
mod secret;
mod token;
mod vendor;
mod vendors;

#[cfg(feature = "ekuaibao")]
pub use config::EkuaibaoConfig;
#[cfg(feature = "isolarcloud")]
pub use config::ISolarCloudConfig;
#[cfg(feature = "misa-cukcuk")]
pub use config::MisaCukcukConfig;
#[cfg(feature = "sugon-ac")]
pub use config::SugonAcConfig;
#[cfg(feature = "wechat-open")]
pub use config::WechatOpenConfig;
pub use config::{ConfigError, HttpOptions, VendorConfig};
pub use error::{DocumentedCode, ErrorKind, RefreshError};
pub use expiry::CONSERVATIVE_LIFETIME;
pub use grant::RefreshGrant;
pub use refresher::Refresher;
pub use secret::SecretToken;
#[cfg(feature = "ekuaibao")]
pub use token::EkuaibaoExtras;
#[cfg(feature = "isolarcloud")]
pub use token::ISolarCloudExtras;
#[cfg(feature = "misa-cukcuk")]
pub use token::MisaCukcukExtras;
#[cfg(feature = "sugon-ac")]
pub use token::SugonAcClaims;
#[cfg(feature = "wechat-open")]
pub use token::WechatOpenExtras;
pub use token::{ExpirySource, Rotation, TokenSet, VendorExtras};
pub use vendor::{RefreshWindow, UnknownVendor, Vendor};
pub use vendors::documented_error_codes;

#[cfg(test)]
mod tests {
    /// ERROR_CODES.md (the crate docs' table) lists exactly the code tables, row for row.
    #[cfg(all(
        feature = "isolarcloud",
        feature = "sugon-ac",
        feature = "misa-cukcuk",
        feature = "wechat-open",
        feature = "ekuaibao"
    ))]
    #[test]
    fn the_documented_table_is_the_code_table() {
        let documented: Vec<String> = include_str!("../ERROR_CODES.md")
            .lines()
            .filter(|line| line.starts_with("| ") && !line.starts_with("| vendor "))
            .map(str::to_owned)
            .collect();
        let code: Vec<String> = super::documented_error_codes()
            .iter()
            .map(|c| {
                format!(
                    "| {} | {} | {} | {} | {} |",
                    c.vendor, c.field, c.code, c.kind, c.meaning
                )
            })
            .collect();
        assert_eq!(documented, code);
    }
}
