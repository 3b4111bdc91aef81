//! Where credentials live between refreshes, and across restarts and processes.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub(crate) mod file;
pub(crate) mod memory;

use std::future::Future;
use std::time::Duration;

use chrono::TimeDelta;

use chrono::{DateTime, Utc};

use crate::record::{CredentialId, StoredTokens};

/// A credential's record: its tokens, the version a compare-and-swap compares, and the orphans kept with it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Versioned {
    /// 1 for the first write, one more for each write after it.
    pub version: u64,
    pub tokens: StoredTokens,
    pub orphans: Vec<Orphan>,
}

impl Versioned {
    pub(crate) fn new(version: u64, tokens: StoredTokens) -> Self {
        Versioned {
            version,
            tokens,
            orphans: Vec::new(),
        }
    }

    /// A record as a store outside this crate read it.
    pub fn with_orphans(version: u64, tokens: StoredTokens, orphans: Vec<Orphan>) -> Self {
        Versioned {
            version,
            tokens,
            orphans,
        }
    }
}

/// Tokens a vendor issued whose write lost a compare-and-swap. They are kept, never dropped: if the winning
/// write's tokens turn out dead, these may be the only live ones.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Orphan {
    pub tokens: StoredTokens,
    /// When the store kept them.
    pub kept_at: DateTime<Utc>,
    /// The record's version when they lost.
    pub lost_to_version: u64,
}

impl Orphan {
    /// An orphan as a store outside this crate read it.
    pub fn new(tokens: StoredTokens, kept_at: DateTime<Utc>, lost_to_version: u64) -> Self {
        Orphan {
            tokens,
            kept_at,
            lost_to_version,
        }
    }
}

/// How long an orphan that can no longer be promoted is kept: one that lost to a version older than the record's
/// previous one. Orphans that lost to the record's current or previous version are the ones a refusal promotes
/// (the tokens the vendor issued last), and are kept whatever their age.
pub const ORPHAN_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most orphans a credential keeps: beyond these, the oldest go first.
pub const MOST_ORPHANS: usize = 32;

/// Whether an orphan that lost to `lost_to_version`, kept at `kept_at`, is kept beside a record at `version` at
/// `now` ([`ORPHAN_RETENTION`]). The count limit ([`MOST_ORPHANS`]) applies on top.
pub fn orphan_retained(
    lost_to_version: u64,
    kept_at: DateTime<Utc>,
    version: u64,
    now: DateTime<Utc>,
) -> bool {
    let promotable = lost_to_version + 1 >= version;
    let retention = TimeDelta::from_std(ORPHAN_RETENTION).unwrap_or(TimeDelta::MAX);
    promotable || now - kept_at < retention
}

/// The orphans of a record at `version` that [`orphan_retained`] and [`MOST_ORPHANS`] keep, oldest first.
fn prune(orphans: Vec<Orphan>, version: u64, now: DateTime<Utc>) -> Vec<Orphan> {
    let mut kept: Vec<Orphan> = orphans
        .into_iter()
        .filter(|orphan| orphan_retained(orphan.lost_to_version, orphan.kept_at, version, now))
        .collect();
    let excess = kept.len().saturating_sub(MOST_ORPHANS);
    kept.drain(..excess);
    kept
}

/// What a compare-and-swap did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a conflict means the tokens were not written"]
pub enum Swap {
    /// The tokens are durable, as this version.
    Written { version: u64 },
    /// The record was not at the expected version (another writer came first); nothing was written. The record
    /// as it is now.
    Conflict { current: Option<Versioned> },
}

/// A store failed: the tokens of a failed write are not durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("the token store could not be read or written: {0}")]
    Io(#[from] std::io::Error),
    /// A record that is not what this crate writes. It is left as it is for an operator to look at.
    #[error(
        "the record of {id} is unreadable ({reason}); it was left untouched. Move it aside (keep it: it may hold \
         the only live refresh token) and log the credential in again"
    )]
    Corrupt { id: CredentialId, reason: String },
    /// A database store could not reach its database, or the database refused a statement.
    #[error("the token database failed: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A record encrypted at rest that this store cannot open: its key is not among the store's keys, or the key
    /// with its id is not the one it was written with. Nothing is written over it.
    #[error(
        "the record of {id} does not open with key {key_id:?} ({reason}); it was left untouched"
    )]
    Key {
        id: CredentialId,
        key_id: String,
        reason: &'static str,
    },
}

/// What a lock a store handed out allows its holder ([`TokenStore::lock_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockKind {
    /// Held until it is dropped or released (a file or memory lock): no one else writes meanwhile.
    UntilDropped,
    /// A lease that lapses by itself (a database lease), sure to be held for `left` more: the manager sends no
    /// vendor request that could outlast it, and a write after it lapsed is fenced.
    Lease { left: Duration },
    /// The right to read and adopt what another holder just committed, never to call the vendor: a write under it
    /// is fenced (orphans are still kept).
    ReadOnly,
}

impl LockKind {
    /// How much longer the lock is sure to be held: `None` until it is dropped, zero for a read-only one.
    pub fn left(self) -> Option<Duration> {
        match self {
            LockKind::UntilDropped => None,
            LockKind::Lease { left } => Some(left),
            LockKind::ReadOnly => Some(Duration::ZERO),
        }
    }
}

