//! What the manager's tests share: a sandbox whose clock moves together with the managers' [`ManualClock`],
//! refreshers pointed at it, and the logins it accepts.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::time::Duration;

use refresh_facade::{
    EkuaibaoConfig, Grant, ISolarCloudConfig, MisaCukcukConfig, Refresher, SugonAcConfig,
    VendorConfig, WechatOpenConfig,
};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerClock, ManagerOptions, ManualClock, TokenStore,
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
