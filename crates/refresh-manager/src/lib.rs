//! Keeps tokens valid without ever losing a rotated refresh token.
//!
//! ```no_run
//! use refresh_facade::{Grant, Refresher, VendorConfig};
//! use refresh_manager::{CredentialId, CredentialOptions, FileStore, Manager};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = Manager::new(FileStore::open("/var/lib/my-service/tokens")?);
//! let id = CredentialId::new("expenses")?;
//! let config: VendorConfig = serde_json::from_str(r#"{"vendor": "ekuaibao", "validity_days": 7}"#)?;
//! let login = Grant::EkuaibaoAppCredentials { app_key: "my-app".into(), app_security: "…".into() };
//! manager.manage(id.clone(), CredentialOptions::new(Refresher::new(config)?).with_login(login));
//!
//! // As often as you like: a valid token from the cache, refreshed in the background ahead of expiry.
//! let token = manager.access_token(&id).await?;
//! println!("valid until {}", token.expires_at);
//! # let _ = token.secret.expose_secret();
//! # Ok(())
//! # }
//! ```
//!
//! [`Manager::access_token`] returns a valid token from a lock-free cache (`arc-swap`). Each credential's
//! refresh runs in the background ahead of expiry (by its [`RefreshPolicy`]: `max(60 s, 10% of the lifetime)`
//! before it, minus random jitter), on one timer heap for the whole manager; when no token is valid every caller
//! waits for the same one refresh, which runs as its own task and commits even if every caller stops waiting.
//! Deadlines run on a clock that never jumps and counts suspend ([`ManagerClock`]) from when the request was sent,
//! counted back from the expiry, and a token is handed out only while the wall clock agrees: a wall clock set back
//! delays no refresh, and one set ahead (or a machine resumed after days) hands out no expired token. Tests drive a
//! [`ManualClock`] instead of sleeping.
//!
//! A renewal runs under the store's per-credential lock, uses tokens another process already stored instead of
//! rotating again, and writes the vendor's tokens (compare-and-swap) before anyone sees them. Failures that may
//! pass are retried with capped exponential backoff and full jitter ([`Backoff`], honouring `Retry-After`), and
//! never displace a still-valid token. A refusal is reported only after the store was read again (another process
//! may have rotated the credential); when the vendor's window has closed or it refused the refresh token, a
//! credential with a non-interactive login ([`CredentialOptions::with_login`]) logs in again through
//! `Refresher::obtain`, and otherwise the refusal is logged once and returned to callers without asking the vendor
//! again. WeChat authorizers present the component token of another managed credential
//! ([`CredentialOptions::with_component_token`]), renewed and retried once when WeChat says it expired.
//!
//! Observability: [`ManagerOptions::on_rotate`], counters and latency histograms through the `metrics` facade
//! ([`observe`]'s names), and `tracing` events; none carries a secret.
//!
//! The stores:
//!
//! - [`MemoryStore`]: for tests and single-process services that log in at start.
//! - [`FileStore`]: the embedded default. Records are replaced atomically (temporary file, fsync, rename,
//!   directory fsync), are readable by their owner only (0600), and a cross-process lock per credential lets
//!   several processes on one machine share a credential and refresh it once.
//!
//! Every write is a compare-and-swap on the record's version, so that of two writers that both refreshed, the
//! second learns it lost. Its tokens are not dropped: the vendor issued them, and they may be the only live ones,
//! so they are kept as an [`Orphan`] of the record.

mod clock;
mod error;
pub mod file_system;
mod manager;
pub mod observe;
mod policy;
mod record;
mod rescue;
mod schedule;
mod store;

pub use clock::{ManagerClock, ManualClock, Moment};
pub use error::ManagerError;
pub use manager::{
    AccessToken, CredentialHandle, CredentialOptions, Manager, ManagerOptions, TokenChanges,
};
pub use observe::Rotated;
pub use policy::{Backoff, RefreshPolicy};
pub use record::{CredentialId, InvalidCredentialId, StoredTokens};
pub use rescue::{Rescue, Rescued};
#[cfg(any(test, feature = "conformance"))]
pub use store::conformance;
#[cfg(feature = "testing")]
pub mod testing;
pub use store::file::{FileLock, FileStore};
pub use store::memory::{MemoryLock, MemoryStore};
pub use store::{
    LockKind, MOST_ORPHANS, ORPHAN_RETENTION, Orphan, StoreError, Swap, TokenStore, Versioned,
    orphan_retained,
};
