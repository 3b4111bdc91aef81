//! The world as it is, not as it starts: tokens older than the process, a vendor that answers late or oddly, a
//! refresh token spent elsewhere, a record another configuration wrote. Each test is the regression test of a
//! defect an adversarial run found, and fails without its fix.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::TimeDelta;
use refresh_facade::{Refresher, SugonAcConfig, VendorConfig};
use refresh_manager::{
    CredentialOptions, Manager, ManagerClock, ManagerError, ManagerOptions, ManualClock,
    MemoryStore, RefreshPolicy, TokenStore,
};
use refresh_sandbox::{Emulator, Fault};
use serde_json::json;
use support::{Harness, ScriptedStore, id, settle};

const ISOLARCLOUD_REFRESH: &str = "/openapi/apiManage/refreshToken";
const SUGON_RENEW: &str = "/tokens/next";

/// A restarted process (the CLI's `refresh token`, a service started late) finds a stored 2-hour Sugon token with
/// 5 minutes left, inside its 12-minute margin: it refreshes it rather than serve it. Its clock starts with the
/// process, so before the fix the refresh was counted forward from that start and fell after the expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_process_refreshes_an_aged_token_before_serving_it() {
    let h = Harness::start(Emulator::SugonAc).await;
    let id = id("aged");
    let store = MemoryStore::new();
    let first = {
        let earlier = h.manager(store.clone());
        earlier.manage(id.clone(), h.credential(Emulator::SugonAc));
        earlier
            .login(&id, &h.login(Emulator::SugonAc))
            .await
            .unwrap()
    };
    // The new process starts 1 h 55 min after the login, with a clock of its own that starts then.
    h.advance_past(first.expires_at - TimeDelta::minutes(5), Duration::ZERO);
    let clock = ManagerClock::from(ManualClock::starting_at(h.sandbox.clock().now()));
    let options = ManagerOptions::default()
        .with_clock(clock.clone())
        .foreground_only();
    let restarted = Manager::with_options(store, options);
    let refresher = h
        .refresher(Emulator::SugonAc)
        .with_clock(clock.facade_clock());
    restarted.manage(id.clone(), CredentialOptions::new(refresher));
    let token = restarted.access_token(&id).await.unwrap();
    assert_eq!(token.version, 2, "the aged token was served, not refreshed");
    assert_eq!(h.requests_to(Emulator::SugonAc, SUGON_RENEW), 1);
}

/// The refresher's call timeout is the credential's one timeout, and the manager enforces it around the call:
/// with an HTTP client that would wait 15 s, a vendor that answers after 3 s is given up after 500 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_gives_up_a_call_after_the_refreshers_call_timeout() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("late");
    let manager = Manager::with_options(MemoryStore::new(), h.options().foreground_only());
    let refresher = h
        .refresher(Emulator::ISolarCloud)
        .with_call_timeout(Duration::from_millis(500));
    manager.manage(id.clone(), CredentialOptions::new(refresher));
    let first = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    h.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::Latency(Duration::from_secs(3)),
    );
    h.advance_past(first.expires_at, Duration::from_secs(1));
    let started = std::time::Instant::now();
    let error = manager.access_token(&id).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "waited {took:?}");
    assert!(error.is_retryable(), "{error}");
    assert!(
        error.to_string().contains("no answer within 500 ms"),
        "{error}"
    );
    assert_eq!(
        error
            .refresh_error()
            .map(refresh_facade::RefreshError::call),
        Some(refresh_facade::Call::Refresh)
    );
    // A login given up says so.
    h.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::Latency(Duration::from_secs(3)),
    );
    let login = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap_err();
    assert_eq!(
        login
            .refresh_error()
            .map(refresh_facade::RefreshError::call),
        Some(refresh_facade::Call::Login),
        "{login}"
    );
    assert!(login.to_string().contains("login failed"), "{login}");
}

