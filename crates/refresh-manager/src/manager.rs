//! The manager: a valid access token for each credential, from a lock-free cache, renewed in the background
//! ahead of expiry, once however many callers ask, and written to the store before anyone sees it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use refresh_facade::{Call, Grant, RefreshError, Refresher, Secret, TokenSet, Vendor};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::clock::{ManagerClock, Moment};
use crate::error::ManagerError;
use crate::observe::{self, Anomaly, Renewed, RotateHook, Rotated};
use crate::policy::RefreshPolicy;
use crate::record::{CredentialId, StoredTokens};
use crate::rescue::{Rescue, Rescued};
use crate::schedule::{Due, Timers};
use crate::store::{StoreError, Swap, TokenStore, Versioned};

/// How much a token read from the store is trusted less than its stored expiry says, by default: the writer's
/// wall clock may run ahead of this one's.
const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);

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

/// A valid access token, as the cache holds it: cloning the `Arc` the manager hands out allocates nothing.
#[derive(Debug)]
#[non_exhaustive]
pub struct AccessToken {
    pub secret: Secret,
    pub expires_at: DateTime<Utc>,
    /// When its background refresh is due (the policy's margin and jitter before expiry), on the wall clock.
    pub refresh_at: DateTime<Utc>,
    /// The store record's version these tokens are.
    pub version: u64,
    /// The same two deadlines on the clock that never jumps, and on the wall clock in milliseconds: the read path
    /// compares both, and a token is fresh (or valid) only while both say so.
    valid_until: Moment,
    refresh_due: Moment,
    expires_ms: i64,
    refresh_ms: i64,
    /// No renewal starts before this (the policy's minimum interval after the renewal that issued it).
    renew_not_before: Moment,
}

impl AccessToken {
    /// Whether it is still valid now on `clock`: its deadline has not passed, and the wall clock does not say it
    /// expired.
    pub fn is_valid(&self, clock: &ManagerClock) -> bool {
        self.valid_at(clock.now(), clock.wall_millis())
    }

    /// Whether it is not yet due for renewal now on `clock` (on both its deadlines), and valid.
    pub fn is_fresh(&self, clock: &ManagerClock) -> bool {
        self.fresh_at(clock.now(), clock.wall_millis())
    }

    fn valid_at(&self, now: Moment, wall_ms: i64) -> bool {
        now < self.valid_until && wall_ms < self.expires_ms
    }

    fn fresh_at(&self, now: Moment, wall_ms: i64) -> bool {
        now < self.refresh_due && wall_ms < self.refresh_ms && self.valid_at(now, wall_ms)
    }

    /// A copy of its own (a thread's, see [`crate::thread_copies`]).
    pub(crate) fn duplicate(&self) -> AccessToken {
        AccessToken {
            secret: self.secret.clone(),
            ..*self
        }
    }
}

/// How the manager runs: its clock, the seed of its jitter, how many vendor calls may run at once, and hooks.
#[derive(Clone)]
pub struct ManagerOptions {
    clock: ManagerClock,
    seed: u64,
    max_concurrent_calls: usize,
    dead_recheck: Duration,
    clock_skew: Duration,
    background: bool,
    rescue: Option<Rescue>,
    on_rotate: Option<RotateHook>,
}

impl Default for ManagerOptions {
    /// The system clock, a random seed, 32 vendor calls at once, and a credential the vendor refused for good
    /// looked up in the store again at most once a minute.
    fn default() -> Self {
        ManagerOptions {
            clock: ManagerClock::system(),
            seed: fastrand::u64(..),
            max_concurrent_calls: 32,
            dead_recheck: Duration::from_secs(60),
            clock_skew: DEFAULT_CLOCK_SKEW,
            background: true,
            rescue: None,
            on_rotate: None,
        }
    }
}

impl ManagerOptions {
    pub fn with_clock(mut self, clock: impl Into<ManagerClock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Fixes the random draws (jitter and backoff), for reproducible tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// At most `limit` refreshes and logins in flight to the vendors at once (at least 1); the others queue.
    pub fn with_max_concurrent_calls(mut self, limit: usize) -> Self {
        self.max_concurrent_calls = limit.max(1);
        self
    }

    /// Renewals in the foreground only, for short-lived processes (a command line): no timers, and a read of a due
    /// token waits for its renewal instead of starting it in the background, so that no renewal is under way when
    /// the process ends.
    pub fn foreground_only(mut self) -> Self {
        self.background = false;
        self
    }

    /// How far another writer's wall clock may run ahead of this one's (default 30 s). A token read from the store
    /// is trusted for what its stored expiry says is left, less this, and never for more than its whole lifetime:
    /// one replica with a fast clock must not make the others serve tokens past their real expiry.
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// How often a caller may make the manager look in the store again for a credential the vendor refused for
    /// good (another process may have logged it in); the vendor is not asked again until the store changes.
    pub fn with_dead_recheck(mut self, every: Duration) -> Self {
        self.dead_recheck = every;
        self
    }

    /// Where tokens go that the vendor issued and the store refused after every try (none by default: they wait in
    /// memory, and are lost if the process ends first). Every later renewal of the credential, in this process or
    /// the next, writes them to the store before it asks the vendor anything. See [`Rescue`].
    pub fn with_rescue(mut self, rescue: Rescue) -> Self {
        self.rescue = Some(rescue);
        self
    }

    /// Called after each rotation is durable, with no secret in what it receives.
    pub fn on_rotate(mut self, hook: impl Fn(&Rotated) + Send + Sync + 'static) -> Self {
        self.on_rotate = Some(Arc::new(hook));
        self
    }
}

/// One credential's settings: its refresher, when to refresh, how to log in again without a person, and (WeChat
/// authorizers) the managed credential whose component token each refresh presents.
#[derive(Clone, Debug)]
pub struct CredentialOptions {
    refresher: Refresher,
    policy: RefreshPolicy,
    login: Option<Grant>,
    component: Option<CredentialId>,
}

impl CredentialOptions {
    pub fn new(refresher: Refresher) -> Self {
        CredentialOptions {
            refresher,
            policy: RefreshPolicy::default(),
            login: None,
            component: None,
        }
    }

    pub fn with_policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// A login that needs no person (Sugon AC's user and password, Ekuaibao's appKey and appSecurity, WeChat's
    /// component token from the latest verify ticket): used when the refresh window has closed, when the vendor
    /// refuses the refresh token, and for credentials that are obtained again rather than refreshed.
    pub fn with_login(mut self, grant: Grant) -> Self {
        self.login = Some(grant);
        self
    }

    /// Whether the credential has a login that needs no person: when its refresh window closes, it logs in again.
    pub fn logs_in_by_itself(&self) -> bool {
        self.login.is_some()
    }

    /// WeChat authorizers: each refresh presents the access token of the managed credential `component` (the
    /// platform's component token); when WeChat says it expired, it is renewed and the refresh tried once more.
    pub fn with_component_token(mut self, component: CredentialId) -> Self {
        self.component = Some(component);
        self
    }
}

type Credentials = HashMap<CredentialId, Arc<Credential>, foldhash::fast::RandomState>;

type Flight = Shared<BoxFuture<'static, Result<Arc<AccessToken>, ManagerError>>>;

/// A renewal under way, and whether its task has ended: a `Shared` future only knows it is done once someone
/// polled it, and background renewals are polled by no one.
struct Running {
    flight: Flight,
    ended: Arc<AtomicBool>,
}

/// One credential's store lock as this process holds it: taken by one renewal, login or flush at a time (so that
/// none of them waits on a lock its own process keeps), and kept between them while the process holds tokens the
/// store refused ([`Manager::holds_unsaved`]). Empty otherwise.
type LockSlot<L> = Arc<tokio::sync::Mutex<Option<L>>>;

/// A store lock held by a renewal, a login or a flush. [`Manager::let_go`] releases it, and waits until the store
/// has, unless the process holds tokens the store refused: then the lock is kept, and no other process presents the
/// refresh token those tokens replaced. Dropping it (a renewal cut off) forgets when the lock lapses and leaves the
/// release to the store's own drop.
struct StoreLock<'a, L> {
    lease_end: &'a Mutex<Option<Moment>>,
    slot: tokio::sync::OwnedMutexGuard<Option<L>>,
    kept: bool,
}

