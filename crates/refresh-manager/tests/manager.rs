//! The manager against the sandbox, which enforces rotation: one refresh however many callers, a refresh that
//! outlives its callers, tokens another process stored, and a terminal error that someone else's rotation
//! explains.

mod support;

use std::sync::Arc;
use std::time::Duration;

use refresh_facade::{Grant, Refresher, TokenSet};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerError, MemoryStore, StoredTokens, TokenStore,
    Versioned,
};
use refresh_sandbox::{Emulator, Fault};
use support::{Harness, ScriptedStore};

/// One iSolarCloud credential: it refreshes after the access token expired (its refresh token lives 30 days), so
/// callers can arrive with no valid token at all.
struct Setup {
    harness: Harness,
    id: CredentialId,
}

impl std::ops::Deref for Setup {
    type Target = Harness;

    fn deref(&self) -> &Harness {
        &self.harness
    }
}

impl Setup {
    async fn new() -> Self {
        Setup {
            harness: Harness::start(Emulator::ISolarCloud).await,
            id: CredentialId::new("isolarcloud-test").unwrap(),
        }
    }

    fn refresher(&self) -> Refresher {
        self.harness.refresher(Emulator::ISolarCloud)
    }

    /// The credential, with calls given up after `timeout`.
    fn credential_with_call_timeout(&self, timeout: Duration) -> CredentialOptions {
        CredentialOptions::new(self.refresher().with_call_timeout(timeout))
    }

    /// A manager of the credential on `store`, logged in if the store holds nothing yet.
    async fn manager<S: TokenStore + 'static>(&self, store: S) -> Manager<S> {
        let manager = self.unlogged_manager(store);
        if manager.store().load(&self.id).await.unwrap().is_none() {
            manager.login(&self.id, &self.login_grant()).await.unwrap();
        }
        manager
    }

    /// A manager of the credential on `store`, without a login.
    fn unlogged_manager<S: TokenStore + 'static>(&self, store: S) -> Manager<S> {
        let manager = self.harness.manager(store);
        manager.manage(self.id.clone(), self.credential(Emulator::ISolarCloud));
        manager
    }

    /// Another process's refresh of the stored tokens, outside this test's managers: the vendor rotates, and the
    /// stored refresh token is spent. What was stored, and what the vendor issued.
    async fn refresh_elsewhere(&self, store: &impl TokenStore) -> (Versioned, TokenSet) {
        let stored = store.load(&self.id).await.unwrap().unwrap();
        let issued = self
            .refresher()
            .refresh(&stored.tokens.grant())
            .await
            .unwrap();
        (stored, issued)
    }

    /// A first login at the sandbox.
    fn login_grant(&self) -> Grant {
        self.login(Emulator::ISolarCloud)
    }

    /// Moves the sandbox's (and the manager's) time to just past the expiry of `token`.
    fn expire(&self, expires_at: chrono::DateTime<chrono::Utc>) {
        self.advance_past(expires_at, Duration::from_secs(1));
    }

    fn refreshes(&self) -> usize {
        self.requests_to(Emulator::ISolarCloud, "refreshToken")
    }
}

