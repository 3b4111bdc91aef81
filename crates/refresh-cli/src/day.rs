//! The demo's second part: a simulated day on the sandbox's fake clock, with every vendor's credential kept valid
//! by `refresh-manager` while callers ask for a token every ten minutes. What the manager renewed, and when, is the
//! timeline the demo prints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use refresh_facade::{Grant, Refresher, Vendor};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerOptions, ManualClock, MemoryStore,
    StoredTokens, TokenStore,
};
use refresh_sandbox::{Emulator, Sandbox, SandboxOptions, accounts};

/// How long the simulated day is, and how often callers ask.
const DAY: Duration = Duration::from_secs(24 * 3600);
const STEP: Duration = Duration::from_secs(10 * 60);

/// One credential's day.
pub struct Timeline {
    pub credential: String,
    /// When each renewal became durable, since the start of the day, and whether it was a login.
    pub renewals: Vec<(Duration, bool)>,
    /// Callers that got an error instead of a token.
    pub errors: usize,
}

/// A renewal the manager reported: the credential, when it was durable, whether it was a login.
type Renewal = (String, DateTime<Utc>, bool);

/// The credentials of the day: (id, vendor's emulator).
const CREDENTIALS: [(&str, Emulator); 6] = [
    ("isolarcloud", Emulator::ISolarCloud),
    ("sugon-ac", Emulator::SugonAc),
    ("misa-cukcuk", Emulator::MisaCukcuk),
    ("wechat-open-component", Emulator::WechatOpen),
    ("wechat-open", Emulator::WechatOpen),
    ("ekuaibao", Emulator::Ekuaibao),
];

pub async fn simulate(http: &reqwest::Client) -> Result<Vec<Timeline>, String> {
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .map_err(|e| format!("cannot start the sandbox: {e}"))?;
    let clock = ManualClock::new();
    let start = refresh_manager::ManagerClock::from(clock.clone()).wall();
    let renewed: Arc<Mutex<Vec<Renewal>>> = Arc::default();
    let options = ManagerOptions::default()
        .with_clock(clock.clone())
        .with_seed(2026)
        .on_rotate({
            let (renewed, clock) = (
                Arc::clone(&renewed),
                refresh_manager::ManagerClock::from(clock.clone()),
            );
            move |rotated| {
                let mut renewed = renewed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                renewed.push((rotated.id.to_string(), clock.wall(), rotated.by_login));
            }
        });
    let manager = Manager::with_options(MemoryStore::new(), options);
    for (name, emulator) in CREDENTIALS {
        let refresher = refresher(&sandbox, emulator, http, &manager)?;
        let id = credential_id(name)?;
        let mut credential = CredentialOptions::new(refresher);
        if let Some(login) = unattended_login(name) {
            credential = credential.with_login(login);
        }
        if name == "wechat-open" {
            credential = credential.with_component_token(credential_id("wechat-open-component")?);
        }
        manager.manage(id.clone(), credential);
        first_tokens(&manager, &sandbox, name, &id).await?;
    }

    let mut errors = vec![0; CREDENTIALS.len()];
    let mut elapsed = Duration::ZERO;
    while elapsed < DAY {
        sandbox.clock().advance(STEP);
        clock.advance(STEP);
        elapsed += STEP;
        // Background renewals react to the clock within milliseconds.
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (n, (name, _)) in CREDENTIALS.iter().enumerate() {
            if manager.access_token(&credential_id(name)?).await.is_err() {
                errors[n] += 1;
            }
        }
    }
    sandbox.shutdown().await;

    let renewed = renewed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(CREDENTIALS
        .iter()
        .zip(errors)
        .map(|((name, _), errors)| Timeline {
            credential: (*name).to_owned(),
            renewals: renewed
                .iter()
                .filter(|(id, _, _)| id == name)
                .map(|(_, at, by_login)| ((*at - start).to_std().unwrap_or_default(), *by_login))
                .collect(),
            errors,
        })
        .collect())
}

fn credential_id(name: &str) -> Result<CredentialId, String> {
    CredentialId::new(name).map_err(|e| e.to_string())
}

fn refresher(
    sandbox: &Sandbox,
    emulator: Emulator,
    http: &reqwest::Client,
    manager: &Manager<MemoryStore>,
) -> Result<Refresher, String> {
    let config = Vendor::ALL
        .into_iter()
        .find(|vendor| crate::demo::emulator(*vendor) == Some(emulator))
        .and_then(crate::demo::sandbox_config)
        .ok_or_else(|| format!("{emulator} has no part in the day"))?;
    let base = sandbox
        .base_url(emulator)
        .ok_or("an emulator did not start")?;
    Refresher::with_http_client(config.with_base_url(base), http.clone())
        .map(|refresher| refresher.with_clock(manager.clock().facade_clock()))
        .map_err(|e| e.to_string())
}

/// The login each credential can repeat without a person, if it has one.
fn unattended_login(name: &str) -> Option<Grant> {
    match name {
        "sugon-ac" => Some(Grant::SugonAcPassword {
            user: accounts::SUGON_USER.into(),
            password: accounts::SUGON_PASSWORD.into(),
            org_id: accounts::SUGON_ORG_ID.into(),
        }),
        "wechat-open-component" => Some(Grant::WechatOpenComponentToken {
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

/// The first tokens: each vendor's documented login through the manager (MISA CukCuk documents none: the sandbox's
/// own stands in, stored as a service would store tokens it was handed).
async fn first_tokens(
    manager: &Manager<MemoryStore>,
    sandbox: &Sandbox,
    name: &str,
    id: &CredentialId,
) -> Result<(), String> {
    let code = |emulator| {
        sandbox
            .authorization_code(emulator)
            .ok_or("the sandbox issued no authorization code")
    };
    let grant = match name {
        "isolarcloud" => Grant::ISolarCloudAuthorizationCode {
            code: code(Emulator::ISolarCloud)?.into(),
            redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
        },
        "wechat-open" => {
            let component = manager
                .access_token(&credential_id("wechat-open-component")?)
                .await
                .map_err(|e| e.to_string())?;
            Grant::WechatOpenAuthorizationCode {
                authorization_code: code(Emulator::WechatOpen)?.into(),
                component_access_token: component.secret.clone(),
            }
        }
        "misa-cukcuk" => {
            // The service does not know when these expire: the facade's conservative lifetime, so the first
            // refresh comes early.
            let login = sandbox.login(Emulator::MisaCukcuk);
            let now = manager.clock().wall();
            let lifetime = chrono::TimeDelta::from_std(refresh_facade::CONSERVATIVE_LIFETIME)
                .map_err(|e| e.to_string())?;
            let tokens: StoredTokens = serde_json::from_value(serde_json::json!({
                "vendor": Vendor::MisaCukcuk,
                "access_token": login.access_token,
                "refresh_token": login.refresh_token,
                "obtained_at": now,
                "expires_at": now + lifetime,
                "refreshable_until": null,
            }))
            .map_err(|e| e.to_string())?;
            // As `refresh login` would: under the credential's lock.
            let store = manager.store();
            let held = store.lock(id).await.map_err(|e| e.to_string())?;
            let written = store.compare_and_swap(&held, None, &tokens).await;
            store.release(held).await;
            let _ = written.map_err(|e| e.to_string())?;
            return Ok(());
        }
        // Credentials with a login of their own obtain their first tokens at the first call.
        _ => {
            return manager
                .access_token(id)
                .await
                .map(drop)
                .map_err(|e| e.to_string());
        }
    };
    manager
        .login(id, &grant)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