/// Sugon AC answers 10004 ("invalid parameter", not a refusal of the token by its kind) for a token renewed
/// elsewhere. A credential with a password login logs in once for that version instead of reporting itself dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_sugon_token_is_replaced_by_one_login() {
    let h = Harness::start(Emulator::SugonAc).await;
    let id = id("spent");
    let manager = h.manager(MemoryStore::new());
    manager.manage(
        id.clone(),
        h.credential(Emulator::SugonAc)
            .with_login(h.login(Emulator::SugonAc)),
    );
    let first = manager
        .login(&id, &h.login(Emulator::SugonAc))
        .await
        .unwrap();
    // Another process renews the stored token and loses the answer: the stored one is spent.
    let stored = manager.store().load(&id).await.unwrap().unwrap();
    h.refresher(Emulator::SugonAc)
        .refresh(&stored.tokens.grant())
        .await
        .unwrap();
    let logins_before = h.requests_to(Emulator::SugonAc, "/ac/openapi/v2/tokens") - 1;
    h.advance_past(first.expires_at, Duration::from_secs(1));
    let token = manager.access_token(&id).await.unwrap();
    assert_eq!(token.version, 2);
    let renewals = h.requests_to(Emulator::SugonAc, SUGON_RENEW);
    let logins = h.requests_to(Emulator::SugonAc, "/ac/openapi/v2/tokens") - renewals;
    assert_eq!(renewals, 2, "ours and the other process's");
    assert_eq!(logins - logins_before, 1, "one login after the refusal");
}

/// A vendor whose tokens live one second (or expire before they arrive) would be refreshed in a tight loop. The
/// manager renews at most once per the policy's minimum interval (30 s) and never hands out an expired token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_that_issues_one_second_tokens_is_not_asked_in_a_loop() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("hostile");
    let manager = h.manager(MemoryStore::new());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    for _ in 0..200 {
        h.sandbox.inject(
            Emulator::ISolarCloud,
            Fault::retype("/result_data/expires_in", json!(1)),
        );
    }
    manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    let (mut served, mut refused) = (0, 0);
    for _ in 0..120 {
        h.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(2)).await;
        match manager.access_token(&id).await {
            Ok(token) => {
                assert!(
                    token.expires_at > h.sandbox.clock().now(),
                    "an expired token"
                );
                served += 1;
            }
            Err(error) => {
                assert!(
                    matches!(error, ManagerError::ShortLived(_)) && error.is_retryable(),
                    "{error}"
                );
                refused += 1;
            }
        }
    }
    settle().await;
    let refreshes = h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH);
    assert!(
        (2..=5).contains(&refreshes),
        "{refreshes} refreshes in 120 s ({served} served, {refused} refused)"
    );
}

/// A refresh whose answer is already expired is stored (its refresh token is the live one now) but not handed to
/// the caller, who is told the tokens were short-lived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_answered_with_an_expired_token_stores_it_but_does_not_hand_it_out() {
    let h = Harness::start(Emulator::Ekuaibao).await;
    let id = id("stillborn-refresh");
    // In the foreground, a read of a due token waits for its refresh (Ekuaibao refreshes only a valid token).
    let manager = Manager::with_options(MemoryStore::new(), h.options().foreground_only());
    manager.manage(id.clone(), h.credential(Emulator::Ekuaibao));
    manager
        .login(&id, &h.login(Emulator::Ekuaibao))
        .await
        .unwrap();
    // Within the access token's two hours, past its refresh margin: the next read waits for a refresh, which the
    // vendor answers with a token already expired.
    h.advance(Duration::from_secs(2 * 3600 - 60));
    let a_minute_ago = h.sandbox.clock().now() - chrono::TimeDelta::minutes(1);
    h.sandbox.inject(
        Emulator::Ekuaibao,
        Fault::retype("/value/expireTime", json!(a_minute_ago.timestamp_millis())),
    );
    let error = manager.access_token(&id).await.unwrap_err();
    assert!(matches!(error, ManagerError::ShortLived(_)), "{error}");
    let stored = manager.store().load(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2, "the refresh's tokens were kept");
}

/// A login whose answer is already expired is stored (its refresh token is live) but not handed to the caller:
/// `login` says the tokens were short-lived, as every other path does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_answered_with_an_expired_token_stores_it_but_does_not_hand_it_out() {
    let h = Harness::start(Emulator::Ekuaibao).await;
    let id = id("stillborn");
    let manager = h.manager(MemoryStore::new());
    manager.manage(id.clone(), h.credential(Emulator::Ekuaibao));
    // Ekuaibao states an instant; one a minute ago is believed (the vendor says the token is expired).
    let a_minute_ago = h.sandbox.clock().now() - chrono::TimeDelta::minutes(1);
    h.sandbox.inject(
        Emulator::Ekuaibao,
        Fault::retype("/value/expireTime", json!(a_minute_ago.timestamp_millis())),
    );
    let error = manager
        .login(&id, &h.login(Emulator::Ekuaibao))
        .await
        .unwrap_err();
    assert!(matches!(error, ManagerError::ShortLived(_)), "{error}");
    let stored = manager.store().load(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1, "the login's tokens were kept");
}

