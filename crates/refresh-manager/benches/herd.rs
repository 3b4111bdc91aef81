//! A herd at expiry: how long 10,000 callers who arrive together when the token has expired take to be served,
//! beside one caller alone, in the same run, against the sandbox answering after 50 ms. One refresh serves the
//! herd; the target is that it costs no more than 1.2 times the lone caller's wait.
//!
//! `cargo bench -p refresh-manager --bench herd`

use std::sync::LazyLock;
use std::time::Duration;

use refresh_facade::{Grant, ISolarCloudConfig, Refresher, VendorConfig};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerOptions, ManualClock, MemoryStore,
};
use refresh_sandbox::{Emulator, Sandbox, SandboxOptions, accounts};

fn main() {
    divan::main();
}

/// iSolarCloud's documented access token lifetime, plus a second.
const PAST_EXPIRY: Duration = Duration::from_secs(172_799 + 1);

struct Herd {
    runtime: tokio::runtime::Runtime,
    sandbox: Sandbox,
    clock: ManualClock,
    manager: Manager<MemoryStore>,
    id: CredentialId,
}

static HERD: LazyLock<Herd> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let (sandbox, manager, id) = runtime.block_on(async {
        let sandbox = Sandbox::start(SandboxOptions::only(Emulator::ISolarCloud))
            .await
            .unwrap();
        let manager = Manager::with_options(
            MemoryStore::new(),
            ManagerOptions::default().with_clock(clock.clone()),
        );
        let config = ISolarCloudConfig::new(
            accounts::ISOLARCLOUD_APP_KEY,
            accounts::ISOLARCLOUD_ACCESS_KEY,
        )
        .with_base_url(sandbox.base_url(Emulator::ISolarCloud).unwrap());
        let refresher = Refresher::new(VendorConfig::ISolarCloud(config))
            .unwrap()
            .with_clock(manager.clock().facade_clock());
        let id = CredentialId::new("herd").unwrap();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let grant = Grant::ISolarCloudAuthorizationCode {
            code: sandbox
                .authorization_code(Emulator::ISolarCloud)
                .unwrap()
                .into(),
            redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
        };
        manager.login(&id, &grant).await.unwrap();
        sandbox.set_latency(Emulator::ISolarCloud, Duration::from_millis(50));
        (sandbox, manager, id)
    });
    Herd {
        runtime,
        sandbox,
        clock,
        manager,
        id,
    }
});

impl Herd {
    /// Expires the token, then `callers` ask at once; returns when every one has a token.
    fn expire_and_ask(&self, callers: usize) {
        self.sandbox.clock().advance(PAST_EXPIRY);
        self.clock.advance(PAST_EXPIRY);
        self.runtime.block_on(async {
            let waiting: Vec<_> = (0..callers)
                .map(|_| {
                    let (manager, id) = (self.manager.clone(), self.id.clone());
                    tokio::spawn(async move { manager.access_token(&id).await.unwrap() })
                })
                .collect();
            for caller in waiting {
                caller.await.unwrap();
            }
        });
    }
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn one_caller_at_expiry() {
    HERD.expire_and_ask(1);
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn ten_thousand_callers_at_expiry() {
    HERD.expire_and_ask(10_000);
}
