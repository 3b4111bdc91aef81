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
//! Tokens are [`Secret`]s (the one secret type of refresh-kit, shared with the vendor crates): `Debug`/`Display`
//! print `[redacted]`, memory is zeroized on drop, and no error or log line of this crate carries one. [`TokenSet::expires_at`] is absolute, normalized from each vendor's
//! form: lifetimes in seconds (number or string) counted from when the request was **sent**; MISA's RFC 3339
//! instant with 7 fractional digits and an offset; Ekuaibao's milliseconds since the epoch; Sugon AC's JWT
//! `expireTime` claim (read, not verified). A vendor that says nothing readable gets
//! [`CONSERVATIVE_LIFETIME`] (10 minutes), never "never expires"; an unreadable expiry never fails a refresh,
//! since the vendor may already have rotated the refresh token. [`TokenSet::rotation`] says whether the refresh
//! token was rotated, returned unchanged, or carried over because the vendor sent none.
//!
//! An answer that carries new tokens is never thrown away: when a field of it is not the JSON type the vendor
//! documents, the tokens are read from the fields the spec marks (`x-token-role`), a readable error code still
//! wins, and [`TokenSet::anomalies`] says what did not match (fields and types, never values).
//!
//! ## Logins
//!
//! [`Refresher::obtain`] gets the first tokens with a [`Grant`], one variant per login endpoint the specs
//! document: iSolarCloud's authorization code exchange, Sugon AC's user/password/orgId login (one token per
//! compute region: the platform token, or the region [`SugonAcConfig::cluster_id`] names, with the others in
//! [`SugonAcExtras::other_regions`]; a region whose token is null is a suspended account,
//! `credentials_rejected`), WeChat's authorization exchange (`api_query_auth`, with the granted permission sets in
//! [`WechatOpenExtras::granted_permissions`]) and its component token (`api_component_token`), and Ekuaibao's
//! appKey/appSecurity login. The result is a [`TokenSet`] with [`Rotation::Issued`]. MISA CukCuk documents no
//! public login for its v2 API: its refresher answers [`ErrorKind::Unsupported`] without sending anything.
//!
//! WeChat's component access token is a renewable credential, not configuration: it lasts 2 hours, each authorizer
//! refresh takes the current one ([`RefreshGrant::with_component_access_token`]), and its expiry (40001, 40014,
//! 42001) is [`ErrorKind::ComponentTokenExpired`], distinct from a wrong appid (40013, `credentials_rejected`):
//! obtain a new one ([`Grant::WechatOpenComponentToken`]) and retry at once.
//!
//! The facade reads "now" from a [`Clock`] (the system clock unless [`Refresher::with_clock`] says otherwise):
//! when a request is sent, and how old a presented token is.
//!
//! ## Refresh windows
//!
//! [`Vendor::refresh_window`] says how long each vendor accepts a refresh (Ekuaibao: only before the access token
//! expires; Sugon AC: up to 24 hours after; iSolarCloud: while the 30-day refresh token lives; WeChat: until
//! the user authorizes again; MISA: undocumented), and [`TokenSet::refreshable_until`] applies it.
//!
//! ## Errors
//!
//! Every failure is a [`RefreshError`] of one [`ErrorKind`], carrying the vendor, the HTTP status, the vendor's
//! own code and message exactly as sent (`vendor_code`, `vendor_message`; an HTTP status is never a vendor
//! code) and the vendor's request id where it sends one (`request_id`), with `is_retryable()` and `is_*`
//! helpers. Answers that are not what the vendor documents never panic: they are `malformed_response`. Bodies
//! over 1 MiB are not read. HTTP: one shared `reqwest::Client` per [`HttpOptions`] (5 s to connect, 15 s in all
//! by default), redirects not followed.
//!
//! Classified from evidence beyond the code: Sugon AC's page never says which code the renewal of a too-old token
//! gets; a 10004 ("invalid parameter") for a token whose own `expireTime` claim is more than 24 hours past is
//! `reauthorization_required`, any other 10004 `invalid_request` (and on a login, whose only parameters are the
//! credentials, `credentials_rejected`; likewise Ekuaibao's 403 on a login, which presents no token). Ekuaibao's
//! codes are HTTP statuses (its 403 comes with HTTP 403): an undocumented 5xx code is `transient`. Ekuaibao's
//! failure nested in the success wrapper (`{"value": {"errorCode": …}}`) is the documented error. A 401 or 403
//! is never retried, whatever its body (text, HTML, empty, another envelope): it means what the spec documents
//! for the status where it documents one (Ekuaibao's 403, MISA's 401: the token is expired or invalid), else
//! `credentials_rejected`.
//!
//! HTTP statuses a vendor's spec does not list: 429, 408 and 5xx are `transient` (with `Retry-After` when
//! sent); 401 and 403 `credentials_rejected`; 404 and 405 `credentials_rejected` (the base URL is wrong); other
//! 4xx `invalid_request`; 3xx (redirects are not followed) and anything else `malformed_response`. Timeouts and
//! connection failures are `transient`; answers that are not the documented JSON (HTML, empty, truncated, wrong
//! types, an envelope with neither tokens nor an error code, a body over 1 MiB) are `malformed_response`.
//!
#![doc = include_str!("../ERROR_CODES.md")]
#![cfg_attr(
    not(feature = "every-vendor"),
    allow(
        dead_code,
        reason = "what only a vendor left out reads is unused; the default build lints it"
    )
)]

#[macro_use]
mod vendor_table;

mod anomaly;
mod clock;
mod config;
mod error;
mod expiry;
mod grant;
mod refresher;
mod token;
mod vendor;
mod vendor_clock;
mod vendors;

pub use anomaly::Anomaly;
pub use clock::Clock;
pub use config::{ConfigError, HttpOptions, VendorConfig};
pub use error::{
    Call, DocumentedCode, ErrorKind, RefreshError, documented_error_codes, error_codes_markdown,
};
pub use expiry::CONSERVATIVE_LIFETIME;
pub use grant::{Grant, RefreshGrant};
pub use refresh_runtime::Secret;
pub use refresher::Refresher;
pub use token::{ExpirySource, Rotation, TokenSet, VendorExtras};
pub use vendor::{RefreshWindow, UnknownVendor, Vendor};
for_each_vendor!(vendor_exports);
#[cfg(feature = "sugon-ac")]
pub use vendors::sugon_ac::{SugonAcClaims, SugonAcRegion};

#[cfg(test)]
mod tests {
    /// ERROR_CODES.md is what the compiled kind maps and the generated code tables say, byte for byte. After a
    /// change of either, `UPDATE_ERROR_CODES=1` rewrites it: review its diff like a snapshot's.
    #[cfg(feature = "every-vendor")]
    #[test]
    fn error_codes_doc_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/ERROR_CODES.md");
        let rendered = crate::error_codes_markdown();
        if std::env::var_os("UPDATE_ERROR_CODES").is_some() {
            std::fs::write(path, &rendered).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap();
        assert!(
            committed == rendered,
            "ERROR_CODES.md is stale: run `UPDATE_ERROR_CODES=1 cargo test -p refresh-facade --all-features \
             error_codes_doc` and review its diff"
        );
    }
}
