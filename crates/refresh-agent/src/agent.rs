//! The agent: one keeper task per profile over one [`Manager`], and what the socket API reads of them.
//!
//! A keeper reads its credential's token through the manager (which renews it when due, durably first), rewrites
//! the profile's sinks when the token changed, and sleeps until the token's refresh time, or until the manager holds
//! a new token, whoever renewed it ([`Manager::token_changes`]). Every branch of its loop says why it waits:
//! - **a token**: until its `refresh_at`, when the manager renews it;
//! - **a failure a retry may fix** (vendor down, store refusing): a backoff from 1 s doubling to 60 s, or the
//!   vendor's `Retry-After`; and at the token's expiry, the sinks are removed, so that nobody reads a dead token;
//! - **a credential that needs a person** (re-authorization, no tokens stored): sinks removed, and a look every
//!   [`DEAD_RECHECK`] in case someone ran `refresh login`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use refresh_facade::Vendor;
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerClock, ManagerError, TokenStore,
};
use tokio::sync::watch;

use crate::access::Readers;
use crate::notify::{Event, Kind, Notifier};
use crate::sink::{Issued, Sink};

/// How long before the vendor's refresh window closes a failing credential is notified ([`Kind::WindowClosing`]).
pub const WINDOW_WARNING: Duration = Duration::from_secs(6 * 3600);

/// How often a credential that needs a person is looked at again.
pub const DEAD_RECHECK: Duration = Duration::from_secs(60);
/// The first and the longest wait after a failure a retry may fix.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const LONGEST_BACKOFF: Duration = Duration::from_secs(60);

/// One profile the agent keeps valid.
pub struct Profile {
    pub name: String,
    pub id: CredentialId,
    pub vendor: Vendor,
    pub credential: CredentialOptions,
    pub sinks: Vec<Sink>,
    pub readers: Readers,
}

/// How a profile's credential is doing, as `GET /v1/status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not read yet.
    #[default]
    Starting,
    /// A valid token.
    Ok,
    /// The last attempt failed in a way a retry may fix.
    Degraded,
    /// It needs a person (re-authorization, or no tokens stored).
    Dead,
}

/// What a keeper last saw.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct State {
    pub health: Health,
    /// `ok`, or the failure's outcome (`reauthorization_required`, `transient`, `store_error`…).
    pub last_outcome: Option<String>,
    /// Why it is degraded or dead, without secrets.
    pub why: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the token is due for renewal (the next refresh).
    pub refresh_at: Option<DateTime<Utc>>,
    pub version: Option<u64>,
    /// Tokens the vendor issued that the store has not taken yet (held in memory, and rescued if a rescue is set).
    pub unsaved_tokens: bool,
    /// How many times the sinks were rewritten.
    pub sink_writes: u64,
    pub last_sink_error: Option<String>,
}

pub(crate) struct Kept {
    pub(crate) name: String,
    pub(crate) id: CredentialId,
    pub(crate) vendor: Vendor,
    pub(crate) readers: Readers,
    pub(crate) state: Mutex<State>,
    stop: watch::Sender<bool>,
    notifier: Option<Notifier>,
    /// `GET /v1/tokens/{profile}`'s body for one token version, rendered once.
    rendered: arc_swap::ArcSwapOption<(u64, axum::body::Bytes)>,
}

impl Kept {
    /// The socket's answer for `token`: rendered for its version once, then the same bytes.
    pub(crate) fn rendered(&self, token: &refresh_manager::AccessToken) -> axum::body::Bytes {
        if let Some(cached) = self.rendered.load().as_deref()
            && cached.0 == token.version
        {
            return cached.1.clone();
        }
        #[derive(serde::Serialize)]
        struct Body<'a> {
            profile: &'a str,
            vendor: &'a str,
            access_token: &'a str,
            token_type: &'a str,
            expires_at: String,
            refresh_at: String,
            version: u64,
        }
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = Body {
            profile: &self.name,
            vendor: self.vendor.as_str(),
            access_token: token.secret.expose_secret(),
            token_type: "Bearer",
            expires_at: at(token.expires_at),
            refresh_at: at(token.refresh_at),
            version: token.version,
        };
        let bytes = axum::body::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        self.rendered
            .store(Some(Arc::new((token.version, bytes.clone()))));
        bytes
    }

    pub(crate) fn state(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Records the credential's health, and notifies what a person must know: it needs one now, or recovered after
    /// needing one.
    fn health(&self, health: Health, outcome: &str, why: Option<String>, at: DateTime<Utc>) {
        let before = self.state().health;
        self.update(|state| {
            state.health = health.clone();
            state.last_outcome = Some(outcome.to_owned());
            state.why = why.clone();
        });
        let event = match (&before, &health) {
            (Health::Dead, Health::Dead) => None,
            (_, Health::Dead) => Some(Kind::NeedsPerson),
            (Health::Dead, Health::Ok) => Some(Kind::Recovered),
            _ => None,
        };
        if let Some(event) = event {
            self.notify(event, why, at);
        }
    }

    fn notify(&self, kind: Kind, detail: Option<String>, at: DateTime<Utc>) {
        if let Some(notifier) = &self.notifier {
            notifier.send(Event::new(kind, &self.name, self.vendor, at, detail));
        }
    }
}