/// One replica's wall clock is 8 hours ahead. It stores the tokens it obtains on the vendor's clock (the answer's
/// `Date` says how far off it is), so that a replica whose clock is right, reading the record after the token's
/// real end, renews it instead of serving it for 8 more hours; and it serves its own fresh token, whose end it
/// checks on its own clock. iSolarCloud states a lifetime (counted from the send, on our clock); Sugon AC an
/// instant (on the vendor's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_is_hours_ahead_stores_tokens_on_the_vendors_clock() {
    clock_hours_ahead(Emulator::ISolarCloud, Duration::from_secs(48 * 3600)).await;
    clock_hours_ahead(Emulator::SugonAc, Duration::from_secs(2 * 3600)).await;
}

/// A foreground manager over `store`, managing `id` of `emulator`, whose clocks (its own and its refresher's) are
/// `off` the vendor's.
fn on_a_clock_off_by(
    h: &Harness,
    store: &MemoryStore,
    emulator: Emulator,
    off: TimeDelta,
    id: &refresh_manager::CredentialId,
) -> Manager<MemoryStore> {
    let clock = ManualClock::starting_at(h.sandbox.clock().now() + off);
    let refresher = h
        .refresher(emulator)
        .with_clock(ManagerClock::from(clock.clone()).facade_clock());
    let manager = Manager::with_options(
        store.clone(),
        ManagerOptions::default()
            .with_clock(clock)
            .foreground_only(),
    );
    manager.manage(id.clone(), CredentialOptions::new(refresher));
    manager
}

async fn clock_hours_ahead(emulator: Emulator, lifetime: Duration) {
    let h = Harness::start(emulator).await;
    let id = id("skewed");
    let store = MemoryStore::new();
    let fast = on_a_clock_off_by(&h, &store, emulator, TimeDelta::hours(8), &id);
    let first = fast.login(&id, &h.login(emulator)).await.unwrap();
    assert!(
        first.is_valid(fast.clock()),
        "{emulator}: the fast replica serves its own fresh token"
    );
    let stored = store.load(&id).await.unwrap().unwrap();
    let vendor_now = h.sandbox.clock().now();
    assert!(
        (stored.tokens.obtained_at - vendor_now).abs() < TimeDelta::seconds(5),
        "{emulator}: stored as obtained at {}, the vendor's clock says {vendor_now}",
        stored.tokens.obtained_at
    );
    // Past the token's real end, a replica with a right clock reads the record.
    h.advance(lifetime + Duration::from_secs(60));
    let right = Manager::with_options(store.clone(), h.options().foreground_only());
    right.manage(
        id.clone(),
        h.credential(emulator).with_login(h.login(emulator)),
    );
    let token = right.access_token(&id).await.unwrap();
    assert_eq!(
        token.version, 2,
        "{emulator}: renewed, not served from the record"
    );
    assert_eq!(
        h.sandbox
            .access_token_state(emulator, token.secret.expose_secret()),
        refresh_sandbox::AccessTokenState::Live
    );
}

/// A `Retry-After` of `u64::MAX` seconds is capped at the backoff's longest wait (10 minutes): the credential is
/// renewed after it, not silenced until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_retry_after_waits_the_longest_backoff_not_forever() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("patient");
    let manager = h.manager(MemoryStore::new());
    let policy = RefreshPolicy::default().with_jitter(0.0);
    manager.manage(
        id.clone(),
        h.credential(Emulator::ISolarCloud).with_policy(policy),
    );
    let first = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    h.sandbox
        .inject(Emulator::ISolarCloud, Fault::rate_limited(u64::MAX));
    h.advance_past(first.expires_at, Duration::from_secs(1));
    let limited = manager.access_token(&id).await.unwrap_err();
    assert!(limited.retry_after().is_some(), "{limited}");
    h.advance(Duration::from_secs(601));
    let token = manager.access_token(&id).await.unwrap();
    assert_eq!(token.version, 2);
    assert_eq!(h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH), 2);
}