impl<L> StoreLock<'_, L> {
    async fn release<S: TokenStore<Lock = L>>(mut self, store: &S) {
        *lock(self.lease_end) = None;
        if let Some(held) = self.slot.take() {
            store.release(held).await;
        }
    }

    /// The lock itself, which the writes under it are made with.
    fn lock(&self) -> &L {
        self.slot
            .as_ref()
            .expect("a store lock is in its slot from lock_store until it is let go")
    }

    fn keep(mut self) {
        *lock(self.lease_end) = None;
        self.kept = true;
    }
}

impl<L> Drop for StoreLock<'_, L> {
    fn drop(&mut self) {
        *lock(self.lease_end) = None;
        if !self.kept {
            drop(self.slot.take());
        }
    }
}

/// Tokens the vendor issued that the store failed to take: written before the vendor is asked again, never
/// dropped, never handed out before they are durable.
struct Unsaved {
    /// The version they were refreshed from (`None`: a first login).
    refreshed_from: Option<u64>,
    tokens: StoredTokens,
    /// When their request was sent, on the deadline clock: their lifetime counts from it (`None`: sent by an earlier
    /// process, whose rescue they come from; their lifetime counts from the wall clock).
    sent: Option<Moment>,
    by_login: bool,
    /// The rescue file that also holds them, removed once they are stored.
    rescue_file: Option<std::path::PathBuf>,
    /// What in the vendor's answer did not match its documentation (none for rescued tokens: said when issued).
    anomalies: Vec<refresh_facade::Anomaly>,
}

/// What went wrong lately, and until when callers without a valid token get that instead of a new attempt.
#[derive(Default)]
struct Health {
    failures: u32,
    quiet_until: Option<Moment>,
    last_error: Option<ManagerError>,
    /// The store version the vendor refused for good: it is not presented again until the store moves past it.
    dead_at: Option<u64>,
    /// The store version after whose refusal the credential's own login was tried: tried once per version.
    logged_in_after_refusal_of: Option<u64>,
    /// The store version whose refresh token the vendor refused for good, while a login mends it: it is not
    /// presented again.
    refused_version: Option<u64>,
}

/// New tokens of one credential, from [`Manager::token_changes`].
pub struct TokenChanges {
    credential: Arc<Credential>,
    /// How many installs had happened when this last returned.
    seen: u64,
}

impl TokenChanges {
    /// Returns once the credential holds a token it did not hold when this was made or last returned (at once if
    /// one came meanwhile; several in between count as one). Read the token with [`Manager::access_token`].
    pub async fn changed(&mut self) {
        loop {
            let notified = self.credential.installed.notified();
            tokio::pin!(notified);
            // Registered before the count is read: an install after the read wakes this wait.
            notified.as_mut().enable();
            let installs = self.credential.installs.load(Ordering::SeqCst);
            if installs != self.seen {
                self.seen = installs;
                return;
            }
            notified.await;
        }
    }
}

/// One managed credential.
struct Credential {
    id: CredentialId,
    /// What each thread's copy of its token is kept by ([`crate::thread_copies`]).
    serial: u64,
    options: CredentialOptions,
    /// Replaced by [`Manager::set_login`] (WeChat's verify ticket changes every few minutes).
    login: Mutex<Option<Grant>>,
    current: ArcSwapOption<AccessToken>,
    /// How many tokens were installed as `current`, and who waits for the next ([`TokenChanges`]).
    installs: AtomicU64,
    installed: tokio::sync::Notify,
    /// The refresh under way, which every caller that needs one joins.
    flight: Mutex<Option<Running>>,
    unsaved: Mutex<Option<Unsaved>>,
    health: Mutex<Health>,
    /// Bumped at each rescheduling: an older timer entry is stale.
    generation: AtomicU64,
    /// The store version the last renewal read.
    seen_version: AtomicU64,
    /// Versions up to this one were refused by the vendor (a component token WeChat said expired).
    refused_through: AtomicU64,
    /// While a renewal holds a store lock that lapses by itself: when it lapses, at the latest.
    lease_end: Mutex<Option<Moment>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every guarded value here is replaced whole, so a panic elsewhere cannot leave one half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Credential {
    fn vendor(&self) -> Vendor {
        self.options.refresher.vendor()
    }

    fn login_grant(&self) -> Option<Grant> {
        lock(&self.login).clone()
    }

    /// The error callers without a valid token get while the manager waits before trying again.
    fn waiting_error(&self, now: Moment) -> Option<ManagerError> {
        let health = lock(&self.health);
        match health.quiet_until {
            Some(until) if now < until => health.last_error.clone(),
            _ => None,
        }
    }

    /// The vendor's last refusal, if it refused this store version for good.
    fn refused_for_good(&self, version: u64) -> Option<ManagerError> {
        let health = lock(&self.health);
        match health.dead_at {
            Some(dead) if version <= dead => health.last_error.clone(),
            _ => None,
        }
    }
}

/// One credential of a [`Manager`] (see [`Manager::handle`]). Cloning it is cheap.
pub struct CredentialHandle<S: TokenStore> {
    manager: Manager<S>,
    credential: Arc<Credential>,
}

impl<S: TokenStore> Clone for CredentialHandle<S> {
    fn clone(&self) -> Self {
        CredentialHandle {
            manager: self.manager.clone(),
            credential: Arc::clone(&self.credential),
        }
    }
}

impl<S: TokenStore + 'static> CredentialHandle<S> {
    /// As [`Manager::access_token`] for this credential. A credential managed again under the same id (a new
    /// [`Manager::manage`]) needs a new handle.
    pub async fn access_token(&self) -> Result<Arc<AccessToken>, ManagerError> {
        self.manager.read(&self.credential).await
    }

    pub fn id(&self) -> &CredentialId {
        &self.credential.id
    }
}

/// Keeps the access tokens of many credentials valid, in one store.
pub struct Manager<S: TokenStore> {
    shared: Arc<ManagerShared<S>>,
}

struct ManagerShared<S: TokenStore> {
    store: S,
    /// Each credential's [`LockSlot`], made at its first renewal.
    lock_slots: Mutex<HashMap<CredentialId, LockSlot<S::Lock>>>,
    clock: ManagerClock,
    /// Read on every `access_token(&id)`, so replaced whole on each change (copy on write): readers never take a
    /// lock or contend, and registering is `O(credentials)` ([`Manager::manage_all`] registers many in one copy).
    credentials: ArcSwap<Credentials>,
    timers: Arc<Timers>,
    timers_served: AtomicBool,
    /// Set by [`Manager::flush`]: the process is stopping, so timers start no renewal it would cut off.
    stopping: AtomicBool,
    calls: Semaphore,
    random: Mutex<fastrand::Rng>,
    dead_recheck: Duration,
    clock_skew: Duration,
    background: bool,
    rescue: Option<Rescue>,
    on_rotate: Option<RotateHook>,
}

impl<S: TokenStore> Drop for ManagerShared<S> {
    fn drop(&mut self) {
        // The timer task holds only a weak reference: woken, it finds the manager gone and ends.
        self.timers.wake();
    }
}

