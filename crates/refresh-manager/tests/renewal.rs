//! When and how the manager renews, against the sandbox on a fake clock: ahead of expiry in the background, through
//! an outage without a caller-visible error, unmoved by wall-clock jumps, by logging in again where the vendor's
//! window has closed, with WeChat's component token managed as a credential of its own, and with a refusal for
//! good reported once.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use refresh_facade::Grant;
use refresh_manager::{
    AccessToken, CredentialId, Manager, MemoryStore, RefreshPolicy, Rotated, StoredTokens,
    TokenStore,
};
use refresh_sandbox::{Emulator, Fault, accounts};
use serde_json::json;
use support::{Harness, ScriptedStore, id, settle};

const ISOLARCLOUD_REFRESH: &str = "/openapi/apiManage/refreshToken";

/// 1-hour tokens, refreshed 15 minutes ahead; the token endpoint answers 503 for the 10 minutes from the moment
/// the refresh is due. Callers, asking every second of fake time (the shortest backoff), never see an error, and the manager tries at
/// most 15 times (capped exponential backoff with full jitter, never more than half the time left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_minute_outage_costs_callers_no_error_and_at_most_15_attempts() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("outage");
    let manager = h.manager(MemoryStore::new());
    let policy = RefreshPolicy::ahead(Duration::from_secs(15 * 60)).with_jitter(0.0);
    manager.manage(
        id.clone(),
        h.credential(Emulator::ISolarCloud).with_policy(policy),
    );
    // The login's answer gives the token one hour.
    h.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::retype("/result_data/expires_in", json!(3600)),
    );
    let first = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    assert_eq!(first.expires_at - first.refresh_at, TimeDelta::minutes(15));
    let outage_ends = first.refresh_at + TimeDelta::minutes(10);
    h.sandbox
        .outage(Emulator::ISolarCloud, first.refresh_at, outage_ends, 503);

    h.advance_past(first.refresh_at, Duration::ZERO);
    let mut errors = Vec::new();
    let mut renewed_at = None;
    for _ in 0..(20 * 60) {
        h.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(2)).await;
        match manager.access_token(&id).await {
            Ok(token) => {
                assert!(
                    token.expires_at > h.sandbox.clock().now(),
                    "an expired token"
                );
                if token.version == 2 && renewed_at.is_none() {
                    renewed_at = Some(h.sandbox.clock().now());
                }
            }
            Err(error) => errors.push(format!(
                "{error} at {}",
                h.sandbox.clock().now() - first.expires_at
            )),
        }
    }
    assert!(errors.is_empty(), "caller-visible errors: {errors:?}");
    let renewed_at = renewed_at.expect("renewed once the outage ended");
    assert!(renewed_at >= outage_ends && renewed_at < first.expires_at);
    let attempts = h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH);
    assert!((3..=15).contains(&attempts), "{attempts} upstream attempts");
    eprintln!(
        "outage: {attempts} attempts, renewed {} after the outage",
        renewed_at - outage_ends
    );
}

/// An iSolarCloud credential `name`, managed over a `MemoryStore`.
fn managed(h: &Harness, name: &str) -> (Manager<MemoryStore>, CredentialId) {
    let id = id(name);
    let manager = h.manager(MemoryStore::new());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    (manager, id)
}

/// Logs `id` in: its first token, and how long after the login its renewal is due.
async fn log_in(
    h: &Harness,
    manager: &Manager<MemoryStore>,
    id: &CredentialId,
) -> (Arc<AccessToken>, Duration) {
    let logged_in_at = h.sandbox.clock().now();
    let first = manager
        .login(id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    let due_in = (first.refresh_at - logged_in_at).to_std().unwrap();
    (first, due_in)
}

/// A flushed manager (its process is stopping) starts no renewal from a timer: one that the vendor answered after
/// the flush would be cut off when the process exits, with the new tokens. A read still renews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_flush_no_timer_starts_a_renewal() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let (manager, id) = managed(&h, "flushed");
    let (_, due_in) = log_in(&h, &manager, &id).await;
    assert_eq!(
        manager.pending_timers(),
        1,
        "a timer is set for the renewal"
    );
    manager.flush().await.unwrap();
    h.advance(due_in + Duration::from_secs(1));
    for _ in 0..10 {
        settle().await;
    }
    assert_eq!(
        h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH),
        0,
        "a timer renewed after the flush"
    );
    // Due and still valid: the read serves it and renews.
    assert_eq!(manager.access_token(&id).await.unwrap().version, 1);
    manager.renewals_finished().await;
    assert_eq!(h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH), 1);
}

