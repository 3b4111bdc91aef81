//! A simulated week of the agent on the sandbox's manual clock, with a profile at each of the five vendors (and
//! WeChat's component token): the clock jumps from one renewal to the next, and after each jump every sink holds the
//! profile's current token, which the vendor's ledger says is live and which has not expired.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use refresh_agent::{Agent, Format, Health, Profile, Readers, Sink};
use refresh_facade::{
    EkuaibaoConfig, Grant, ISolarCloudConfig, MisaCukcukConfig, Refresher, SugonAcConfig, Vendor,
    VendorConfig, WechatOpenConfig,
};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerOptions, ManualClock, MemoryStore, TokenStore,
};
use refresh_sandbox::{AccessTokenState, Emulator, Sandbox, SandboxOptions, accounts};

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
const HOOK_SECRET: &str = "hook-secret";

/// A loopback webhook receiver that keeps every notification whose signature it verifies (an independent HMAC),
/// and counts the others.
struct Receiver {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<(Vec<serde_json::Value>, usize)>>,
}

impl Receiver {
    async fn start() -> Receiver {
        use hmac::{KeyInit, Mac};
        let received: std::sync::Arc<std::sync::Mutex<(Vec<serde_json::Value>, usize)>> =
            Default::default();
        let kept = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let kept = kept.clone();
                    async move {
                        let mut mac =
                            hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes())
                                .unwrap();
                        mac.update(&body);
                        let expected: String = mac
                            .finalize()
                            .into_bytes()
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect();
                        let sent = headers
                            .get("x-refresh-signature")
                            .and_then(|v| v.to_str().ok());
                        let mut kept = kept.lock().unwrap();
                        if sent == Some(format!("sha256={expected}").as_str()) {
                            kept.0.push(serde_json::from_slice(&body).unwrap());
                        } else {
                            kept.1 += 1;
                        }
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, received }
    }

    fn notifier(&self) -> refresh_agent::Notifier {
        let webhook = refresh_agent::Webhook::new(&self.url, HOOK_SECRET.into()).unwrap();
        refresh_agent::Notifier::start(webhook, reqwest::Client::new())
    }

    /// The verified notifications as `(event, profile)`, once `count` have come (or after 10 s; a delivery may
    /// be retried), and after a pause for any extra one; no forged one.
    async fn events(&self, count: usize) -> Vec<(String, String)> {
        for _ in 0..1_000 {
            if self.received.lock().unwrap().0.len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let received = self.received.lock().unwrap();
        assert_eq!(received.1, 0, "notifications with a wrong signature");
        received
            .0
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_owned(),
                    e["profile"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

struct Setup {
    name: &'static str,
    emulator: Emulator,
    vendor: Vendor,
}

const PROFILES: [Setup; 6] = [
    Setup {
        name: "isolarcloud",
        emulator: Emulator::ISolarCloud,
        vendor: Vendor::ISolarCloud,
    },
    Setup {
        name: "sugon-ac",
        emulator: Emulator::SugonAc,
        vendor: Vendor::SugonAc,
    },
    Setup {
        name: "misa-cukcuk",
        emulator: Emulator::MisaCukcuk,
        vendor: Vendor::MisaCukcuk,
    },
    Setup {
        name: "wechat-component",
        emulator: Emulator::WechatOpen,
        vendor: Vendor::WechatOpen,
    },
    Setup {
        name: "wechat-open",
        emulator: Emulator::WechatOpen,
        vendor: Vendor::WechatOpen,
    },
    Setup {
        name: "ekuaibao",
        emulator: Emulator::Ekuaibao,
        vendor: Vendor::Ekuaibao,
    },
];

fn config(setup: &Setup) -> VendorConfig {
    match setup.vendor {
        Vendor::ISolarCloud => VendorConfig::ISolarCloud(ISolarCloudConfig::new(
            accounts::ISOLARCLOUD_APP_KEY,
            accounts::ISOLARCLOUD_ACCESS_KEY,
        )),
        Vendor::SugonAc => VendorConfig::SugonAc(SugonAcConfig::new()),
        Vendor::MisaCukcuk => {
            VendorConfig::MisaCukcuk(MisaCukcukConfig::new(accounts::MISA_COMPANY_CODE))
        }
        Vendor::WechatOpen => VendorConfig::WechatOpen(WechatOpenConfig::new(
            accounts::WECHAT_COMPONENT_APPID,
            accounts::WECHAT_AUTHORIZER_APPID,
        )),
        Vendor::Ekuaibao => VendorConfig::Ekuaibao(EkuaibaoConfig::new()),
        other => unreachable!("{other}"),
    }
}

/// The login a profile repeats without a person, where its vendor has one.
fn unattended_login(setup: &Setup) -> Option<Grant> {
    match setup.name {
        "sugon-ac" => Some(Grant::SugonAcPassword {
            user: accounts::SUGON_USER.into(),
            password: accounts::SUGON_PASSWORD.into(),
            org_id: accounts::SUGON_ORG_ID.into(),
        }),
        "misa-cukcuk" => Some(Grant::MisaCukcukAppSignature {
            app_id: accounts::MISA_APP_ID.into(),
            domain: accounts::MISA_COMPANY_CODE.into(),
            secret_key: accounts::MISA_SECRET_KEY.into(),
        }),
        "wechat-component" => Some(Grant::WechatOpenComponentToken {
            component_appsecret: accounts::WECHAT_COMPONENT_APPSECRET.into(),
            component_verify_ticket: accounts::WECHAT_VERIFY_TICKET.into(),
        }),
        "ekuaibao" => Some(Grant::EkuaibaoAppCredentials {
            app_key: accounts::EKUAIBAO_APP_KEY.into(),
            app_security: accounts::EKUAIBAO_APP_SECURITY.into(),
        }),
        _ => None,
    }
}

fn id(name: &str) -> CredentialId {
    CredentialId::new(name).unwrap()
}

fn sinks(dir: &Path, name: &str) -> Vec<Sink> {
    vec![
        Sink::new(dir.join(format!("{name}.token")), Format::Token),
        Sink::new(dir.join(format!("{name}.json")), Format::Json),
        Sink::new(dir.join(format!("{name}.env")), Format::Env),
        Sink::new(dir.join(format!("{name}.header")), Format::Header),
    ]
}

/// Waits (in real time) until every profile holds a token that is not yet due, and returns the states.
async fn settled(
    agent: &Agent<MemoryStore>,
    now: DateTime<Utc>,
) -> BTreeMap<String, refresh_agent::State> {
    for _ in 0..2_500 {
        let status = agent.status();
        let ready = status.len() == PROFILES.len()
            && status.values().all(|state| {
                state.health == Health::Ok && state.refresh_at.is_some_and(|at| at > now)
            });
        if ready {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the keepers did not settle at {now}: {:#?}", agent.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_keeps_every_sink_valid_and_rewritten_before_each_expiry() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let clock = ManualClock::new();
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default()
            .with_clock(clock.clone())
            .with_seed(7),
    );
    let facade_clock = manager.clock().facade_clock();
    let wall = manager.clock().clone();
    // On tmpfs where there is one: a week is thousands of sink writes, each fsynced twice.
    let dir = match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let mut profiles = Vec::new();
    for setup in &PROFILES {
        let base = sandbox.base_url(setup.emulator).unwrap();
        let refresher = Refresher::new(config(setup).with_base_url(base))
            .unwrap()
            .with_clock(facade_clock.clone());
        let mut credential = CredentialOptions::new(refresher);
        if let Some(login) = unattended_login(setup) {
            credential = credential.with_login(login);
        }
        if setup.name == "wechat-open" {
            credential = credential.with_component_token(id("wechat-component"));
        }
        profiles.push(Profile {
            name: setup.name.into(),
            id: id(setup.name),
            vendor: setup.vendor,
            credential,
            sinks: sinks(dir.path(), setup.name),
            readers: Readers::default(),
        });
    }
    // The two authorization-code logins a person does once, before the agent starts; the others log in by
    // themselves.
    let code = |emulator| sandbox.authorization_code(emulator).unwrap();
    for profile in &profiles {
        manager.manage(profile.id.clone(), profile.credential.clone());
    }
    let component = manager.access_token(&id("wechat-component")).await.unwrap();
    let logins = [
        (
            "isolarcloud",
            Grant::ISolarCloudAuthorizationCode {
                code: code(Emulator::ISolarCloud).into(),
                redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
            },
        ),
        (
            "wechat-open",
            Grant::WechatOpenAuthorizationCode {
                authorization_code: code(Emulator::WechatOpen).into(),
                component_access_token: component.secret.clone(),
            },
        ),
    ];
    for (name, grant) in logins {
        manager.login(&id(name), &grant).await.unwrap();
    }
    let receiver = Receiver::start().await;
    let agent = Agent::new(manager).with_notifier(receiver.notifier());
    let applied = agent.apply(profiles);
    assert_eq!(applied.added.len(), PROFILES.len());

    let start = wall.wall();
    let mut rewrites: BTreeMap<String, usize> = BTreeMap::new();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut steps = 0;
    loop {
        let now = wall.wall();
        let status = settled(&agent, now).await;
        for setup in &PROFILES {
            let state = &status[setup.name];
            let read = |suffix: &str| {
                std::fs::read_to_string(dir.path().join(format!("{}.{suffix}", setup.name)))
                    .unwrap()
            };
            let token = read("token");
            let json: serde_json::Value = serde_json::from_str(&read("json")).unwrap();
            assert_eq!(json["access_token"], token.as_str(), "{}", setup.name);
            assert_eq!(read("header"), format!("Authorization: Bearer {token}\n"));
            assert!(read("env").starts_with(&format!("ACCESS_TOKEN={token}\n")));
            let expires_at: DateTime<Utc> = json["expires_at"].as_str().unwrap().parse().unwrap();
            // Written to the second, rounded down: never later than the token's real expiry.
            let real = state.expires_at.unwrap();
            assert!(
                expires_at <= real && real - expires_at < chrono::TimeDelta::seconds(1),
                "{}: {expires_at} for {real}",
                setup.name
            );
            assert!(
                expires_at > now,
                "{} holds a token that expired at {expires_at} (now {now})",
                setup.name
            );
            assert_eq!(
                sandbox.access_token_state(setup.emulator, &token),
                AccessTokenState::Live,
                "{}: the vendor does not consider the sink's token live",
                setup.name
            );
            if last.get(setup.name) != Some(&token) {
                *rewrites.entry(setup.name.into()).or_default() += 1;
                last.insert(setup.name.into(), token);
            }
        }
        if now - start >= chrono::TimeDelta::from_std(WEEK).unwrap() {
            break;
        }
        // To just past the earliest refresh: every renewal of the week happens, one jump each.
        let next = status.values().filter_map(|s| s.refresh_at).min().unwrap();
        let by = (next - now).to_std().unwrap() + Duration::from_secs(1);
        sandbox.clock().advance(by);
        clock.advance(by);
        steps += 1;
    }
    // Every profile's token was replaced at least once; MISA's login tokens (10 minutes, the conservative lifetime)
    // about every 8 minutes, all week.
    for setup in &PROFILES {
        assert!(rewrites[setup.name] >= 2, "{}: {rewrites:?}", setup.name);
    }
    assert!(rewrites["misa-cukcuk"] > 1_000, "{rewrites:?}");
    assert!(steps > 500, "{steps} renewals");
    eprintln!("a week: {steps} jumps, rewrites {rewrites:?}");
    assert_eq!(
        receiver.events(0).await,
        [],
        "no failure was injected, so nothing is notified"
    );
    agent.shutdown().await.unwrap();
    sandbox.shutdown().await;
}

/// Waits (in real time) until `done` holds for the agent's status.
async fn until_status<S: TokenStore + 'static>(
    agent: &Agent<S>,
    what: &str,
    done: impl Fn(&BTreeMap<String, refresh_agent::State>) -> bool,
) {
    for _ in 0..2_500 {
        if done(&agent.status()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("never {what}: {:#?}", agent.status());
}

/// A vendor down past the token's expiry: the sink goes when the token expires (nobody reads a dead token) and comes
/// back with the first token after the outage. A refresh token someone else spent: the credential is dead at its
/// next renewal, its sink keeps the still-valid token until that expires, and then is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_never_outlive_their_token_through_an_outage_or_a_dead_credential() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let clock = ManualClock::new();
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default()
            .with_clock(clock.clone())
            .with_seed(11),
    );
    let wall = manager.clock().clone();
    let facade_clock = manager.clock().facade_clock();
    let dir = tempfile::tempdir().unwrap();
    let refresher = |setup: &Setup| {
        Refresher::new(config(setup).with_base_url(sandbox.base_url(setup.emulator).unwrap()))
            .unwrap()
            .with_clock(facade_clock.clone())
    };
    let (sugon, solar) = (&PROFILES[1], &PROFILES[0]);
    let profiles: Vec<Profile> = [sugon, solar]
        .into_iter()
        .map(|setup| Profile {
            name: setup.name.into(),
            id: id(setup.name),
            vendor: setup.vendor,
            // No login of their own: nothing renews them but a refresh.
            credential: CredentialOptions::new(refresher(setup)),
            sinks: vec![Sink::new(dir.path().join(setup.name), Format::Token)],
            readers: Readers::default(),
        })
        .collect();
    for profile in &profiles {
        manager.manage(profile.id.clone(), profile.credential.clone());
    }
    let sugon_login = unattended_login(sugon).unwrap();
    manager.login(&id(sugon.name), &sugon_login).await.unwrap();
    let solar_login = Grant::ISolarCloudAuthorizationCode {
        code: sandbox
            .authorization_code(Emulator::ISolarCloud)
            .unwrap()
            .into(),
        redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
    };
    manager.login(&id(solar.name), &solar_login).await.unwrap();
    let receiver = Receiver::start().await;
    let agent = Agent::new(manager).with_notifier(receiver.notifier());
    agent.apply(profiles);
    until_status(&agent, "both ok", |s| {
        s.values().all(|s| s.health == Health::Ok)
    })
    .await;
    let sink = |name: &str| std::fs::read_to_string(dir.path().join(name)).ok();
    assert!(sink(sugon.name).is_some() && sink(solar.name).is_some());

    // Sugon is down for six hours (its tokens last two); iSolarCloud's refresh token is spent by someone else.
    let start = wall.wall();
    sandbox.outage(
        Emulator::SugonAc,
        sandbox.clock().now(),
        sandbox.clock().now() + chrono::TimeDelta::hours(6),
        503,
    );
    let stored = agent
        .manager()
        .store()
        .load(&id(solar.name))
        .await
        .unwrap()
        .unwrap();
    refresher(solar)
        .refresh(&refresh_facade::RefreshGrant::new(
            stored.tokens.refresh_token.clone(),
        ))
        .await
        .unwrap();

    let step = Duration::from_secs(5 * 60);
    let (mut went, mut came_back) = (false, false);
    while wall.wall() - start < chrono::TimeDelta::hours(8) {
        sandbox.clock().advance(step);
        clock.advance(step);
        // The keeper reacts to the jump in real time: a moment, and then until the sink agrees with the clock (2 s at
        // most).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = wall.wall();
        let settled = |token: &Option<String>| match token {
            Some(token) => {
                sandbox.access_token_state(Emulator::SugonAc, token) != AccessTokenState::Expired
            }
            None => agent.status()[sugon.name].health == Health::Degraded,
        };
        let mut seen = sink(sugon.name);
        for _ in 0..200 {
            if settled(&seen) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            seen = sink(sugon.name);
        }
        let state = agent.status()[sugon.name].clone();
        // Present: the token in it has not expired. Absent: the credential is failing.
        assert!(settled(&seen), "at {now}: {seen:?} {state:?}");
        match seen {
            Some(_) => came_back |= went,
            None => went = true,
        }
    }
    assert!(went, "the sink was never removed during the outage");
    assert!(came_back, "the sink never came back after the outage");
    until_status(&agent, "sugon ok again", |s| {
        s[sugon.name].health == Health::Ok
    })
    .await;

    // iSolarCloud's token lasts two days: at its refresh, the spent refresh token is refused.
    let due = agent.status()[solar.name].refresh_at.unwrap();
    let by = (due - wall.wall()).to_std().unwrap() + Duration::from_secs(60);
    sandbox.clock().advance(by);
    clock.advance(by);
    until_status(&agent, "solar dead", |s| {
        s[solar.name].health == Health::Dead
    })
    .await;
    let solar_state = agent.status()[solar.name].clone();
    assert_eq!(
        solar_state.last_outcome.as_deref(),
        Some("reauthorization_required")
    );
    // Its token is still valid for hours: the sink keeps it until it expires, and then loses it.
    assert!(sink(solar.name).is_some(), "a still-valid token is kept");
    let expires_at = solar_state.expires_at.unwrap();
    let by = (expires_at - wall.wall()).to_std().unwrap() + Duration::from_secs(1);
    sandbox.clock().advance(by);
    clock.advance(by);
    for _ in 0..2_500 {
        if sink(solar.name).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        sink(solar.name).is_none(),
        "an expired token's sink is removed"
    );
    assert_eq!(agent.status()[solar.name].health, Health::Dead);

    // A person logs in again: at the agent's next look, the credential is back, and the webhook says so. Sugon,
    // which has no login and whose renewal window the jumps above left behind, needs a person too.
    let again = Grant::ISolarCloudAuthorizationCode {
        code: sandbox
            .authorization_code(Emulator::ISolarCloud)
            .unwrap()
            .into(),
        redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
    };
    agent
        .manager()
        .login(&id(solar.name), &again)
        .await
        .unwrap();
    sandbox.clock().advance(refresh_agent::agent::DEAD_RECHECK);
    clock.advance(refresh_agent::agent::DEAD_RECHECK);
    until_status(&agent, "solar back", |s| s[solar.name].health == Health::Ok).await;
    assert!(
        sink(solar.name).is_some(),
        "the sink is back with the new token"
    );
    let mut events = receiver.events(3).await;
    events.sort();
    let expected = [
        ("needs_person", "isolarcloud"),
        ("needs_person", "sugon-ac"),
        ("recovered", "isolarcloud"),
    ]
    .map(|(event, profile)| (event.to_owned(), profile.to_owned()));
    assert_eq!(events, expected);
    agent.shutdown().await.unwrap();
    sandbox.shutdown().await;
}

/// What a SIGHUP does: the re-read profiles replace the running ones. A new profile starts, a kept one restarts, a
/// dropped one stops and the manager forgets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_new_profiles_adds_restarts_and_removes() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let clock = ManualClock::new();
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default().with_clock(clock.clone()),
    );
    let facade_clock = manager.clock().facade_clock();
    let dir = tempfile::tempdir().unwrap();
    let profile = |setup: &Setup| {
        let refresher =
            Refresher::new(config(setup).with_base_url(sandbox.base_url(setup.emulator).unwrap()))
                .unwrap()
                .with_clock(facade_clock.clone());
        Profile {
            name: setup.name.into(),
            id: id(setup.name),
            vendor: setup.vendor,
            credential: CredentialOptions::new(refresher)
                .with_login(unattended_login(setup).unwrap()),
            sinks: vec![Sink::new(dir.path().join(setup.name), Format::Token)],
            readers: Readers::default(),
        }
    };
    let (sugon, ekuaibao, misa) = (&PROFILES[1], &PROFILES[5], &PROFILES[2]);
    let agent = Agent::new(manager);
    let first = agent.apply(vec![profile(sugon), profile(ekuaibao)]);
    assert_eq!(first.added, ["sugon-ac", "ekuaibao"]);
    until_status(&agent, "both ok", |s| {
        s.len() == 2 && s.values().all(|s| s.health == Health::Ok)
    })
    .await;

    let second = agent.apply(vec![profile(ekuaibao), profile(misa)]);
    assert_eq!(
        (second.added, second.restarted, second.removed),
        (
            vec!["misa-cukcuk".to_owned()],
            vec!["ekuaibao".to_owned()],
            vec!["sugon-ac".to_owned()]
        )
    );
    until_status(&agent, "the new set ok", |s| {
        s.keys().map(String::as_str).collect::<Vec<_>>() == ["ekuaibao", "misa-cukcuk"]
            && s.values().all(|s| s.health == Health::Ok)
    })
    .await;
    assert!(std::fs::read_to_string(dir.path().join("misa-cukcuk")).is_ok());
    let forgotten = agent
        .manager()
        .access_token(&id("sugon-ac"))
        .await
        .unwrap_err();
    assert!(
        matches!(forgotten, refresh_manager::ManagerError::Unknown(_)),
        "{forgotten}"
    );

    // Shut down: the keepers have stopped, so a sink removed now is not written again, even past a renewal.
    agent.shutdown().await.unwrap();
    let misa_sink = dir.path().join("misa-cukcuk");
    std::fs::remove_file(&misa_sink).unwrap();
    let step = Duration::from_secs(15 * 60);
    sandbox.clock().advance(step);
    clock.advance(step);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!misa_sink.exists(), "a keeper still ran after shutdown");
}

/// A `MemoryStore` with two faults a test turns on: writes refused while `refuse` is set (a full disk after the
/// vendor answered), and another writer that stores `theirs` just before the next write (as one whose lease outlived
/// a paused holder's would), so that the write loses its compare-and-swap.
#[derive(Clone, Default)]
struct Faulty {
    inner: MemoryStore,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
    theirs: std::sync::Arc<std::sync::Mutex<Option<refresh_manager::StoredTokens>>>,
}

impl Faulty {
    fn refusal(&self) -> Result<(), refresh_manager::StoreError> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("no space left on device").into());
        }
        Ok(())
    }
}