/// A durable home for credentials. Writes are compare-and-swaps on the record's version, made under the
/// credential's lock ([`TokenStore::lock`]), which serializes the refreshes of one credential among every user of
/// the store (threads, tasks, and for a [`crate::FileStore`] processes). A write names no credential: its lock
/// does, so that no write is made without one, or under another credential's.
///
/// ```
/// # use refresh_manager::{CredentialId, MemoryStore, StoreError, StoredTokens, TokenStore};
/// # async fn under_its_lock(store: MemoryStore, id: CredentialId, tokens: StoredTokens) -> Result<(), StoreError> {
/// let held = store.lock(&id).await?;
/// let written = store.compare_and_swap(&held, None, &tokens).await;
/// store.release(held).await;
/// # let _ = written?;
/// # Ok(())
/// # }
/// ```
///
/// A write without the credential's lock does not compile:
///
/// ```compile_fail
/// # use refresh_manager::{CredentialId, MemoryStore, StoreError, StoredTokens, TokenStore};
/// # async fn without_a_lock(store: MemoryStore, id: CredentialId, tokens: StoredTokens) -> Result<(), StoreError> {
/// let written = store.compare_and_swap(&id, None, &tokens).await;
/// # let _ = written?;
/// # Ok(())
/// # }
/// ```
pub trait TokenStore: Send + Sync {
    /// Held while one refresh of a credential runs, and what its writes are made under; dropping it lets the next
    /// one in.
    type Lock: Send + Sync;

    /// The credential's record, if it has one.
    fn load(
        &self,
        id: &CredentialId,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Writes `tokens` as the next version of the record of the credential `lock` is held on, if its version is
    /// still `expected` (`None`: it has no record yet), and if the lock still allows writes (a lease that lapsed,
    /// or a read-only lock, is fenced: a conflict). Orphans are kept. When this returns [`Swap::Written`], the
    /// tokens are durable.
    fn compare_and_swap(
        &self,
        lock: &Self::Lock,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send;

    /// [`TokenStore::compare_and_swap`] of `id` under its lock, taken for this write and released after: a write
    /// made outside a renewal (a first login, tokens imported or seeded).
    fn compare_and_swap_under_lock(
        &self,
        id: &CredentialId,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> impl Future<Output = Result<Swap, StoreError>> + Send {
        async move {
            let held = self.lock(id).await?;
            let written = self.compare_and_swap(&held, expected, tokens).await;
            self.release(held).await;
            written
        }
    }

    /// Keeps `tokens`, whose write lost a compare-and-swap, with the record of the credential `lock` is held on:
    /// under any lock, lapsed or read-only too (tokens the vendor issued are never dropped).
    fn keep_orphan(
        &self,
        lock: &Self::Lock,
        tokens: &StoredTokens,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`TokenStore::keep_orphan`] of `id` under its lock, taken for it and released after.
    fn keep_orphan_under_lock(
        &self,
        id: &CredentialId,
        tokens: &StoredTokens,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let held = self.lock(id).await?;
            let kept = self.keep_orphan(&held, tokens).await;
            self.release(held).await;
            kept
        }
    }

    /// Waits until no one else refreshes the credential, and holds that until the lock is dropped.
    fn lock(
        &self,
        id: &CredentialId,
    ) -> impl Future<Output = Result<Self::Lock, StoreError>> + Send;

    /// What `lock` allows its holder now [default: [`LockKind::UntilDropped`]]. A lease counts what is left of it
    /// from before it was asked for, so that it is never later than the store's own end.
    fn lock_kind(&self, lock: &Self::Lock) -> LockKind {
        let _ = lock;
        LockKind::UntilDropped
    }

    /// Checks, under the credential's lock and before the vendor is asked, that a write of `id` can succeed now: a
    /// store that cannot write (no permission, a read-only or full disk) would cost the token the vendor rotates.
    /// No default: a store that wraps another must pass this on, or the check is silently skipped.
    fn check_writable(
        &self,
        id: &CredentialId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lets go of `lock`, and returns once the store has: a short-lived process that exits right after must not
    /// leave a lease held for others to wait out. No default: a store that wraps another must pass this on.
    fn release(&self, lock: Self::Lock) -> impl Future<Output = ()> + Send;
}

/// A compare-and-swap of `current` to `tokens` if its version is `expected`: the record to write (none on a
/// conflict) and the outcome. Every store runs this one rule under its own write lock.
fn swap(
    current: Option<Versioned>,
    expected: Option<u64>,
    tokens: &StoredTokens,
    now: DateTime<Utc>,
) -> (Option<Versioned>, Swap) {
    if current.as_ref().map(|record| record.version) != expected {
        return (None, Swap::Conflict { current });
    }
    let record = next_record(current, tokens, now);
    let version = record.version;
    (Some(record), Swap::Written { version })
}

/// The record after a successful compare-and-swap of `current` to `tokens`, its orphans pruned.
fn next_record(current: Option<Versioned>, tokens: &StoredTokens, now: DateTime<Utc>) -> Versioned {
    match current {
        Some(record) => Versioned {
            version: record.version + 1,
            tokens: tokens.clone(),
            orphans: prune(record.orphans, record.version + 1, now),
        },
        None => Versioned {
            version: 1,
            tokens: tokens.clone(),
            orphans: Vec::new(),
        },
    }
}

/// The record with `tokens` kept as an orphan; a record without tokens of its own gets them as its first version.
fn with_orphan(current: Option<Versioned>, tokens: &StoredTokens, now: DateTime<Utc>) -> Versioned {
    match current {
        Some(mut record) => {
            record.orphans.push(Orphan {
                tokens: tokens.clone(),
                kept_at: now,
                lost_to_version: record.version,
            });
            record
        }
        None => next_record(None, tokens, now),
    }
}
