use std::time::Duration;

use chrono::{TimeDelta, Utc};
use refresh_facade::{Refresher, Secret};

use super::options::DEFAULT_CLOCK_SKEW;
use super::*;
use crate::observe::Renewed;
use crate::store::Versioned;

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
/// A refresher whose host does not exist: for tests in which the vendor is never asked.
fn refresher_to_nowhere() -> Refresher {
    let config = refresh_facade::EkuaibaoConfig::new().with_base_url("http://127.0.0.1:9");
    Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap()
}

use crate::MemoryStore;
use crate::clock::ManualClock;
use crate::record::tests::tokens;

/// A refresh that finds the cache fresh (another refresh finished while it waited for the lock) asks no one:
/// this refresher's host does not exist.
#[tokio::test]
async fn a_refresh_that_finds_the_cache_fresh_sends_nothing() {
    let refresher = refresher_to_nowhere();
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
    let manager = Manager::with_options(MemoryStore::new(), ManagerOptions::default().with_seed(3));
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
    // The task runs and sleeps until the token is due, an hour away: only the manager's end wakes it sooner.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
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

/// A store whose reads panic while `broken` is set: a bug, in a store of ours or of the user's.
struct PanicsOnLoad {
    store: MemoryStore,
    broken: std::sync::atomic::AtomicBool,
}

impl TokenStore for PanicsOnLoad {
    type Lock = <MemoryStore as TokenStore>::Lock;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, crate::StoreError> {
        assert!(!self.broken.load(Ordering::SeqCst), "a bug in the store");
        self.store.load(id).await
    }

    async fn compare_and_swap(
        &self,
        lock: &Self::Lock,
        expected: Option<u64>,
        tokens: &crate::StoredTokens,
    ) -> Result<crate::Swap, crate::StoreError> {
        self.store.compare_and_swap(lock, expected, tokens).await
    }

    async fn keep_orphan(
        &self,
        lock: &Self::Lock,
        tokens: &crate::StoredTokens,
    ) -> Result<(), crate::StoreError> {
        self.store.keep_orphan(lock, tokens).await
    }

    async fn lock(&self, id: &CredentialId) -> Result<Self::Lock, crate::StoreError> {
        self.store.lock(id).await
    }

    async fn check_writable(&self, id: &CredentialId) -> Result<(), crate::StoreError> {
        self.store.check_writable(id).await
    }

    async fn release(&self, lock: Self::Lock) {
        self.store.release(lock).await
    }
}

/// A renewal that panics (a bug) is an internal error for its callers, settled like any other failure (backed
/// off, reported by `last_failure`), and ends its flight: nothing waits for it for ever, and a later read, once
/// the backoff is over, renews anew.
#[tokio::test]
async fn a_renewal_that_panics_is_an_internal_error_and_a_later_read_renews_anew() {
    let refresher = refresher_to_nowhere();
    let manual = ManualClock::new();
    let store = PanicsOnLoad {
        store: MemoryStore::new(),
        broken: std::sync::atomic::AtomicBool::new(true),
    };
    let manager =
        Manager::with_options(store, ManagerOptions::default().with_clock(manual.clone()));
    let mut stored = tokens("fresh");
    stored.obtained_at = manager.clock().wall();
    stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
    let id = CredentialId::new("panics").unwrap();
    manager.manage(id.clone(), CredentialOptions::new(refresher));
    let _ = manager
        .store()
        .store
        .compare_and_swap_under_lock(&id, None, &stored)
        .await
        .unwrap();

    let error = manager.access_token(&id).await.unwrap_err();
    assert!(matches!(error, ManagerError::Internal(..)), "{error}");
    assert!(error.to_string().contains("a bug in the store"), "{error}");
    assert_eq!(
        manager.last_failure(&id).map(|error| error.outcome()),
        Some("internal")
    );
    tokio::time::timeout(Duration::from_secs(5), manager.renewals_finished())
        .await
        .expect("a panicked renewal still counts as running");
    let waiting = manager.access_token(&id).await.unwrap_err();
    assert!(
        matches!(waiting, ManagerError::Internal(..)),
        "backed off: {waiting}"
    );

    manager.store().broken.store(false, Ordering::SeqCst);
    manual.advance(Duration::from_secs(600));
    let token = manager.access_token(&id).await.unwrap();
    assert_eq!(token.version, 1);
    assert!(manager.last_failure(&id).is_none());
}

/// Callers without a valid token get the last error only while the wait before the next try lasts: at its end, a
/// new renewal may start.
#[test]
fn the_wait_after_a_failure_ends_at_its_moment() {
    let until = Moment::default().after(Duration::from_secs(10));
    let health = Health {
        quiet_until: Some(until),
        last_error: Some(ManagerError::ShortLived(
            CredentialId::new("waits").unwrap(),
        )),
        ..Health::default()
    };
    assert!(
        health
            .waiting_error(until.before(Duration::from_millis(1)))
            .is_some()
    );
    assert!(
        health.waiting_error(until).is_none(),
        "the wait is over at its end"
    );
}

/// A lease is this process's until its end and not at it; a lock without a lease is held until let go.
#[tokio::test]
async fn a_lease_is_held_until_its_end_and_not_at_it() {
    let manual = ManualClock::new();
    let clock = ManagerClock::from(manual.clone());
    let slot = || Arc::new(tokio::sync::Mutex::new(None::<()>)).lock_owned();
    let end = clock.now().after(Duration::from_secs(5));
    let leased = store_lock::HeldLock::for_tests((), slot().await, Some(end));
    let forever = store_lock::HeldLock::for_tests((), slot().await, None);
    assert!(leased.is_held(&clock) && forever.is_held(&clock));
    manual.advance(Duration::from_secs(5));
    assert!(!leased.is_held(&clock), "a lease is not held at its end");
    assert!(forever.is_held(&clock));
}

/// A vendor failure that may pass (a timeout) never sends a credential to its own login: only a refusal does.
#[test]
fn a_failure_that_may_pass_never_sends_the_credential_to_log_in() {
    let refresher = refresher_to_nowhere();
    let manager = Manager::new(MemoryStore::new());
    let id = CredentialId::new("transient").unwrap();
    manager.manage(id.clone(), CredentialOptions::new(refresher));
    let credential = manager.credential(&id).unwrap();
    let timed_out = refresh_facade::RefreshError::timed_out(
        refresh_facade::Vendor::Ekuaibao,
        Duration::from_secs(1),
    );
    let transient = ManagerError::from(timed_out);
    assert!(!manager.log_in_after(&credential, &transient, 1));
    assert!(!manager.log_in_after(&credential, &transient, 2));
    let not_stored = ManagerError::NotStored(id.clone());
    assert!(
        manager.log_in_after(&credential, &not_stored, 1),
        "a refusal that needs a login"
    );
}

/// What a thread keeps of the registry and of a token ([`super::thread_copies`]) is current only until the manager
/// registers again or the credential publishes again: a withdrawn token is not handed out, a new one is, a read by
/// id after `unmanage` finds nothing, and a new registration under the same id is read at once.
#[tokio::test]
async fn a_thread_reads_what_the_manager_holds_now_not_what_it_copied() {
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default()
            .with_clock(ManualClock::new())
            .foreground_only(),
    );
    let id = CredentialId::new("copied").unwrap();
    let managed = |secret: &str, version: u64| {
        let refresher = refresher_to_nowhere();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let credential = manager.credential(&id).unwrap();
        let mut stored = tokens(secret);
        stored.obtained_at = manager.clock().wall();
        stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
        let sent = manager.clock().now();
        let token = manager.token_of(&credential, &Versioned::new(version, stored), Some(sent));
        manager.install(&credential, token);
        credential
    };
    let secret = |token: Arc<AccessToken>| token.secret.expose_secret().to_owned();

    let credential = managed("first", 1);
    assert_eq!(
        secret(manager.access_token(&id).await.unwrap()),
        "access-first"
    );
    assert_eq!(
        secret(manager.cached(&credential).unwrap()),
        "access-first",
        "from this thread's copy"
    );
    assert_eq!(secret(manager.cached_token(&id).unwrap()), "access-first");

    credential.withdraw();
    assert!(
        manager.cached(&credential).is_none(),
        "a withdrawn token is not handed out"
    );
    assert!(manager.cached_token(&id).is_none());

    let sent = manager.clock().now();
    let record = Versioned::new(2, tokens("second"));
    let mut second = manager.token_of(&credential, &record, Some(sent));
    Arc::get_mut(&mut second).unwrap().secret = Secret::new("access-second");
    manager.install(&credential, second);
    assert_eq!(
        secret(manager.access_token(&id).await.unwrap()),
        "access-second"
    );

    assert!(manager.unmanage(&id));
    assert!(matches!(
        manager.access_token(&id).await,
        Err(ManagerError::Unknown(unknown)) if unknown == id
    ));

    managed("third", 3);
    assert_eq!(
        secret(manager.access_token(&id).await.unwrap()),
        "access-third"
    );
}