impl TokenStore for Faulty {
    type Lock = <MemoryStore as TokenStore>::Lock;

    async fn load(
        &self,
        id: &CredentialId,
    ) -> Result<Option<refresh_manager::Versioned>, refresh_manager::StoreError> {
        self.inner.load(id).await
    }
    async fn compare_and_swap(
        &self,
        lock: &Self::Lock,
        expected: Option<u64>,
        tokens: &refresh_manager::StoredTokens,
    ) -> Result<refresh_manager::Swap, refresh_manager::StoreError> {
        self.refusal()?;
        let theirs = self.theirs.lock().unwrap().take();
        if let Some(theirs) = theirs {
            let written = self.inner.compare_and_swap(lock, expected, &theirs).await?;
            assert!(
                matches!(written, refresh_manager::Swap::Written { .. }),
                "{written:?}"
            );
        }
        self.inner.compare_and_swap(lock, expected, tokens).await
    }
    async fn keep_orphan(
        &self,
        lock: &Self::Lock,
        tokens: &refresh_manager::StoredTokens,
    ) -> Result<(), refresh_manager::StoreError> {
        self.refusal()?;
        self.inner.keep_orphan(lock, tokens).await
    }
    async fn lock(&self, id: &CredentialId) -> Result<Self::Lock, refresh_manager::StoreError> {
        self.inner.lock(id).await
    }
    // The check before the vendor passes: the disk fills between the check and the write.
    async fn check_writable(&self, id: &CredentialId) -> Result<(), refresh_manager::StoreError> {
        self.inner.check_writable(id).await
    }
    async fn release(&self, lock: Self::Lock) {
        self.inner.release(lock).await
    }
}

