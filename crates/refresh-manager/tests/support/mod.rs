//! What the manager's tests share: a sandbox whose clock moves together with the managers' [`ManualClock`],
//! refreshers pointed at it, and the logins it accepts.

#![allow(dead_code, reason = "each test binary uses a part of it")]

pub mod page_cache;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refresh_facade::{
    EkuaibaoConfig, Grant, ISolarCloudConfig, MisaCukcukConfig, Refresher, SugonAcConfig,
    VendorConfig, WechatOpenConfig,
};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerClock, ManagerOptions, ManualClock,
    StoreError, StoredTokens, Swap, TokenStore, Versioned,
};
use refresh_sandbox::{Emulator, Sandbox, SandboxOptions, accounts};

pub struct Harness {
    pub sandbox: Sandbox,
    /// The managers' clock, moved with the sandbox's.
    pub clock: ManualClock,
}

impl Harness {
    pub async fn start(emulator: Emulator) -> Self {
        Self::start_with(SandboxOptions::only(emulator)).await
    }

    pub async fn start_with(options: SandboxOptions) -> Self {
        Harness {
            sandbox: Sandbox::start(options).await.unwrap(),
            clock: ManualClock::new(),
        }
    }

    pub fn clock(&self) -> ManagerClock {
        ManagerClock::from(self.clock.clone())
    }

    /// Moves the sandbox's and the managers' time forward together.
    pub fn advance(&self, by: Duration) {
        self.sandbox.clock().advance(by);
        self.clock.advance(by);
    }

    /// Moves the sandbox's and the managers' time forward together, as a suspended machine sees it: the managers'
    /// sleepers are not woken, so only a look at the clock tells that time passed.
    pub fn suspend(&self, by: Duration) {
        self.sandbox.clock().advance(by);
        self.clock.suspend(by);
    }

    /// Moves time to `by` after `instant` (of the sandbox's clock).
    pub fn advance_past(&self, instant: chrono::DateTime<chrono::Utc>, by: Duration) {
        let until = (instant - self.sandbox.clock().now())
            .to_std()
            .unwrap_or_default();
        self.advance(until + by);
    }

    /// Options with this harness's clock and a fixed seed (`REFRESH_KIT_TEST_SEED` chooses another).
    pub fn options(&self) -> ManagerOptions {
        let seed = std::env::var("REFRESH_KIT_TEST_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or(9);
        ManagerOptions::default()
            .with_clock(self.clock.clone())
            .with_seed(seed)
    }

    pub fn manager<S: TokenStore + 'static>(&self, store: S) -> Manager<S> {
        Manager::with_options(store, self.options())
    }

    /// A refresher for `emulator`, reading the managers' clock.
    pub fn refresher(&self, emulator: Emulator) -> Refresher {
        let base = self.sandbox.base_url(emulator).unwrap();
        let config = match emulator {
            Emulator::ISolarCloud => VendorConfig::ISolarCloud(
                ISolarCloudConfig::new(
                    accounts::ISOLARCLOUD_APP_KEY,
                    accounts::ISOLARCLOUD_ACCESS_KEY,
                )
                .with_base_url(base),
            ),
            Emulator::SugonAc => VendorConfig::SugonAc(SugonAcConfig::new().with_base_url(base)),
            Emulator::WechatOpen => VendorConfig::WechatOpen(
                WechatOpenConfig::new(
                    accounts::WECHAT_COMPONENT_APPID,
                    accounts::WECHAT_AUTHORIZER_APPID,
                )
                .with_base_url(base),
            ),
            Emulator::Ekuaibao => VendorConfig::Ekuaibao(EkuaibaoConfig::new().with_base_url(base)),
            Emulator::MisaCukcuk => VendorConfig::MisaCukcuk(
                MisaCukcukConfig::new(accounts::MISA_COMPANY_CODE).with_base_url(base),
            ),
            other => unreachable!("no emulator {other} yet"),
        };
        Refresher::new(config)
            .unwrap()
            .with_clock(self.clock().facade_clock())
    }

    pub fn credential(&self, emulator: Emulator) -> CredentialOptions {
        CredentialOptions::new(self.refresher(emulator))
    }