/// The stored version once it reaches `wanted`, or what it is after 10 seconds (the refresh is slowed on purpose).
async fn stored_version(manager: &Manager<MemoryStore>, id: &CredentialId, wanted: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let version = manager
            .store()
            .load(id)
            .await
            .unwrap()
            .map_or(0, |r| r.version);
        if version >= wanted || tokio::time::Instant::now() > deadline {
            return version;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_at_expiry_cause_one_refresh_and_get_one_token() {
    let setup = Setup::new().await;
    let manager = setup.manager(MemoryStore::new()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    // While valid: the same token, and nothing sent.
    let again = manager.access_token(&setup.id).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(setup.refreshes(), 0);

    setup.expire(first.expires_at);
    let callers: Vec<_> = (0..200)
        .map(|_| {
            let (manager, id) = (manager.clone(), setup.id.clone());
            tokio::spawn(async move { manager.access_token(&id).await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap());
    }
    assert_eq!(setup.refreshes(), 1, "one upstream refresh");
    assert!(
        tokens
            .iter()
            .all(|t| t.version == 2 && t.secret == tokens[0].secret)
    );
    assert_ne!(tokens[0].secret, first.secret);
    let stored = manager.store().load(&setup.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2, "stored before it was handed out");
    assert_eq!(stored.tokens.access_token, tokens[0].secret);
}

/// A caller that stops waiting does not abandon the refresh: it runs to its commit, and the next caller gets its
/// tokens without another upstream call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_outlives_the_callers_that_stop_waiting() {
    let setup = Setup::new().await;
    let manager = setup.manager(MemoryStore::new()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    setup.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::Latency(Duration::from_millis(300)),
    );
    setup.expire(first.expires_at);
    let gave_up =
        tokio::time::timeout(Duration::from_millis(20), manager.access_token(&setup.id)).await;
    assert!(gave_up.is_err(), "the caller stopped waiting");
    let stored = stored_version(&manager, &setup.id, 2).await;
    assert_eq!(stored, 2, "the refresh committed without a caller");
    let next = manager.access_token(&setup.id).await.unwrap();
    assert_eq!((next.version, setup.refreshes()), (2, 1));
}

/// Two managers (as two processes would) on one store: the second finds the tokens the first stored, and neither
/// reports the credential dead because the other rotated it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_another_manager_stored_are_used_not_refreshed_again() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let one = setup.manager(store.clone()).await;
    let other = setup.manager(store.clone()).await;
    let first = one.access_token(&setup.id).await.unwrap();
    assert_eq!(other.access_token(&setup.id).await.unwrap().version, 1);

    setup.expire(first.expires_at);
    let refreshed = one.access_token(&setup.id).await.unwrap();
    // `other` still caches version 1, expired: it finds version 2 in the store instead of rotating again.
    let found = other.access_token(&setup.id).await.unwrap();
    assert_eq!((refreshed.version, found.version), (2, 2));
    assert_eq!(found.secret, refreshed.secret);
    assert_eq!(setup.refreshes(), 1);
}

/// Once a token is due but still valid, callers keep getting it at once while one refresh runs behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_token_is_served_while_it_is_refreshed_in_the_background() {
    let setup = Setup::new().await;
    let manager = setup.manager(MemoryStore::new()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    let clock = setup.sandbox.clock();
    setup.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::Latency(Duration::from_millis(200)),
    );
    let due = (first.refresh_at - clock.now()).to_std().unwrap() + Duration::from_secs(1);
    setup.advance(due);
    assert!(clock.now() < first.expires_at);
    for _ in 0..20 {
        let served =
            tokio::time::timeout(Duration::from_millis(100), manager.access_token(&setup.id))
                .await
                .expect("a valid token is served without waiting")
                .unwrap();
        assert_eq!(served.version, 1);
    }
    assert_eq!(stored_version(&manager, &setup.id, 2).await, 2);
    let next = manager.access_token(&setup.id).await.unwrap();
    assert_eq!((next.version, setup.refreshes()), (2, 1));
}

#[tokio::test]
async fn unknown_and_unstored_credentials_are_typed_errors() {
    let setup = Setup::new().await;
    let manager = setup.harness.manager(MemoryStore::new());
    let unknown = manager.access_token(&setup.id).await.unwrap_err();
    assert!(
        matches!(unknown, ManagerError::Unknown(ref id) if *id == setup.id),
        "{unknown}"
    );
    manager.manage(setup.id.clone(), setup.credential(Emulator::ISolarCloud));
    let unstored = manager.access_token(&setup.id).await.unwrap_err();
    assert!(matches!(unstored, ManagerError::NotStored(_)), "{unstored}");
    assert_eq!(setup.refreshes(), 0);
}

/// A process that starts after the stored token expired refreshes it; it never hands out the expired one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_expiry_refreshes_the_stored_tokens() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let before = setup.manager(store.clone()).await;
    let first = before.access_token(&setup.id).await.unwrap();
    setup.expire(first.expires_at);
    let restarted = setup.manager(store).await;
    let token = restarted.access_token(&setup.id).await.unwrap();
    assert_eq!((token.version, setup.refreshes()), (2, 1));
    assert!(token.expires_at > setup.sandbox.clock().now());
}

/// A refusal is reported only when the store did not move on: if another writer rotated the credential while this
/// refresh was refused, its tokens are the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_no_error_when_another_writer_rotated_meanwhile() {
    let setup = Setup::new().await;
    let store = ScriptedStore::new();
    let manager = setup.manager(store.clone()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    // Another writer rotates (the sandbox spends the stored refresh token) but has not stored the result yet.
    let (_, rotated) = setup.refresh_elsewhere(&store).await;
    setup.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::Latency(Duration::from_millis(300)),
    );
    setup.expire(first.expires_at);
    let refreshing = {
        let (manager, id) = (manager.clone(), setup.id.clone());
        tokio::spawn(async move { manager.access_token(&id).await })
    };
    // While the vendor holds the refresh: the other writer, whose lease outlived this one's, stores version 2.
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.overtake(&setup.id, StoredTokens::from(&rotated));
    let token = refreshing.await.unwrap().expect("no false 'log in again'");
    // The other writer's tokens were issued before the clock moved past expiry, so the manager refreshed them in
    // turn: version 3, from the refresh token the other writer stored.
    assert_eq!(token.version, 3);
    let stored = store.load(&setup.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.version, &stored.tokens.access_token),
        (3, &token.secret)
    );
    assert_ne!(token.secret, rotated.access_token);
    assert_eq!(
        setup.refreshes(),
        3,
        "ours (refused), theirs, and ours from theirs"
    );
}