/// `token_changes` wakes on each new token, whoever renewed it (here the manager's own timer, with no read), at
/// once if one came before the wait began, and not otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_changes_wake_on_each_new_token_and_only_then() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let (manager, id) = managed(&h, "watched");
    let mut changes = manager.token_changes(&id).unwrap();
    let (_, due_in) = log_in(&h, &manager, &id).await;
    // The login came before the wait: it returns at once, and then waits for the next.
    tokio::time::timeout(Duration::from_secs(1), changes.changed())
        .await
        .expect("the login is a new token");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), changes.changed())
            .await
            .is_err(),
        "woken with no new token"
    );
    h.advance(due_in + Duration::from_secs(1));
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("the timer's renewal is a new token");
    assert_eq!(manager.access_token(&id).await.unwrap().version, 2);
    assert!(
        manager
            .token_changes(&refresh_manager::CredentialId::new("unknown").unwrap())
            .is_err()
    );
}

/// Deadlines run on a clock that never jumps: the wall clock set back by days causes no late refresh. A wall clock
/// set ahead past the expiry (an operator, NTP) and a machine resumed after days (its timers fired late) hand out
/// no token the vendor considers expired: both clocks must say a token is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_set_back_delays_no_refresh_and_no_expired_token_is_served_after_a_jump_or_a_suspend()
 {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let (manager, id) = managed(&h, "jumps");
    let (_, due_in) = log_in(&h, &manager, &id).await;

    h.clock.jump_wall(TimeDelta::days(-3));
    h.advance(due_in - Duration::from_secs(10));
    settle().await;
    assert_eq!(manager.access_token(&id).await.unwrap().version, 1);
    assert_eq!(
        h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH),
        0,
        "no early refresh"
    );
    // Due on the deadline clock, whatever the wall says: refreshed in the background, without a caller.
    h.advance(Duration::from_secs(11));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refresh when due"
        );
        settle().await;
    }
    settle().await;
    let second = manager.access_token(&id).await.unwrap();
    assert_eq!(second.version, 2);

    // A token is served only while both the manager's wall clock and the vendor's say it is valid.
    let served = |token: &refresh_manager::AccessToken, when: &str| {
        assert!(
            token.expires_at > h.clock().wall() && token.expires_at > h.sandbox.clock().now(),
            "an expired token {when}"
        );
    };
    // The wall clock is put right: version 2's expiry was written on the wrong one, three days early, and is
    // renewed rather than served.
    h.clock.jump_wall(TimeDelta::days(3));
    let third = manager.access_token(&id).await.unwrap();
    served(&third, "after the wall clock was put right");
    assert_eq!(third.version, 3);

    // The wall clock alone jumps past the token's expiry: the manager renews rather than serve it.
    let past_expiry = third.expires_at - h.clock().wall() + TimeDelta::minutes(1);
    h.clock.jump_wall(past_expiry);
    let fourth = manager.access_token(&id).await.unwrap();
    assert_eq!(fourth.version, 4);
    assert!(
        fourth.expires_at > h.clock().wall(),
        "an expired token after a wall jump"
    );
    h.clock.jump_wall(-past_expiry);

    // Suspended for three days: the timers fire late, but the first read after resume gets no expired token.
    h.suspend(Duration::from_secs(3 * 24 * 3600));
    let resumed = manager.access_token(&id).await.unwrap();
    served(&resumed, "after a suspend");
    assert_eq!(resumed.version, 5);
}