/// Tokens the vendor issued and the store refused: held in memory, shown in the status, and notified once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_the_store_refused_are_shown_and_notified_once() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::Ekuaibao))
        .await
        .unwrap();
    let clock = ManualClock::new();
    let store = Faulty::default();
    let manager = Manager::with_options(
        store.clone(),
        ManagerOptions::default().with_clock(clock.clone()),
    );
    let wall = manager.clock().clone();
    let setup = &PROFILES[5];
    let refresher =
        Refresher::new(config(setup).with_base_url(sandbox.base_url(setup.emulator).unwrap()))
            .unwrap()
            .with_clock(manager.clock().facade_clock());
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let agent = Agent::new(manager).with_notifier(receiver.notifier());
    agent.apply(vec![Profile {
        name: setup.name.into(),
        id: id(setup.name),
        vendor: setup.vendor,
        credential: CredentialOptions::new(refresher).with_login(unattended_login(setup).unwrap()),
        sinks: vec![Sink::new(dir.path().join("erp"), Format::Token)],
        readers: Readers::default(),
    }]);
    until_status(&agent, "ok", |s| s.values().all(|s| s.health == Health::Ok)).await;
    let state = agent.status()[setup.name].clone();
    assert!(state.sink_writes >= 1, "{state:?}");
    assert!(!state.unsaved_tokens);

    store
        .refuse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let by = (state.refresh_at.unwrap() - wall.wall()).to_std().unwrap() + Duration::from_secs(1);
    sandbox.clock().advance(by);
    clock.advance(by);
    until_status(&agent, "unsaved", |s| s[setup.name].unsaved_tokens).await;
    let events = receiver.events(1).await;
    assert_eq!(
        events,
        [("tokens_unsaved".to_owned(), setup.name.to_owned())]
    );
    agent.shutdown().await.unwrap_err();
}

