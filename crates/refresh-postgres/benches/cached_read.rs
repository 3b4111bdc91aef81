//! A cached `access_token()` with a `PgStore` beside the same with a `FileStore`, in one run: the database is never
//! on the read path, so the two cost the same. Starts a throwaway cluster (or uses `DATABASE_URL`).
//!
//! `cargo bench -p refresh-postgres --bench cached_read`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::LazyLock;

use futures_util::FutureExt;
use refresh_facade::{EkuaibaoConfig, Refresher, VendorConfig};
use refresh_manager::{
    AccessToken, CredentialId, CredentialOptions, FileStore, Manager, TokenStore, conformance,
};
use refresh_postgres::PgStore;

fn main() {
    LazyLock::force(&MANAGERS);
    divan::main();
}

struct Managers {
    file: Manager<FileStore>,
    postgres: Manager<PgStore>,
    id: CredentialId,
    _runtime: tokio::runtime::Runtime,
    _database: support::Database,
    _dir: tempfile::TempDir,
}

/// A manager of one credential with a fresh token in its cache, on each store (its refresher's host does not
/// exist).
static MANAGERS: LazyLock<Managers> = LazyLock::new(|| {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = support::Database::new();
    let dir = tempfile::tempdir().unwrap();
    let id = CredentialId::new("bench").unwrap();
    let (file, postgres) = runtime.block_on(async {
        let file = Manager::new(FileStore::open(dir.path()).unwrap());
        let postgres = Manager::new(
            PgStore::connect(&database.url, support::keys())
                .await
                .unwrap(),
        );
        let mut tokens = conformance::tokens("bench");
        tokens.obtained_at = chrono::Utc::now();
        tokens.expires_at = tokens.obtained_at + chrono::TimeDelta::hours(1);
        tokens.refreshable_until = Some(tokens.expires_at);
        let refresher = || {
            let config = EkuaibaoConfig::new().with_base_url("http://127.0.0.1:9");
            CredentialOptions::new(Refresher::new(VendorConfig::Ekuaibao(config)).unwrap())
        };
        file.manage(id.clone(), refresher());
        postgres.manage(id.clone(), refresher());
        let _ = file
            .store()
            .compare_and_swap_under_lock(&id, None, &tokens)
            .await
            .unwrap();
        let _ = postgres
            .store()
            .compare_and_swap_under_lock(&id, None, &tokens)
            .await
            .unwrap();
        file.access_token(&id).await.unwrap();
        postgres.access_token(&id).await.unwrap();
        (file, postgres)
    });
    Managers {
        file,
        postgres,
        id,
        _runtime: runtime,
        _database: database,
        _dir: dir,
    }
});

#[divan::bench(threads = [1, 2], sample_count = 200, sample_size = 2000)]
fn file_store() -> std::sync::Arc<AccessToken> {
    let managers = &*MANAGERS;
    managers
        .file
        .access_token(&managers.id)
        .now_or_never()
        .unwrap()
        .unwrap()
}

#[divan::bench(threads = [1, 2], sample_count = 200, sample_size = 2000)]
fn postgres_store() -> std::sync::Arc<AccessToken> {
    let managers = &*MANAGERS;
    managers
        .postgres
        .access_token(&managers.id)
        .now_or_never()
        .unwrap()
        .unwrap()
}