/// A record another configuration wrote under the same id (an Ekuaibao profile's, read by a Sugon credential) is a
/// typed error: its token is never handed out, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_another_vendor_is_a_typed_error_and_never_handed_out() {
    let h = Harness::start(Emulator::Ekuaibao).await;
    let id = id("shared-name");
    let store = MemoryStore::new();
    let ekuaibao = h.manager(store.clone());
    ekuaibao.manage(id.clone(), h.credential(Emulator::Ekuaibao));
    ekuaibao
        .login(&id, &h.login(Emulator::Ekuaibao))
        .await
        .unwrap();
    // Nothing listens here: a call would fail with a transport error, not the one asserted.
    let sugon = Refresher::new(VendorConfig::SugonAc(
        SugonAcConfig::new().with_base_url("http://127.0.0.1:9"),
    ))
    .unwrap();
    let other = h.manager(store);
    other.manage(id.clone(), CredentialOptions::new(sugon));
    let error = other.access_token(&id).await.unwrap_err();
    assert!(
        matches!(error, ManagerError::WrongVendor { .. }) && !error.is_retryable(),
        "{error}"
    );
    assert!(error.to_string().contains("ekuaibao"), "{error}");
}

/// A short-lived process that finds a valid token in the store reads it without taking the store's lock (a
/// database lease every other replica would wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_stored_token_is_read_without_the_lock() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("read-only");
    let store = ScriptedStore::new();
    let writer = h.manager(store.clone());
    writer.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    writer
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    let locks = store.locks.load(Ordering::SeqCst);
    let reader = Manager::with_options(store.clone(), h.options().foreground_only());
    reader.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    assert_eq!(reader.access_token(&id).await.unwrap().version, 1);
    assert_eq!(
        store.locks.load(Ordering::SeqCst),
        locks,
        "a lock was taken"
    );
}

/// Every write of `store` fails from now on; its write check too if `check_sees_it`.
fn break_writes(store: &ScriptedStore, check_sees_it: bool) {
    store.failing_writes.store(usize::MAX, Ordering::SeqCst);
    let checks = if check_sees_it { usize::MAX } else { 0 };
    store.failing_checks.store(checks, Ordering::SeqCst);
}

/// An iSolarCloud credential logged in through a foreground manager over a scripted store.
async fn logged_in_over_a_scripted_store(
    h: &Harness,
    name: &str,
) -> (
    refresh_manager::CredentialId,
    ScriptedStore,
    Manager<ScriptedStore>,
    std::sync::Arc<refresh_manager::AccessToken>,
) {
    let id = id(name);
    let store = ScriptedStore::new();
    let manager = Manager::with_options(store.clone(), h.options().foreground_only());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    let first = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    (id, store, manager, first)
}

fn mend(store: &ScriptedStore) {
    store.failing_writes.store(0, Ordering::SeqCst);
    store.failing_checks.store(0, Ordering::SeqCst);
}

/// A store that cannot write (a full disk, a read-only directory) is found out before the vendor is asked: the
/// stored refresh token is not spent, and the credential renews once the store is mended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_costs_no_token() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let (id, store, manager, first) = logged_in_over_a_scripted_store(&h, "full-disk").await;
    break_writes(&store, true);
    h.advance_past(first.expires_at, Duration::from_secs(1));
    let error = manager.access_token(&id).await.unwrap_err();
    assert!(matches!(error, ManagerError::Store(_)), "{error}");
    assert_eq!(
        h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH),
        0,
        "the vendor was asked though nothing could be stored"
    );
    mend(&store);
    h.advance(Duration::from_secs(60));
    assert_eq!(manager.access_token(&id).await.unwrap().version, 2);
}

