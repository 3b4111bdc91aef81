//! The manager: a valid access token for each credential, from a lock-free cache, refreshed once however many
//! callers ask, written to the store before anyone sees it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use refresh_facade::{Clock, Grant, RefreshError, Refresher, Secret};

use crate::record::{CredentialId, StoredTokens};
use crate::store::{StoreError, Swap, TokenStore, Versioned};

/// When to refresh ahead of expiry: `max(minimum, fraction × lifetime)` before it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RefreshPolicy {
    pub minimum_ahead: Duration,
    /// Of the token's lifetime, between 0 and 1.
    pub fraction_ahead: f64,
}

impl Default for RefreshPolicy {
    /// 60 seconds or 10% of the lifetime before expiry, whichever is longer.
    fn default() -> Self {
        RefreshPolicy {
            minimum_ahead: Duration::from_secs(60),
            fraction_ahead: 0.1,
        }
    }
}

impl RefreshPolicy {
    /// When tokens obtained at `obtained_at` that expire at `expires_at` are due for a refresh.
    pub fn refresh_at(
        &self,
        obtained_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let lifetime = (expires_at - obtained_at).max(TimeDelta::zero());
        let fraction = self.fraction_ahead.clamp(0.0, 1.0);
        let share = TimeDelta::milliseconds((lifetime.num_milliseconds() as f64 * fraction) as i64);
        let minimum = TimeDelta::from_std(self.minimum_ahead).unwrap_or(TimeDelta::MAX);
        expires_at - share.max(minimum).min(lifetime)
    }
}

/// A valid access token, as the cache holds it: cloning the `Arc` the manager hands out allocates nothing.
#[derive(Debug)]
#[non_exhaustive]
pub struct AccessToken {
    pub secret: Secret,
    pub expires_at: DateTime<Utc>,
    /// When a refresh is due (the policy's margin before expiry).
    pub refresh_at: DateTime<Utc>,
    /// The store record's version these tokens are.
    pub version: u64,
}

/// Why the manager has no valid access token for a credential.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    #[error("no credential {0} is managed here")]
    Unknown(CredentialId),
    #[error("the store holds no tokens for {0}: log in first")]
    NotStored(CredentialId),
    /// The vendor refused or failed; the cached token, if still valid, stays in use.
    #[error(transparent)]
    Refresh(Arc<RefreshError>),
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl From<StoreError> for ManagerError {
    fn from(error: StoreError) -> Self {
        ManagerError::Store(Arc::new(error))
    }
}

impl From<RefreshError> for ManagerError {
    fn from(error: RefreshError) -> Self {
        ManagerError::Refresh(Arc::new(error))
    }
}

type Flight = Shared<BoxFuture<'static, Result<Arc<AccessToken>, ManagerError>>>;

/// One managed credential.
struct Credential {
    id: CredentialId,
    refresher: Refresher,
    policy: RefreshPolicy,
    current: ArcSwapOption<AccessToken>,
    /// The refresh under way, which every caller that needs one joins.
    flight: Mutex<Option<Flight>>,
    /// Tokens the vendor issued that the store failed to take, with the version they were refreshed from: written
    /// before the vendor is asked again, never dropped.
    unsaved: Mutex<Option<(Option<u64>, StoredTokens)>>,
}

/// Keeps the access tokens of many credentials valid, in one store.
pub struct Manager<S> {
    shared: Arc<ManagerShared<S>>,
}

struct ManagerShared<S> {
    store: S,
    clock: Clock,
    credentials: RwLock<HashMap<CredentialId, Arc<Credential>>>,
}

