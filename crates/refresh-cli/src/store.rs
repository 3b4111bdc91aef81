//! The profiles' token store: the `FileStore` under the state directory, or, where the profiles file has a
//! `[postgres]` table, the PostgreSQL store that replicas of a service share (so that `refresh status` shows
//! their records and orphans, and `refresh token` takes part in their leases).

use refresh_manager::{
    CredentialId, FileStore, LockKind, StoreError, StoredTokens, Swap, TokenStore, Versioned,
};
use refresh_postgres::{Keyring, LeaseHolder, PgLease, PgStore};
use tokio::sync::OnceCell;

pub enum ProfileStore {
    File(FileStore),
    /// Connected at first use: commands that read no token open no connection.
    Postgres(Box<LazyPg>),
}

pub struct LazyPg {
    url: String,
    keys: Keyring,
    store: OnceCell<PgStore>,
}

pub enum ProfileLock {
    File(<FileStore as TokenStore>::Lock),
    Postgres(PgLease),
}

impl ProfileStore {
    pub fn postgres(url: String, keys: Keyring) -> Self {
        ProfileStore::Postgres(Box::new(LazyPg {
            url,
            keys,
            store: OnceCell::new(),
        }))
    }
}

impl ProfileStore {
    /// Who holds the credential's lease in a shared store, and for how long (`None` for a `FileStore`, whose
    /// locks are held only while a command runs).
    pub async fn lease(&self, id: &CredentialId) -> Result<Option<LeaseHolder>, StoreError> {
        match self {
            ProfileStore::File(_) => Ok(None),
            ProfileStore::Postgres(pg) => pg.get().await?.lease(id).await,
        }
    }
}

impl LazyPg {
    async fn get(&self) -> Result<&PgStore, StoreError> {
        self.store
            .get_or_try_init(|| PgStore::connect(&self.url, self.keys.clone()))
            .await
    }
}

impl TokenStore for ProfileStore {
    type Lock = ProfileLock;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        match self {
            ProfileStore::File(store) => store.load(id).await,
            ProfileStore::Postgres(pg) => pg.get().await?.load(id).await,
        }
    }

    async fn compare_and_swap(
        &self,
        lock: &ProfileLock,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        match (self, lock) {
            (ProfileStore::File(store), ProfileLock::File(lock)) => {
                store.compare_and_swap(lock, expected, tokens).await
            }
            (ProfileStore::Postgres(pg), ProfileLock::Postgres(lease)) => {
                pg.get()
                    .await?
                    .compare_and_swap(lease, expected, tokens)
                    .await
            }
            _ => Err(another_stores_lock()),
        }
    }

    async fn keep_orphan(
        &self,
        lock: &ProfileLock,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        match (self, lock) {
            (ProfileStore::File(store), ProfileLock::File(lock)) => {
                store.keep_orphan(lock, tokens).await
            }
            (ProfileStore::Postgres(pg), ProfileLock::Postgres(lease)) => {
                pg.get().await?.keep_orphan(lease, tokens).await
            }
            _ => Err(another_stores_lock()),
        }
    }

    async fn lock(&self, id: &CredentialId) -> Result<ProfileLock, StoreError> {
        match self {
            ProfileStore::File(store) => store.lock(id).await.map(ProfileLock::File),
            ProfileStore::Postgres(pg) => pg.get().await?.lock(id).await.map(ProfileLock::Postgres),
        }
    }

    async fn check_writable(&self, id: &CredentialId) -> Result<(), StoreError> {
        match self {
            ProfileStore::File(store) => store.check_writable(id).await,
            ProfileStore::Postgres(pg) => pg.get().await?.check_writable(id).await,
        }
    }

    async fn release(&self, lock: ProfileLock) {
        match (self, lock) {
            (ProfileStore::File(store), ProfileLock::File(lock)) => store.release(lock).await,
            (ProfileStore::Postgres(pg), ProfileLock::Postgres(lease)) => match pg.store.get() {
                Some(store) => store.release(lease).await,
                None => drop(lease),
            },
            (_, lock) => drop(lock),
        }
    }

    fn lock_kind(&self, lock: &ProfileLock) -> LockKind {
        match (self, lock) {
            (ProfileStore::Postgres(pg), ProfileLock::Postgres(lease)) => {
                // A lease exists only once the store is connected; were it not, it allows nothing.
                pg.store
                    .get()
                    .map_or(LockKind::ReadOnly, |store| store.lock_kind(lease))
            }
            (ProfileStore::File(store), ProfileLock::File(lock)) => store.lock_kind(lock),
            _ => LockKind::ReadOnly,
        }
    }
}

/// A lock handed out by the other kind of store: a profile store hands out its own kind only.
fn another_stores_lock() -> StoreError {
    StoreError::Io(std::io::Error::other(
        "a lock of another kind of store was used to write this one",
    ))
}

#[cfg(test)]
mod tests {
    use refresh_manager::conformance;

    use super::*;

    /// A profile store on files keeps the store contract: its writes and orphans reach the `FileStore` under the
    /// lock it handed out.
    #[tokio::test]
    async fn a_profile_store_on_files_keeps_the_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::File(FileStore::open(dir.path().join("tokens")).unwrap());
        conformance::compare_and_swap_writes_only_the_expected_version(&store).await;
        conformance::orphans_are_kept_across_writes(&store).await;
        conformance::a_write_goes_to_the_credential_its_lock_is_held_on(&store).await;
    }
}
