//! A cached `access_token()`, at 1, 2 and 4 threads, beside the read paths of the caches it replaces, in the same
//! run: a `tokio::sync::Mutex` (golang/oauth2, yup-oauth2), a `std::sync::RwLock`, and a `tokio::sync::watch`
//! channel (google-cloud-rust). Each baseline does what a read must: take the token, check it is still valid and
//! clone its `Arc`.
//!
//! `cargo bench -p refresh-manager --bench read_path`

use std::sync::{Arc, LazyLock, RwLock};
use std::time::Instant;

use futures_util::FutureExt;
use refresh_facade::{EkuaibaoConfig, Refresher, Vendor, VendorConfig};
use refresh_manager::{
    AccessToken, CredentialHandle, CredentialId, CredentialOptions, Manager, MemoryStore,
    StoredTokens, TokenStore,
};

fn main() {
    // Built before the measurement starts, so that no sample includes it.
    LazyLock::force(&MANAGED);
    LazyLock::force(&TOKIO_MUTEX);
    LazyLock::force(&STD_RWLOCK);
    LazyLock::force(&WATCH);
    divan::main();
}

/// A token as the baselines cache it: the secret and its deadline.
struct Cached {
    secret: String,
    valid_until: Instant,
}

fn cached() -> Arc<Cached> {
    Arc::new(Cached {
        secret: "access".into(),
        valid_until: Instant::now() + std::time::Duration::from_secs(3600),
    })
}

fn still_valid(token: &Arc<Cached>) -> Arc<Cached> {
    assert!(Instant::now() < token.valid_until && !token.secret.is_empty());
    Arc::clone(token)
}

struct Managed {
    manager: Manager<MemoryStore>,
    id: CredentialId,
    handle: CredentialHandle<MemoryStore>,
    _runtime: tokio::runtime::Runtime,
}

/// A manager whose one credential has a fresh token in its cache (its refresher's host does not exist).
static MANAGED: LazyLock<Managed> = LazyLock::new(|| {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let manager = Manager::new(MemoryStore::new());
    let id = CredentialId::new("bench").unwrap();
    let config = EkuaibaoConfig::new().with_base_url("http://127.0.0.1:9");
    manager.manage(
        id.clone(),
        CredentialOptions::new(Refresher::new(VendorConfig::Ekuaibao(config)).unwrap()),
    );
    let now = chrono::Utc::now();
    let tokens: StoredTokens = serde_json::from_value(serde_json::json!({
        "vendor": Vendor::Ekuaibao,
        "access_token": "access",
        "refresh_token": "refresh",
        "expires_at": now + chrono::TimeDelta::hours(1),
        "obtained_at": now,
        "refreshable_until": null,
    }))
    .unwrap();
    runtime.block_on(async {
        let _ = manager
            .store()
            .compare_and_swap_under_lock(&id, None, &tokens)
            .await
            .unwrap();
        manager.access_token(&id).await.unwrap();
    });
    let handle = manager.handle(&id).unwrap();
    Managed {
        manager,
        id,
        handle,
        _runtime: runtime,
    }
});

#[divan::bench(threads = [1, 2, 4], sample_count = 200, sample_size = 2000)]
fn manager_access_token() -> Arc<AccessToken> {
    let managed = &*MANAGED;
    // The cached path completes at its first poll: no executor is needed.
    managed
        .manager
        .access_token(&managed.id)
        .now_or_never()
        .unwrap()
        .unwrap()
}

#[divan::bench(threads = [1, 2, 4], sample_count = 200, sample_size = 2000)]
fn manager_handle_access_token() -> Arc<AccessToken> {
    MANAGED
        .handle
        .access_token()
        .now_or_never()
        .unwrap()
        .unwrap()
}

static TOKIO_MUTEX: LazyLock<tokio::sync::Mutex<Arc<Cached>>> =
    LazyLock::new(|| tokio::sync::Mutex::new(cached()));

/// Polled without an executor, and polled again while another thread holds it: the cheapest way to use it, so
/// that its figure is a floor.
#[divan::bench(threads = [1, 2, 4], sample_count = 200, sample_size = 2000)]
fn tokio_mutex() -> Arc<Cached> {
    loop {
        if let Some(token) = TOKIO_MUTEX.lock().now_or_never() {
            return still_valid(&token);
        }
        std::hint::spin_loop();
    }
}

static STD_RWLOCK: LazyLock<RwLock<Arc<Cached>>> = LazyLock::new(|| RwLock::new(cached()));

#[divan::bench(threads = [1, 2, 4], sample_count = 200, sample_size = 2000)]
fn std_rwlock() -> Arc<Cached> {
    still_valid(&STD_RWLOCK.read().unwrap())
}

type Watch = (
    tokio::sync::watch::Sender<Arc<Cached>>,
    tokio::sync::watch::Receiver<Arc<Cached>>,
);

static WATCH: LazyLock<Watch> = LazyLock::new(|| tokio::sync::watch::channel(cached()));

#[divan::bench(threads = [1, 2, 4], sample_count = 200, sample_size = 2000)]
fn tokio_watch() -> Arc<Cached> {
    still_valid(&WATCH.1.borrow())
}

/// The same reads as a service makes them: awaited inside a task, here 1,000 in a row on each thread's own
/// current-thread runtime (where the mutex parks a task that finds it held, as it does in a service).
mod in_tasks {
    use super::*;

    const READS: usize = 1_000;

    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    }

    fn awaited<F: std::future::Future<Output = ()>>(reads: impl Fn() -> F) {
        RUNTIME.with(|runtime| {
            runtime.block_on(async {
                for _ in 0..READS {
                    reads().await;
                }
            })
        });
    }

    #[divan::bench(threads = [1, 2, 4], sample_count = 100, counters = [divan::counter::ItemsCount::new(READS)])]
    fn manager_access_token() {
        let managed = &*MANAGED;
        awaited(|| async {
            divan::black_box(managed.manager.access_token(&managed.id).await.unwrap());
        });
    }

    #[divan::bench(threads = [1, 2, 4], sample_count = 100, counters = [divan::counter::ItemsCount::new(READS)])]
    fn tokio_mutex() {
        awaited(|| async {
            divan::black_box(still_valid(&*TOKIO_MUTEX.lock().await));
        });
    }
}
