//! Keeps tokens valid without ever losing a rotated refresh token.
//!
//! [`Manager::access_token`] returns a valid token from a lock-free cache (`arc-swap`); when it is due (by
//! [`RefreshPolicy`]) the first caller starts one refresh in the background, and when none is valid every
//! caller waits for that same one refresh, which runs as its own task and commits even if every caller stops
//! waiting. A refresh runs under the store's per-credential lock, uses tokens another process already stored
//! instead of rotating again, and writes the vendor's tokens (compare-and-swap) before anyone sees them.
//!
//! Still to come (issue 9): refresh timers and jitter, backoff, re-login through `obtain` when a window closes,
//! WeChat's managed component token, metrics and hooks, the CLI profiles, and the crash, scale and herd
//! measurements.
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

mod manager;
mod record;
mod store;

pub use manager::{AccessToken, Manager, ManagerError, RefreshPolicy};
pub use record::{CredentialId, InvalidCredentialId, StoredTokens};
pub use store::file::FileStore;
pub use store::memory::MemoryStore;
pub use store::{Orphan, StoreError, Swap, TokenStore, Versioned};
