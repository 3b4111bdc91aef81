//! `PgStore` against a real PostgreSQL server: compare-and-swap, orphans, a lease that one holder has at a time,
//! the fence that refuses a lapsed holder's write, waiters woken by `NOTIFY`, a wrong key, and a canary token that
//! never reaches the database's files or the logs in the clear.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refresh_manager::conformance::{self, tokens};
use refresh_manager::{CredentialId, LockKind, StoreError, Swap, TokenStore};
use refresh_postgres::{Keyring, PgStore, PgStoreOptions};
use support::{Database, keys};

fn id(name: &str) -> CredentialId {
    CredentialId::new(name).unwrap()
}

async fn store(database: &Database, lease: Duration) -> PgStore {
    PgStore::connect_with(
        &database.url,
        keys(),
        PgStoreOptions::default().with_lease(lease),
    )
    .await
    .unwrap()
}

/// What every store must do (refresh-manager's conformance suite), with two stores on one database for the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_conforms_to_what_every_token_store_must_do() {
    let database = Database::new();
    let lease = Duration::from_secs(30);
    let (one, other) = (store(&database, lease).await, store(&database, lease).await);
    conformance::compare_and_swap_writes_only_the_expected_version(&one).await;
    conformance::orphans_are_kept_across_writes(&one).await;
    conformance::orphans_are_pruned_to_the_most_a_credential_keeps(&one).await;
    conformance::of_racing_writers_exactly_one_wins(Arc::new(one.clone())).await;
    conformance::a_write_goes_to_the_credential_its_lock_is_held_on(&one).await;
    conformance::the_lock_lets_one_holder_in_at_a_time(&one, &other).await;
}

/// One holder at a time, in any number of stores (replicas); a waiter is woken by the holder's commit, with a
/// lock that lets it read the new tokens and call no vendor; a lease given up lets the next one take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_holds_the_lease_and_waiters_are_woken_by_its_commit() {
    let database = Database::new();
    let lease = Duration::from_secs(30);
    let (one, other) = (store(&database, lease).await, store(&database, lease).await);
    let id = id("leased");
    let held = one.lock(&id).await.unwrap();
    assert!(
        matches!(one.lock_kind(&held), LockKind::Lease { left } if left > Duration::from_secs(29))
    );
    let waiting = tokio::time::timeout(Duration::from_millis(300), other.lock(&id)).await;
    assert!(waiting.is_err(), "a second holder got in");
    let _free = tokio::time::timeout(Duration::from_secs(5), other.lock(&self::id("free")))
        .await
        .expect("another credential's lease is free")
        .unwrap();

    let waiter = tokio::spawn({
        let (other, id) = (other.clone(), id.clone());
        async move { other.lock(&id).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        one.compare_and_swap(&held, None, &tokens("1"))
            .await
            .unwrap(),
        Swap::Written { version: 1 }
    );
    let woken = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by the commit, long before the lease lapses")
        .unwrap()
        .unwrap();
    assert_eq!(other.lock_kind(&woken), LockKind::ReadOnly);
    // Under a read-only lock, its writes are refused (fenced).
    let refused = other
        .compare_and_swap(&woken, Some(1), &tokens("x"))
        .await
        .unwrap();
    assert!(matches!(refused, Swap::Conflict { .. }));

    drop(held);
    let next = tokio::time::timeout(Duration::from_secs(5), other.lock(&id))
        .await
        .expect("the lease is free once given up")
        .unwrap();
    assert!(
        matches!(other.lock_kind(&next), LockKind::Lease { left } if left > Duration::from_secs(29))
    );
    assert_eq!(
        other
            .compare_and_swap(&next, Some(1), &tokens("2"))
            .await
            .unwrap(),
        Swap::Written { version: 2 }
    );
}

/// A holder whose lease lapsed (it was paused, say) has its write refused once another replica took the lease,
/// even though the version it expects is still current; nothing newer is overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_under_a_lapsed_lease_is_fenced_off() {
    let database = Database::new();
    let lease = Duration::from_millis(500);
    let (stale, fresh) = (store(&database, lease).await, store(&database, lease).await);
    let id = id("fenced");
    let _ = fresh
        .compare_and_swap_under_lock(&id, None, &tokens("1"))
        .await
        .unwrap();
    let stale_lease = stale.lock(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        stale.lock_kind(&stale_lease),
        LockKind::Lease {
            left: Duration::ZERO
        }
    );
    let fresh_lease = fresh.lock(&id).await.unwrap();
    // The version is still the one the stale holder read, but the epoch moved on.
    let swap = stale
        .compare_and_swap(&stale_lease, Some(1), &tokens("stale"))
        .await
        .unwrap();
    let Swap::Conflict {
        current: Some(current),
    } = swap
    else {
        panic!("{swap:?}")
    };
    assert_eq!((current.version, &current.tokens), (1, &tokens("1")));
    // Its tokens are kept as an orphan all the same.
    stale
        .keep_orphan(&stale_lease, &tokens("stale"))
        .await
        .unwrap();
    assert_eq!(
        fresh
            .compare_and_swap(&fresh_lease, Some(1), &tokens("2"))
            .await
            .unwrap(),
        Swap::Written { version: 2 }
    );
    drop((stale_lease, fresh_lease));
    let record = fresh.load(&id).await.unwrap().unwrap();
    assert_eq!((record.version, &record.tokens), (2, &tokens("2")));
    assert_eq!(record.orphans.len(), 1);
    assert_eq!(record.orphans[0].tokens, tokens("stale"));
}