/// The store passed its check, then refused the vendor's answer every time (the disk filled up meanwhile), and the
/// process ended. The tokens were rescued: the next process writes them before anything else, the vendor sees no
/// second refresh, and the rescue file is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_the_store_refused_are_rescued_for_the_next_process() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("rescued");
    let rescue_dir = tempfile::tempdir().unwrap();
    let rescue = refresh_manager::Rescue::new([rescue_dir.path().join("rescue")]);
    let store = ScriptedStore::new();
    let options = || h.options().foreground_only().with_rescue(rescue.clone());
    let first = {
        let manager = Manager::with_options(store.clone(), options());
        manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
        let first = manager
            .login(&id, &h.login(Emulator::ISolarCloud))
            .await
            .unwrap();
        break_writes(&store, false);
        h.advance_past(first.expires_at, Duration::from_secs(1));
        let error = manager.access_token(&id).await.unwrap_err();
        assert!(matches!(error, ManagerError::Store(_)), "{error}");
        first
    };
    assert_eq!(h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH), 1);
    let rescued = rescue.list();
    assert_eq!(rescued.len(), 1);
    assert_eq!(
        (rescued[0].refreshed_from, rescued[0].by_login),
        (Some(first.version), false)
    );

    mend(&store);
    let next = Manager::with_options(store.clone(), options());
    next.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    let token = next.access_token(&id).await.unwrap();
    assert_eq!(token.version, 2);
    assert_eq!(
        h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH),
        1,
        "the rescued tokens were stored, not refreshed again"
    );
    assert!(rescue.list().is_empty() && !rescue.holds(&id));
    let stored = store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        h.sandbox.refresh_token_state(
            Emulator::ISolarCloud,
            stored.tokens.refresh_token.expose_secret()
        ),
        refresh_sandbox::RefreshTokenState::Live
    );
}

/// Rescued tokens that expired before a process took them are stored (the vendor spent the record's refresh
/// token for them) and then renewed in the same renewal, never handed out expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescued_tokens_that_expired_meanwhile_are_stored_then_renewed() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let rescue_dir = tempfile::tempdir().unwrap();
    let rescue = refresh_manager::Rescue::new([rescue_dir.path().join("rescue")]);
    let options = || h.options().foreground_only().with_rescue(rescue.clone());
    let (id, store, manager, first) = logged_in_over_a_scripted_store(&h, "rescued-late").await;
    drop(manager);
    let manager = Manager::with_options(store.clone(), options());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    break_writes(&store, false);
    h.advance_past(first.expires_at, Duration::from_secs(1));
    assert!(manager.access_token(&id).await.is_err());
    drop(manager);
    let rescued = rescue.list();
    assert_eq!(rescued.len(), 1);
    // The process that takes them starts after they expired too.
    h.advance_past(rescued[0].tokens.expires_at, Duration::from_secs(1));
    mend(&store);
    let next = Manager::with_options(store.clone(), options());
    next.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    let token = next.access_token(&id).await.unwrap();
    assert_eq!(token.version, 3, "stored (2), then renewed (3)");
    assert_eq!(
        h.sandbox
            .access_token_state(Emulator::ISolarCloud, token.secret.expose_secret()),
        refresh_sandbox::AccessTokenState::Live
    );
    assert_eq!(h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH), 2);
}

/// Rescued tokens that lose to a newer record written meanwhile are kept as its orphan; when that record is not
/// valid (written on a wrong clock, or long ago), the renewal renews it under the lease it holds. A holder whose
/// lease has lapsed gives up instead, as fenced: a newer holder may be renewing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescued_tokens_that_lost_to_a_record_not_valid_now_renew_that_record() {
    let renewed = lose_to_a_record_not_valid_now(Duration::from_secs(60)).await;
    assert_eq!(renewed.unwrap().version, 3, "version 2 renewed");
    let lapsed = lose_to_a_record_not_valid_now(Duration::ZERO).await;
    assert!(
        matches!(lapsed, Err(ManagerError::Superseded(_))),
        "{lapsed:?}"
    );
}