impl<S> Clone for Manager<S> {
    fn clone(&self) -> Self {
        Manager {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: TokenStore + 'static> Manager<S> {
    pub fn new(store: S) -> Self {
        Self::with_clock(store, Clock::system())
    }

    /// A manager that reads "now" from `clock` (tests advance it instead of sleeping).
    pub fn with_clock(store: S, clock: Clock) -> Self {
        Manager {
            shared: Arc::new(ManagerShared {
                store,
                clock,
                credentials: RwLock::new(HashMap::new()),
            }),
        }
    }

    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// Manages `id`, whose tokens are in the store (or will be, from [`Manager::login`]), refreshing them with
    /// `refresher`. Replaces an earlier registration of the same id.
    pub fn manage(&self, id: CredentialId, refresher: Refresher, policy: RefreshPolicy) {
        let credential = Arc::new(Credential {
            id: id.clone(),
            refresher,
            policy,
            current: ArcSwapOption::empty(),
            flight: Mutex::new(None),
            unsaved: Mutex::new(None),
        });
        self.shared
            .credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, credential);
    }

    /// Obtains first tokens for a managed credential with `grant`, and stores them (durably) before returning.
    /// Tokens that another writer beat to the store are kept as an orphan, and the stored ones are used; tokens
    /// the store failed to take are written by the next call (an authorization code is single-use).
    pub async fn login(
        &self,
        id: &CredentialId,
        grant: &Grant,
    ) -> Result<Arc<AccessToken>, ManagerError> {
        let credential = self.credential(id)?;
        let _lock = self.shared.store.lock(id).await?;
        let current = self.shared.store.load(id).await?;
        let tokens = StoredTokens::from(&credential.refresher.obtain(grant).await?);
        let expected = current.as_ref().map(|record| record.version);
        self.commit(&credential, expected, tokens).await
    }

    /// A valid access token for `id`. While the cached one is valid this takes no lock and allocates nothing;
    /// once it is due, the first caller starts one refresh in the background and every caller keeps getting the
    /// valid token. Only when none is valid do callers wait, all for the same one refresh, which runs to its end
    /// even if every caller stops waiting.
    pub async fn access_token(&self, id: &CredentialId) -> Result<Arc<AccessToken>, ManagerError> {
        let credential = self.credential(id)?;
        let now = self.shared.clock.now();
        if let Some(token) = credential.current.load_full() {
            if now < token.refresh_at {
                return Ok(token);
            }
            if now < token.expires_at {
                drop(self.flight(&credential));
                return Ok(token);
            }
        }
        self.flight(&credential).await
    }

    fn credential(&self, id: &CredentialId) -> Result<Arc<Credential>, ManagerError> {
        self.shared
            .credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or_else(|| ManagerError::Unknown(id.clone()))
    }

    /// The refresh under way for `credential`, or a new one. It runs as its own task: dropping the returned
    /// future never abandons it half-done.
    fn flight(&self, credential: &Arc<Credential>) -> Flight {
        let mut flight = credential
            .flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = flight.as_ref()
            && running.peek().is_none()
        {
            return running.clone();
        }
        let (manager, credential_for_task) = (self.clone(), Arc::clone(credential));
        let task = tokio::spawn(async move {
            let result = manager.refresh(&credential_for_task).await;
            if let Err(error) = &result {
                tracing::warn!(credential = %credential_for_task.id, %error, "refresh failed");
            }
            result
        });
        let joined = async move {
            task.await.unwrap_or_else(|join| {
                Err(ManagerError::Store(Arc::new(StoreError::Io(
                    std::io::Error::other(join),
                ))))
            })
        }
        .boxed()
        .shared();
        *flight = Some(joined.clone());
        joined
    }

    /// One refresh, under the store's lock: tokens another process already refreshed are used as they are;
    /// otherwise the vendor is asked, and its tokens are durable before anyone sees them.
    async fn refresh(&self, credential: &Credential) -> Result<Arc<AccessToken>, ManagerError> {
        let store = &self.shared.store;
        let id = &credential.id;
        let _lock = store.lock(id).await?;
        let now = self.shared.clock.now();
        if let Some(token) = credential.current.load_full()
            && now < token.refresh_at
        {
            // A refresh that finished while this one waited for the lock.
            return Ok(token);
        }
        let record = store.load(id).await?;
        let unsaved = credential
            .unsaved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((refreshed_from, tokens)) = unsaved {
            // The last refresh's tokens first: the vendor may already have spent the stored refresh token.
            return self.commit(credential, refreshed_from, tokens).await;
        }
        let record = record.ok_or_else(|| ManagerError::NotStored(id.clone()))?;
        let cached_version = credential.current.load().as_ref().map(|t| t.version);
        let stored_refresh_at = credential
            .policy
            .refresh_at(record.tokens.obtained_at, record.tokens.expires_at);
        if cached_version.is_none_or(|cached| record.version > cached) && now < stored_refresh_at {
            // Another process (or an earlier run) stored fresher tokens than the cache holds.
            return Ok(publish(credential, &record));
        }
        let tokens = match credential.refresher.refresh(&record.tokens.grant()).await {
            Ok(tokens) => StoredTokens::from(&tokens),
            Err(error) => {
                // Before reporting a failure (above all "log in again"): if the store moved on meanwhile, someone
                // else rotated the credential, and its tokens are the answer.
                if let Some(newer) = store.load(id).await?.filter(|r| r.version > record.version) {
                    return Ok(publish(credential, &newer));
                }
                return Err(error.into());
            }
        };
        self.commit(credential, Some(record.version), tokens).await
    }

    /// Makes the vendor's `tokens`, refreshed from version `refreshed_from` (`None`: a first login), durable as the
    /// next version, or keeps
    /// them as an orphan if another writer came first; then hands out the stored tokens. If the store fails, the
    /// tokens wait in memory for the next refresh, which writes them before asking the vendor: they are never
    /// dropped, and never handed out before they are durable.
    async fn commit(
        &self,
        credential: &Credential,
        refreshed_from: Option<u64>,
        tokens: StoredTokens,
    ) -> Result<Arc<AccessToken>, ManagerError> {
        let (store, id) = (&self.shared.store, &credential.id);
        let committed = async {
            match store.compare_and_swap(id, refreshed_from, &tokens).await? {
                Swap::Written { version } => Ok(publish(
                    credential,
                    &Versioned::new(version, tokens.clone()),
                )),
                Swap::Conflict { current } => {
                    store.keep_orphan(id, &tokens).await?;
                    let current = current.ok_or_else(|| ManagerError::NotStored(id.clone()))?;
                    Ok(publish(credential, &current))
                }
            }
        }
        .await;
        if let Err(ManagerError::Store(_)) = &committed {
            *credential
                .unsaved
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some((refreshed_from, tokens));
        }
        committed
    }
}

/// Makes `record` the credential's cached token.
fn publish(credential: &Credential, record: &Versioned) -> Arc<AccessToken> {
    let tokens = &record.tokens;
    let token = Arc::new(AccessToken {
        secret: tokens.access_token.clone(),
        expires_at: tokens.expires_at,
        refresh_at: credential
            .policy
            .refresh_at(tokens.obtained_at, tokens.expires_at),
        version: record.version,
    });
    credential.current.store(Some(Arc::clone(&token)));
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::record::tests::tokens;

    /// A refresh that finds the cache fresh (another refresh finished while it waited for the lock) asks no one:
    /// this refresher's host does not exist.
    #[tokio::test]
    async fn a_refresh_that_finds_the_cache_fresh_sends_nothing() {
        let config = refresh_facade::EkuaibaoConfig::new().with_base_url("http://127.0.0.1:9");
        let refresher = Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap();
        let stored = tokens("fresh");
        let now = stored.obtained_at;
        let manager = Manager::with_clock(MemoryStore::new(), Clock::from_fn(move || now));
        let id = CredentialId::new("fresh").unwrap();
        manager.manage(id.clone(), refresher, RefreshPolicy::default());
        let _ = manager
            .store()
            .compare_and_swap(&id, None, &stored)
            .await
            .unwrap();
        let credential = manager.credential(&id).unwrap();
        publish(&credential, &Versioned::new(1, stored));
        let token = manager.refresh(&credential).await.unwrap();
        assert_eq!(token.version, 1);
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_refresh_is_due_the_longer_of_the_minimum_and_the_fraction_before_expiry() {
        let policy = RefreshPolicy::default();
        // 1 h: 10% is 6 min, more than 60 s.
        assert_eq!(policy.refresh_at(at(0), at(3600)), at(3600 - 360));
        // 5 min: 10% is 30 s, less than 60 s.
        assert_eq!(policy.refresh_at(at(0), at(300)), at(300 - 60));
        // Shorter than the minimum: due at once, never before it was obtained.
        assert_eq!(policy.refresh_at(at(0), at(30)), at(0));
        // Already expired when obtained.
        assert_eq!(policy.refresh_at(at(10), at(0)), at(0));
        let custom = RefreshPolicy {
            minimum_ahead: Duration::from_secs(1),
            fraction_ahead: 0.5,
        };
        assert_eq!(custom.refresh_at(at(0), at(100)), at(50));
    }
}