/// When nobody else rotated, a refusal is the credential's end, reported as it is; the dead tokens are not handed
/// out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_with_the_store_unchanged_is_reported() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let manager = setup.manager(store.clone()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    // Spent elsewhere, and never stored: the credential is gone.
    let _ = setup.refresh_elsewhere(&store).await;
    setup.expire(first.expires_at);
    let error = manager.access_token(&setup.id).await.unwrap_err();
    let ManagerError::Refresh(refused) = &error else {
        panic!("{error}")
    };
    assert!(refused.is_reauthorization_required(), "{refused}");
}

/// How often a renewal tries to write fresh tokens before it lets go of the store's lock: once, and five more
/// times after pauses (50 ms to 800 ms).
const WRITE_TRIES: usize = 6;

/// A store that fails a few writes takes the vendor's tokens at a later try within the same renewal, under the same
/// lock: another manager on the store (a replica) waiting for that lock never presents the refresh token the vendor
/// just spent, and neither caller sees an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_store_failed_is_tried_again_under_the_same_lock() {
    let setup = Setup::new().await;
    let store = ScriptedStore::new();
    let one = setup.manager(store.clone()).await;
    let other = setup.manager(store.clone()).await;
    let first = one.access_token(&setup.id).await.unwrap();
    assert_eq!(other.access_token(&setup.id).await.unwrap().version, 1);
    store
        .failing_writes
        .store(WRITE_TRIES - 1, std::sync::atomic::Ordering::SeqCst);
    setup.expire(first.expires_at);
    let (a, b) = tokio::join!(one.access_token(&setup.id), other.access_token(&setup.id));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.version, b.version, setup.refreshes()), (2, 2, 1));
    let stored = store.load(&setup.id).await.unwrap().unwrap();
    assert_eq!(stored.tokens.access_token, a.secret);
}