#[test]
fn a_token_may_be_renewed_from_the_end_of_its_minimum_interval_on() {
    let mut token = token_for_tests("hostile", 1);
    let end = Moment::default().after(Duration::from_secs(30));
    token.renew_not_before = end;
    assert!(!token.may_renew_at(end.before(Duration::from_nanos(1))));
    assert!(token.may_renew_at(end));
    assert!(token.may_renew_at(end.after(Duration::from_secs(1))));
}

/// Deadlines compare strictly: at its end a token is no longer valid (nor fresh), on either clock.
#[test]
fn a_token_is_valid_and_fresh_until_its_deadlines_and_not_at_them() {
    let end = Moment::default().after(Duration::from_secs(3600));
    let due = Moment::default().after(Duration::from_secs(3000));
    let mut token = token_for_tests("edge", 1);
    (token.valid_until, token.refresh_due) = (end, due);
    (token.expires_ms, token.refresh_ms) = (2_000, 1_000);
    let before = |at: Moment| at.before(Duration::from_nanos(1));
    assert!(token.valid_at(before(end), 1_999));
    assert!(!token.valid_at(end, 1_999), "at the deadline");
    assert!(!token.valid_at(before(end), 2_000), "at the wall's expiry");
    assert!(token.fresh_at(before(due), 999));
    assert!(!token.fresh_at(due, 999), "at the refresh deadline");
    assert!(
        !token.fresh_at(before(due), 1_000),
        "at the wall's refresh time"
    );
}