impl<S: TokenStore> Clone for Manager<S> {
    fn clone(&self) -> Self {
        Manager {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: TokenStore + 'static> Manager<S> {
    pub fn new(store: S) -> Self {
        Self::with_options(store, ManagerOptions::default())
    }

    pub fn with_options(store: S, options: ManagerOptions) -> Self {
        Manager {
            shared: Arc::new(ManagerShared {
                store,
                lock_slots: Mutex::default(),
                clock: options.clock,
                credentials: ArcSwap::default(),
                timers: Arc::new(Timers::default()),
                timers_served: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                calls: Semaphore::new(options.max_concurrent_calls),
                random: Mutex::new(fastrand::Rng::with_seed(options.seed)),
                dead_recheck: options.dead_recheck,
                clock_skew: options.clock_skew,
                background: options.background,
                rescue: options.rescue,
                on_rotate: options.on_rotate,
            }),
        }
    }

    pub fn store(&self) -> &S {
        &self.shared.store
    }

    pub fn clock(&self) -> &ManagerClock {
        &self.shared.clock
    }

    /// Returns once no renewal is running: call it before a short-lived process exits (a command line), so that a
    /// background refresh the vendor may already have answered is committed, not cut off with its new tokens.
    pub async fn renewals_finished(&self) {
        loop {
            let running: Vec<Flight> = self
                .shared
                .credentials
                .load()
                .values()
                .filter_map(|credential| {
                    lock(&credential.flight)
                        .as_ref()
                        .filter(|running| !running.ended.load(Ordering::SeqCst))
                        .map(|running| running.flight.clone())
                })
                .collect();
            if running.is_empty() {
                return;
            }
            for flight in running {
                let _ = flight.await;
            }
        }
    }

    /// Whether `id` has tokens from the vendor that the store has not taken yet: held in memory (and rescued, if
    /// a rescue took them) until a renewal, scheduled with backoff, writes them. A process in this state should not
    /// be stopped while it can be helped: readiness checks and operators look here.
    pub fn holds_unsaved(&self, id: &CredentialId) -> bool {
        self.credential(id)
            .is_ok_and(|credential| lock(&credential.unsaved).is_some())
    }

    /// What a process does before it stops: starts no more renewals from timers (one started after the flush would
    /// be cut off when the process exits, and the vendor's new tokens with it; reads still renew), waits for running
    /// renewals, then writes the tokens the store refused earlier ([`Manager::holds_unsaved`]), each under its lock,
    /// asking the vendor nothing. The first error if some could still not be written: they are then in the rescue
    /// if one took them, else only in this process, and stopping it loses them.
    pub async fn flush(&self) -> Result<(), ManagerError> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.renewals_finished().await;
        let credentials: Vec<Arc<Credential>> = self
            .shared
            .credentials
            .load()
            .values()
            .filter(|credential| lock(&credential.unsaved).is_some())
            .cloned()
            .collect();
        let mut first_error = None;
        for credential in credentials {
            let result = async {
                let held = self.lock_store(&credential).await?;
                let committed = match self.take_unsaved(&credential).await {
                    Some(unsaved) => self
                        .commit(&credential, unsaved, held.lock())
                        .await
                        .map(drop),
                    None => Ok(()),
                };
                self.let_go(&credential, held).await;
                committed
            }
            .await;
            if let Err(error) = result {
                tracing::error!(credential = %credential.id, %error,
                    "tokens the store refused could still not be written before the process stops");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// How many background deadlines are waiting (at most about one per credential).
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.len()
    }

    /// Manages `id`, whose tokens are in the store (or will be, from [`Manager::login`] or the credential's own
    /// login). Replaces an earlier registration of the same id (handles on it keep the old one). Its background
    /// refreshes start with its first read.
    pub fn manage(&self, id: CredentialId, options: CredentialOptions) {
        self.manage_all([(id, options)]);
    }

    /// Manages many credentials at once (see [`Manager::manage`]): one copy of the registry for all of them.
    pub fn manage_all(
        &self,
        credentials: impl IntoIterator<Item = (CredentialId, CredentialOptions)>,
    ) {
        let added: Vec<(CredentialId, Arc<Credential>)> = credentials
            .into_iter()
            .map(|(id, options)| {
                let credential = Arc::new(Credential {
                    id: id.clone(),
                    serial: crate::thread_copies::next_serial(),
                    login: Mutex::new(options.login.clone()),
                    options,
                    current: ArcSwapOption::empty(),
                    installs: AtomicU64::new(0),
                    installed: tokio::sync::Notify::new(),
                    flight: Mutex::new(None),
                    unsaved: Mutex::new(None),
                    health: Mutex::new(Health::default()),
                    generation: AtomicU64::new(0),
                    seen_version: AtomicU64::new(0),
                    refused_through: AtomicU64::new(0),
                    lease_end: Mutex::new(None),
                });
                (id, credential)
            })
            .collect();
        let replaced = self.shared.credentials.rcu(|current| {
            let mut next = Credentials::clone(current);
            next.extend(added.iter().cloned());
            next
        });
        // Tokens a replaced registration holds because the store failed to take them go with the new one: the
        // vendor issued them, and they may be the only live ones.
        for (id, credential) in &added {
            if let Some(old) = replaced.get(id) {
                let unsaved = lock(&old.unsaved).take();
                if unsaved.is_some() {
                    *lock(&credential.unsaved) = unsaved;
                }
            }
        }
    }

    /// Why `id`'s last renewal failed, if none has succeeded since. A token can still be handed out meanwhile (it
    /// is valid until its expiry): this says whether it will be renewed. `None` for an unknown id, or one whose last
    /// renewal worked.
    pub fn last_failure(&self, id: &CredentialId) -> Option<ManagerError> {
        let credential = self.credential(id).ok()?;
        lock(&credential.health).last_error.clone()
    }

    /// Stops managing `id` (an agent whose profile was removed): its registration and timer go; a renewal already
    /// running ends as it would have. Refused (`false`) while `id` holds tokens the store has not taken
    /// ([`Manager::holds_unsaved`]): dropping them could lose the only live refresh token. `true` when `id` is
    /// no longer managed.
    pub fn unmanage(&self, id: &CredentialId) -> bool {
        if self.holds_unsaved(id) {
            return false;
        }
        self.shared.credentials.rcu(|current| {
            let mut next = Credentials::clone(current);
            next.remove(id);
            next
        });
        true
    }

    /// Replaces the credential's non-interactive login (WeChat: the component token's grant with the verify ticket
    /// WeChat just pushed). A credential the vendor had refused for good is tried again.
    pub fn set_login(&self, id: &CredentialId, grant: Grant) -> Result<(), ManagerError> {
        let credential = self.credential(id)?;
        *lock(&credential.login) = Some(grant);
        *lock(&credential.health) = Health::default();
        Ok(())
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
        let result = async {
            let held = self.lock_store(&credential).await?;
            let logged_in = async {
                if let Some(unsaved) = self.take_unsaved(&credential).await {
                    self.commit(&credential, unsaved, held.lock()).await?;
                }
                let current = self.shared.store.load(id).await?;
                let expected = current.map(|record| record.version);
                self.log_in(&credential, expected, grant, held.lock()).await
            }
            .await;
            self.let_go(&credential, held).await;
            logged_in
        }
        .await;
        self.settle(&credential, &result);
        // The login was stored either way; but, as on every path, only a token valid now leaves (a vendor may
        // issue one that is already expired).
        match result {
            Ok((token, _)) if token.is_valid(&self.shared.clock) => Ok(token),
            Ok(_) => Err(ManagerError::ShortLived(credential.id.clone())),
            Err(error) => Err(error),
        }
    }

    /// A valid access token for `id`. While the cached one is valid this takes no lock and allocates nothing;
    /// its refresh runs in the background ahead of expiry, and callers keep getting the valid token meanwhile.
    /// Only when none is valid do callers wait, all for the same one refresh, which runs to its end even if every
    /// caller stops waiting. While the manager waits before trying again, callers without a valid token get the
    /// last error at once.
    pub async fn access_token(&self, id: &CredentialId) -> Result<Arc<AccessToken>, ManagerError> {
        let credential = {
            let credentials = self.shared.credentials.load();
            let Some(credential) = credentials.get(id) else {
                return Err(ManagerError::Unknown(id.clone()));
            };
            if let Some(token) = self.cached(credential) {
                return Ok(token);
            }
            Arc::clone(credential)
        };
        self.read(&credential).await
    }

    /// The token `id` holds in memory, as its last renewal or read left it, valid or not. It starts nothing and
    /// waits for nothing: for a process that is stopping and writes out what it holds ([`Manager::flush`] first).
    pub fn cached_token(&self, id: &CredentialId) -> Option<Arc<AccessToken>> {
        self.credential(id).ok()?.current.load_full()
    }

    /// Each new token `id` holds from now on (a renewal, a login, tokens another process stored and this one
    /// adopted), as it happens: for what mirrors the token elsewhere (a file, a child's environment) and must not
    /// keep one the vendor has spent.
    pub fn token_changes(&self, id: &CredentialId) -> Result<TokenChanges, ManagerError> {
        let credential = self.credential(id)?;
        let seen = credential.installs.load(Ordering::SeqCst);
        Ok(TokenChanges { credential, seen })
    }

    /// A handle on one managed credential: its [`CredentialHandle::access_token`] is [`Manager::access_token`]
    /// without looking the credential up, for services that read one credential often.
    pub fn handle(&self, id: &CredentialId) -> Result<CredentialHandle<S>, ManagerError> {
        Ok(CredentialHandle {
            manager: self.clone(),
            credential: self.credential(id)?,
        })
    }

    async fn read(&self, credential: &Arc<Credential>) -> Result<Arc<AccessToken>, ManagerError> {
        if let Some(token) = self.cached(credential) {
            return Ok(token);
        }
        let renewed = match self.flight(credential) {
            Ok(flight) => flight.await,
            Err(waiting) => Err(waiting),
        };
        // In the foreground only, a due token waited for its renewal; a failed one never displaces it. Whatever
        // the renewal handed back, only a token valid now leaves.
        let clock = &self.shared.clock;
        match renewed {
            Ok(token) if token.is_valid(clock) => Ok(token),
            Ok(_) => Err(ManagerError::ShortLived(credential.id.clone())),
            Err(error) => match credential.current.load_full() {
                Some(token) if token.is_valid(clock) => Ok(token),
                _ => Err(error),
            },
        }
    }

    /// The read path: the cached token while it is valid, starting its background refresh once it is due. No lock,
    /// no allocation once this thread has read this token; two clock reads (the deadline clock and the coarse wall
    /// clock); and no write to memory another thread reads (the `Arc` handed out is this thread's copy).
    fn cached(&self, credential: &Arc<Credential>) -> Option<Arc<AccessToken>> {
        let (now, wall_ms) = (self.shared.clock.now(), self.shared.clock.wall_millis());
        let cached = credential.current.load();
        let token = cached.as_ref()?;
        if token.fresh_at(now, wall_ms) {
            return Some(crate::thread_copies::local(credential.serial, token));
        }
        let token = Arc::clone(token);
        drop(cached);
        if token.valid_at(now, wall_ms) && self.shared.background {
            self.nudge(credential);
            return Some(token);
        }
        None
    }

    fn credential(&self, id: &CredentialId) -> Result<Arc<Credential>, ManagerError> {
        self.shared
            .credentials
            .load()
            .get(id)
            .cloned()
            .ok_or_else(|| ManagerError::Unknown(id.clone()))
    }

    /// Starts a background refresh of a credential that is due, unless the manager is waiting before trying again.
    fn nudge(&self, credential: &Arc<Credential>) {
        drop(self.flight(credential));
    }

    /// The refresh under way for `credential`, or a new one, unless the manager is waiting before trying again
    /// (then the last error). A new one runs as its own task: dropping the returned future never abandons it
    /// half-done.
    fn flight(&self, credential: &Arc<Credential>) -> Result<Flight, ManagerError> {
        let mut flight = lock(&credential.flight);
        if let Some(running) = flight.as_ref()
            && !running.ended.load(Ordering::SeqCst)
        {
            return Ok(running.flight.clone());
        }
        // Decided under the flight's lock: a renewal settles before it is marked ended, so one that failed just now
        // has set its wait, and is not followed at once by another (checked outside, the two could interleave).
        let now = self.shared.clock.now();
        if let Some(error) = credential.waiting_error(now) {
            return Err(error);
        }
        // The last renewal's tokens were due again at once (a hostile lifetime): no new one before the interval.
        if let Some(token) = credential.current.load_full()
            && now < token.renew_not_before
        {
            return Err(ManagerError::ShortLived(credential.id.clone()));
        }
        let (manager, credential_for_task) = (self.clone(), Arc::clone(credential));
        let ended = Arc::new(AtomicBool::new(false));
        let ended_in_task = Arc::clone(&ended);
        // One span per renewal, around everything it does (the facade's own spans nest in it).
        let span = tracing::info_span!("renewal", credential = %credential.id, vendor = %credential.vendor());
        let task = tokio::spawn(
            async move {
                let result = manager.renew(&credential_for_task).await;
                manager.settle(&credential_for_task, &result);
                ended_in_task.store(true, Ordering::SeqCst);
                result.map(|(token, _)| token)
            }
            .instrument(span),
        );
        let id = credential.id.clone();
        let joined = async move {
            task.await
                .unwrap_or_else(|join| Err(ManagerError::Internal(id, Arc::from(join.to_string()))))
        }
        .boxed()
        .shared();
        *flight = Some(Running {
            flight: joined.clone(),
            ended,
        });
        Ok(joined)
    }

    /// Records how a renewal ended: counts it, and after a failure decides when to try again (backoff for what may
    /// pass; for a refusal for good, only a look in the store now and then, with one clear log line).
    fn settle(
        &self,
        credential: &Credential,
        result: &Result<(Arc<AccessToken>, Renewed), ManagerError>,
    ) {
        let now = self.shared.clock.now();
        let vendor = credential.vendor();
        let mut health = lock(&credential.health);
        let error = match result {
            Ok((token, renewed)) => {
                observe::renewal(vendor, renewed.as_str());
                *health = Health::default();
                if token.renew_not_before > token.refresh_due {
                    observe::anomaly(vendor, Anomaly::ShortLifetime);
                    tracing::warn!(credential = %credential.id, %vendor, valid_for_ms = token.valid_until.since(now).as_millis() as u64,
                        "the vendor's tokens are due again at once; the next renewal waits for the policy's minimum interval");
                }
                return;
            }
            Err(error) => error,
        };
        observe::renewal(vendor, error.outcome());
        health.last_error = Some(error.clone());
        if !error.is_retryable() {
            let version = credential.seen_version.load(Ordering::SeqCst);
            if health.dead_at != Some(version) {
                tracing::error!(credential = %credential.id, %vendor, %error, "the credential needs attention; \
                    the vendor is not asked again until the store or its login changes");
            }
            health.dead_at = Some(version);
            health.quiet_until = Some(now.after(self.shared.dead_recheck));
            return;
        }
        health.failures = health.failures.saturating_add(1);
        let valid_for = credential
            .current
            .load()
            .as_ref()
            .filter(|token| token.is_valid(&self.shared.clock))
            .map(|token| token.valid_until.since(now));
        let draw = self.draw();
        let backoff = &credential.options.policy.backoff;
        if error
            .retry_after()
            .is_some_and(|asked| asked > backoff.maximum)
        {
            observe::anomaly(vendor, Anomaly::RetryAfterCapped);
        }
        let wait = backoff.wait(health.failures, error.retry_after(), valid_for, draw);
        let at = now.after(wait);
        health.quiet_until = Some(at);
        tracing::warn!(credential = %credential.id, %vendor, %error, failures = health.failures,
            retry_in_ms = wait.as_millis() as u64, "renewal failed; trying again later");
        drop(health);
        self.schedule(credential, at);
    }

    /// One renewal: tokens another process already stored are used as they are, read before any lock is taken;
    /// otherwise, under the store's lock, the vendor is asked, and its tokens are durable before anyone sees them.
    /// The lock is let go (and awaited: a database lease is released, not left to lapse) before this returns.
    async fn renew(
        &self,
        credential: &Credential,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        if lock(&credential.unsaved).is_none()
            && !self
                .shared
                .rescue
                .as_ref()
                .is_some_and(|rescue| rescue.holds(&credential.id))
            && let Some(record) = self.load(credential).await?
            && let Some(token) = self.adopt_fresh(credential, &record)
        {
            return Ok((token, Renewed::FromStore));
        }
        let held = self.lock_store(credential).await?;
        let result = self.renew_locked(credential, held.lock()).await;
        self.let_go(credential, held).await;
        result
    }

    /// Tokens the store failed to take: held in memory by this process, or rescued by an earlier one.
    async fn take_unsaved(&self, credential: &Credential) -> Option<Unsaved> {
        if let Some(unsaved) = lock(&credential.unsaved).take() {
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
    async fn hold_unsaved(&self, credential: &Credential, mut issued: Unsaved) {
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
        *lock(&credential.unsaved) = Some(issued);
    }

    /// The record of `credential`, if the store has one: an error if it is another vendor's.
    async fn load(&self, credential: &Credential) -> Result<Option<Versioned>, ManagerError> {
        let record = self.shared.store.load(&credential.id).await?;
        if let Some(record) = &record
            && record.tokens.vendor != credential.vendor()
        {
            return Err(ManagerError::WrongVendor {
                id: credential.id.clone(),
                stored: record.tokens.vendor,
                expected: credential.vendor(),
            });
        }
        Ok(record)
    }

    /// `record`'s token, installed, if the store holds newer tokens than the cache and they are not due yet.
    fn adopt_fresh(&self, credential: &Credential, record: &Versioned) -> Option<Arc<AccessToken>> {
        let clock = &self.shared.clock;
        let cached = credential
            .current
            .load()
            .as_ref()
            .map(|token| token.version);
        let refused = credential.refused_through.load(Ordering::SeqCst);
        if record.version <= refused || cached.is_some_and(|cached| record.version <= cached) {
            return None;
        }
        let token = self.token_of(credential, record, None);
        let (now, wall_ms) = (clock.now(), clock.wall_millis());
        if !token.valid_at(now, wall_ms) {
            return None;
        }
        self.install(credential, Arc::clone(&token));
        token.fresh_at(now, wall_ms).then_some(token)
    }

    /// [`Manager::renew`] under the store's lock.
    async fn renew_locked(
        &self,
        credential: &Credential,
        held: &S::Lock,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        let id = &credential.id;
        let clock = &self.shared.clock;
        if let Some(token) = credential.current.load_full()
            && token.fresh_at(clock.now(), clock.wall_millis())
        {
            // A renewal that finished while this one waited for the lock.
            return Ok((token, Renewed::FromStore));
        }
        let mut record = self.load(credential).await?;
        if let Some(unsaved) = self.take_unsaved(credential).await {
            // The last renewal's tokens first: the vendor may already have spent the stored refresh token.
            match self.commit(credential, unsaved, held).await {
                Ok(committed) if committed.0.is_valid(clock) => return Ok(committed),
                // Stored, but not valid now (rescued long ago, or obtained on a clock ahead of this one): renew them.
                Ok(_) => {}
                // Kept as an orphan of a newer record that is not valid now (another process wrote it while the
                // wall clock was wrong): renew that one, still under the lock. Unless the lease lapsed: then a newer
                // holder fences this one, and renewing would race it.
                Err(ManagerError::Superseded(_)) if self.lease_held(credential) => {}
                Err(error) => return Err(error),
            }
            record = self.load(credential).await?;
        }
        let Some(record) = record else {
            return match credential.login_grant() {
                Some(grant) => self.log_in(credential, None, &grant, held).await,
                None => Err(ManagerError::NotStored(id.clone())),
            };
        };
        credential
            .seen_version
            .store(record.version, Ordering::SeqCst);
        // Another process (or an earlier run) stored newer tokens than the cache holds.
        if let Some(token) = self.adopt_fresh(credential, &record) {
            return Ok((token, Renewed::FromStore));
        }
        if let Some(refusal) = credential.refused_for_good(record.version) {
            // Unless a vendor answer kept as an orphan since holds tokens the vendor never saw refused.
            return match self.promote_orphan(credential, &record, held).await? {
                Some(promoted) => self.adopt_or_renew(credential, promoted, held).await,
                None => Err(refusal),
            };
        }
        self.renew_record(credential, record, held).await
    }

    /// The store's lock on `credential`, noting when it lapses (a lease) for [`Manager::call_vendor`], which sends
    /// nothing that could outlast it. The one this process kept, if it kept one that has not lapsed.
    async fn lock_store<'a>(
        &self,
        credential: &'a Credential,
    ) -> Result<StoreLock<'a, S::Lock>, StoreError> {
        let store = &self.shared.store;
        let slot = Arc::clone(
            lock(&self.shared.lock_slots)
                .entry(credential.id.clone())
                .or_default(),
        );
        let mut slot = slot.lock_owned().await;
        if let Some(kept) = slot.as_ref() {
            let now = self.shared.clock.now();
            let left = store.lock_kind(kept).left();
            if left.is_some_and(|left| left.is_zero()) {
                // A kept lease that lapsed: another process may have taken it since. A new one, fenced anew.
                if let Some(lapsed) = slot.take() {
                    store.release(lapsed).await;
                }
            } else {
                *lock(&credential.lease_end) = left.map(|left| now.after(left));
                return Ok(StoreLock {
                    lease_end: &credential.lease_end,
                    slot,
                    kept: false,
                });
            }
        }
        let held = store.lock(&credential.id).await?;
        // Counted from once the lock is held, not from before a wait for another holder (which left a replica that
        // waited out a stopped holder's lease no time to call the vendor). Our clock is read before the store
        // tells what is left, which it counts from before it asked: the end is never later than the store's.
        let taken = self.shared.clock.now();
        *lock(&credential.lease_end) = store.lock_kind(&held).left().map(|left| taken.after(left));
        *slot = Some(held);
        Ok(StoreLock {
            lease_end: &credential.lease_end,
            slot,
            kept: false,
        })
    }

    /// Lets `held` go, awaiting the store, unless this process holds tokens of `credential` the store refused: it
    /// keeps the lock until a later renewal writes them, so that no other process presents the refresh token they
    /// replaced, which the vendor has spent. (A process that dies lets it go with them: the store's own lock rule.)
    async fn let_go(&self, credential: &Credential, held: StoreLock<'_, S::Lock>) {
        if lock(&credential.unsaved).is_some() {
            tracing::warn!(credential = %credential.id,
                "keeping the store's lock while this process holds tokens the store refused");
            held.keep();
        } else {
            held.release(&self.shared.store).await;
        }
    }

    /// Whether the store's lock on `credential` is still this manager's: a lock that never lapses, or a lease whose
    /// end (counted from when it was taken) has not come.
    fn lease_held(&self, credential: &Credential) -> bool {
        lock(&credential.lease_end).is_none_or(|end| self.shared.clock.now() < end)
    }

    /// `record`'s token if it is valid, else its renewal.
    async fn adopt_or_renew(
        &self,
        credential: &Credential,
        record: Versioned,
        held: &S::Lock,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        let token = self.token_of(credential, &record, None);
        if token.is_valid(&self.shared.clock) {
            self.install(credential, Arc::clone(&token));
            return Ok((token, Renewed::FromStore));
        }
        self.renew_record(credential, record, held).await
    }

    /// After the vendor refused `record`'s refresh token: the newest orphan that lost to this very version (a
    /// vendor answer whose write was refused, say a replica's that was paused past its lease) holds the tokens the
    /// vendor issued last, whose refresh token it has never seen. They become the record's next version.
    async fn promote_orphan(
        &self,
        credential: &Credential,
        record: &Versioned,
        held: &S::Lock,
    ) -> Result<Option<Versioned>, ManagerError> {
        let refused = record.tokens.refresh_token.expose_secret();
        let Some(orphan) = record.orphans.iter().rev().find(|orphan| {
            orphan.lost_to_version == record.version
                && orphan.tokens.refresh_token.expose_secret() != refused
                && !orphan.tokens.refresh_token.is_blank()
        }) else {
            return Ok(None);
        };
        let (store, id) = (&self.shared.store, &credential.id);
        match store
            .compare_and_swap(held, Some(record.version), &orphan.tokens)
            .await?
        {
            Swap::Written { version } => {
                tracing::warn!(credential = %id, version, "the vendor refused the stored refresh token; \
                    the tokens it issued last, kept as an orphan, are the record now");
                credential.seen_version.store(version, Ordering::SeqCst);
                Ok(Some(Versioned::with_orphans(
                    version,
                    orphan.tokens.clone(),
                    record.orphans.clone(),
                )))
            }
            // Someone else wrote meanwhile: theirs are newer.
            Swap::Conflict { current } => {
                Ok(current.filter(|current| current.version > record.version))
            }
        }
    }

    /// Renews the stored `record`: a refresh while the vendor's window is open, else the credential's own login;
    /// a refusal is reported only if the store did not move on meanwhile and no login can replace it.
    fn renew_record<'a>(
        &'a self,
        credential: &'a Credential,
        record: Versioned,
        held: &'a S::Lock,
    ) -> BoxFuture<'a, Result<(Arc<AccessToken>, Renewed), ManagerError>> {
        async move {
            let id = &credential.id;
            let login = credential.login_grant();
            let wall = self.shared.clock.wall();
            // A version the vendor already refused is not presented again (a login after it may have failed).
            let refused = lock(&credential.health).refused_version == Some(record.version);
            let refreshable = !refused
                && !record.tokens.refresh_token.is_blank()
                && record.tokens.refreshable_until.is_none_or(|until| wall < until);
            if !refreshable && let Some(grant) = &login {
                tracing::info!(credential = %id, "no refresh is possible any more: logging in again");
                return self.log_in(credential, Some(record.version), grant, held).await;
            }
            self.shared.store.check_writable(id).await?;
            let sent = self.shared.clock.now();
            let error = match self.vendor_refresh(credential, &record).await {
                Ok((tokens, anomalies)) => {
                    let refreshed = Unsaved {
                        refreshed_from: Some(record.version),
                        tokens,
                        sent: Some(sent),
                        by_login: false,
                        rescue_file: None,
                        anomalies,
                    };
                    return self.commit(credential, refreshed, held).await;
                }
                Err(error) => error,
            };
            // Before reporting a failure (above all "log in again"): if the store moved on meanwhile, someone else
            // rotated the credential, and its tokens are the answer.
            // A refusal may also have left an orphan of this version: the tokens the vendor issued last.
            match self.load(credential).await? {
                Some(newer) if newer.version > record.version => {
                    credential.seen_version.store(newer.version, Ordering::SeqCst);
                    return self.adopt_or_renew(credential, newer, held).await;
                }
                Some(current) if error.is_reauthorization_required() => {
                    if let Some(promoted) = self.promote_orphan(credential, &current, held).await? {
                        return self.adopt_or_renew(credential, promoted, held).await;
                    }
                }
                _ => {}
            }
            if let Some(grant) = &login
                && self.log_in_after(credential, &error, record.version)
            {
                lock(&credential.health).refused_version = Some(record.version);
                tracing::info!(credential = %id, %error, "the vendor refused the refresh token: logging in again");
                return self.log_in(credential, Some(record.version), grant, held).await;
            }
            Err(error)
        }
        .boxed()
    }

    /// Whether the vendor's `error` on the refresh of `version` is one a login of the credential's own may mend:
    /// a refusal of the refresh token, always; any other refusal for good (Sugon AC's 10004 "invalid parameter"
    /// for a spent token), once for that version before the credential is reported dead.
    fn log_in_after(&self, credential: &Credential, error: &ManagerError, version: u64) -> bool {
        if error.is_reauthorization_required() {
            return true;
        }
        let Some(refusal) = error.refresh_error() else {
            return false;
        };
        if refusal.is_retryable()
            || refusal.is_unsupported()
            || refusal.is_component_token_expired()
        {
            return false;
        }
        let mut health = lock(&credential.health);
        let first = health.logged_in_after_refusal_of != Some(version);
        health.logged_in_after_refusal_of = Some(version);
        first
    }

    /// The vendor's refresh of `record`, presenting the component token where the credential has one, renewed
    /// once if WeChat says it expired.
    async fn vendor_refresh(
        &self,
        credential: &Credential,
        record: &Versioned,
    ) -> Result<(StoredTokens, Vec<refresh_facade::Anomaly>), ManagerError> {
        let refresher = &credential.options.refresher;
        let mut grant = record.tokens.grant();
        let Some(component_id) = &credential.options.component else {
            let tokens = self
                .call_vendor(credential, Call::Refresh, refresher.refresh(&grant))
                .await?;
            return Ok(self.stored(credential, &tokens));
        };
        let component = self.component_token(component_id, None).await?;
        grant.component_access_token = Some(component.secret.clone());
        let tokens = match self
            .call_vendor(credential, Call::Refresh, refresher.refresh(&grant))
            .await
        {
            Err(ManagerError::Refresh(error)) if error.is_component_token_expired() => {
                tracing::info!(credential = %credential.id, component = %component_id,
                    "WeChat says the component token expired: renewing it and trying once more");
                let renewed = self
                    .component_token(component_id, Some(component.version))
                    .await?;
                grant.component_access_token = Some(renewed.secret.clone());
                self.call_vendor(credential, Call::Refresh, refresher.refresh(&grant))
                    .await?
            }
            result => result?,
        };
        Ok(self.stored(credential, &tokens))
    }

    /// The vendor's tokens as the store keeps them. Their instants are on this process's wall clock, unless the
    /// vendor's clock (its answer's `Date`) disagrees with it by more than the skew allowed between writers: then
    /// on the vendor's, which their expiry follows. Other replicas read the record with their own clocks, and one
    /// replica whose clock is hours off must not make them serve tokens past their end.
    /// With them, the answer's anomalies, counted here once.
    fn stored(
        &self,
        credential: &Credential,
        tokens: &TokenSet,
    ) -> (StoredTokens, Vec<refresh_facade::Anomaly>) {
        for anomaly in tokens.anomalies() {
            observe::answer_anomaly(credential.vendor(), anomaly);
        }
        (
            self.on_one_clock(credential, tokens),
            tokens.anomalies().to_vec(),
        )
    }

    /// The tokens with their instants on one clock, as [`Manager::stored`] says.
    fn on_one_clock(&self, credential: &Credential, tokens: &TokenSet) -> StoredTokens {
        let skew = TimeDelta::from_std(self.shared.clock_skew).unwrap_or(TimeDelta::MAX);
        match tokens.vendor_clock_ahead {
            Some(ahead) if ahead.abs() > skew => {
                observe::anomaly(credential.vendor(), Anomaly::ClockOffTheVendors);
                tracing::warn!(credential = %credential.id, vendor_ahead_s = ahead.num_seconds(),
                    "this machine's wall clock disagrees with the vendor's: storing the tokens on the vendor's clock");
                StoredTokens::from(&tokens.moved_by(ahead))
            }
            _ => StoredTokens::from(tokens),
        }
    }

    /// The component credential's valid token; with `refused`, one newer than that version, which the vendor
    /// refused.
    fn component_token<'a>(
        &'a self,
        id: &'a CredentialId,
        refused: Option<u64>,
    ) -> BoxFuture<'a, Result<Arc<AccessToken>, ManagerError>> {
        async move {
            let Some(version) = refused else {
                return self.access_token(id).await;
            };
            let component = self.credential(id)?;
            component
                .refused_through
                .fetch_max(version, Ordering::SeqCst);
            let cached = component.current.load().as_ref().map(|token| token.version);
            if cached.is_some_and(|cached| cached <= version) {
                component.current.store(None);
            }
            *lock(&component.health) = Health::default();
            self.flight(&component)?.await
        }
        .boxed()
    }

    async fn log_in(
        &self,
        credential: &Credential,
        expected: Option<u64>,
        grant: &Grant,
        held: &S::Lock,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        // A store that could not keep the answer must not cost a login either (an authorization code is single-use).
        self.shared.store.check_writable(&credential.id).await?;
        let sent = self.shared.clock.now();
        let obtained = credential.options.refresher.obtain(grant);
        let tokens = self.call_vendor(credential, Call::Login, obtained).await?;
        let (stored, anomalies) = self.stored(credential, &tokens);
        let logged_in = Unsaved {
            refreshed_from: expected,
            tokens: stored,
            sent: Some(sent),
            by_login: true,
            rescue_file: None,
            anomalies,
        };
        self.commit(credential, logged_in, held).await
    }

    /// One call to the vendor, under the manager's limit of concurrent calls, counted and timed, and given up
    /// after the refresher's call timeout: the one timeout of the credential, which the lease check also uses, so
    /// that no answer can arrive after a lease the call was sent under has lapsed.
    async fn call_vendor<T>(
        &self,
        credential: &Credential,
        operation: Call,
        call: impl Future<Output = Result<T, RefreshError>>,
    ) -> Result<T, ManagerError> {
        // The semaphore is never closed; were it, the call would go ahead unlimited rather than fail.
        let _permit = self.shared.calls.acquire().await.ok();
        let timeout = credential.options.refresher.call_timeout();
        let lease_end = *lock(&credential.lease_end);
        if lease_end.is_some_and(|end| self.shared.clock.now().after(timeout) >= end) {
            tracing::warn!(credential = %credential.id, "the store's lease would lapse before the vendor answered: not sending");
            return Err(ManagerError::LeaseTooShort(credential.id.clone()));
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => {
                let error = RefreshError::timed_out(credential.vendor(), timeout);
                Err(if operation == Call::Login {
                    error.during_login()
                } else {
                    error
                })
            }
        };
        let outcome = result.as_ref().map_or_else(|e| e.kind().as_str(), |_| "ok");
        observe::vendor_call(credential.vendor(), operation, outcome, started.elapsed());
        Ok(result?)
    }

    /// Makes the vendor's tokens durable as the record's next version, or keeps them as an orphan if another
    /// writer came first; then hands out the stored tokens. If the store fails, the write is tried again under the
    /// same lock for as long as [`WRITE_RETRY_PAUSES`] and the lease allow; after that the tokens wait in memory
    /// for the next renewal, which writes them before asking the vendor: they are never dropped, and never handed
    /// out before they are durable.
    async fn commit(
        &self,
        credential: &Credential,
        issued: Unsaved,
        held: &S::Lock,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        let mut pauses = WRITE_RETRY_PAUSES.iter();
        loop {
            let committed = self.try_commit(credential, &issued, held).await;
            // A store that could not be reached may take them at the next try; a record it cannot read will not.
            let Err(ManagerError::Store(error)) = &committed else {
                return committed;
            };
            let passing = matches!(**error, StoreError::Io(_) | StoreError::Database(_));
            let lease_end = *lock(&credential.lease_end);
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
        held: &S::Lock,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        let (store, id) = (&self.shared.store, &credential.id);
        match store
            .compare_and_swap(held, issued.refreshed_from, &issued.tokens)
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
                store.keep_orphan(held, &issued.tokens).await?;
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

    /// The cached form of `record`. Its deadline on the clock that never jumps counts from `sent` for tokens just
    /// issued; for tokens read from the store, from what the wall clock says is left of them, never more than
    /// their whole lifetime and less the clock skew allowed between writers. Its refresh is due the policy's
    /// margin and jitter before that deadline, however old the token already is. Tokens just issued are not
    /// renewed again before the policy's minimum interval.
    fn token_of(
        &self,
        credential: &Credential,
        record: &Versioned,
        sent: Option<Moment>,
    ) -> Arc<AccessToken> {
        let tokens = &record.tokens;
        let policy = &credential.options.policy;
        let lifetime = (tokens.expires_at - tokens.obtained_at)
            .to_std()
            .unwrap_or_default();
        let clock = &self.shared.clock;
        let now = clock.now();
        let (valid_until, expires_at) = match sent {
            Some(sent) => {
                // Fresh: the deadline counts from the send. The wall clock checks this process makes are on its own
                // clock, and the tokens may be stored on the vendor's (`Manager::stored`): by how much, is how far
                // the stored `obtained_at` is from our wall clock at the send.
                let sent_wall =
                    clock.wall() - TimeDelta::from_std(now.since(sent)).unwrap_or_default();
                let moved = tokens.obtained_at - sent_wall;
                let expires_at = if moved.abs() < TimeDelta::seconds(1) {
                    tokens.expires_at
                } else {
                    tokens.expires_at - moved
                };
                (sent.after(lifetime), expires_at)
            }
            None => {
                let trusted = TimeDelta::from_std(lifetime.saturating_sub(self.shared.clock_skew))
                    .unwrap_or(TimeDelta::MAX);
                let skew = TimeDelta::from_std(self.shared.clock_skew).unwrap_or(TimeDelta::MAX);
                let wall = clock.wall();
                let left = if tokens.obtained_at > wall + skew {
                    // Obtained "later" than now: the writer's clock ran ahead, or ours went back since. Either way
                    // the wall clock cannot tell this token's age: it is due at once.
                    observe::anomaly(credential.vendor(), Anomaly::ObtainedInTheFuture);
                    tracing::warn!(credential = %credential.id, ahead_s = (tokens.obtained_at - wall).num_seconds(),
                        "the stored tokens were obtained later than this clock says it is now: renewing them");
                    TimeDelta::zero()
                } else {
                    (tokens.expires_at - wall - skew).min(trusted)
                };
                (now.offset(left), tokens.expires_at - skew)
            }
        };
        let ahead = policy.ahead_of_expiry(lifetime, self.draw());
        let refresh_due = valid_until.before(ahead);
        let refresh_at = expires_at - TimeDelta::from_std(ahead).unwrap_or(TimeDelta::MAX);
        // Only tokens that are due again by their own lifetime before the interval is over wait for it: a wall
        // clock that jumped makes a long-lived token due early, and that renewal must not wait.
        let renew_not_before = sent
            .map(|sent| sent.after(policy.minimum_interval))
            .filter(|&floor| refresh_due < floor)
            .unwrap_or_default();
        Arc::new(AccessToken {
            secret: tokens.access_token.clone(),
            expires_at: match sent {
                Some(_) => expires_at,
                None => tokens.expires_at,
            },
            refresh_at,
            version: record.version,
            valid_until,
            refresh_due,
            expires_ms: expires_at.timestamp_millis(),
            refresh_ms: refresh_at.timestamp_millis(),
            renew_not_before,
        })
    }

    /// Makes `token` the credential's cached one, and sets its background refresh.
    fn install(&self, credential: &Credential, token: Arc<AccessToken>) {
        let due = token.refresh_due.max(token.renew_not_before);
        credential.current.store(Some(token));
        credential.installs.fetch_add(1, Ordering::SeqCst);
        credential.installed.notify_waiters();
        self.schedule(credential, due);
    }

    /// Sets the credential's next background renewal at `at`, replacing the one set before.
    fn schedule(&self, credential: &Credential, at: Moment) {
        if !self.shared.background {
            return;
        }
        let generation = credential.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.timers.set(Due {
            at,
            generation,
            id: credential.id.clone(),
        });
        self.serve_timers();
    }

    /// Starts the one task that serves every credential's timer, if it is not running.
    fn serve_timers(&self) {
        if self.shared.timers_served.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.shared.timers_served.store(false, Ordering::SeqCst);
            return;
        };
        let timers = Arc::clone(&self.shared.timers);
        let clock = self.shared.clock.clone();
        let manager: Weak<ManagerShared<S>> = Arc::downgrade(&self.shared);
        runtime.spawn(async move {
            timers
                .serve(clock, |due| {
                    let Some(shared) = manager.upgrade() else {
                        return false;
                    };
                    let manager = Manager { shared };
                    for entry in due {
                        manager.fire(entry);
                    }
                    true
                })
                .await;
        });
    }

    /// A timer came due: renew the credential in the background, unless the entry is stale or the process stops.
    fn fire(&self, due: Due) {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(credential) = self.credential(&due.id) else {
            return;
        };
        if credential.generation.load(Ordering::SeqCst) == due.generation {
            self.nudge(&credential);
        }
    }

    fn draw(&self) -> f64 {
        lock(&self.shared.random).f64()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A token valid for an hour on any clock, `secret` and `version` as given.
    pub(crate) fn token_for_tests(secret: &str, version: u64) -> AccessToken {
        let later = Moment::default().after(Duration::from_secs(3600));
        AccessToken {
            secret: Secret::new(secret),
            expires_at: Utc::now() + TimeDelta::hours(1),
            refresh_at: Utc::now() + TimeDelta::minutes(50),
            version,
            valid_until: later,
            refresh_due: later,
            expires_ms: i64::MAX,
            refresh_ms: i64::MAX,
            renew_not_before: Moment::default(),
        }
    }
    use crate::MemoryStore;
    use crate::clock::ManualClock;
    use crate::record::tests::tokens;

    /// A refresh that finds the cache fresh (another refresh finished while it waited for the lock) asks no one:
    /// this refresher's host does not exist.
    #[tokio::test]
    async fn a_refresh_that_finds_the_cache_fresh_sends_nothing() {
        let config = refresh_facade::EkuaibaoConfig::new().with_base_url("http://127.0.0.1:9");
        let refresher = Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap();
        let manual = ManualClock::new();
        let manager = Manager::with_options(
            MemoryStore::new(),
            ManagerOptions::default().with_clock(manual),
        );
        let mut stored = tokens("fresh");
        stored.obtained_at = manager.clock().wall();
        stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
        let id = CredentialId::new("fresh").unwrap();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let _ = manager
            .store()
            .compare_and_swap_under_lock(&id, None, &stored)
            .await
            .unwrap();
        let credential = manager.credential(&id).unwrap();
        let token = manager.token_of(&credential, &Versioned::new(1, stored), None);
        manager.install(&credential, token);
        let (token, renewed) = manager.renew(&credential).await.unwrap();
        assert_eq!((token.version, renewed), (1, Renewed::FromStore));
        assert!(
            token.is_fresh(manager.clock()),
            "an hour from its end, it is not due"
        );
    }

    /// Tokens issued together get refresh deadlines spread over the jitter, not one shared second.
    #[tokio::test]
    async fn refreshes_of_tokens_issued_together_are_spread_by_jitter() {
        let manager =
            Manager::with_options(MemoryStore::new(), ManagerOptions::default().with_seed(3));
        let config = refresh_facade::EkuaibaoConfig::new();
        let refresher = Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap();
        let id = CredentialId::new("spread").unwrap();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let credential = manager.credential(&id).unwrap();
        let mut stored = tokens("spread");
        stored.obtained_at = manager.clock().wall();
        stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
        let record = Versioned::new(1, stored);
        let sent = manager.clock().now();
        let ahead: Vec<Duration> = (0..50)
            .map(|_| {
                let token = manager.token_of(&credential, &record, Some(sent));
                token.valid_until.since(token.refresh_due)
            })
            .collect();
        let (earliest, latest) = (ahead.iter().max().unwrap(), ahead.iter().min().unwrap());
        // The margin is 6 minutes; jitter moves it up to 3 minutes earlier.
        assert!(*latest >= Duration::from_secs(360) && *earliest <= Duration::from_secs(540));
        assert!(
            *earliest - *latest > Duration::from_secs(60),
            "{latest:?}..{earliest:?}"
        );
    }

    /// A dropped manager's timer task ends: it holds the manager only weakly, and the drop wakes it.
    #[tokio::test]
    async fn the_timer_task_ends_with_its_manager() {
        let runtime = tokio::runtime::Handle::current();
        let before = runtime.metrics().num_alive_tasks();
        let manager = Manager::with_options(MemoryStore::new(), ManagerOptions::default());
        let config = refresh_facade::EkuaibaoConfig::new();
        let refresher = Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap();
        let id = CredentialId::new("timed").unwrap();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let mut stored = tokens("timed");
        stored.obtained_at = manager.clock().wall();
        stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
        let credential = manager.credential(&id).unwrap();
        let token = manager.token_of(&credential, &Versioned::new(1, stored), None);
        manager.install(&credential, token);
        assert_eq!(
            runtime.metrics().num_alive_tasks(),
            before + 1,
            "the timer task"
        );
        drop((credential, manager));
        for _ in 0..100 {
            if runtime.metrics().num_alive_tasks() == before {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the timer task outlived its manager");
    }

    /// Tokens just issued count their lifetime from when the request was sent, on the deadline clock; tokens
    /// read from the store from what the wall clock says is left. The refresh is due within the policy's margin
    /// and jitter.
    #[tokio::test]
    async fn deadlines_count_from_the_send_for_new_tokens_and_from_the_wall_for_stored_ones() {
        let manual = ManualClock::new();
        let manager = Manager::with_options(
            MemoryStore::new(),
            ManagerOptions::default()
                .with_clock(manual.clone())
                .with_seed(7),
        );
        let config = refresh_facade::EkuaibaoConfig::new();
        let refresher = Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap();
        let id = CredentialId::new("deadlines").unwrap();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let credential = manager.credential(&id).unwrap();
        let clock = manager.clock().clone();

        let mut stored = tokens("d");
        stored.obtained_at = clock.wall();
        stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
        let record = Versioned::new(1, stored.clone());
        let sent = clock.now().before(Duration::from_secs(10));
        let issued = manager.token_of(&credential, &record, Some(sent));
        assert_eq!(issued.valid_until, sent.after(Duration::from_secs(3600)));
        let ahead = issued.valid_until.since(issued.refresh_due);
        assert!(
            ahead >= Duration::from_secs(360) && ahead <= Duration::from_secs(540),
            "{ahead:?}"
        );
        assert_eq!(
            issued.refresh_at,
            issued.expires_at - TimeDelta::from_std(ahead).unwrap()
        );

        // Half an hour later the stored copy has half an hour left, less the clock skew allowed between writers.
        manual.advance(Duration::from_secs(1800));
        let read = manager.token_of(&credential, &record, None);
        let left = read.valid_until.since(clock.now());
        let skew = DEFAULT_CLOCK_SKEW;
        assert!(
            left > Duration::from_secs(1790) - skew && left <= Duration::from_secs(1800) - skew,
            "{left:?}"
        );
        // A wall clock set back keeps no token alive past its deadline; one set ahead past the expiry (an operator,
        // NTP, a resume) makes it invalid at once: both clocks must say it is valid.
        manual.jump_wall(TimeDelta::hours(-2));
        assert!(issued.is_valid(&clock));
        manual.advance(Duration::from_secs(1800));
        assert!(
            !issued.is_valid(&clock),
            "past its deadline, whatever the wall says"
        );
        manual.jump_wall(TimeDelta::hours(2));
        let mut renewed = tokens("e");
        renewed.obtained_at = clock.wall();
        renewed.expires_at = renewed.obtained_at + TimeDelta::hours(1);
        let fresh = manager.token_of(&credential, &Versioned::new(2, renewed), Some(clock.now()));
        assert!(fresh.is_valid(&clock));
        manual.jump_wall(TimeDelta::hours(2));
        assert!(!fresh.is_valid(&clock), "the wall says it expired");
    }

    /// A manager that starts when a stored token is already old (a restart) counts its refresh back from the
    /// token's expiry, not forward from the start of its own clock: a 48-hour token 47 hours old is due at once,
    /// and a 2-hour token with 5 minutes left (margin 12 minutes) too. Before the fix both were due long after
    /// they expired, and the read path served them meanwhile.
    #[tokio::test]
    async fn a_token_older_than_the_process_is_due_before_it_expires() {
        let manager = Manager::with_options(
            MemoryStore::new(),
            ManagerOptions::default()
                .with_clock(ManualClock::new())
                .with_seed(1),
        );
        let config = refresh_facade::EkuaibaoConfig::new();
        let refresher = Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap();
        let id = CredentialId::new("old").unwrap();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let credential = manager.credential(&id).unwrap();
        let clock = manager.clock().clone();
        for (lifetime, left) in [
            (TimeDelta::hours(48), TimeDelta::hours(1)),
            (TimeDelta::hours(2), TimeDelta::minutes(5)),
        ] {
            let mut stored = tokens("old");
            stored.expires_at = clock.wall() + left;
            stored.obtained_at = stored.expires_at - lifetime;
            let token = manager.token_of(&credential, &Versioned::new(1, stored), None);
            assert!(token.is_valid(&clock), "{lifetime}: still valid");
            assert!(token.refresh_due <= clock.now(), "{lifetime}: due at once");
            assert!(!token.is_fresh(&clock), "{lifetime}: due, so not fresh");
            assert!(token.refresh_at <= clock.wall());
        }
    }

    /// A record written by a replica whose wall clock runs ahead says its token expires late. Within the allowed
    /// skew, another replica trusts it for no more than its lifetime less that skew; far ahead (obtained "in the
    /// future"), its age is unknown, and it is due at once.
    #[tokio::test]
    async fn a_record_from_a_writer_with_a_fast_clock_is_trusted_for_its_lifetime_at_most() {
        let manager = Manager::with_options(
            MemoryStore::new(),
            ManagerOptions::default()
                .with_clock(ManualClock::new())
                .with_clock_skew(Duration::from_secs(5)),
        );
        let config = refresh_facade::EkuaibaoConfig::new();
        let refresher = Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap();
        let id = CredentialId::new("skewed").unwrap();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let credential = manager.credential(&id).unwrap();
        let clock = manager.clock().clone();
        let written_ahead = |ahead: TimeDelta| {
            let mut stored = tokens("skewed");
            stored.obtained_at = clock.wall() + ahead;
            stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
            manager.token_of(&credential, &Versioned::new(1, stored), None)
        };
        let slightly = written_ahead(TimeDelta::seconds(3));
        let trusted = slightly.valid_until.since(clock.now());
        assert!(
            trusted <= Duration::from_secs(3600 - 5) && trusted > Duration::from_secs(3590 - 5),
            "trusted for {trusted:?}"
        );
        let far = written_ahead(TimeDelta::minutes(10));
        assert!(!far.is_valid(&clock) && far.refresh_due <= clock.now());
    }
}