/// Under a lease, the tries stop before it lapses: the tokens wait in memory, and the caller gets the store's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_tried_again_only_while_the_lease_lasts() {
    use std::sync::atomic::Ordering;
    let setup = Setup::new().await;
    let store = ScriptedStore {
        // Time for one call of at most 1 s, and the first four pauses (750 ms in all), not the fifth.
        lease_left: Some(Duration::from_millis(1_200)),
        ..ScriptedStore::new()
    };
    let options = setup.options().foreground_only();
    let manager = Manager::with_options(store.clone(), options);
    manager.manage(
        setup.id.clone(),
        setup.credential_with_call_timeout(Duration::from_secs(1)),
    );
    let first = manager
        .login(&setup.id, &setup.login_grant())
        .await
        .unwrap();
    store.failing_writes.store(100, Ordering::SeqCst);
    setup.expire(first.expires_at);
    let failed = manager.access_token(&setup.id).await.unwrap_err();
    assert!(matches!(failed, ManagerError::Store(_)), "{failed}");
    let tries = 100 - store.failing_writes.load(Ordering::SeqCst);
    assert!((2..WRITE_TRIES).contains(&tries), "{tries} tries");
    assert_eq!(setup.refreshes(), 1);
}

/// The vendor rotated but the store failed to take the new tokens, at every try under the lock: they are not
/// handed out, not dropped, and the next refresh writes them instead of presenting the spent refresh token again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_the_store_failed_to_take_are_written_before_the_vendor_is_asked_again() {
    let setup = Setup::new().await;
    let store = ScriptedStore::new();
    let manager = setup.unlogged_manager(store.clone());
    let grant = setup.login_grant();
    let first = manager.login(&setup.id, &grant).await.unwrap();
    // Before the clock moves: the background renewal that expiry starts must meet the failing store too.
    store
        .failing_writes
        .store(WRITE_TRIES, std::sync::atomic::Ordering::SeqCst);
    setup.expire(first.expires_at);
    let failed = manager.access_token(&setup.id).await.unwrap_err();
    assert!(matches!(failed, ManagerError::Store(_)), "{failed}");
    assert_eq!(setup.refreshes(), 1, "the vendor rotated");
    assert_eq!(store.load(&setup.id).await.unwrap().unwrap().version, 1);

    // After the backoff's first wait (at most 1 s), the held tokens are written.
    setup.advance(Duration::from_secs(2));
    let token = manager.access_token(&setup.id).await.unwrap();
    assert_eq!(
        (token.version, setup.refreshes()),
        (2, 1),
        "written, not refreshed again"
    );
    let stored = store.load(&setup.id).await.unwrap().unwrap();
    assert_eq!(stored.tokens.access_token, token.secret);
    // And the written refresh token is the live one.
    let next = setup.refresher().refresh(&stored.tokens.grant()).await;
    assert!(next.is_ok(), "{next:?}");
}

/// A login whose tokens the store failed to take keeps them (its authorization code is spent): the next call
/// writes them, with no new login and no refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_the_store_failed_to_take_is_written_by_the_next_call() {
    let setup = Setup::new().await;
    let store = ScriptedStore::new();
    let manager = setup.unlogged_manager(store.clone());
    let grant = setup.login_grant();
    store
        .failing_writes
        .store(WRITE_TRIES, std::sync::atomic::Ordering::SeqCst);
    let failed = manager.login(&setup.id, &grant).await.unwrap_err();
    assert!(matches!(failed, ManagerError::Store(_)), "{failed}");
    assert_eq!(store.load(&setup.id).await.unwrap(), None);
    setup.advance(Duration::from_secs(2));
    let token = manager.access_token(&setup.id).await.unwrap();
    assert_eq!((token.version, setup.refreshes()), (1, 0));
    assert_eq!(
        store
            .load(&setup.id)
            .await
            .unwrap()
            .unwrap()
            .tokens
            .access_token,
        token.secret
    );
}

/// Registering a credential again does not drop tokens the store failed to take under the old registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_again_keeps_the_tokens_the_store_failed_to_take() {
    let setup = Setup::new().await;
    let store = ScriptedStore::new();
    let manager = setup.unlogged_manager(store.clone());
    store
        .failing_writes
        .store(WRITE_TRIES, std::sync::atomic::Ordering::SeqCst);
    let grant = setup.login_grant();
    assert!(manager.login(&setup.id, &grant).await.is_err());
    manager.manage(setup.id.clone(), setup.credential(Emulator::ISolarCloud));
    let token = manager.access_token(&setup.id).await.unwrap();
    assert_eq!(token.version, 1, "the login's tokens, written now");
    let stored = store.load(&setup.id).await.unwrap().unwrap();
    assert_eq!(stored.tokens.access_token, token.secret);
}