/// A panic's message reaches `ManagerError::Internal` whether it was a literal or a formatted `String`.
#[test]
fn a_panics_message_is_kept_whatever_its_type() {
    assert_eq!(&*panic_message(&"a literal"), "a literal");
    assert_eq!(&*panic_message(&format!("formatted {}", 7)), "formatted 7");
    assert_eq!(&*panic_message(&7_u8), "a panic without a message");
}

/// Each rescheduling makes the timers set before it stale: a stale one that comes due starts no renewal, the
/// current one does.
#[tokio::test]
async fn a_timer_set_before_the_last_rescheduling_starts_no_renewal() {
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default().with_clock(ManualClock::new()),
    );
    let refresher = refresher_to_nowhere();
    let id = CredentialId::new("rescheduled").unwrap();
    manager.manage(id.clone(), CredentialOptions::new(refresher));
    let credential = manager.credential(&id).unwrap();
    let mut stored = tokens("rescheduled");
    stored.obtained_at = manager.clock().wall();
    stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
    let record = Versioned::new(1, stored);
    for _ in 0..2 {
        manager.install(&credential, manager.token_of(&credential, &record, None));
    }
    let due = |generation| Due {
        at: manager.clock().now(),
        generation,
        id: id.clone(),
    };
    manager.fire(due(1));
    assert!(credential.flight.running().is_none(), "a stale timer");
    manager.fire(due(2));
    assert!(credential.flight.running().is_some(), "the current timer");
}

/// A stored token's expiry on the wall clock is the stored one less the skew allowed between writers: a wall
/// clock that jumps to within the skew of it hands the token out no more, whatever the deadline clock says.
#[tokio::test]
async fn a_stored_token_is_not_valid_within_the_skew_of_its_expiry_on_the_wall() {
    let manual = ManualClock::new();
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default().with_clock(manual.clone()),
    );
    let refresher = refresher_to_nowhere();
    let id = CredentialId::new("skewed-wall").unwrap();
    manager.manage(id.clone(), CredentialOptions::new(refresher));
    let credential = manager.credential(&id).unwrap();
    let mut stored = tokens("skewed-wall");
    stored.obtained_at = manager.clock().wall();
    stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
    let token = manager.token_of(&credential, &Versioned::new(1, stored), None);
    assert!(token.is_valid(manager.clock()));
    let skew = TimeDelta::from_std(DEFAULT_CLOCK_SKEW).unwrap();
    manual.jump_wall(TimeDelta::hours(1) - skew + TimeDelta::seconds(1));
    assert!(
        !token.is_valid(manager.clock()),
        "the wall says it is within the skew of its end"
    );
}

