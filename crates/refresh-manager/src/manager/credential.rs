//! One managed credential: its settings, the token the read path hands out, the renewal under way, and everything
//! else that changes about it, behind one lock.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwapOption;
use refresh_facade::{Grant, Vendor};

use super::access_token::AccessToken;
use super::flight::SingleFlight;
use super::health::Health;
use super::options::CredentialOptions;
use super::{Manager, ManagerError, Reading};
use crate::clock::Moment;
use crate::record::{CredentialId, StoredTokens};
use crate::store::TokenStore;

/// One managed credential.
pub(super) struct Credential {
    pub(super) id: CredentialId,
    /// What each thread's copy of its token is kept by ([`super::thread_copies`]).
    pub(super) serial: u64,
    pub(super) options: CredentialOptions,
    /// The token the read path hands out: published without a lock, so that a read never waits for a renewal.
    /// Everything else that changes is in `state`.
    pub(super) current: ArcSwapOption<AccessToken>,
    /// How many times `current` was replaced (a token published, or one withdrawn), counted after each: a read that
    /// finds the count it copied `current` at has a current copy ([`super::thread_copies`]), and [`TokenChanges`]
    /// compares counts.
    published: AtomicU64,
    /// Woken at each publication, for [`TokenChanges`].
    pub(super) installed: tokio::sync::Notify,
    /// The renewal under way, which every caller that needs one joins.
    pub(super) flight: SingleFlight<Result<Arc<AccessToken>, ManagerError>>,
    state: Mutex<CredentialState>,
}

/// What changes about a credential, besides its token, behind its one lock. The lock is never held across an
/// `await`: each user takes it, reads or replaces what it needs, and lets it go.
#[derive(Default)]
pub(super) struct CredentialState {
    /// Its non-interactive login, replaced by [`Manager::set_login`] (WeChat's verify ticket changes every few
    /// minutes).
    pub(super) login: Option<Grant>,
    /// Tokens the vendor issued that the store failed to take.
    pub(super) unsaved: Option<Unsaved>,
    pub(super) health: Health,
    /// The store version the last renewal read.
    pub(super) seen_version: u64,
    /// Versions up to this one were refused by the vendor (a component token WeChat said expired): not adopted.
    pub(super) refused_through: u64,
    /// Bumped at each rescheduling: a timer entry of an older generation is stale.
    pub(super) generation: u64,
}

/// Tokens the vendor issued that the store failed to take: written before the vendor is asked again, never
/// dropped, never handed out before they are durable.
pub(super) struct Unsaved {
    /// The version they were refreshed from (`None`: a first login).
    pub(super) refreshed_from: Option<u64>,
    pub(super) tokens: StoredTokens,
    /// When their request was sent, on the deadline clock: their lifetime counts from it (`None`: sent by an earlier
    /// process, whose rescue they come from; their lifetime counts from the wall clock).
    pub(super) sent: Option<Moment>,
    pub(super) by_login: bool,
    /// The rescue file that also holds them, removed once they are stored.
    pub(super) rescue_file: Option<std::path::PathBuf>,
    /// What in the vendor's answer did not match its documentation (none for rescued tokens: said when issued).
    pub(super) anomalies: Vec<refresh_facade::Anomaly>,
}

impl Credential {
    pub(super) fn new(id: CredentialId, options: CredentialOptions) -> Credential {
        Credential {
            id,
            serial: super::thread_copies::next_serial(),
            state: Mutex::new(CredentialState {
                login: options.login.clone(),
                ..CredentialState::default()
            }),
            options,
            current: ArcSwapOption::empty(),
            published: AtomicU64::new(0),
            installed: tokio::sync::Notify::new(),
            flight: SingleFlight::default(),
        }
    }

    /// Its state, locked until the guard drops (never across an `await`).
    pub(super) fn state(&self) -> MutexGuard<'_, CredentialState> {
        // Every guarded value is replaced whole, so a panic elsewhere cannot leave one half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn vendor(&self) -> Vendor {
        self.options.refresher.vendor()
    }

    pub(super) fn login_grant(&self) -> Option<Grant> {
        self.state().login.clone()
    }

    /// Makes `token` the one the read path hands out, and wakes who waits for a new one. The caller schedules its
    /// renewal.
    pub(super) fn publish(&self, token: Arc<AccessToken>) {
        self.current.store(Some(token));
        // After the store: a reader that loads this count loads this token or a later one.
        self.published.fetch_add(1, Ordering::Release);
        self.installed.notify_waiters();
    }

    /// Stops handing out the token the read path holds (the vendor refused it): no thread's copy of it is current.
    pub(super) fn withdraw(&self) {
        self.current.store(None);
        self.published.fetch_add(1, Ordering::Release);
    }

    /// How many times `current` was replaced so far (see `published`).
    #[inline]
    pub(super) fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}

/// New tokens of one credential, from [`Manager::token_changes`].
pub struct TokenChanges {
    pub(super) credential: Arc<Credential>,
    /// The credential's publication count when this last returned.
    pub(super) seen: u64,
}

impl TokenChanges {
    /// Returns once the credential holds a token it did not hold when this was made or last returned (at once if
    /// one came meanwhile; several in between count as one, and so does a token withdrawn because the vendor refused
    /// it). Read the token with [`Manager::access_token`].
    pub async fn changed(&mut self) {
        loop {
            let notified = self.credential.installed.notified();
            tokio::pin!(notified);
            // Registered before the count is read: an install after the read wakes this wait.
            notified.as_mut().enable();
            let published = self.credential.published();
            if published != self.seen {
                self.seen = published;
                return;
            }
            notified.await;
        }
    }
}

/// One credential of a [`Manager`] (see [`Manager::handle`]). Cloning it is cheap.
pub struct CredentialHandle<S: TokenStore> {
    pub(super) manager: Manager<S>,
    pub(super) credential: Arc<Credential>,
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
    pub fn access_token(
        &self,
    ) -> impl Future<Output = Result<Arc<AccessToken>, ManagerError>> + Send + '_ {
        match self.manager.cached(&self.credential) {
            Some(token) => Reading::Served(Some(token)),
            None => self.manager.waiting(&self.credential),
        }
    }

    pub fn id(&self) -> &CredentialId {
        &self.credential.id
    }
}