/// A store holding another key under the same id reads nothing and writes over nothing; a store given the old key
/// as an older one reads the row and rewrites it under its current key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_clear_error_and_overwrites_nothing() {
    let database = Database::new();
    let right = store(&database, Duration::from_secs(30)).await;
    let id = id("keyed");
    let _ = right
        .compare_and_swap_under_lock(&id, None, &tokens("1"))
        .await
        .unwrap();
    let wrong_keys = Keyring::new("test-key-1", &[7; 32]).unwrap();
    let wrong = PgStore::connect(&database.url, wrong_keys).await.unwrap();
    let error = wrong.load(&id).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Key { key_id, .. } if key_id == "test-key-1"),
        "{error}"
    );
    assert!(
        error.to_string().contains("does not open with key"),
        "{error}"
    );
    let error = wrong
        .compare_and_swap_under_lock(&id, Some(1), &tokens("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Key { .. }), "{error}");
    let error = wrong
        .keep_orphan_under_lock(&id, &tokens("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Key { .. }), "{error}");
    assert_eq!(right.load(&id).await.unwrap().unwrap().tokens, tokens("1"));

    let unknown = PgStore::connect(&database.url, Keyring::new("other", &[7; 32]).unwrap())
        .await
        .unwrap();
    let error = unknown.load(&id).await.unwrap_err();
    assert!(error.to_string().contains("no key with this id"), "{error}");

    let rotated_keys = Keyring::new("test-key-2", &[8; 32])
        .unwrap()
        .with_older("test-key-1", &[42; 32])
        .unwrap();
    let rotated = PgStore::connect(&database.url, rotated_keys).await.unwrap();
    assert_eq!(
        rotated.load(&id).await.unwrap().unwrap().tokens,
        tokens("1")
    );
    let _ = rotated
        .compare_and_swap_under_lock(&id, Some(1), &tokens("2"))
        .await
        .unwrap();
    let error = right.load(&id).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Key { key_id, .. } if key_id == "test-key-2"),
        "{error}"
    );
}

/// A `tracing` writer that keeps every line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything under `dir`, as bytes.
fn files_under(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_token_never_reaches_the_database_files_or_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let database = Database::throwaway();
    // Statements are logged in full, as an operator chasing a problem might set it.
    let admin = PgStore::connect(&database.url, keys()).await.unwrap();
    drop(admin);
    let client = database.client().await;
    client
        .batch_execute("ALTER SYSTEM SET log_statement = 'all'")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();

    let canary = "CANARY-7f3a9c2e51";
    let store = store(&database, Duration::from_secs(30)).await;
    let id = id("canary");
    let mut sealed = tokens("x");
    sealed.access_token = format!("{canary}-access").into();
    sealed.refresh_token = format!("{canary}-refresh").into();
    let lease = store.lock(&id).await.unwrap();
    let _ = store.compare_and_swap(&lease, None, &sealed).await.unwrap();
    store.keep_orphan(&lease, &sealed).await.unwrap();
    let _ = store
        .compare_and_swap(&lease, Some(1), &sealed)
        .await
        .unwrap();
    drop(lease);
    assert_eq!(store.load(&id).await.unwrap().unwrap().tokens, sealed);
    // On disk: the write-ahead log and, after a checkpoint, the tables themselves.
    client.batch_execute("CHECKPOINT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut files = Vec::new();
    files_under(&database.cluster().data_dir(), &mut files);
    files_under(
        database.cluster().data_dir().parent().unwrap(),
        &mut Vec::new(),
    );
    let server_log = std::fs::read(
        database
            .cluster()
            .data_dir()
            .parent()
            .unwrap()
            .join("server.log"),
    )
    .unwrap();
    files.push(("server.log".into(), server_log.clone()));
    assert!(
        String::from_utf8_lossy(&server_log).contains("refresh_kit_credentials"),
        "the server logged our statements"
    );
    let needle = canary.as_bytes();
    for (path, bytes) in &files {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the canary is in {}",
            path.display()
        );
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains(canary), "{logs}");
    assert!(!format!("{store:?}").contains(canary));
    // The search was real: the sealed tokens are in the files, only not in the clear.
    assert!(files.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() > 1_000_000);
}

/// A waiter is woken by a commit of its own credential only; a holder that dies without giving its lease up (here
/// the lease is leaked) holds it until it lapses, and then the waiter takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_wake_for_their_own_credential_and_take_a_lapsed_lease() {
    let database = Database::new();
    let (one, other) = (
        store(&database, Duration::from_millis(800)).await,
        store(&database, Duration::from_millis(800)).await,
    );
    let (id, elsewhere) = (id("watched"), self::id("elsewhere"));
    let held = one.lock(&id).await.unwrap();
    let waiter = tokio::spawn({
        let (other, id) = (other.clone(), id.clone());
        async move { other.lock(&id).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = one
        .compare_and_swap_under_lock(&elsewhere, None, &tokens("x"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "woken by another credential's commit"
    );
    let _ = one
        .compare_and_swap(&held, None, &tokens("1"))
        .await
        .unwrap();
    let woken = tokio::time::timeout(Duration::from_millis(500), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(other.lock_kind(&woken), LockKind::ReadOnly);

    // Never given up: it lapses after its 800 ms, and the waiter gets it then.
    std::mem::forget(held);
    let started = std::time::Instant::now();
    let taken = tokio::time::timeout(Duration::from_secs(5), other.lock(&id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(other.lock_kind(&taken), LockKind::Lease { left } if left > Duration::from_millis(500))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Sealed tokens are bound to their row: a ciphertext copied into another credential's row, or from a record into
/// an orphan, does not open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_tokens_do_not_open_in_another_row() {
    let database = Database::new();
    let store = store(&database, Duration::from_secs(30)).await;
    let (a, b) = (id("row-a"), id("row-b"));
    let _ = store
        .compare_and_swap_under_lock(&a, None, &tokens("a"))
        .await
        .unwrap();
    let _ = store
        .compare_and_swap_under_lock(&b, None, &tokens("b"))
        .await
        .unwrap();
    store
        .keep_orphan_under_lock(&b, &tokens("orphan"))
        .await
        .unwrap();
    let client = database.client().await;
    client
        .execute(
            "UPDATE refresh_kit_credentials SET tokens = (SELECT tokens FROM refresh_kit_credentials WHERE id = 'row-a')
              WHERE id = 'row-b'",
            &[],
        )
        .await
        .unwrap();
    let error = store.load(&b).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Key { reason, .. } if reason.contains("authentication")),
        "{error}"
    );
    client
        .execute(
            "UPDATE refresh_kit_credentials SET tokens = (SELECT tokens FROM refresh_kit_orphans LIMIT 1)
              WHERE id = 'row-a'",
            &[],
        )
        .await
        .unwrap();
    assert!(matches!(
        store.load(&a).await.unwrap_err(),
        StoreError::Key { .. }
    ));
}

/// `Debug` shows the settings, the owner and the key ids, never key material; the owner is what the lease row
/// names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_and_the_lease_row_name_the_owner_not_the_keys() {
    let database = Database::new();
    let options = PgStoreOptions::default()
        .with_lease(Duration::from_secs(30))
        .with_pool_size(3)
        .with_connect_timeout(Duration::from_secs(2));
    let store = PgStore::connect_with(&database.url, keys(), options)
        .await
        .unwrap();
    let shown = format!("{store:?}");
    for expected in [
        "pool_size: 3",
        "connect_timeout: 2s",
        "lease: 30s",
        "test-key-1",
        store.owner(),
    ] {
        assert!(shown.contains(expected), "{expected}: {shown}");
    }
    assert!(
        store
            .owner()
            .starts_with(&format!("pid {} ", std::process::id())),
        "{}",
        store.owner()
    );
    assert!(!shown.contains("42, 42"), "{shown}");
    let id = id("owned");
    let lease = store.lock(&id).await.unwrap();
    assert!(format!("{lease:?}").contains("owned"), "{lease:?}");
    let client = database.client().await;
    let row = client
        .query_one(
            "SELECT lease_owner FROM refresh_kit_credentials WHERE id = 'owned'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), store.owner());
}

/// Two stores in two schemas of one database share the notification channel, but a commit in one schema wakes no
/// waiter of the other: there, the lease is still held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_in_another_schema_wakes_no_waiter_here() {
    let database = Database::new();
    let client = database.client().await;
    client
        .batch_execute("CREATE SCHEMA sa; CREATE SCHEMA sb;")
        .await
        .unwrap();
    let in_schema = |schema: &str| format!("{} options='-c search_path={schema}'", database.url);
    let lease = PgStoreOptions::default().with_lease(Duration::from_secs(30));
    let connect = |url: String| {
        let lease = lease.clone();
        async move { PgStore::connect_with(&url, keys(), lease).await.unwrap() }
    };
    let (a_holder, a_waiter, b) = (
        connect(in_schema("sa")).await,
        connect(in_schema("sa")).await,
        connect(in_schema("sb")).await,
    );
    let id = id("same-name");
    let _held = a_holder.lock(&id).await.unwrap();
    let waiter = tokio::spawn({
        let id = id.clone();
        async move { a_waiter.lock(&id).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = b
        .compare_and_swap_under_lock(&id, None, &tokens("b"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiter.is_finished(),
        "woken by another schema's commit while its own lease is held"
    );
    waiter.abort();
}

/// A short-lived process (the CLI) releases its lease and exits at once: the release is awaited, so the next
/// process takes the lease at once instead of waiting for it to lapse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_released_by_a_process_that_exits_at_once_is_free_at_once() {
    let database = Database::new();
    let url = database.url.clone();
    let id = id("short-lived");
    // The "process": a runtime of its own, dropped (with any task it spawned) right after the release.
    std::thread::spawn({
        let id = id.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let store = PgStore::connect_with(
                    &url,
                    keys(),
                    PgStoreOptions::default().with_lease(Duration::from_secs(30)),
                )
                .await
                .unwrap();
                let lease = store.lock(&id).await.unwrap();
                store.release(lease).await;
            });
        }
    })
    .join()
    .unwrap();
    let next = store(&database, Duration::from_secs(30)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), next.lock(&id))
        .await
        .expect("the lease was left held")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// An orphan sealed under a key the store no longer has is reported and skipped: the record, its other orphans
/// and every write still work. A write seals the orphans under an older key again under the current one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_that_does_not_open_is_skipped_and_older_keys_are_sealed_again() {
    let database = Database::new();
    let id = id("retired-key");
    let retired = PgStore::connect(&database.url, Keyring::new("retired", &[1; 32]).unwrap())
        .await
        .unwrap();
    let old_keys = Keyring::new("old", &[2; 32])
        .unwrap()
        .with_older("retired", &[1; 32])
        .unwrap();
    let old = PgStore::connect(&database.url, old_keys).await.unwrap();
    // Version 1 and an orphan under "retired"; version 2 (which seals that orphan again under "old") and an orphan
    // under "old"; then an orphan under a key no one else will have.
    let _ = retired
        .compare_and_swap_under_lock(&id, None, &tokens("1"))
        .await
        .unwrap();
    retired
        .keep_orphan_under_lock(&id, &tokens("lost-retired"))
        .await
        .unwrap();
    let _ = old
        .compare_and_swap_under_lock(&id, Some(1), &tokens("2"))
        .await
        .unwrap();
    old.keep_orphan_under_lock(&id, &tokens("lost-old"))
        .await
        .unwrap();
    let gone_keys = Keyring::new("gone", &[9; 32])
        .unwrap()
        .with_older("old", &[2; 32])
        .unwrap();
    let gone = PgStore::connect(&database.url, gone_keys).await.unwrap();
    gone.keep_orphan_under_lock(&id, &tokens("lost-gone"))
        .await
        .unwrap();

    // The current store has "current" and "old" only.
    let current_keys = Keyring::new("current", &[3; 32])
        .unwrap()
        .with_older("old", &[2; 32])
        .unwrap();
    let current = PgStore::connect(&database.url, current_keys).await.unwrap();
    let record = current.load(&id).await.unwrap().unwrap();
    assert_eq!(record.tokens, tokens("2"));
    let kept: Vec<_> = record.orphans.iter().map(|orphan| &orphan.tokens).collect();
    let openable = [&tokens("lost-retired"), &tokens("lost-old")];
    assert_eq!(kept, openable, "the unopenable orphan is skipped");
    assert_eq!(
        current
            .compare_and_swap_under_lock(&id, Some(2), &tokens("3"))
            .await
            .unwrap(),
        Swap::Written { version: 3 }
    );
    // Sealed again under "current": a store with that key alone opens them now.
    let only_current = PgStore::connect(&database.url, Keyring::new("current", &[3; 32]).unwrap())
        .await
        .unwrap();
    let record = only_current.load(&id).await.unwrap().unwrap();
    assert_eq!(record.tokens, tokens("3"));
    let kept: Vec<_> = record.orphans.iter().map(|orphan| &orphan.tokens).collect();
    assert_eq!(kept, openable);
}

/// A record's seal binds its version: an older ciphertext of the same row, put back under the current version (a
/// restored backup, a hand edit), does not open, and nothing is written over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_ciphertext_put_back_into_its_row_does_not_open() {
    let database = Database::new();
    let store = store(&database, Duration::from_secs(30)).await;
    let id = id("rolled-back");
    let _ = store
        .compare_and_swap_under_lock(&id, None, &tokens("1"))
        .await
        .unwrap();
    let client = database.client().await;
    let first: Vec<u8> = client
        .query_one(
            "SELECT tokens FROM refresh_kit_credentials WHERE id = 'rolled-back'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let _ = store
        .compare_and_swap_under_lock(&id, Some(1), &tokens("2"))
        .await
        .unwrap();
    client
        .execute(
            "UPDATE refresh_kit_credentials SET tokens = $1 WHERE id = 'rolled-back'",
            &[&first],
        )
        .await
        .unwrap();
    let error = store.load(&id).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Key { reason, .. } if reason.contains("authentication")),
        "{error}"
    );
    let write = store
        .compare_and_swap_under_lock(&id, Some(2), &tokens("3"))
        .await;
    assert!(matches!(write, Err(StoreError::Key { .. })), "{write:?}");
}

/// Tables a newer release migrated: an older replica still reads its credentials (it keeps serving during a
/// rolling upgrade), refuses every write and lease with an error that says why, and applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_tables_a_newer_release_migrated_reads_and_refuses_to_write() {
    let database = Database::new();
    let current = store(&database, Duration::from_secs(30)).await;
    let id = id("upgraded");
    let _ = current
        .compare_and_swap_under_lock(&id, None, &tokens("1"))
        .await
        .unwrap();
    let client = database.client().await;
    client
        .execute(
            "INSERT INTO refresh_kit_migrations (version) VALUES (999)",
            &[],
        )
        .await
        .unwrap();

    let older = store(&database, Duration::from_secs(30)).await;
    let record = older.load(&id).await.unwrap().unwrap();
    assert_eq!(record.version, 1);
    let says_why = |error: StoreError| {
        let text = error.to_string();
        assert!(
            text.contains("migration 999, newer than this release knows"),
            "{text}"
        );
        assert!(text.contains("upgrade refresh-kit"), "{text}");
    };
    says_why(older.lock(&id).await.unwrap_err());
    says_why(
        older
            .compare_and_swap_under_lock(&id, Some(1), &tokens("2"))
            .await
            .unwrap_err(),
    );
    says_why(
        older
            .keep_orphan_under_lock(&id, &tokens("2"))
            .await
            .unwrap_err(),
    );
    assert_eq!(older.load(&id).await.unwrap().unwrap().version, 1);
    let newest: i32 = client
        .query_one("SELECT max(version) FROM refresh_kit_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(newest, 999);
}