/// Two writers renew one credential: the agent's answer loses the compare-and-swap and is kept as an orphan, and the
/// webhook hears `orphan_kept` for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_kept_as_an_orphan_is_notified() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::Ekuaibao))
        .await
        .unwrap();
    let clock = ManualClock::new();
    let store = Faulty::default();
    let receiver = Receiver::start().await;
    let notifier = receiver.notifier();
    let manager = Manager::with_options(
        store.clone(),
        ManagerOptions::default()
            .with_clock(clock.clone())
            .on_rotate(notifier.rotation_hook()),
    );
    let wall = manager.clock().clone();
    let setup = &PROFILES[5];
    let refresher =
        Refresher::new(config(setup).with_base_url(sandbox.base_url(setup.emulator).unwrap()))
            .unwrap()
            .with_clock(manager.clock().facade_clock());
    let agent = Agent::new(manager).with_notifier(notifier);
    agent.apply(vec![Profile {
        name: setup.name.into(),
        id: id(setup.name),
        vendor: setup.vendor,
        credential: CredentialOptions::new(refresher).with_login(unattended_login(setup).unwrap()),
        sinks: Vec::new(),
        readers: Readers::default(),
    }]);
    until_status(&agent, "ok", |s| s.values().all(|s| s.health == Health::Ok)).await;
    let state = agent.status()[setup.name].clone();
    // Due now; as its refresh is written, another writer has stored the next version first.
    let record = store.load(&id(setup.name)).await.unwrap().unwrap();
    let mut theirs = record.tokens.clone();
    theirs.obtained_at = wall.wall();
    theirs.expires_at = theirs.obtained_at + chrono::TimeDelta::hours(1);
    *store.theirs.lock().unwrap() = Some(theirs);
    let by = (state.refresh_at.unwrap() - wall.wall()).to_std().unwrap() + Duration::from_secs(1);
    sandbox.clock().advance(by);
    clock.advance(by);
    let events = receiver.events(1).await;
    assert_eq!(events, [("orphan_kept".to_owned(), setup.name.to_owned())]);
    agent.shutdown().await.unwrap();
}

