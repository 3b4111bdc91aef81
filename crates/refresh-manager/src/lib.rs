//! Keeps tokens valid without ever losing a rotated refresh token.
//!
//! This is the crate's foundation: the durable, versioned [`TokenStore`]s a manager keeps its credentials in.
//!
//! - [`MemoryStore`]: for tests and single-process services that log in at start.
//! - [`FileStore`]: the embedded default. Records are replaced atomically (temporary file, fsync, rename,
//!   directory fsync), are readable by their owner only (0600), and a cross-process lock per credential lets
//!   several processes on one machine share a credential and refresh it once.
//!
//! Every write is a compare-and-swap on the record's version, so that of two writers that both refreshed, the
//! second learns it lost. Its tokens are not dropped: the vendor issued them, and they may be the only live ones,
//! so they are kept as an [`Orphan`] of the record.

mod record;
mod store;

pub use record::{CredentialId, InvalidCredentialId, StoredTokens};
pub use store::file::FileStore;
pub use store::memory::MemoryStore;
pub use store::{Orphan, StoreError, Swap, TokenStore, Versioned};