/// Tokens just issued wait out the policy's minimum interval only if they would be due before it ends: a token
/// due exactly at its end does not wait.
#[tokio::test]
async fn a_token_due_exactly_at_the_end_of_the_minimum_interval_does_not_wait_for_it() {
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default().with_clock(ManualClock::new()),
    );
    let lifetime = Duration::from_secs(3600);
    let policy = crate::RefreshPolicy::default().with_jitter(0.0);
    let interval = lifetime - policy.margin(lifetime);
    let policy = policy.with_minimum_interval(interval);
    let refresher = refresher_to_nowhere();
    let id = CredentialId::new("interval").unwrap();
    manager.manage(
        id.clone(),
        CredentialOptions::new(refresher).with_policy(policy),
    );
    let credential = manager.credential(&id).unwrap();
    let mut stored = tokens("interval");
    stored.obtained_at = manager.clock().wall();
    stored.expires_at = stored.obtained_at + TimeDelta::from_std(lifetime).unwrap();
    let sent = manager.clock().now();
    let token = manager.token_of(&credential, &Versioned::new(1, stored), Some(sent));
    assert_eq!(
        token.refresh_due,
        sent.after(interval),
        "due as the interval ends"
    );
    assert_eq!(token.renew_not_before, Moment::default(), "no wait");
}

#[test]
fn options_keep_what_their_setters_say() {
    let options = ManagerOptions::default().with_max_concurrent_calls(3);
    assert_eq!(options.max_concurrent_calls, 3);
    let options = ManagerOptions::default().with_max_concurrent_calls(0);
    assert_eq!(options.max_concurrent_calls, 1, "at least one call");

    let config = refresh_facade::EkuaibaoConfig::new();
    let refresher = Refresher::new(refresh_facade::VendorConfig::Ekuaibao(config)).unwrap();
    let credential = CredentialOptions::new(refresher);
    assert!(!credential.logs_in_by_itself());
    let grant = refresh_facade::Grant::ISolarCloudAuthorizationCode {
        code: Secret::new("code"),
        redirect_uri: "https://example.invalid/back".into(),
    };
    assert!(credential.with_login(grant).logs_in_by_itself());
}

/// Tokens the store failed to take are written before anything else, even while the store holds a record fresh
/// enough to use as it is: that record's refresh token may be the one the vendor has just rotated away.
#[tokio::test]
async fn unsaved_tokens_are_written_before_a_fresh_stored_record_is_adopted() {
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default()
            .with_clock(ManualClock::new())
            .foreground_only(),
    );
    let refresher = refresher_to_nowhere();
    let id = CredentialId::new("unsaved").unwrap();
    manager.manage(id.clone(), CredentialOptions::new(refresher));
    let credential = manager.credential(&id).unwrap();
    let fresh = |secret: &str| {
        let mut stored = tokens(secret);
        stored.obtained_at = manager.clock().wall();
        stored.expires_at = stored.obtained_at + TimeDelta::hours(1);
        stored
    };
    let _ = manager
        .store()
        .compare_and_swap_under_lock(&id, None, &fresh("stored"))
        .await
        .unwrap();
    credential.state().unsaved = Some(credential::Unsaved {
        refreshed_from: Some(1),
        tokens: fresh("unsaved"),
        sent: Some(manager.clock().now()),
        by_login: false,
        rescue_file: None,
        anomalies: Vec::new(),
    });
    let (token, _) = manager.renew(&credential).await.unwrap();
    assert_eq!(token.secret.expose_secret(), "access-unsaved");
    let stored = manager.store().load(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2, "the unsaved tokens were written");
    assert!(credential.state().unsaved.is_none());
}