/// The running agent: cheap to clone, shared by the keepers and the socket API.
pub struct Agent<S: TokenStore + 'static> {
    pub(crate) manager: Arc<Manager<S>>,
    pub(crate) kept: Arc<arc_swap::ArcSwap<BTreeMap<String, Arc<Kept>>>>,
    pub(crate) agent_uid: u32,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<Keeper<S>>>>>,
    notifier: Option<Notifier>,
}

impl<S: TokenStore + 'static> Clone for Agent<S> {
    fn clone(&self) -> Self {
        Agent {
            manager: Arc::clone(&self.manager),
            kept: Arc::clone(&self.kept),
            agent_uid: self.agent_uid,
            tasks: Arc::clone(&self.tasks),
            notifier: self.notifier.clone(),
        }
    }
}

impl<S: TokenStore + 'static> Agent<S> {
    /// An agent over `manager`, keeping nothing yet ([`Agent::apply`] gives it its profiles).
    pub fn new(manager: Manager<S>) -> Self {
        Agent {
            manager: Arc::new(manager),
            kept: Arc::default(),
            agent_uid: crate::access::own_uid(),
            tasks: Arc::default(),
            notifier: None,
        }
    }

    /// Sends notifications (a webhook) for the profiles applied from now on.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    pub fn manager(&self) -> &Manager<S> {
        &self.manager
    }

    /// Keeps exactly `profiles` from now on: new ones start, removed ones stop (their sinks are left as they are,
    /// and the manager forgets them unless they hold tokens the store has not taken yet), changed ones restart
    /// with their new settings. What a SIGHUP does. The names of the profiles added, restarted and removed.
    pub fn apply(&self, profiles: Vec<Profile>) -> Applied {
        let mut applied = Applied::default();
        let mut next: BTreeMap<String, Arc<Kept>> = BTreeMap::new();
        let current = self.kept.load_full();
        for profile in profiles {
            let restarted = current.contains_key(&profile.name);
            if let Some(old) = current.get(&profile.name) {
                let _ = old.stop.send(true);
            }
            let name = profile.name.clone();
            next.insert(name.clone(), self.start(profile));
            if restarted {
                applied.restarted.push(name);
            } else {
                applied.added.push(name);
            }
        }
        for (name, old) in current.iter() {
            if !next.contains_key(name) {
                let _ = old.stop.send(true);
                if !next.values().any(|kept| kept.id == old.id) {
                    self.manager.unmanage(&old.id);
                }
                applied.removed.push(name.clone());
            }
        }
        self.kept.store(Arc::new(next));
        applied
    }

    fn start(&self, profile: Profile) -> Arc<Kept> {
        let (stop, stopped) = watch::channel(false);
        let kept = Arc::new(Kept {
            name: profile.name.clone(),
            id: profile.id.clone(),
            vendor: profile.vendor,
            readers: profile.readers.clone(),
            state: Mutex::default(),
            stop,
            notifier: self.notifier.clone(),
            rendered: arc_swap::ArcSwapOption::empty(),
        });
        let logs_in_by_itself = profile.credential.logs_in_by_itself();
        self.manager.manage(profile.id.clone(), profile.credential);
        // Just managed, so known (else the keeper only misses the early wake-ups).
        let changes = self.manager.token_changes(&profile.id).ok();
        let keeper = Keeper {
            changes,
            logs_in_by_itself,
            manager: Arc::clone(&self.manager),
            kept: Arc::clone(&kept),
            sinks: profile.sinks,
            stopped,
            written: None,
        };
        let task = tokio::spawn(keeper.run());
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
        kept
    }

    /// Every profile's state, by name.
    pub fn status(&self) -> BTreeMap<String, State> {
        self.kept
            .load()
            .iter()
            .map(|(name, kept)| {
                let mut state = kept.state();
                state.unsaved_tokens = self.manager.holds_unsaved(&kept.id);
                (name.clone(), state)
            })
            .collect()
    }

    /// Stops every keeper, lets running renewals finish and writes what the store refused earlier, then rewrites
    /// the sinks whose token a renewal finished meanwhile replaced (the vendor may have revoked the one they hold):
    /// what a SIGTERM does before the process exits. The manager's error if tokens could still not be written.
    pub async fn shutdown(&self) -> Result<(), ManagerError> {
        for kept in self.kept.load().values() {
            let _ = kept.stop.send(true);
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let mut keepers = Vec::new();
        for task in tasks {
            if let Ok(keeper) = task.await {
                keepers.push(keeper);
            }
        }
        // No keeper reads and no timer fires from here: the tokens in memory are the last ones.
        let flushed = self.manager.flush().await;
        let current = self.kept.load();
        for keeper in keepers {
            if current
                .get(&keeper.kept.name)
                .is_some_and(|kept| Arc::ptr_eq(kept, &keeper.kept))
            {
                keeper.write_last().await;
            }
        }
        flushed
    }
}