/// A lease is counted from when it was taken, not from when it was first asked for: a replica that waited for
/// another's lease to end (a stopped holder's lapsing) still refreshes under the whole lease it then holds. Found by
/// the simulation (`hold`, PgStore): the waiter's lease was counted as already spent on the wait, and it refused to
/// call the vendor (`LeaseTooShort`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_after_a_long_wait_is_counted_from_when_it_was_taken() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let leased = ScriptedStore {
        inner: store.clone(),
        // What is left of the lease as it is taken: time for a call of at most 500 ms, not for the wait before.
        lease_left: Some(Duration::from_millis(1_000)),
        ..ScriptedStore::new()
    };
    let manager = Manager::with_options(leased, setup.options().foreground_only());
    manager.manage(
        setup.id.clone(),
        setup.credential_with_call_timeout(Duration::from_millis(500)),
    );
    let first = manager
        .login(&setup.id, &setup.login_grant())
        .await
        .unwrap();
    setup.expire(first.expires_at);
    // Another holder, stopped, keeps the lock for 1.5 s: longer than the lease that follows it.
    let held = store.lock(&setup.id).await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        drop(held);
    });
    let renewed = manager.access_token(&setup.id).await;
    release.await.unwrap();
    let renewed = renewed.unwrap();
    assert_eq!((renewed.version, setup.refreshes()), (2, 1));
}

/// Under a lease shorter than a vendor call may take, the manager sends nothing, neither a login nor a refresh (a
/// retryable error), yet still adopts tokens another holder stored; with a lease long enough, it refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_vendor_call_is_sent_under_a_lease_that_could_lapse_first() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let lease = |left| ScriptedStore {
        inner: store.clone(),
        lease_left: Some(left),
        ..ScriptedStore::new()
    };
    let short = setup.unlogged_manager(lease(Duration::from_secs(14)));
    let refused = short
        .login(&setup.id, &setup.login_grant())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ManagerError::LeaseTooShort(_)),
        "{refused}"
    );
    assert!(refused.is_retryable());
    // In the foreground only: its own background refresh would race the reads below.
    // A 2 s lease outlasts a call of at most 1 s.
    let options = setup.options().foreground_only();
    let long = Manager::with_options(lease(Duration::from_secs(2)), options);
    long.manage(
        setup.id.clone(),
        setup.credential_with_call_timeout(Duration::from_secs(1)),
    );
    long.login(&setup.id, &setup.login_grant()).await.unwrap();
    // Past the wait after the refused login, the short-leased manager reads what `long` logged in.
    setup.advance(Duration::from_secs(2));
    let first = short.access_token(&setup.id).await.unwrap();
    setup.expire(first.expires_at);
    let refused = short.access_token(&setup.id).await.unwrap_err();
    assert!(
        matches!(refused, ManagerError::LeaseTooShort(_)),
        "{refused}"
    );
    assert_eq!(setup.refreshes(), 0);

    assert_eq!(long.access_token(&setup.id).await.unwrap().version, 2);
    assert_eq!(setup.refreshes(), 1);
    // The short-leased manager, once its wait is over, adopts the stored tokens without calling the vendor.
    setup.advance(Duration::from_secs(2));
    assert_eq!(short.access_token(&setup.id).await.unwrap().version, 2);
    assert_eq!(setup.refreshes(), 1);
}

