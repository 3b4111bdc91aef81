//! How a manager runs, and how each of its credentials is renewed: builders whose setters state their defaults.

use std::sync::Arc;
use std::time::Duration;

use refresh_facade::{Grant, Refresher};

use crate::clock::ManagerClock;
use crate::observe::{RotateHook, Rotated};
use crate::policy::RefreshPolicy;
use crate::record::CredentialId;
use crate::rescue::Rescue;

/// How much a token read from the store is trusted less than its stored expiry says, by default: the writer's
/// wall clock may run ahead of this one's.
pub(super) const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// How the manager runs: its clock, the seed of its jitter, how many vendor calls may run at once, and hooks.
#[derive(Clone)]
pub struct ManagerOptions {
    pub(super) clock: ManagerClock,
    pub(super) seed: u64,
    pub(super) max_concurrent_calls: usize,
    pub(super) dead_recheck: Duration,
    pub(super) clock_skew: Duration,
    pub(super) background: bool,
    pub(super) rescue: Option<Rescue>,
    pub(super) on_rotate: Option<RotateHook>,
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
    pub(super) refresher: Refresher,
    pub(super) policy: RefreshPolicy,
    pub(super) login: Option<Grant>,
    pub(super) component: Option<CredentialId>,
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
