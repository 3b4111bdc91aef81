//! Making the vendor's tokens durable before anyone sees them: written as the record's next version, kept as an
//! orphan when another writer came first, tried again while the lock lasts, and otherwise held (in memory and in
//! the rescue) until a later renewal writes them before it asks the vendor anything.

use std::sync::Arc;
use std::time::Duration;

use super::Manager;
use super::access_token::AccessToken;
use super::credential::{Credential, Unsaved};
use super::store_lock::HeldLock;
use crate::error::ManagerError;
use crate::observe::{Renewed, Rotated};
use crate::rescue::Rescued;
use crate::store::{StoreError, Swap, TokenStore, Versioned};

/// The pauses between tries of a write of fresh tokens that the store failed, made while the renewal still holds
/// the store's lock (and no longer than a lease lasts): once the lock is let go, another process may present the
/// refresh token the vendor just spent.
const WRITE_RETRY_PAUSES: [Duration; 5] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

impl<S: TokenStore + 'static> Manager<S> {
    /// Makes the vendor's tokens durable as the record's next version, or keeps them as an orphan if another
    /// writer came first; then hands out the stored tokens. If the store fails, the write is tried again under the
    /// same lock for as long as [`WRITE_RETRY_PAUSES`] and the lease allow; after that the tokens wait in memory
    /// for the next renewal, which writes them before asking the vendor: they are never dropped, and never handed
    /// out before they are durable.
    pub(super) async fn commit(
        &self,
        credential: &Credential,
        issued: Unsaved,
        held: &HeldLock<S::Lock>,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        let mut pauses = WRITE_RETRY_PAUSES.iter();
        loop {
            let committed = self.try_commit(credential, &issued, held).await;
            // A store that could not be reached may take them at the next try; a record it cannot read will not.
            let Err(ManagerError::Store(error)) = &committed else {
                return committed;
            };
            let passing = matches!(**error, StoreError::Io(_) | StoreError::Database(_));
            let lease_end = held.lease_end();
            let now = self.shared.clock.now();
            let next = pauses
                .next()
                .filter(|&&pause| passing && lease_end.is_none_or(|end| now.after(pause) < end));
            let Some(&pause) = next else {
                // Let go of the lock with the tokens rescued and in memory: the next renewal writes them first.
                self.hold_unsaved(credential, issued).await;
                return committed;
            };
            tracing::warn!(credential = %credential.id, %error, ?pause,
                "the store failed to take the vendor's new tokens: trying again under the same lock");
            tokio::time::sleep(pause).await;
        }
    }

    /// One try of [`Manager::commit`]'s write.
    async fn try_commit(
        &self,
        credential: &Credential,
        issued: &Unsaved,
        held: &HeldLock<S::Lock>,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        let (store, id) = (&self.shared.store, &credential.id);
        match store
            .compare_and_swap(held.lock(), issued.refreshed_from, &issued.tokens)
            .await?
        {
            Swap::Written { version } => {
                if let (Some(path), Some(rescue)) = (&issued.rescue_file, &self.shared.rescue) {
                    rescue.remove(path);
                }
                let record = Versioned::new(version, issued.tokens.clone());
                let token = self.token_of(credential, &record, issued.sent);
                self.install(credential, Arc::clone(&token));
                self.rotated(credential, version, issued, false);
                let renewed = if issued.by_login {
                    Renewed::LoggedIn
                } else {
                    Renewed::Refreshed
                };
                Ok((token, renewed))
            }
            Swap::Conflict { current } => {
                store.keep_orphan(held.lock(), &issued.tokens).await?;
                if let (Some(path), Some(rescue)) = (&issued.rescue_file, &self.shared.rescue) {
                    rescue.remove(path);
                }
                tracing::warn!(credential = %id, "another writer stored tokens first; the vendor's answer is kept as an orphan");
                let current = current.ok_or_else(|| ManagerError::NotStored(id.clone()))?;
                self.rotated(credential, current.version, issued, true);
                let token = self.token_of(credential, &current, None);
                if !token.is_valid(&self.shared.clock) {
                    // A fenced write: the holder of a newer lease has not written yet.
                    return Err(ManagerError::Superseded(id.clone()));
                }
                self.install(credential, Arc::clone(&token));
                Ok((token, Renewed::Orphaned))
            }
        }
    }

    /// Tells the rotation hook that `issued` is durable: as version `version`, or as an orphan beside it.
    fn rotated(
        &self,
        credential: &Credential,
        version: u64,
        issued: &Unsaved,
        kept_as_orphan: bool,
    ) {
        if let Some(hook) = &self.shared.on_rotate {
            hook(&Rotated {
                id: credential.id.clone(),
                vendor: issued.tokens.vendor,
                version,
                expires_at: issued.tokens.expires_at,
                by_login: issued.by_login,
                anomalies: issued.anomalies.clone(),
                kept_as_orphan,
            });
        }
    }

    /// Tokens the store failed to take: held in memory by this process, or rescued by an earlier one.
    pub(super) async fn take_unsaved(&self, credential: &Credential) -> Option<Unsaved> {
        let held_in_memory = credential.state().unsaved.take();
        if let Some(unsaved) = held_in_memory {
            return Some(unsaved);
        }
        let rescue = self.shared.rescue.clone()?;
        let id = credential.id.clone();
        let found = tokio::task::spawn_blocking(move || rescue.find(&id))
            .await
            .ok()??;
        let (path, rescued) = found;
        tracing::warn!(credential = %credential.id, path = %path.display(), rescued_at = %rescued.rescued_at,
            "tokens an earlier renewal could not store were rescued: writing them first");
        Some(Unsaved {
            refreshed_from: rescued.refreshed_from,
            tokens: rescued.tokens,
            sent: None,
            by_login: rescued.by_login,
            rescue_file: Some(path),
            anomalies: Vec::new(),
        })
    }

    /// Keeps `issued`, which the store refused after every try, in the rescue (if one is configured) and in memory.
    pub(super) async fn hold_unsaved(&self, credential: &Credential, mut issued: Unsaved) {
        if issued.rescue_file.is_none()
            && let Some(rescue) = self.shared.rescue.clone()
        {
            let rescued = Rescued {
                id: credential.id.clone(),
                refreshed_from: issued.refreshed_from,
                by_login: issued.by_login,
                tokens: issued.tokens.clone(),
                rescued_at: self.shared.clock.wall(),
            };
            match tokio::task::spawn_blocking(move || rescue.keep(&rescued)).await {
                Ok(Ok(path)) => {
                    tracing::warn!(credential = %credential.id, path = %path.display(),
                        "the store refused the vendor's new tokens; they are rescued until it takes them");
                    issued.rescue_file = Some(path);
                }
                Ok(Err(error)) => {
                    tracing::error!(credential = %credential.id, %error,
                        "the store refused the vendor's new tokens and no rescue directory took them: \
                         they are held in memory only");
                }
                Err(_) => {}
            }
        }
        credential.state().unsaved = Some(issued);
    }
}