/// `renewals_finished` returns once the background refresh of a due token has committed; a manager that renews in
/// the foreground only sets no timer and makes the read of a due token wait for its renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_process_leaves_no_renewal_running() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let background = setup.manager(store.clone()).await;
    let first = background.access_token(&setup.id).await.unwrap();
    setup.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::Latency(Duration::from_millis(300)),
    );
    let due = (first.refresh_at - setup.sandbox.clock().now())
        .to_std()
        .unwrap()
        + Duration::from_secs(1);
    setup.advance(due);
    assert_eq!(
        background.access_token(&setup.id).await.unwrap().version,
        1,
        "served, renewed behind"
    );
    background.renewals_finished().await;
    assert_eq!(store.load(&setup.id).await.unwrap().unwrap().version, 2);

    let options = setup.options().foreground_only();
    let foreground = Manager::with_options(store.clone(), options);
    foreground.manage(setup.id.clone(), setup.credential(Emulator::ISolarCloud));
    let second = foreground.access_token(&setup.id).await.unwrap();
    assert_eq!((second.version, foreground.pending_timers()), (2, 0));
    let due = (second.refresh_at - setup.sandbox.clock().now())
        .to_std()
        .unwrap()
        + Duration::from_secs(1);
    setup.advance(due);
    let third = foreground.access_token(&setup.id).await.unwrap();
    assert_eq!(
        (third.version, setup.refreshes()),
        (3, 2),
        "the due token's read waited for its renewal"
    );
    assert_eq!(foreground.pending_timers(), 0);

    // A due token whose renewal fails is still served while it is valid.
    let due = (third.refresh_at - setup.sandbox.clock().now())
        .to_std()
        .unwrap()
        + Duration::from_secs(1);
    setup.advance(due);
    setup
        .sandbox
        .inject(Emulator::ISolarCloud, Fault::server_error(503));
    let served = foreground.access_token(&setup.id).await.unwrap();
    assert_eq!((served.version, setup.refreshes()), (3, 3));
}

/// An orphan replaces the record only after the vendor refused the record's refresh token for good: after an error
/// that may pass (a 503), the record, whose refresh token may well be live, stays as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_that_may_pass_promotes_no_orphan() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let manager = setup.manager(store.clone()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    let login = setup.sandbox.login(Emulator::ISolarCloud);
    let orphaned: StoredTokens = serde_json::from_value(serde_json::json!({
        "vendor": "isolarcloud",
        "access_token": login.access_token,
        "refresh_token": login.refresh_token,
        "obtained_at": setup.sandbox.clock().now(),
        "expires_at": first.expires_at,
        "refreshable_until": null,
    }))
    .unwrap();
    store
        .keep_orphan_under_lock(&setup.id, &orphaned)
        .await
        .unwrap();
    let before = store.load(&setup.id).await.unwrap().unwrap();

    setup.expire(first.expires_at);
    setup
        .sandbox
        .inject(Emulator::ISolarCloud, Fault::server_error(503));
    let failed = manager.access_token(&setup.id).await.unwrap_err();
    assert!(failed.is_retryable(), "{failed}");
    let after = store.load(&setup.id).await.unwrap().unwrap();
    assert_eq!(
        (after.version, &after.tokens.refresh_token),
        (before.version, &before.tokens.refresh_token),
        "an orphan replaced the record after an error that may pass"
    );
}

/// Another replica refreshed, the vendor rotated, and that replica's write was refused (it was paused past its
/// lease, say): its tokens sit in the orphans, and the stored refresh token is spent. When the vendor refuses the
/// stored one, the manager takes the orphan's tokens, the last the vendor issued, instead of reporting a dead
/// credential, and renews from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_gives_way_to_the_orphan_the_vendor_issued_from_it() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let manager = setup.manager(store.clone()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    // The paused replica's refresh: the vendor rotates, and the answer lands in the orphans.
    let (stored, issued) = setup.refresh_elsewhere(&store).await;
    let orphaned = StoredTokens::from(&issued);
    store
        .keep_orphan_under_lock(&setup.id, &orphaned)
        .await
        .unwrap();

    setup.expire(first.expires_at);
    let renewed = manager.access_token(&setup.id).await.unwrap();
    let record = store.load(&setup.id).await.unwrap().unwrap();
    assert_eq!(renewed.version, record.version);
    assert!(record.version >= 2, "{}", record.version);
    // The refusal of the spent token, then the orphan's renewal: no error reached the caller.
    assert_eq!(setup.refreshes(), 3);
    assert_ne!(
        record.tokens.refresh_token.expose_secret(),
        stored.tokens.refresh_token.expose_secret()
    );
}