/// What [`Agent::apply`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub restarted: Vec<String>,
    pub removed: Vec<String>,
}

struct Keeper<S: TokenStore + 'static> {
    manager: Arc<Manager<S>>,
    /// A credential that logs in by itself has a way past a closing refresh window.
    logs_in_by_itself: bool,
    kept: Arc<Kept>,
    sinks: Vec<Sink>,
    stopped: watch::Receiver<bool>,
    /// Wakes the keeper when the manager holds a new token, whatever renewed it (a timer, a socket read): the
    /// sinks must not keep one the vendor spent while the keeper waits for its own next look.
    changes: Option<refresh_manager::TokenChanges>,
    /// The token the sinks hold, and its expiry.
    written: Option<(String, DateTime<Utc>)>,
}

impl<S: TokenStore + 'static> Keeper<S> {
    /// Keeps the profile until told to stop, then hands itself back (the agent's shutdown writes its last token).
    async fn run(mut self) -> Self {
        let clock = self.manager.clock().clone();
        let mut backoff = FIRST_BACKOFF;
        // Whether the last pass already waited for a background renewal of a token that was due.
        let mut awaited_renewal = false;
        let mut unsaved_told = false;
        // The store version whose closing refresh window was notified.
        let mut window_told: Option<u64> = None;
        loop {
            let wait = match self.manager.access_token(&self.kept.id).await {
                Ok(token) => {
                    let secret = token.secret.expose_secret();
                    if self.written.as_ref().is_none_or(|(w, _)| w != secret) {
                        self.write_sinks(&token).await;
                        self.written = Some((secret.to_owned(), token.expires_at));
                    }
                    // A valid token, but its renewal may have failed: say so, and whether a person is needed.
                    let failure = self.manager.last_failure(&self.kept.id);
                    let health = match &failure {
                        None => Health::Ok,
                        Some(error) if needs_a_person(error) => Health::Dead,
                        Some(_) => Health::Degraded,
                    };
                    let outcome = failure.as_ref().map_or("ok", ManagerError::outcome);
                    let why = failure.as_ref().map(ToString::to_string);
                    self.kept.health(health, outcome, why, clock.wall());
                    self.kept.update(|state| {
                        state.expires_at = Some(token.expires_at);
                        state.refresh_at = Some(token.refresh_at);
                        state.version = Some(token.version);
                    });
                    let due_in = until(&clock, token.refresh_at);
                    if due_in.is_zero() && !awaited_renewal {
                        // Due: the manager handed out the still-valid token and renews it in the background. Read
                        // again once that renewal ended.
                        awaited_renewal = true;
                        self.manager.renewals_finished().await;
                        Duration::ZERO
                    } else if due_in.is_zero() {
                        // Due and not renewed: the manager retries on its own schedule; look again after a backoff,
                        // and at the token's expiry at the latest.
                        let wait = backoff.min(until(&clock, token.expires_at));
                        backoff = (backoff * 2).min(LONGEST_BACKOFF);
                        wait
                    } else {
                        awaited_renewal = false;
                        backoff = FIRST_BACKOFF;
                        due_in
                    }
                }
                Err(error) if needs_a_person(&error) => {
                    self.remove_sinks();
                    self.written = None;
                    self.kept.health(
                        Health::Dead,
                        error.outcome(),
                        Some(error.to_string()),
                        clock.wall(),
                    );
                    DEAD_RECHECK
                }
                Err(error) => {
                    // A token past its expiry is never left in a sink, however the retries go.
                    let expired = self
                        .written
                        .as_ref()
                        .is_some_and(|(_, expires_at)| clock.wall() >= *expires_at);
                    if expired {
                        self.remove_sinks();
                        self.written = None;
                    }
                    self.kept.health(
                        Health::Degraded,
                        error.outcome(),
                        Some(error.to_string()),
                        clock.wall(),
                    );
                    let wait = error.retry_after().unwrap_or(backoff).min(LONGEST_BACKOFF);
                    backoff = (backoff * 2).min(LONGEST_BACKOFF);
                    // Wake at the expiry of the token in the sinks, if that comes first, to remove it.
                    match &self.written {
                        Some((_, expires_at)) => wait.min(until(&clock, *expires_at)),
                        None => wait,
                    }
                }
            };
            // Renewals failing while the vendor's refresh window closes, and no login past it: a person has until then.
            if self.kept.state().health == Health::Degraded && !self.logs_in_by_itself {
                self.warn_if_window_closing(&clock, &mut window_told).await;
            }
            // Tokens the store refused: held in memory (and rescued) until a write works; a person should know.
            let unsaved = self.manager.holds_unsaved(&self.kept.id);
            if unsaved && !unsaved_told {
                self.kept.notify(Kind::TokensUnsaved, None, clock.wall());
            }
            unsaved_told = unsaved;
            let deadline = clock.now().after(wait);
            tokio::select! {
                _ = clock.sleep_until(deadline) => {}
                () = changed(&mut self.changes) => {}
                _ = self.stopped.changed() => return self,
            }
            if *self.stopped.borrow() {
                return self;
            }
        }
    }

    /// At shutdown, once nothing renews any more: the sinks get the token in memory if it is not the one they hold
    /// and is still valid.
    async fn write_last(&self) {
        let Some(token) = self.manager.cached_token(&self.kept.id) else {
            return;
        };
        let held = self.written.as_ref().map(|(secret, _)| secret.as_str());
        if held.is_some_and(|held| held != token.secret.expose_secret())
            && token.is_valid(self.manager.clock())
        {
            self.write_sinks(&token).await;
        }
    }

    /// Notifies, once per store version, a refresh window that closes within [`WINDOW_WARNING`].
    async fn warn_if_window_closing(&self, clock: &ManagerClock, told: &mut Option<u64>) {
        let Ok(Some(record)) = self.manager.store().load(&self.kept.id).await else {
            return;
        };
        let Some(closes) = record.tokens.refreshable_until else {
            return;
        };
        let now = clock.wall();
        let soon = chrono::TimeDelta::from_std(WINDOW_WARNING).unwrap_or_default();
        if closes > now && closes - now <= soon && *told != Some(record.version) {
            *told = Some(record.version);
            let detail = format!(
                "renewals fail, and the vendor's refresh window closes at {}",
                closes.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            self.kept.notify(Kind::WindowClosing, Some(detail), now);
        }
    }

    async fn write_sinks(&self, token: &refresh_manager::AccessToken) {
        let issued = Issued {
            profile: &self.kept.name,
            vendor: self.kept.vendor,
            token: token.secret.expose_secret(),
            expires_at: token.expires_at,
            refresh_at: token.refresh_at,
        };
        for sink in &self.sinks {
            let result = match sink.write(&sink.render(&issued)) {
                Ok(()) => sink.run_command().await,
                Err(error) => Err(format!("{}: {error}", sink.path.display())),
            };
            self.kept.update(|state| match result {
                Ok(()) => {
                    state.sink_writes += 1;
                    state.last_sink_error = None;
                }
                Err(error) => {
                    tracing::warn!(profile = %self.kept.name, %error, "a sink could not be written");
                    state.last_sink_error = Some(error);
                }
            });
        }
    }

    fn remove_sinks(&self) {
        for sink in &self.sinks {
            if let Err(error) = sink.remove() {
                tracing::warn!(profile = %self.kept.name, sink = %sink.path.display(), %error,
                    "a sink whose token is no longer valid could not be removed");
            }
        }
    }
}

/// Returns when `changes` sees a new token; never without them.
async fn changed(changes: &mut Option<refresh_manager::TokenChanges>) {
    match changes {
        Some(changes) => changes.changed().await,
        None => std::future::pending().await,
    }
}

/// A failure only a person can end: the vendor wants a new authorization, or nothing is stored to renew.
fn needs_a_person(error: &ManagerError) -> bool {
    error.is_reauthorization_required() || matches!(error, ManagerError::NotStored(_))
}

/// How long from now (on `clock`'s wall) until `at`; zero if it has passed.
fn until(clock: &ManagerClock, at: DateTime<Utc>) -> Duration {
    (at - clock.wall()).to_std().unwrap_or(Duration::ZERO)
}