/// The vendor is down until after the refresh window closed: six hours before it closes the webhook hears
/// `window_closing`, once; when it has closed, `needs_person`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_refresh_window_is_notified_before_the_credential_dies() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::SugonAc))
        .await
        .unwrap();
    let clock = ManualClock::new();
    let manager = Manager::with_options(
        MemoryStore::new(),
        ManagerOptions::default().with_clock(clock.clone()),
    );
    let wall = manager.clock().clone();
    let sugon = &PROFILES[1];
    let refresher =
        Refresher::new(config(sugon).with_base_url(sandbox.base_url(sugon.emulator).unwrap()))
            .unwrap()
            .with_clock(manager.clock().facade_clock());
    // No login of its own: only a refresh renews it, within 24 hours of its expiry.
    let credential = CredentialOptions::new(refresher);
    manager.manage(id(sugon.name), credential.clone());
    manager
        .login(&id(sugon.name), &unattended_login(sugon).unwrap())
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let agent = Agent::new(manager).with_notifier(receiver.notifier());
    agent.apply(vec![Profile {
        name: sugon.name.into(),
        id: id(sugon.name),
        vendor: sugon.vendor,
        credential,
        sinks: Vec::new(),
        readers: Readers::default(),
    }]);
    until_status(&agent, "ok", |s| s.values().all(|s| s.health == Health::Ok)).await;
    let start = wall.wall();
    sandbox.outage(
        Emulator::SugonAc,
        sandbox.clock().now(),
        sandbox.clock().now() + chrono::TimeDelta::hours(28),
        503,
    );
    let step = Duration::from_secs(20 * 60);
    while wall.wall() - start < chrono::TimeDelta::hours(30) {
        sandbox.clock().advance(step);
        clock.advance(step);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    until_status(&agent, "dead", |s| s[sugon.name].health == Health::Dead).await;
    let mut events = receiver.events(2).await;
    events.sort();
    let expected = [("needs_person", "sugon-ac"), ("window_closing", "sugon-ac")]
        .map(|(event, profile)| (event.to_owned(), profile.to_owned()));
    assert_eq!(events, expected);
    agent.shutdown().await.unwrap();
}