/// A service that was down past the vendor's refresh window (Sugon AC: 24 h after expiry; Ekuaibao: expiry) logs
/// in again with the credential's own login, without presenting the dead refresh token; the new tokens refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_refresh_window_the_credentials_own_login_is_used() {
    for (emulator, login_path, refresh_path) in [
        (
            Emulator::SugonAc,
            "/ac/openapi/v2/tokens",
            "/ac/openapi/v2/tokens/next",
        ),
        (
            Emulator::Ekuaibao,
            "/api/openapi/v1/auth/getAccessToken",
            "/api/openapi/v2/auth/refreshToken",
        ),
    ] {
        let h = Harness::start(emulator).await;
        let id = id("relogin");
        let store = MemoryStore::new();
        let before = h.manager(store.clone());
        before.manage(id.clone(), h.credential(emulator));
        before.login(&id, &h.login(emulator)).await.unwrap();
        drop(before);
        let stored = store.load(&id).await.unwrap().unwrap();
        let window = stored.tokens.refreshable_until.expect("a refresh window");
        h.advance_past(window, Duration::from_secs(60));

        let after = h.manager(store.clone());
        after.manage(
            id.clone(),
            h.credential(emulator).with_login(h.login(emulator)),
        );
        let token = after.access_token(&id).await.unwrap();
        assert_eq!(token.version, 2, "{emulator}");
        let at = |path: &str| {
            h.sandbox
                .requests(emulator)
                .iter()
                .filter(|r| r.path == path)
                .count()
        };
        assert_eq!(
            (at(login_path), at(refresh_path)),
            (2, 0),
            "{emulator}: logged in, no dead token sent"
        );
        assert!(token.expires_at > h.sandbox.clock().now(), "{emulator}");

        h.advance_past(token.refresh_at, Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while after.access_token(&id).await.unwrap().version < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{emulator}: the new tokens refresh"
            );
            settle().await;
        }
        assert_eq!(at(refresh_path), 1, "{emulator}");
    }
}

/// A refresh token the vendor refuses is replaced by the credential's own login, when it has one (Ekuaibao).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_is_replaced_by_the_credentials_own_login() {
    let h = Harness::start(Emulator::Ekuaibao).await;
    let id = id("refused");
    let store = MemoryStore::new();
    let manager = h.manager(store.clone());
    manager.manage(
        id.clone(),
        h.credential(Emulator::Ekuaibao)
            .with_login(h.login(Emulator::Ekuaibao)),
    );
    let first = manager
        .login(&id, &h.login(Emulator::Ekuaibao))
        .await
        .unwrap();
    // Spent elsewhere and never stored.
    let stored = store.load(&id).await.unwrap().unwrap();
    h.refresher(Emulator::Ekuaibao)
        .refresh(&stored.tokens.grant())
        .await
        .unwrap();

    h.advance_past(first.refresh_at, Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while manager.access_token(&id).await.unwrap().version < 2 {
        assert!(tokio::time::Instant::now() < deadline, "logged in again");
        settle().await;
    }
    assert_eq!(h.requests_to(Emulator::Ekuaibao, "/getAccessToken"), 2);
}

/// Without a login of its own, a refusal for good is reported once: later callers get the same error at once and
/// the vendor is not asked again, until the store changes (another process logged in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_without_a_login_is_reported_once_and_the_vendor_not_asked_again() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("dead");
    let store = MemoryStore::new();
    let recheck = Duration::from_secs(5);
    let manager = refresh_manager::Manager::with_options(
        store.clone(),
        h.options().with_dead_recheck(recheck),
    );
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    log_in_then_spend_elsewhere(&h, &manager, &store, &id).await;

    let refused = manager.access_token(&id).await.unwrap_err();
    assert!(
        refused.is_reauthorization_required() && !refused.is_retryable(),
        "{refused}"
    );
    assert_eq!(refused.refresh_error().unwrap().vendor_code(), Some("5"));
    let sent = h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH);
    for _ in 0..20 {
        let again = manager.access_token(&id).await.unwrap_err();
        assert_eq!(again.to_string(), refused.to_string());
    }
    // Past the recheck interval the store is read again, but it has not changed: the vendor is not asked.
    h.advance(recheck + Duration::from_secs(1));
    assert!(manager.access_token(&id).await.is_err());
    assert_eq!(
        h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH),
        sent
    );

    // Another process logs in; after the recheck interval this manager uses its tokens.
    let theirs = log_in_elsewhere(&h, &store, &id).await;
    h.advance(recheck + Duration::from_secs(1));
    let token = manager.access_token(&id).await.unwrap();
    assert_eq!(token.version, 2);
    assert_eq!(
        h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH),
        sent
    );
    let _ = theirs;
}