/// The scenario above, the renewing process's lease lasting `lease`; what its read returned.
async fn lose_to_a_record_not_valid_now(
    lease: Duration,
) -> Result<std::sync::Arc<refresh_manager::AccessToken>, ManagerError> {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let rescue_dir = tempfile::tempdir().unwrap();
    let rescue = refresh_manager::Rescue::new([rescue_dir.path().join("rescue")]);
    let (id, store, manager, first) = logged_in_over_a_scripted_store(&h, "lost-to-newer").await;
    drop(manager);
    let options = || h.options().foreground_only().with_rescue(rescue.clone());
    let manager = Manager::with_options(store.clone(), options());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    break_writes(&store, false);
    h.advance_past(first.expires_at, Duration::from_secs(1));
    assert!(manager.access_token(&id).await.is_err());
    drop(manager);
    assert_eq!(rescue.list().len(), 1);
    // Meanwhile another writer stored version 2: a person's new login, recorded as already expired.
    let issued = h.sandbox.login(Emulator::ISolarCloud);
    let now = h.sandbox.clock().now();
    let expired: refresh_manager::StoredTokens = serde_json::from_value(json!({
        "vendor": "isolarcloud",
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "obtained_at": now - TimeDelta::hours(49),
        "expires_at": now - TimeDelta::hours(1),
        "refreshable_until": null,
    }))
    .unwrap();
    let written = store
        .inner
        .compare_and_swap_under_lock(&id, Some(1), &expired)
        .await
        .unwrap();
    assert!(matches!(
        written,
        refresh_manager::Swap::Written { version: 2 }
    ));
    mend(&store);
    let mut leased = store.clone();
    leased.lease_left = Some(lease);
    let next = Manager::with_options(leased, options());
    next.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    let read = next.access_token(&id).await;
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(record.orphans.len(), 1, "the rescued tokens are kept");
    if let Ok(token) = &read {
        assert_eq!(
            h.sandbox
                .access_token_state(Emulator::ISolarCloud, token.secret.expose_secret()),
            refresh_sandbox::AccessTokenState::Live
        );
    }
    read
}

/// A wall clock within the allowed skew of the vendor's (here 20 s behind) stores tokens on its own clock: only
/// a disagreement beyond the skew moves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_within_the_skew_of_the_vendors_stores_tokens_on_its_own() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("near");
    let store = MemoryStore::new();
    let manager = on_a_clock_off_by(
        &h,
        &store,
        Emulator::ISolarCloud,
        TimeDelta::seconds(-20),
        &id,
    );
    manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    let stored = store.load(&id).await.unwrap().unwrap();
    let ours = manager.clock().wall();
    assert!(
        (stored.tokens.obtained_at - ours).abs() < TimeDelta::seconds(2),
        "stored as obtained at {}, our clock says {ours}",
        stored.tokens.obtained_at
    );
}

/// A slow answer changes nothing in what the caller is told: the fresh token's expiry is the stored one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_stored_and_handed_out_with_one_expiry() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("slow");
    let store = MemoryStore::new();
    let manager = h.manager(store.clone());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    h.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::Latency(Duration::from_millis(900)),
    );
    let token = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    let stored = store.load(&id).await.unwrap().unwrap();
    assert_eq!(token.expires_at, stored.tokens.expires_at);
}

/// With no rescue to take them, tokens the store refused live only in the process; `flush`, called before it
/// stops, writes them once the store takes writes again, without asking the vendor, and says so when it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_process_flushes_the_tokens_its_store_refused() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let (id, store, manager, first) = logged_in_over_a_scripted_store(&h, "flushed").await;
    assert!(!manager.holds_unsaved(&id));
    break_writes(&store, false);
    h.advance_past(first.expires_at, Duration::from_secs(1));
    assert!(manager.access_token(&id).await.is_err());
    assert!(manager.holds_unsaved(&id), "the vendor's answer is held");
    assert!(manager.flush().await.is_err(), "the store still refuses");
    assert!(manager.holds_unsaved(&id), "and the answer is still held");
    mend(&store);
    manager.flush().await.unwrap();
    assert!(!manager.holds_unsaved(&id));
    let stored = store.load(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(
        h.sandbox.refresh_token_state(
            Emulator::ISolarCloud,
            stored.tokens.refresh_token.expose_secret()
        ),
        refresh_sandbox::RefreshTokenState::Live
    );
    assert_eq!(h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH), 1);
}

