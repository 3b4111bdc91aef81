//! A store in memory: for tests, and for services that log in when they start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;

use super::{StoreError, Swap, TokenStore, Versioned, swap, with_orphan};
use crate::record::{CredentialId, StoredTokens};

/// Records in memory; cloning shares them. The lock serializes refreshes among the users of this store only.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<HashMap<CredentialId, Versioned>>>,
    locks: Arc<Mutex<HashMap<CredentialId, Arc<tokio::sync::Mutex<()>>>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<CredentialId, Versioned>> {
        // A panic elsewhere while holding the guard cannot leave a record half-written: every change is one
        // insert of a complete record.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Held while a refresh of one credential runs, among the users of one [`MemoryStore`]; its writes are made under it.
#[derive(Debug)]
pub struct MemoryLock {
    id: CredentialId,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl TokenStore for MemoryStore {
    type Lock = MemoryLock;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        Ok(self.records().get(id).cloned())
    }

    async fn compare_and_swap(
        &self,
        lock: &MemoryLock,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        let id = &lock.id;
        let mut records = self.records();
        let (record, outcome) = swap(records.get(id).cloned(), expected, tokens, Utc::now());
        if let Some(record) = record {
            records.insert(id.clone(), record);
        }
        Ok(outcome)
    }

    async fn keep_orphan(
        &self,
        lock: &MemoryLock,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        let id = &lock.id;
        let mut records = self.records();
        let record = with_orphan(records.get(id).cloned(), tokens, Utc::now());
        records.insert(id.clone(), record);
        Ok(())
    }

    async fn lock(&self, id: &CredentialId) -> Result<MemoryLock, StoreError> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(id.clone()).or_default())
        };
        Ok(MemoryLock {
            id: id.clone(),
            _held: lock.lock_owned().await,
        })
    }

    /// Memory takes every write.
    async fn check_writable(&self, _id: &CredentialId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn release(&self, lock: Self::Lock) {
        drop(lock);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance;

    #[tokio::test]
    async fn compare_and_swap_writes_only_the_expected_version() {
        conformance::compare_and_swap_writes_only_the_expected_version(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn orphans_are_kept_across_writes() {
        conformance::orphans_are_kept_across_writes(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn orphans_are_pruned_to_the_most_a_credential_keeps() {
        conformance::orphans_are_pruned_to_the_most_a_credential_keeps(&MemoryStore::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_racing_writers_exactly_one_wins() {
        conformance::of_racing_writers_exactly_one_wins(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn a_write_goes_to_the_credential_its_lock_is_held_on() {
        conformance::a_write_goes_to_the_credential_its_lock_is_held_on(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn the_lock_lets_one_holder_in_at_a_time() {
        let store = MemoryStore::new();
        conformance::the_lock_lets_one_holder_in_at_a_time(&store, &store.clone()).await;
    }
}