/// A refusal for good holds only for the version refused: newer tokens another process stored are refreshed even
/// when they have expired by the time this manager looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_tokens_than_the_refused_ones_are_refreshed_even_if_expired() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("dead-then-newer");
    let store = MemoryStore::new();
    let manager = h.manager(store.clone());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    log_in_then_spend_elsewhere(&h, &manager, &store, &id).await;
    assert!(
        manager
            .access_token(&id)
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );

    let theirs = log_in_elsewhere(&h, &store, &id).await;
    h.advance_past(theirs.expires_at, Duration::from_secs(1));
    let token = manager.access_token(&id).await.unwrap();
    assert_eq!(token.version, 3, "version 2, refreshed");
}

/// A login handed in later (`set_login`) revives a credential the vendor had refused for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_handed_in_later_revives_a_refused_credential() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("revived");
    let store = MemoryStore::new();
    let manager = h.manager(store.clone());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    log_in_then_spend_elsewhere(&h, &manager, &store, &id).await;
    assert!(manager.access_token(&id).await.is_err());
    manager
        .set_login(&id, h.login(Emulator::ISolarCloud))
        .unwrap();
    let token = manager.access_token(&id).await.unwrap();
    assert_eq!(token.version, 2);
    assert_eq!(
        h.requests_to(Emulator::ISolarCloud, "/openapi/apiManage/token"),
        2
    );
}

/// A vendor's `Retry-After` is carried to callers without a valid token, and once it has passed the manager renews
/// by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("rate-limited");
    let manager = h.manager(MemoryStore::new());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    let first = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    h.sandbox
        .inject(Emulator::ISolarCloud, Fault::rate_limited(120));
    h.advance_past(first.expires_at, Duration::from_secs(1));
    let limited = manager.access_token(&id).await.unwrap_err();
    assert!(limited.is_retryable(), "{limited}");
    assert_eq!(
        limited.retry_after(),
        Some(Duration::from_secs(120)),
        "{limited}"
    );
    // Within the wait, callers get the error at once and the vendor is not asked again.
    h.advance(Duration::from_secs(100));
    let still = manager.access_token(&id).await.unwrap_err();
    assert_eq!(
        still.retry_after(),
        Some(Duration::from_secs(120)),
        "{still}"
    );
    settle().await;
    assert_eq!(h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH), 1);
    h.advance(Duration::from_secs(21));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while manager.access_token(&id).await.map_or(0, |t| t.version) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "renewed after Retry-After"
        );
        settle().await;
    }
    assert_eq!(h.requests_to(Emulator::ISolarCloud, ISOLARCLOUD_REFRESH), 2);
}