    /// A login the sandbox accepts that needs no person (Sugon AC, Ekuaibao, WeChat's component token), or an
    /// authorization code's (iSolarCloud).
    pub fn login(&self, emulator: Emulator) -> Grant {
        match emulator {
            Emulator::ISolarCloud => Grant::ISolarCloudAuthorizationCode {
                code: self.sandbox.authorization_code(emulator).unwrap().into(),
                redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
            },
            Emulator::SugonAc => Grant::SugonAcPassword {
                user: accounts::SUGON_USER.into(),
                password: accounts::SUGON_PASSWORD.into(),
                org_id: accounts::SUGON_ORG_ID.into(),
            },
            Emulator::WechatOpen => Grant::WechatOpenComponentToken {
                component_appsecret: accounts::WECHAT_COMPONENT_APPSECRET.into(),
                component_verify_ticket: accounts::WECHAT_VERIFY_TICKET.into(),
            },
            Emulator::Ekuaibao => Grant::EkuaibaoAppCredentials {
                app_key: accounts::EKUAIBAO_APP_KEY.into(),
                app_security: accounts::EKUAIBAO_APP_SECURITY.into(),
            },
            other => unreachable!("no manager test uses {other}"),
        }
    }

    /// How many requests `emulator` received whose path contains `part`.
    pub fn requests_to(&self, emulator: Emulator, part: &str) -> usize {
        self.sandbox
            .requests(emulator)
            .iter()
            .filter(|r| r.path.contains(part))
            .count()
    }
}

pub fn id(name: &str) -> CredentialId {
    CredentialId::new(name).unwrap()
}

/// Lets the manager's background tasks run (they react to the clock within milliseconds).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

/// A store (a `MemoryStore` unless said otherwise) with the faults a test turns on:
/// - its next `failing_writes` compare-and-swaps fail (a full disk found out by the write);
/// - its next `failing_checks` write checks fail (a read-only or full disk found out before the vendor is asked);
/// - its lock is a lease with `lease_left` to run (a database's);
/// - while `fence` holds a record, every compare-and-swap writes nothing and answers a conflict with it (a writer
///   fenced off, or beaten by another);
/// - once `dead`, everything fails (the process that used it is gone);
/// - `locks` counts the locks taken, `releases` those given back through `release` (not merely dropped).
#[derive(Clone)]
pub struct ScriptedStore<S = refresh_manager::MemoryStore> {
    pub inner: S,
    pub failing_writes: Arc<AtomicUsize>,
    pub failing_checks: Arc<AtomicUsize>,
    pub lease_left: Option<Duration>,
    pub fence: Arc<Mutex<Option<Versioned>>>,
    pub dead: Arc<AtomicBool>,
    pub locks: Arc<AtomicUsize>,
    pub releases: Arc<AtomicUsize>,
}

impl ScriptedStore {
    /// Over a new `MemoryStore`, with no fault turned on.
    pub fn new() -> Self {
        Self::over(refresh_manager::MemoryStore::new())
    }
}

impl<S> ScriptedStore<S> {
    pub fn over(inner: S) -> Self {
        ScriptedStore {
            inner,
            failing_writes: Arc::default(),
            failing_checks: Arc::default(),
            lease_left: None,
            fence: Arc::default(),
            dead: Arc::default(),
            locks: Arc::default(),
            releases: Arc::default(),
        }
    }

    pub fn fence(&self, current: Option<Versioned>) {
        *self.fence.lock().unwrap() = current;
    }

    /// An error if the store is dead, or if `counter` still counts failures (one used up).
    fn refuses(&self, counter: Option<&AtomicUsize>) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(StoreError::Io(std::io::Error::other("the process is gone")));
        }
        let failing = counter.is_some_and(|counter| {
            counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        });
        if failing {
            return Err(StoreError::Io(std::io::Error::other(
                "No space left on device (scripted)",
            )));
        }
        Ok(())
    }
}

impl<S: TokenStore> TokenStore for ScriptedStore<S> {
    type Lock = S::Lock;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        self.refuses(None)?;
        self.inner.load(id).await
    }

    async fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        self.refuses(Some(&self.failing_writes))?;
        let fence = self.fence.lock().unwrap().clone();
        match fence {
            Some(current) => Ok(Swap::Conflict {
                current: Some(current),
            }),
            None => self.inner.compare_and_swap(id, expected, tokens).await,
        }
    }

    async fn keep_orphan(
        &self,
        id: &CredentialId,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        self.refuses(None)?;
        self.inner.keep_orphan(id, tokens).await
    }

    async fn lock(&self, id: &CredentialId) -> Result<Self::Lock, StoreError> {
        self.refuses(None)?;
        self.locks.fetch_add(1, Ordering::SeqCst);
        self.inner.lock(id).await
    }

    fn lock_left(&self, lock: &Self::Lock) -> Option<Duration> {
        self.lease_left.or_else(|| self.inner.lock_left(lock))
    }

    async fn check_writable(&self, id: &CredentialId) -> Result<(), StoreError> {
        self.refuses(Some(&self.failing_checks))?;
        self.inner.check_writable(id).await
    }

    async fn release(&self, lock: Self::Lock) {
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(lock).await
    }
}
