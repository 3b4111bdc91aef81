//! The manager: a valid access token for each credential, from a lock-free cache, renewed in the background
//! ahead of expiry, once however many callers ask, and written to the store before anyone sees it.
//!
//! - this file: the public API, the read path and the timers;
//! - [`options`]: how the manager and each credential run;
//! - [`credential`]: one credential's token and its state behind one lock;
//! - [`flight`]: single flight, the one renewal every caller joins;
//! - [`renewal`]: the renewal protocol, a loop over explicit steps;
//! - [`commit`]: making the vendor's tokens durable;
//! - [`health`]: how a renewal ended, and backoff;
//! - [`store_lock`]: the store lock a renewal holds, and when its lease lapses;
//! - [`access_token`]: the token handed out, and its deadlines;
//! - [`thread_copies`]: what each thread keeps of the registry and the tokens, so that reads share no write.

mod access_token;
mod commit;
mod credential;
mod flight;
mod health;
mod options;
mod renewal;
mod store_lock;
#[cfg(test)]
pub(crate) mod tests;
mod thread_copies;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use refresh_facade::Grant;
use tokio::sync::Semaphore;
use tracing::Instrument;

pub use access_token::AccessToken;
pub use credential::{CredentialHandle, TokenChanges};
pub use options::{CredentialOptions, ManagerOptions};

use crate::clock::{ManagerClock, Moment};
use crate::error::ManagerError;
use crate::observe::RotateHook;
use crate::record::CredentialId;
use crate::rescue::Rescue;
use crate::schedule::{Due, Timers};
use crate::store::TokenStore;
use credential::Credential;
use flight::Joined;
use health::Health;
use store_lock::LockSlot;

type Credentials = HashMap<CredentialId, Arc<Credential>, foldhash::fast::RandomState>;

/// What `access_token` returns. Nearly always the cached token, ready at once: kept small (three words), so that
/// moving the future costs next to nothing on the path that must cost least.
enum Reading<'a> {
    Served(Option<Arc<AccessToken>>),
    Unknown(Option<&'a CredentialId>),
    /// The wait for a renewal (or the last error): rare, larger, and boxed.
    Waiting(BoxFuture<'a, Result<Arc<AccessToken>, ManagerError>>),
}

impl Future for Reading<'_> {
    type Output = Result<Arc<AccessToken>, ManagerError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        const DONE: &str = "an access_token future polled after it completed";
        match self.get_mut() {
            Reading::Served(token) => Poll::Ready(Ok(token.take().expect(DONE))),
            Reading::Unknown(id) => {
                Poll::Ready(Err(ManagerError::Unknown(id.take().expect(DONE).clone())))
            }
            Reading::Waiting(wait) => wait.as_mut().poll(context),
        }
    }
}

