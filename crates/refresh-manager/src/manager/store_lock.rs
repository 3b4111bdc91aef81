//! A credential's store lock as this process holds it, with when it lapses (a lease) on the manager's clock.

use std::sync::Arc;

use super::Manager;
use super::credential::Credential;
use crate::clock::{ManagerClock, Moment};
use crate::store::{StoreError, TokenStore};

/// One credential's store lock as this process keeps it between renewals: taken by one renewal, login or flush at
/// a time (so that none of them waits on a lock its own process keeps), and kept between them while the process
/// holds tokens the store refused ([`Manager::holds_unsaved`]). Empty otherwise.
pub(super) type LockSlot<L> = Arc<tokio::sync::Mutex<Option<L>>>;

/// A store lock held by a renewal, a login or a flush, and when it lapses if it is a lease. [`Manager::let_go`]
/// releases it, and waits until the store has, unless the process holds tokens the store refused: then the lock
/// goes back to its slot, and no other process presents the refresh token those tokens replaced. Dropping it (a
/// renewal cut off) leaves the release to the store lock's own drop.
pub(super) struct HeldLock<L> {
    lock: L,
    /// Its slot, empty while the lock is out of it.
    slot: tokio::sync::OwnedMutexGuard<Option<L>>,
    /// When a lease lapses, at the latest, on the manager's clock (`None`: a lock that never lapses, or writes
    /// nothing).
    lease_end: Option<Moment>,
}

impl<L> HeldLock<L> {
    #[cfg(test)]
    pub(super) fn for_tests(
        lock: L,
        slot: tokio::sync::OwnedMutexGuard<Option<L>>,
        lease_end: Option<Moment>,
    ) -> Self {
        HeldLock {
            lock,
            slot,
            lease_end,
        }
    }

    /// The lock itself, which the writes under it are made with.
    pub(super) fn lock(&self) -> &L {
        &self.lock
    }

    pub(super) fn lease_end(&self) -> Option<Moment> {
        self.lease_end
    }

    /// Whether the lock is still this process's: one that never lapses, or a lease whose end has not come.
    pub(super) fn is_held(&self, clock: &ManagerClock) -> bool {
        self.lease_end.is_none_or(|end| clock.now() < end)
    }
}

impl<S: TokenStore + 'static> Manager<S> {
    /// The store's lock on `credential`, with when it lapses (a lease), which [`Manager::call_vendor`] uses to send
    /// nothing that could outlast it. The one this process kept, if it kept one that has not lapsed.
    pub(super) async fn lock_store(
        &self,
        credential: &Credential,
    ) -> Result<HeldLock<S::Lock>, StoreError> {
        let store = &self.shared.store;
        let slot = Arc::clone(
            super::lock(&self.shared.lock_slots)
                .entry(credential.id.clone())
                .or_default(),
        );
        let mut slot = slot.lock_owned().await;
        if let Some(kept) = slot.take() {
            let now = self.shared.clock.now();
            match store.lock_kind(&kept).left() {
                // A kept lease that lapsed: another process may have taken it since. A new one, fenced anew.
                Some(left) if left.is_zero() => store.release(kept).await,
                left => {
                    return Ok(HeldLock {
                        lock: kept,
                        slot,
                        lease_end: left.map(|left| now.after(left)),
                    });
                }
            }
        }
        let lock = store.lock(&credential.id).await?;
        // Counted from once the lock is held, not from before a wait for another holder (which left a replica that
        // waited out a stopped holder's lease no time to call the vendor). Our clock is read before the store
        // tells what is left, which it counts from before it asked: the end is never later than the store's.
        let taken = self.shared.clock.now();
        let lease_end = store.lock_kind(&lock).left().map(|left| taken.after(left));
        Ok(HeldLock {
            lock,
            slot,
            lease_end,
        })
    }

    /// Lets `held` go, awaiting the store, unless this process holds tokens of `credential` the store refused: it
    /// keeps the lock until a later renewal writes them, so that no other process presents the refresh token they
    /// replaced, which the vendor has spent. (A process that dies lets it go with them: the store's own lock rule.)
    pub(super) async fn let_go(&self, credential: &Credential, held: HeldLock<S::Lock>) {
        let HeldLock { lock, mut slot, .. } = held;
        if credential.state().unsaved.is_some() {
            tracing::warn!(credential = %credential.id,
                "keeping the store's lock while this process holds tokens the store refused");
            *slot = Some(lock);
        } else {
            self.shared.store.release(lock).await;
        }
    }
}