/// WeChat's component token is a managed credential of its own, obtained again from the latest verify ticket.
/// When WeChat says the one an authorizer refresh presented expired (here its clock ran ahead of ours), the
/// manager renews it and tries the refresh once more; later it is renewed ahead of expiry like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_authorizers_use_a_managed_component_token_renewed_when_wechat_says_it_expired() {
    let h = Harness::start(Emulator::WechatOpen).await;
    let (component_id, authorizer_id) = (id("wechat-component"), id("wechat-authorizer"));
    let store = MemoryStore::new();
    let issued = h.sandbox.login(Emulator::WechatOpen);
    let component_token = issued
        .credential("component_access_token")
        .unwrap()
        .to_owned();
    let now = h.clock().wall();
    let record =
        |access: &str, refresh: &str, obtained: TimeDelta, lifetime: TimeDelta| -> StoredTokens {
            serde_json::from_value(json!({
                "vendor": "wechat-open",
                "access_token": access,
                "refresh_token": refresh,
                "obtained_at": now + obtained,
                "expires_at": now + obtained + lifetime,
                "refreshable_until": null,
            }))
            .unwrap()
        };
    let two_hours = TimeDelta::hours(2);
    let component = record(&component_token, "", TimeDelta::zero(), two_hours);
    let authorizer = record(
        &issued.access_token,
        &issued.refresh_token,
        -two_hours - TimeDelta::minutes(1),
        two_hours,
    );
    let _ = store
        .compare_and_swap_under_lock(&component_id, None, &component)
        .await
        .unwrap();
    let _ = store
        .compare_and_swap_under_lock(&authorizer_id, None, &authorizer)
        .await
        .unwrap();
    // WeChat's clock is ahead: the component token we think valid for 2 hours has expired there.
    h.sandbox.clock().advance(Duration::from_secs(7200 + 60));

    let manager = h.manager(store.clone());
    let ticket_grant = h.login(Emulator::WechatOpen);
    manager.manage(
        component_id.clone(),
        h.credential(Emulator::WechatOpen).with_login(ticket_grant),
    );
    manager.manage(
        authorizer_id.clone(),
        h.credential(Emulator::WechatOpen)
            .with_component_token(component_id.clone()),
    );
    let token = manager.access_token(&authorizer_id).await.unwrap();
    assert_eq!(token.version, 2);
    assert_eq!(
        h.requests_to(Emulator::WechatOpen, "api_authorizer_token"),
        2,
        "refused, then retried"
    );
    assert_eq!(
        h.requests_to(Emulator::WechatOpen, "api_component_token"),
        1
    );
    assert_eq!(store.load(&component_id).await.unwrap().unwrap().version, 2);

    // A new verify ticket replaces the login; two hours later both are renewed in the background.
    manager
        .set_login(
            &component_id,
            Grant::WechatOpenComponentToken {
                component_appsecret: accounts::WECHAT_COMPONENT_APPSECRET.into(),
                component_verify_ticket: accounts::WECHAT_VERIFY_TICKET.into(),
            },
        )
        .unwrap();
    h.advance(Duration::from_secs(7200));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while manager
        .access_token(&authorizer_id)
        .await
        .map_or(0, |t| t.version)
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the authorizer is renewed"
        );
        settle().await;
    }
    assert_eq!(
        h.requests_to(Emulator::WechatOpen, "api_component_token"),
        2
    );
    assert_eq!(
        h.requests_to(Emulator::WechatOpen, "api_authorizer_token"),
        3
    );
}

/// The rotation hook hears of each durable rotation, with no token in what it receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotation_hook_hears_each_durable_rotation() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("hooked");
    let heard: Arc<Mutex<Vec<Rotated>>> = Arc::default();
    let options = h.options().on_rotate({
        let heard = Arc::clone(&heard);
        move |rotated| heard.lock().unwrap().push(rotated.clone())
    });
    let manager = refresh_manager::Manager::with_options(MemoryStore::new(), options);
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    let first = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    h.advance_past(first.expires_at, Duration::from_secs(1));
    let second = manager.access_token(&id).await.unwrap();
    let heard = heard.lock().unwrap().clone();
    let seen: Vec<_> = heard
        .iter()
        .map(|r| (r.id.as_str(), r.version, r.by_login, r.expires_at))
        .collect();
    assert_eq!(
        seen,
        [
            ("hooked", 1, true, first.expires_at),
            ("hooked", 2, false, second.expires_at)
        ]
    );
    let shown = format!("{heard:?}");
    assert!(
        !shown.contains(first.secret.expose_secret())
            && !shown.contains(second.secret.expose_secret())
    );
}