/// A renewal's outcome, as each caller that joined it awaits it.
type Flight = Joined<Result<Arc<AccessToken>, ManagerError>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every guarded value here is replaced whole, so a panic elsewhere cannot leave one half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
    /// How many times `credentials` was replaced, counted after each: a thread's copy of the registry loaded at
    /// this count is current ([`thread_copies`]).
    registered: AtomicU64,
    /// What each thread's copy of the registry is kept by.
    serial: u64,
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
                registered: AtomicU64::new(0),
                serial: thread_copies::next_serial(),
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
                .filter_map(|credential| credential.flight.running())
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
            .is_ok_and(|credential| credential.state().unsaved.is_some())
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
            .filter(|credential| credential.state().unsaved.is_some())
            .cloned()
            .collect();
        let mut first_error = None;
        for credential in credentials {
            let result = async {
                let held = self.lock_store(&credential).await?;
                let committed = match self.take_unsaved(&credential).await {
                    Some(unsaved) => self.commit(&credential, unsaved, &held).await.map(drop),
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
                let credential = Arc::new(Credential::new(id.clone(), options));
                (id, credential)
            })
            .collect();
        let replaced = self.shared.credentials.rcu(|current| {
            let mut next = Credentials::clone(current);
            next.extend(added.iter().cloned());
            next
        });
        self.shared.registered.fetch_add(1, Ordering::Release);
        // Tokens a replaced registration holds because the store failed to take them go with the new one: the
        // vendor issued them, and they may be the only live ones.
        for (id, credential) in &added {
            if let Some(old) = replaced.get(id) {
                let unsaved = old.state().unsaved.take();
                if unsaved.is_some() {
                    credential.state().unsaved = unsaved;
                }
            }
        }
    }

    /// Why `id`'s last renewal failed, if none has succeeded since. A token can still be handed out meanwhile (it
    /// is valid until its expiry): this says whether it will be renewed. `None` for an unknown id, or one whose last
    /// renewal worked.
    pub fn last_failure(&self, id: &CredentialId) -> Option<ManagerError> {
        let credential = self.credential(id).ok()?;
        credential.state().health.last_error.clone()
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
        self.shared.registered.fetch_add(1, Ordering::Release);
        true
    }

    /// Replaces the credential's non-interactive login (WeChat: the component token's grant with the verify ticket
    /// WeChat just pushed). A credential the vendor had refused for good is tried again.
    pub fn set_login(&self, id: &CredentialId, grant: Grant) -> Result<(), ManagerError> {
        let credential = self.credential(id)?;
        let mut state = credential.state();
        state.login = Some(grant);
        state.health = Health::default();
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
                    self.commit(&credential, unsaved, &held).await?;
                }
                let current = self.shared.store.load(id).await?;
                let expected = current.map(|record| record.version);
                let issued = self.log_in(&credential, expected, grant, &held).await?;
                self.commit(&credential, issued, &held).await
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
    ///
    /// The cached token is looked up when this is called, and a future that is ready at once is returned; a wait
    /// for a renewal happens when the future is awaited.
    pub fn access_token<'a>(
        &'a self,
        id: &'a CredentialId,
    ) -> impl Future<Output = Result<Arc<AccessToken>, ManagerError>> + Send + 'a {
        let registered = self.shared.registered.load(Ordering::Acquire);
        let found = thread_copies::in_registry(
            self.shared.serial,
            registered,
            || self.shared.credentials.load_full(),
            |credentials| {
                let credential = credentials.get(id).ok_or(())?;
                Ok(self
                    .cached(credential)
                    .ok_or_else(|| Arc::clone(credential)))
            },
        );
        match found {
            Ok(Ok(token)) => Reading::Served(Some(token)),
            Err(()) => Reading::Unknown(Some(id)),
            Ok(Err(credential)) => {
                Reading::Waiting(Box::pin(async move { self.read(&credential).await }))
            }
        }
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
        let seen = credential.published();
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

    /// The wait for a token when the cached one would not do (see [`Reading::Waiting`]).
    fn waiting<'a>(&'a self, credential: &'a Arc<Credential>) -> Reading<'a> {
        Reading::Waiting(Box::pin(self.read(credential)))
    }

    /// The read path: the cached token while it is valid, starting its background refresh once it is due. No lock,
    /// no allocation once this thread has read this token, and no write to memory another thread reads (the `Arc`
    /// handed out is this thread's copy).
    ///
    /// Most reads end at the first step: this thread's copy, still current, is certainly fresh by the cheap upper
    /// bounds of both clocks (two coarse reads). The rest ask the exact clocks and the credential's token itself.
    fn cached(&self, credential: &Arc<Credential>) -> Option<Arc<AccessToken>> {
        let published = credential.published();
        let bounds = self.shared.clock.upper_bounds();
        if let Some(copy) = thread_copies::current(credential.serial, published)
            && copy.fresh_at(bounds.now, bounds.wall_ms)
        {
            return Some(copy);
        }
        let (now, wall_ms) = (self.shared.clock.now(), self.shared.clock.wall_millis());
        let cached = credential.current.load();
        let token = cached.as_ref()?;
        if token.fresh_at(now, wall_ms) {
            return Some(thread_copies::keep(credential.serial, published, token));
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
        let start = || {
            // Decided under the flight's lock: a renewal settles before its flight ends, so one that failed just
            // now has set its wait, and is not followed at once by another (checked outside, the two could
            // interleave).
            let now = self.shared.clock.now();
            if let Some(error) = credential.state().health.waiting_error(now) {
                return Err(error);
            }
            // The last renewal's tokens were due again at once (a hostile lifetime): no new one before the interval.
            if let Some(token) = credential.current.load_full()
                && !token.may_renew_at(now)
            {
                return Err(ManagerError::ShortLived(credential.id.clone()));
            }
            let (manager, credential) = (self.clone(), Arc::clone(credential));
            // One span per renewal, around everything it does (the facade's own spans nest in it).
            let span = tracing::info_span!("renewal", credential = %credential.id, vendor = %credential.vendor());
            Ok(async move {
                // A panic in the renewal (a bug) is an error like any other: settled, so that backoff spaces the
                // next tries, rather than a task that ends with no outcome.
                let result = AssertUnwindSafe(manager.renew(&credential))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| {
                        Err(ManagerError::Internal(
                            credential.id.clone(),
                            panic_message(&*panic),
                        ))
                    });
                manager.settle(&credential, &result);
                result.map(|(token, _)| token)
            }
            .instrument(span))
        };
        let id = credential.id.clone();
        credential.flight.join_or_start(start, move |why| {
            Err(ManagerError::Internal(id, Arc::from(why)))
        })
    }

    /// Makes `token` the credential's cached one, and sets its background refresh.
    fn install(&self, credential: &Credential, token: Arc<AccessToken>) {
        let due = token.refresh_due.max(token.renew_not_before);
        credential.publish(token);
        self.schedule(credential, due);
    }

    /// Sets the credential's next background renewal at `at`, replacing the one set before.
    fn schedule(&self, credential: &Credential, at: Moment) {
        if !self.shared.background {
            return;
        }
        let generation = {
            let mut state = credential.state();
            state.generation += 1;
            state.generation
        };
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
        let current = credential.state().generation == due.generation;
        if current {
            self.nudge(&credential);
        }
    }

    fn draw(&self) -> f64 {
        lock(&self.shared.random).f64()
    }
}

/// What a panic said, for [`ManagerError::Internal`].
fn panic_message(panic: &(dyn std::any::Any + Send)) -> Arc<str> {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => Arc::from(*message),
        (_, Some(message)) => Arc::from(message.as_str()),
        _ => Arc::from("a panic without a message"),
    }
}