/// A process whose store refused the vendor's answer, with no rescue to take it, holds the only live refresh token:
/// it keeps the credential's lock until it writes it. A second process that needs a renewal meanwhile waits,
/// rather than present the refresh token the vendor spent (which a vendor with reuse detection answers by revoking
/// the credential), and then uses what the first one wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_holding_tokens_its_store_refused_keeps_the_lock_until_it_writes_them() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let (id, holder_store, holder, first) = logged_in_over_a_scripted_store(&h, "held").await;
    let other = Manager::with_options(
        ScriptedStore::over(holder_store.inner.clone()),
        h.options().foreground_only(),
    );
    other.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    break_writes(&holder_store, false);
    h.advance_past(first.expires_at, Duration::from_secs(1));
    assert!(holder.access_token(&id).await.is_err());
    assert!(holder.holds_unsaved(&id));

    let waiting = tokio::spawn({
        let (other, id) = (other.clone(), id.clone());
        async move { other.access_token(&id).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the other process did not wait");
    assert_eq!(
        h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH),
        1,
        "the other process presented the spent refresh token"
    );

    mend(&holder_store);
    holder.flush().await.unwrap();
    let token = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the lock was let go once the tokens were written")
        .unwrap()
        .unwrap();
    assert_eq!(token.version, 2);
    assert_eq!(h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH), 1);
}

/// Every lock a renewal, a login or a flush takes is given back through the store's `release`, which a database
/// store awaits, not merely dropped (a dropped lease is left for the others to wait out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lock_taken_is_released_through_the_store() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let (id, store, manager, first) = logged_in_over_a_scripted_store(&h, "released").await;
    h.advance_past(first.expires_at, Duration::from_secs(1));
    assert_eq!(manager.access_token(&id).await.unwrap().version, 2);
    manager.flush().await.unwrap();
    let locks = store.locks.load(Ordering::SeqCst);
    assert!(locks >= 2, "a login and a renewal each took the lock");
    assert_eq!(store.releases.load(Ordering::SeqCst), locks);
}

/// A renewal cut off while it holds the lock (its runtime shut down under it, the manager living on) lets the lock
/// go: another process then takes it, instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_cut_off_under_the_lock_lets_it_go() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let (id, store, manager, first) = logged_in_over_a_scripted_store(&h, "cut-off").await;
    h.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::Latency(Duration::from_secs(30)),
    );
    h.advance_past(first.expires_at, Duration::from_secs(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    drop(runtime.spawn({
        let (manager, id) = (manager.clone(), id.clone());
        async move { manager.access_token(&id).await }
    }));
    while h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    runtime.shutdown_background();
    let other = Manager::with_options(
        ScriptedStore::over(store.inner.clone()),
        h.options().foreground_only(),
    );
    let taken = tokio::time::timeout(Duration::from_secs(10), other.store().lock(&id)).await;
    assert!(taken.is_ok(), "the cut-off renewal's lock was never let go");
    drop(manager);
}

/// A refresh token the vendor refused for good is not presented again while the login that mends it fails for a
/// while: another process spent the stored Ekuaibao token, the vendor refuses it (403), the first login meets a 503,
/// and the next renewal logs in straight away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_is_not_presented_again_while_its_login_fails() {
    let h = Harness::start(Emulator::Ekuaibao).await;
    let id = id("refused-once");
    let manager = Manager::with_options(MemoryStore::new(), h.options().foreground_only());
    manager.manage(
        id.clone(),
        h.credential(Emulator::Ekuaibao)
            .with_login(h.login(Emulator::Ekuaibao)),
    );
    let first = manager
        .login(&id, &h.login(Emulator::Ekuaibao))
        .await
        .unwrap();
    let stored = manager.store().load(&id).await.unwrap().unwrap();
    let refresh_token = stored.tokens.refresh_token.expose_secret().to_owned();
    h.refresher(Emulator::Ekuaibao)
        .refresh(&stored.tokens.grant())
        .await
        .unwrap();
    // Due, not expired: the window is open, so the manager refreshes; the login after the refusal meets a 503.
    h.advance_past(first.refresh_at, Duration::from_secs(1));
    h.sandbox
        .inject(Emulator::Ekuaibao, Fault::Latency(Duration::ZERO));
    h.sandbox
        .inject(Emulator::Ekuaibao, Fault::server_error(503));
    let failed = manager.access_token(&id).await;
    assert!(
        failed.as_ref().is_ok_and(|token| token.version == 1),
        "the valid token is served: {failed:?}"
    );
    // Past the backoff, still before expiry: the next renewal.
    h.advance(Duration::from_secs(20));
    assert!(h.sandbox.clock().now() < first.expires_at);
    assert_eq!(manager.access_token(&id).await.unwrap().version, 2);
    assert_eq!(
        h.sandbox.refresh_count(Emulator::Ekuaibao, &refresh_token),
        2,
        "the other process's refresh and ours, once: the refused token was presented again"
    );
}
