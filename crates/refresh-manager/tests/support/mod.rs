//! What the manager's tests share: a sandbox whose clock moves together with the managers' [`ManualClock`],
//! refreshers pointed at it, and the logins it accepts.

#![allow(dead_code, reason = "each test binary uses a part of it")]

pub mod page_cache;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use refresh_facade::{
    EkuaibaoConfig, Grant, ISolarCloudConfig, MisaCukcukConfig, Refresher, SugonAcConfig,
    VendorConfig, WechatOpenConfig,
};
use refresh_manager::{
    CredentialId, CredentialOptions, LockKind, Manager, ManagerClock, ManagerOptions, ManualClock,
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
/// - `locks` counts the locks taken, `releases` those given back through `release` (not merely dropped);
/// - once [`ScriptedStore::overtake`] is armed, another writer stores its tokens (as one whose lease outlived this
///   holder's would), under the lock the holder holds, just before the holder's next load or write of it.
pub struct ScriptedStore<S: TokenStore = refresh_manager::MemoryStore> {
    pub inner: S,
    pub failing_writes: Arc<AtomicUsize>,
    pub failing_checks: Arc<AtomicUsize>,
    pub lease_left: Option<Duration>,
    pub fence: Arc<Mutex<Option<Versioned>>>,
    pub dead: Arc<AtomicBool>,
    pub locks: Arc<AtomicUsize>,
    pub releases: Arc<AtomicUsize>,
    pub overtaking: Arc<Mutex<Option<(CredentialId, StoredTokens)>>>,
    pub held: Arc<Mutex<HashMap<CredentialId, Weak<S::Lock>>>>,
}

impl<S: TokenStore + Clone> Clone for ScriptedStore<S> {
    fn clone(&self) -> Self {
        ScriptedStore {
            inner: self.inner.clone(),
            failing_writes: Arc::clone(&self.failing_writes),
            failing_checks: Arc::clone(&self.failing_checks),
            lease_left: self.lease_left,
            fence: Arc::clone(&self.fence),
            dead: Arc::clone(&self.dead),
            locks: Arc::clone(&self.locks),
            releases: Arc::clone(&self.releases),
            overtaking: Arc::clone(&self.overtaking),
            held: Arc::clone(&self.held),
        }
    }
}

/// A [`ScriptedStore`]'s lock: its store's, shared with the writer that may overtake its holder.
pub struct ScriptedLock<L> {
    id: CredentialId,
    held: Arc<L>,
}

impl ScriptedStore {
    /// Over a new `MemoryStore`, with no fault turned on.
    pub fn new() -> Self {
        Self::over(refresh_manager::MemoryStore::new())
    }
}

impl<S: TokenStore> ScriptedStore<S> {
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
            overtaking: Arc::default(),
            held: Arc::default(),
        }
    }

    /// Another writer stores `theirs` as `id`'s next version before the next load or write of it made while its
    /// lock is held.
    pub fn overtake(&self, id: &CredentialId, theirs: StoredTokens) {
        *self.overtaking.lock().unwrap() = Some((id.clone(), theirs));
    }

    /// Stores the overtaking writer's tokens, if it is armed for `id` and `id`'s lock is held.
    async fn overtaken(&self, id: &CredentialId) -> Result<(), StoreError> {
        let holder = self.held.lock().unwrap().get(id).and_then(Weak::upgrade);
        let Some(holder) = holder else {
            return Ok(());
        };
        let armed = {
            let mut overtaking = self.overtaking.lock().unwrap();
            match overtaking.as_ref() {
                Some((of, _)) if of == id => overtaking.take(),
                _ => None,
            }
        };
        let Some((_, theirs)) = armed else {
            return Ok(());
        };
        let current = self.inner.load(id).await?.map(|record| record.version);
        let written = self
            .inner
            .compare_and_swap(&holder, current, &theirs)
            .await?;
        assert!(matches!(written, Swap::Written { .. }), "{written:?}");
        Ok(())
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
    type Lock = ScriptedLock<S::Lock>;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        self.refuses(None)?;
        self.overtaken(id).await?;
        self.inner.load(id).await
    }

    async fn compare_and_swap(
        &self,
        lock: &Self::Lock,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        self.refuses(Some(&self.failing_writes))?;
        self.overtaken(&lock.id).await?;
        let fence = self.fence.lock().unwrap().clone();
        match fence {
            Some(current) => Ok(Swap::Conflict {
                current: Some(current),
            }),
            None => {
                self.inner
                    .compare_and_swap(&lock.held, expected, tokens)
                    .await
            }
        }
    }

    async fn keep_orphan(
        &self,
        lock: &Self::Lock,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        self.refuses(None)?;
        self.inner.keep_orphan(&lock.held, tokens).await
    }

    async fn lock(&self, id: &CredentialId) -> Result<Self::Lock, StoreError> {
        self.refuses(None)?;
        self.locks.fetch_add(1, Ordering::SeqCst);
        let held = Arc::new(self.inner.lock(id).await?);
        self.held
            .lock()
            .unwrap()
            .insert(id.clone(), Arc::downgrade(&held));
        Ok(ScriptedLock {
            id: id.clone(),
            held,
        })
    }

    fn lock_kind(&self, lock: &Self::Lock) -> LockKind {
        match self.lease_left {
            Some(left) => LockKind::Lease { left },
            None => self.inner.lock_kind(&lock.held),
        }
    }

    async fn check_writable(&self, id: &CredentialId) -> Result<(), StoreError> {
        self.refuses(Some(&self.failing_checks))?;
        self.inner.check_writable(id).await
    }

    async fn release(&self, lock: Self::Lock) {
        self.releases.fetch_add(1, Ordering::SeqCst);
        // Shared only while an overtaking writer uses it: then it is let go when that writer is done.
        if let Ok(held) = Arc::try_unwrap(lock.held) {
            self.inner.release(held).await;
        }
    }
}
