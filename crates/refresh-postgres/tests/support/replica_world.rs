//! What the replica test and the replica benchmark share: iSolarCloud credentials logged in at a sandbox and kept
//! in one PostgreSQL, and managers of them. Included by path (`#[path]`), not through `support`, whose other
//! users have no sandbox.

#![allow(dead_code)] // Each user takes part of it.

use std::time::Duration;

use refresh_facade::{Grant, ISolarCloudConfig, Refresher, VendorConfig};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerOptions, RefreshPolicy, TokenStore,
};
use refresh_postgres::{PgStore, PgStoreOptions};
use refresh_sandbox::{Emulator, Sandbox, SandboxOptions, accounts};

use super::support::{Database, keys};

/// iSolarCloud's documented access token lifetime, plus a second: every token is past its expiry.
pub const PAST_EXPIRY: Duration = Duration::from_secs(172_799 + 1);
/// The path of iSolarCloud's refresh endpoint contains this.
pub const REFRESH: &str = "refreshToken";

pub fn ids(credentials: usize) -> Vec<CredentialId> {
    (0..credentials)
        .map(|n| CredentialId::new(format!("credential-{n}")).unwrap())
        .collect()
}

/// A refresher for the sandbox at `base_url` whose calls take at most `timeout`.
pub fn refresher(base_url: &str, clock: refresh_facade::Clock, timeout: Duration) -> Refresher {
    let config = ISolarCloudConfig::new(
        accounts::ISOLARCLOUD_APP_KEY,
        accounts::ISOLARCLOUD_ACCESS_KEY,
    )
    .with_base_url(base_url);
    Refresher::new(VendorConfig::ISolarCloud(config))
        .unwrap()
        .with_clock(clock)
        .with_call_timeout(timeout)
}

pub fn grant(sandbox: &Sandbox) -> Grant {
    Grant::ISolarCloudAuthorizationCode {
        code: sandbox
            .authorization_code(Emulator::ISolarCloud)
            .unwrap()
            .into(),
        redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
    }
}

/// Connections in a replica's pool: 20 replicas × (4 + 1 listening), twice over (the benchmark's floor beside
/// them), stay under the test cluster's 300 connections.
pub const POOL: usize = 4;

/// A replica's store (pool of [`POOL`]): a short lease where a test needs one to lapse.
pub async fn connect(url: &str, lease: Duration) -> PgStore {
    let options = PgStoreOptions::default()
        .with_lease(lease)
        .with_pool_size(POOL);
    PgStore::connect_with(url, keys(), options).await.unwrap()
}

/// A manager of `credentials` on `store`, with the sandbox at `base` and calls of at most `timeout`.
pub fn manager<S: TokenStore + 'static>(
    store: S,
    base: &str,
    credentials: &[CredentialId],
    options: ManagerOptions,
    policy: Option<RefreshPolicy>,
    timeout: Duration,
) -> Manager<S> {
    let manager = Manager::with_options(store, options);
    for id in credentials {
        let mut credential =
            CredentialOptions::new(refresher(base, manager.clock().facade_clock(), timeout));
        if let Some(policy) = &policy {
            credential = credential.with_policy(*policy);
        }
        manager.manage(id.clone(), credential);
    }
    manager
}

/// A sandbox, its base URL, a database, and `credentials` logged in there.
pub async fn logged_in(database: Database, credentials: usize) -> (Sandbox, String, Database) {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::ISolarCloud))
        .await
        .unwrap();
    let base = sandbox.base_url(Emulator::ISolarCloud).unwrap();
    let store = connect(&database.url, Duration::from_secs(30)).await;
    let manager = manager(
        store,
        &base,
        &ids(credentials),
        ManagerOptions::default(),
        None,
        refresh_facade::HttpOptions::DEFAULT_TIMEOUT,
    );
    for id in ids(credentials) {
        manager.login(&id, &grant(&sandbox)).await.unwrap();
    }
    (sandbox, base, database)
}

/// The refreshes the sandbox has answered.
pub fn refreshes(sandbox: &Sandbox) -> usize {
    sandbox
        .requests(Emulator::ISolarCloud)
        .iter()
        .filter(|r| r.path.contains(REFRESH))
        .count()
}