/// The same, when the orphan arrives only after the manager reported the refusal (the paused replica resumed
/// later): the next look at the store takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_kept_after_a_refusal_revives_the_credential() {
    let setup = Setup::new().await;
    let store = MemoryStore::new();
    let manager = setup.manager(store.clone()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    let (_, issued) = setup.refresh_elsewhere(&store).await;
    setup.expire(first.expires_at);
    let refused = manager.access_token(&setup.id).await.unwrap_err();
    assert!(refused.is_reauthorization_required(), "{refused}");

    store
        .keep_orphan_under_lock(&setup.id, &StoredTokens::from(&issued))
        .await
        .unwrap();
    setup.advance(Duration::from_secs(61));
    let revived = manager.access_token(&setup.id).await.unwrap();
    assert!(revived.version >= 2, "{}", revived.version);
    assert_eq!(
        store.load(&setup.id).await.unwrap().unwrap().version,
        revived.version
    );
}

/// A fenced-off write, with no valid token in the record it lost to: the vendor's answer is kept as an orphan and
/// callers get a retryable error, not the expired token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_off_write_with_no_valid_token_stored_is_a_retryable_error() {
    let setup = Setup::new().await;
    let store = ScriptedStore::new();
    let manager = setup.manager(store.clone()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    // Before the clock moves: the background renewal that expiry starts must be fenced off too.
    store.fence(store.load(&setup.id).await.unwrap());
    setup.expire(first.expires_at);
    let error = manager.access_token(&setup.id).await.unwrap_err();
    assert!(matches!(error, ManagerError::Superseded(_)), "{error}");
    assert!(error.is_retryable() && !error.is_reauthorization_required());
    let record = store.load(&setup.id).await.unwrap().unwrap();
    assert_eq!((record.version, record.orphans.len()), (1, 1));
}

/// An orphan is promoted only if it lost to the refused version and holds another, non-blank refresh token; and a
/// promotion that loses takes a newer record, never the same one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_orphan_of_the_refused_version_with_a_new_refresh_token_is_promoted() {
    let setup = Setup::new().await;
    let store = ScriptedStore::new();
    let manager = setup.manager(store.clone()).await;
    let first = manager.access_token(&setup.id).await.unwrap();
    let (stored, issued) = setup.refresh_elsewhere(&store).await;
    // Orphans that must not be promoted: the refused tokens again, and tokens without a refresh token.
    store
        .keep_orphan_under_lock(&setup.id, &stored.tokens)
        .await
        .unwrap();
    let mut blank = StoredTokens::from(&issued);
    blank.refresh_token = String::new().into();
    store
        .keep_orphan_under_lock(&setup.id, &blank)
        .await
        .unwrap();
    setup.expire(first.expires_at);
    let refused = manager.access_token(&setup.id).await.unwrap_err();
    assert!(refused.is_reauthorization_required(), "{refused}");
    assert_eq!(store.load(&setup.id).await.unwrap().unwrap().version, 1);

    // The vendor's last answer as an orphan, whose promotion is fenced off by the same record: reported, once.
    store
        .keep_orphan_under_lock(&setup.id, &StoredTokens::from(&issued))
        .await
        .unwrap();
    let current = store.load(&setup.id).await.unwrap();
    store.fence(current.clone());
    setup.advance(Duration::from_secs(61));
    let looked = tokio::time::timeout(Duration::from_secs(10), manager.access_token(&setup.id))
        .await
        .expect("a promotion that loses to the same record is not tried again and again");
    assert!(looked.unwrap_err().is_reauthorization_required());

    // Fenced off by a newer record (another replica's, with a valid token): that one is taken.
    setup.advance(Duration::from_secs(61));
    let fresher = setup
        .refresher()
        .refresh(&StoredTokens::from(&issued).grant())
        .await
        .unwrap();
    let newer = Versioned::with_orphans(2, StoredTokens::from(&fresher), Vec::new());
    store.fence(Some(newer));
    let taken = manager.access_token(&setup.id).await.unwrap();
    assert_eq!(taken.version, 2);
    assert_eq!(
        taken.secret.expose_secret(),
        fresher.access_token.expose_secret()
    );
}