/// Tokens that lose the compare-and-swap to another writer are kept as an orphan, and the hook hears them as such:
/// the version of the record they were kept beside, `kept_as_orphan`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_kept_as_an_orphan_are_heard_as_one() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("raced");
    let store = ScriptedStore::new();
    let heard: Arc<Mutex<Vec<Rotated>>> = Arc::default();
    // In the foreground only: a background renewal, started by the timer as the clock moves past the expiry, could
    // reach the vendor before its latency is set and leave the read below nothing to renew.
    let options = h.options().foreground_only().on_rotate({
        let heard = Arc::clone(&heard);
        move |rotated| heard.lock().unwrap().push(rotated.clone())
    });
    let manager = Arc::new(refresh_manager::Manager::with_options(
        store.clone(),
        options,
    ));
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    let first = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    h.advance_past(first.expires_at, Duration::from_secs(1));
    // The vendor answers slowly; meanwhile another writer, whose lease outlived this one's, stores version 2.
    h.sandbox
        .set_latency(Emulator::ISolarCloud, Duration::from_secs(1));
    let before = h.sandbox.requests(Emulator::ISolarCloud).len();
    let renewal = tokio::spawn({
        let (manager, id) = (Arc::clone(&manager), id.clone());
        async move { manager.access_token(&id).await }
    });
    // Once the refresh reached the vendor (which holds it a second), the other writer stores.
    for _ in 0..2_000 {
        if h.sandbox.requests(Emulator::ISolarCloud).len() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        h.sandbox.requests(Emulator::ISolarCloud).len() > before,
        "the refresh never reached the vendor"
    );
    let mut theirs = store.load(&id).await.unwrap().unwrap().tokens;
    theirs.obtained_at = h.clock().wall();
    theirs.expires_at = theirs.obtained_at + chrono::TimeDelta::hours(1);
    store.overtake(&id, theirs);
    renewal.await.unwrap().unwrap();
    let heard = heard.lock().unwrap().clone();
    let seen: Vec<_> = heard
        .iter()
        .map(|r| (r.version, r.by_login, r.kept_as_orphan))
        .collect();
    assert_eq!(seen, [(1, true, false), (2, false, true)]);
    assert_eq!(store.load(&id).await.unwrap().unwrap().orphans.len(), 1);
}

/// An authorizer's refresh that WeChat refuses for another reason than the component token (61023: the refresh
/// token is not valid) does not renew the component token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_component_token_error_renews_the_component_token() {
    let h = Harness::start(Emulator::WechatOpen).await;
    let (component_id, authorizer_id) = (id("wx-component"), id("wx-authorizer"));
    let store = MemoryStore::new();
    let manager = h.manager(store.clone());
    manager.manage(
        component_id.clone(),
        h.credential(Emulator::WechatOpen)
            .with_login(h.login(Emulator::WechatOpen)),
    );
    manager.manage(
        authorizer_id.clone(),
        h.credential(Emulator::WechatOpen)
            .with_component_token(component_id.clone()),
    );
    manager.access_token(&component_id).await.unwrap();
    let now = h.clock().wall();
    let unknown: StoredTokens = serde_json::from_value(json!({
        "vendor": "wechat-open",
        "access_token": "authorizer-access-unknown",
        "refresh_token": "refreshtoken@@@unknown",
        "obtained_at": now - TimeDelta::hours(3),
        "expires_at": now - TimeDelta::hours(1),
        "refreshable_until": null,
    }))
    .unwrap();
    let _ = store
        .compare_and_swap_under_lock(&authorizer_id, None, &unknown)
        .await
        .unwrap();
    let refused = manager.access_token(&authorizer_id).await.unwrap_err();
    assert!(refused.is_reauthorization_required(), "{refused}");
    assert_eq!(
        refused.refresh_error().unwrap().vendor_code(),
        Some("61023")
    );
    assert_eq!(
        h.requests_to(Emulator::WechatOpen, "api_component_token"),
        1,
        "the first, only"
    );
    assert_eq!(
        h.requests_to(Emulator::WechatOpen, "api_authorizer_token"),
        1,
        "no retry"
    );
}

/// Logs `manager`'s iSolarCloud credential in, spends its refresh token outside the manager (as a process that
/// never stored the result would), and moves time past the access token's expiry: the credential is dead.
async fn log_in_then_spend_elsewhere(
    h: &Harness,
    manager: &refresh_manager::Manager<MemoryStore>,
    store: &MemoryStore,
    id: &refresh_manager::CredentialId,
) {
    let first = manager
        .login(id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    let stored = store.load(id).await.unwrap().unwrap();
    h.refresher(Emulator::ISolarCloud)
        .refresh(&stored.tokens.grant())
        .await
        .unwrap();
    h.advance_past(first.expires_at, Duration::from_secs(1));
}

/// Another process's manager logs the credential in on `store`, then stops.
async fn log_in_elsewhere(
    h: &Harness,
    store: &MemoryStore,
    id: &refresh_manager::CredentialId,
) -> Arc<refresh_manager::AccessToken> {
    let other = h.manager(store.clone());
    other.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    other
        .login(id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap()
}
