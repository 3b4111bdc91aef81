//! Profiles: named credentials in a TOML file (`$XDG_CONFIG_HOME/refresh/config.toml`, or `--config`), their
//! tokens in a `FileStore` under the state directory (`$XDG_STATE_HOME/refresh`, or the file's `state_dir`), and
//! the last outcome of each beside them. Secrets are never in the file's flags: an app secret may sit in the
//! file (readable by its owner only), or come from the environment like every other secret.
//!
//! ```toml
//! [profiles.prod]
//! vendor = "ekuaibao"        # the vendor's settings, as the facade's VendorConfig reads them
//! validity_days = 7
//! [profiles.prod.login]      # the login's settings that are not secret
//! app_key = "my-app"
//! ```
//!
//! For `refresh agent`, a profile may list sinks (files the agent keeps holding a valid token) and readers (who may
//! ask the agent's socket for it); `[agent]` says where the socket is:
//!
//! ```toml
//! [agent]
//! socket = "/run/refresh/agent.sock"   # default: $XDG_RUNTIME_DIR/refresh/agent.sock, else the state directory
//! webhook = "https://hooks.example/refresh"   # signed with REFRESH_WEBHOOK_SECRET (HMAC-SHA256)
//! [[profiles.prod.sinks]]
//! path = "/run/secrets/erp.token"
//! format = "token"                     # token, json, env, header
//! command = ["systemctl", "reload", "nginx"]
//! [profiles.prod.readers]
//! uids = [1001]
//! gids = [2000]
//! ```
//!
//! A `[postgres]` table puts the tokens in PostgreSQL instead, shared with the replicas of a service
//! (`refresh-postgres`): `url` (or `REFRESH_DATABASE_URL`), and the encryption keys from `keys_file` or
//! `REFRESH_KIT_PG_KEYS` (`<key id>:<32 bytes in base64>`, current key first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use refresh_facade::{Anomaly, Vendor, VendorConfig};
use refresh_manager::{CredentialId, FileStore, RefreshPolicy, Rescue};
use refresh_postgres::Keyring;

use crate::settings::{Misconfigured, SecretName, Secrets};
use crate::store::ProfileStore;

/// How the ids of credentials refresh-kit derives from profiles begin (WeChat's component token); no profile name
/// may begin so.
pub const DERIVED_PREFIX: &str = "_";

/// Where the profiles are: `--config`, else `REFRESH_CONFIG`, else the XDG config directory.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The profiles file [default: $XDG_CONFIG_HOME/refresh/config.toml, or ~/.config/refresh/config.toml].
    #[arg(long, env = "REFRESH_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

/// The non-secret settings of a profile's login (`[profiles.NAME.login]`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSettings {
    /// iSolarCloud: the redirect URI the authorization code was issued for.
    pub redirect_uri: Option<String>,
    /// Sugon AC: the user name and organization id.
    pub user: Option<String>,
    pub org_id: Option<String>,
    /// Ekuaibao: the appKey.
    pub app_key: Option<String>,
    /// MISA CukCuk: the OpenPlatform app id, and the connection's domain (default: the profile's company code).
    pub app_id: Option<String>,
    pub domain: Option<String>,
}

/// `[profiles.NAME.refresh]`: when the credential is renewed, where the vendor's tokens call for other than
/// [`RefreshPolicy::default`] (durations as `"90s"`, `"5m"`, `"250ms"`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshSettings {
    /// How long before expiry a renewal is due, at least ([`RefreshPolicy::minimum_ahead`]).
    ahead: Option<String>,
    /// The shortest time between two renewals that succeeded ([`RefreshPolicy::minimum_interval`]).
    minimum_interval: Option<String>,
}

impl RefreshSettings {
    fn policy(&self) -> Result<RefreshPolicy, String> {
        let duration = |field: &str, text: &Option<String>| {
            text.as_deref()
                .map(|text| {
                    humantime::parse_duration(text)
                        .map_err(|e| format!("{field} = {text:?} is not a duration: {e}"))
                })
                .transpose()
        };
        let mut policy = RefreshPolicy::default();
        if let Some(ahead) = duration("ahead", &self.ahead)? {
            policy.minimum_ahead = ahead;
        }
        if let Some(interval) = duration("minimum_interval", &self.minimum_interval)? {
            policy = policy.with_minimum_interval(interval);
        }
        Ok(policy)
    }
}

/// `[postgres]`: the shared PostgreSQL store.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresSettings {
    url: Option<String>,
    keys_file: Option<PathBuf>,
}

/// `[agent]`: where `refresh agent` listens.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSettings {
    socket: Option<PathBuf>,
    /// Where notifications go (https://, or http:// to loopback); signed with `REFRESH_WEBHOOK_SECRET`.
    webhook: Option<String>,
}

/// One profile of the file.
pub struct Profile {
    pub name: String,
    pub id: CredentialId,
    pub vendor: Vendor,
    /// The vendor's settings as written (with `access_key` from `APP_SECRET` where the file has none).
    table: toml::Table,
    pub login: LoginSettings,
    /// `refresh agent`: the files it keeps holding a valid token, and who may ask its socket for it.
    pub sinks: Vec<refresh_agent::Sink>,
    pub readers: refresh_agent::Readers,
    /// When its credential is renewed (`[profiles.NAME.refresh]`).
    pub policy: RefreshPolicy,
}

/// The profiles file, read.
pub struct Profiles {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    postgres: Option<PostgresSettings>,
    agent: AgentSettings,
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    state_dir: Option<PathBuf>,
    postgres: Option<PostgresSettings>,
    #[serde(default)]
    agent: AgentSettings,
    #[serde(default)]
    profiles: BTreeMap<String, toml::Table>,
}

impl ConfigArgs {
    /// Where the profiles file is (it may not exist yet).
    pub fn path(&self) -> Result<PathBuf, Misconfigured> {
        match &self.config {
            Some(path) => Ok(path.clone()),
            None => Ok(xdg_dir("XDG_CONFIG_HOME", ".config")?.join("refresh/config.toml")),
        }
    }

    pub fn load(&self) -> Result<Profiles, Misconfigured> {
        let path = self.path()?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let how = if e.kind() == std::io::ErrorKind::NotFound {
                "; create it with `refresh profiles add NAME --vendor VENDOR …` (see `refresh profiles add --help`)"
            } else {
                ""
            };
            Misconfigured(format!(
                "cannot read the profiles file {}: {e}{how}",
                path.display()
            ))
        })?;
        warn_if_readable_by_others(&path);
        // toml's messages quote the line they point at, which may hold an app secret: keep only where it failed.
        let file: File = toml::from_str(&text).map_err(|e| {
            let place = e
                .span()
                .map(|span| format!(" at byte {}", span.start))
                .unwrap_or_default();
            Misconfigured(format!(
                "{}{place} is not a profiles file: {}",
                path.display(),
                e.message()
            ))
        })?;
        let state_dir = match file.state_dir {
            Some(dir) => dir,
            None => xdg_dir("XDG_STATE_HOME", ".local/state")?.join("refresh"),
        };
        let mut profiles = BTreeMap::new();
        for (name, mut table) in file.profiles {
            let id = CredentialId::new(&name)
                .map_err(|e| Misconfigured(format!("profile {name:?}: {e}")))?;
            if name.starts_with(DERIVED_PREFIX) {
                return Err(Misconfigured(format!(
                    "profile {name:?}: names beginning with {DERIVED_PREFIX:?} are kept for the credentials \
                     refresh-kit derives (WeChat's component token)"
                )));
            }
            let mut login: LoginSettings = match table.remove("login") {
                Some(login) => login.try_into().map_err(|e: toml::de::Error| {
                    Misconfigured(format!("profile {name}: [login]: {}", e.message()))
                })?,
                None => LoginSettings::default(),
            };
            let sinks: Vec<refresh_agent::Sink> = match table.remove("sinks") {
                Some(sinks) => sinks.try_into().map_err(|e: toml::de::Error| {
                    Misconfigured(format!("profile {name}: [[sinks]]: {}", e.message()))
                })?,
                None => Vec::new(),
            };
            let readers: refresh_agent::Readers = match table.remove("readers") {
                Some(readers) => readers.try_into().map_err(|e: toml::de::Error| {
                    Misconfigured(format!("profile {name}: [readers]: {}", e.message()))
                })?,
                None => refresh_agent::Readers::default(),
            };
            let policy = match table.remove("refresh") {
                Some(refresh) => refresh
                    .try_into()
                    .map_err(|e: toml::de::Error| e.message().to_owned())
                    .and_then(|settings: RefreshSettings| settings.policy())
                    .map_err(|e| Misconfigured(format!("profile {name}: [refresh]: {e}")))?,
                None => RefreshPolicy::default(),
            };
            if login.domain.is_none() {
                login.domain = table
                    .get("company_code")
                    .and_then(toml::Value::as_str)
                    .map(str::to_owned);
            }
            let vendor = table
                .get("vendor")
                .and_then(toml::Value::as_str)
                .ok_or_else(|| Misconfigured(format!("profile {name} names no vendor")))?
                .parse()
                .map_err(|e| Misconfigured(format!("profile {name}: {e}")))?;
            profiles.insert(
                name.clone(),
                Profile {
                    name,
                    id,
                    vendor,
                    table,
                    login,
                    sinks,
                    readers,
                    policy,
                },
            );
        }
        Ok(Profiles {
            path,
            state_dir,
            postgres: file.postgres,
            agent: file.agent,
            profiles,
        })
    }
}

/// The profiles file may hold app secrets: say so (on standard error) if others may read it.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Some(mode) = readable_by_others(path) {
        eprintln!(
            "warning: the profiles file {} may be read by others (mode {mode:o}) and may hold app secrets: \
             run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    fn readable_by_others(path: &Path) -> Option<u32> {
        let mode = std::fs::metadata(path).ok()?.mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
}

fn xdg_dir(variable: &str, under_home: &str) -> Result<PathBuf, Misconfigured> {
    if let Some(dir) = std::env::var_os(variable).filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| Misconfigured(format!("neither {variable} nor HOME is set")))?;
    Ok(Path::new(&home).join(under_home))
}

impl Profiles {
    pub fn get(&self, name: &str) -> Result<&Profile, Misconfigured> {
        self.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            Misconfigured(format!(
                "no profile {name:?} in {} (it has: {})",
                self.path.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// Where `refresh agent` listens: `[agent] socket`, else `$XDG_RUNTIME_DIR/refresh/agent.sock`, else
    /// `agent.sock` in the state directory.
    pub fn socket(&self) -> PathBuf {
        if let Some(socket) = &self.agent.socket {
            return socket.clone();
        }
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("refresh/agent.sock"),
            None => self.state_dir.join("agent.sock"),
        }
    }

    /// `[agent] webhook`, with its signing secret from `REFRESH_WEBHOOK_SECRET`, if the file names one.
    pub fn webhook(&self) -> Result<Option<refresh_agent::Webhook>, Misconfigured> {
        let Some(url) = &self.agent.webhook else {
            return Ok(None);
        };
        let secret = std::env::var("REFRESH_WEBHOOK_SECRET")
            .ok()
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| {
                Misconfigured(
                    "[agent] webhook needs REFRESH_WEBHOOK_SECRET to sign its bodies".into(),
                )
            })?;
        refresh_agent::Webhook::new(url, secret.into())
            .map(Some)
            .map_err(Misconfigured)
    }

    pub fn store(&self) -> Result<ProfileStore, Misconfigured> {
        if let Some(postgres) = &self.postgres {
            let url = std::env::var("REFRESH_DATABASE_URL")
                .ok()
                .or_else(|| postgres.url.clone())
                .ok_or_else(|| {
                    Misconfigured("[postgres] needs a url (or REFRESH_DATABASE_URL)".into())
                })?;
            let keys = match &postgres.keys_file {
                Some(path) => Keyring::from_file(path),
                None => Keyring::from_env("REFRESH_KIT_PG_KEYS"),
            }
            .map_err(|e| Misconfigured(format!("[postgres]: {e}")))?;
            return Ok(ProfileStore::postgres(url, keys));
        }
        let dir = self.state_dir.join("tokens");
        FileStore::open(&dir).map(ProfileStore::File).map_err(|e| {
            Misconfigured(format!(
                "cannot open the token store {}: {e}",
                dir.display()
            ))
        })
    }

    /// Where tokens go that the vendor issued and the store refused (a full disk, a read-only state directory, a
    /// database gone): `rescue/` in the state directory, else a private directory under `$XDG_RUNTIME_DIR` (or
    /// `/tmp`), which is usually another file system. The next command on the profile stores them first, and
    /// `refresh status` shows them meanwhile.
    pub fn rescue(&self) -> Rescue {
        let elsewhere = match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("refresh/rescue"),
            // SAFETY: geteuid has no preconditions and cannot fail.
            None => PathBuf::from(format!("/tmp/refresh-{}/rescue", unsafe {
                libc::geteuid()
            })),
        };
        Rescue::new([self.state_dir.join("rescue"), elsewhere])
    }

    fn outcome_path(&self, profile: &Profile) -> PathBuf {
        self.state_dir
            .join("outcomes")
            .join(format!("{}.json", profile.id))
    }

    /// Records how the last command on `profile` ended (`ok` or an error kind), for `refresh status`, with the
    /// anomalies of the answers whose tokens it stored; a command that stored none (`None`) keeps the last ones.
    pub fn record_outcome(&self, profile: &Profile, outcome: &str, stored: Option<&[Anomaly]>) {
        let path = self.outcome_path(profile);
        let (anomalies, anomalies_at) = match stored {
            Some(anomalies) => (
                crate::output::anomalies(anomalies),
                serde_json::json!(Utc::now()),
            ),
            None => {
                let mut last = self.outcome_record(profile).unwrap_or_default();
                (last["anomalies"].take(), last["anomalies_at"].take())
            }
        };
        let record = serde_json::json!({
            "outcome": outcome,
            "at": Utc::now(),
            "anomalies": anomalies,
            "anomalies_at": anomalies_at,
        });
        // Best effort: the outcome is a convenience for `status`; the tokens are already stored.
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, record.to_string()));
        if let Err(error) = written {
            eprintln!(
                "warning: cannot record the outcome in {}: {error}",
                path.display()
            );
        }
    }

    /// The last outcome recorded for `profile`, and when.
    pub fn last_outcome(&self, profile: &Profile) -> Option<(String, DateTime<Utc>)> {
        let record = self.outcome_record(profile)?;
        let at = record["at"].as_str()?.parse().ok()?;
        Some((record["outcome"].as_str()?.to_owned(), at))
    }

    /// The anomalies recorded with the last outcome (`[{"kind", "detail"}]`; empty when there were none).
    pub fn last_anomalies(&self, profile: &Profile) -> serde_json::Value {
        self.outcome_record(profile)
            .map(|mut record| record["anomalies"].take())
            .filter(serde_json::Value::is_array)
            .unwrap_or_else(|| serde_json::json!([]))
    }

    fn outcome_record(&self, profile: &Profile) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.outcome_path(profile)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The anomalies of the answers whose tokens one command stored (a manager's rotation hook collects them); `None`
/// until it stores any.
#[derive(Clone, Default)]
pub struct Anomalies(std::sync::Arc<std::sync::Mutex<Option<Vec<Anomaly>>>>);

impl Anomalies {
    /// For [`refresh_manager::ManagerOptions::on_rotate`].
    pub fn hook(&self) -> impl Fn(&refresh_manager::Rotated) + Send + Sync + 'static {
        let collected = self.clone();
        move |rotated| {
            collected
                .list()
                .get_or_insert_default()
                .extend(rotated.anomalies.iter().cloned())
        }
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Option<Vec<Anomaly>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn taken(&self) -> Option<Vec<Anomaly>> {
        self.list().take()
    }
}

impl Profile {
    /// The vendor's configuration, with iSolarCloud's secret key from `APP_SECRET` if the file has none.
    pub fn vendor_config(&self, secrets: &Secrets) -> Result<VendorConfig, Misconfigured> {
        let mut table = self.table.clone();
        if self.vendor == Vendor::ISolarCloud && !table.contains_key("access_key") {
            let key = secrets.require(SecretName::AppSecret)?;
            table.insert(
                "access_key".into(),
                toml::Value::String(key.expose_secret().to_owned()),
            );
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                Misconfigured(format!("profile {}: {}", self.name, e.message()))
            })
    }

    /// WeChat authorizers: the id of their platform's component token, one managed credential that every
    /// authorizer profile of the platform (its `component_appid`) shares, since WeChat limits how often a component
    /// token may be fetched (45009). It begins with [`DERIVED_PREFIX`], which no profile name may: a profile can
    /// never be handed the component token as its own.
    pub fn component_id(&self) -> Option<CredentialId> {
        if self.vendor != Vendor::WechatOpen {
            return None;
        }
        let appid = self.table.get("component_appid")?.as_str()?;
        CredentialId::new(format!("{DERIVED_PREFIX}wechat-component.{appid}")).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load(text: &str) -> Result<Profiles, Misconfigured> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        ConfigArgs { config: Some(path) }.load()
    }

    /// Every authorizer profile of one WeChat platform shares one component credential, named so that no profile
    /// can take its name (a Sugon profile called `w.component` once printed the WeChat token).
    #[test]
    fn authorizers_of_one_platform_share_a_component_id_no_profile_can_take() {
        let profiles = load(
            "[profiles.w]\nvendor = \"wechat-open\"\ncomponent_appid = \"wxplatform\"\nauthorizer_appid = \"wxa\"\n\
             [profiles.v]\nvendor = \"wechat-open\"\ncomponent_appid = \"wxplatform\"\nauthorizer_appid = \"wxb\"\n\
             [profiles.other]\nvendor = \"wechat-open\"\ncomponent_appid = \"wxother\"\nauthorizer_appid = \"wxc\"\n\
             [profiles.\"w.component\"]\nvendor = \"sugon-ac\"\n",
        )
        .unwrap_or_else(|error| panic!("{}", error.0));
        let component = |name: &str| profiles.profiles[name].component_id();
        assert_eq!(component("w"), component("v"));
        assert_ne!(component("w"), component("other"));
        let id = component("w").unwrap();
        assert!(id.as_str().starts_with(DERIVED_PREFIX));
        assert!(profiles.profiles.values().all(|profile| profile.id != id));
        assert_eq!(component("w.component"), None);

        let taken = load(&format!("[profiles.\"{id}\"]\nvendor = \"sugon-ac\"\n"))
            .err()
            .unwrap();
        assert!(
            taken
                .0
                .contains("kept for the credentials refresh-kit derives"),
            "{}",
            taken.0
        );
    }

    /// `[profiles.NAME.refresh]` sets when the credential is renewed; what it leaves out keeps the default, and a
    /// value that is not a duration is refused with the field it is in.
    #[test]
    fn a_profile_may_set_when_its_credential_is_renewed() {
        let profiles = load(
            "[profiles.tuned]\nvendor = \"sugon-ac\"\n\
             [profiles.tuned.refresh]\nahead = \"5m\"\nminimum_interval = \"250ms\"\n\
             [profiles.half]\nvendor = \"sugon-ac\"\n[profiles.half.refresh]\nahead = \"2h\"\n\
             [profiles.plain]\nvendor = \"sugon-ac\"\n",
        )
        .unwrap_or_else(|error| panic!("{}", error.0));
        let policy = |name: &str| profiles.profiles[name].policy;
        assert_eq!(policy("tuned").minimum_ahead, Duration::from_secs(300));
        assert_eq!(policy("tuned").minimum_interval, Duration::from_millis(250));
        assert_eq!(policy("half").minimum_ahead, Duration::from_secs(7200));
        assert_eq!(
            policy("half").minimum_interval,
            RefreshPolicy::default().minimum_interval
        );
        assert_eq!(policy("plain"), RefreshPolicy::default());

        let refused = |table: &str| {
            load(&format!(
                "[profiles.p]\nvendor = \"sugon-ac\"\n[profiles.p.refresh]\n{table}\n"
            ))
            .err()
            .map(|e| e.0)
            .unwrap_or_default()
        };
        let message = refused("ahead = \"soon\"");
        assert!(
            message.contains("profile p: [refresh]: ahead = \"soon\" is not a duration"),
            "{message}"
        );
        let message = refused("minimum_interval = \"1 fortnight\"");
        assert!(message.contains("minimum_interval"), "{message}");
        let message = refused("jitter = 0.5");
        assert!(
            message.contains("profile p: [refresh]: unknown field `jitter`"),
            "{message}"
        );
    }

    /// iSolarCloud's secret key comes from the file, else from `APP_SECRET`, which the file's value wins over.
    #[test]
    fn an_isolarcloud_profile_takes_its_secret_key_from_app_secret_unless_the_file_has_one() {
        let profiles = load(
            "[profiles.bare]\nvendor = \"isolarcloud\"\napp_key = \"k\"\n\
             [profiles.keyed]\nvendor = \"isolarcloud\"\napp_key = \"k\"\naccess_key = \"from-file\"\n",
        )
        .unwrap_or_else(|error| panic!("{}", error.0));
        let secrets = Secrets::from_lines(["APP_SECRET=from-env"].into_iter());
        let key =
            |name: &str, secrets: &Secrets| match profiles.profiles[name].vendor_config(secrets) {
                Ok(VendorConfig::ISolarCloud(config)) => {
                    Ok(config.access_key.expose_secret().to_owned())
                }
                Ok(other) => panic!("{other:?}"),
                Err(error) => Err(error.0),
            };
        assert_eq!(key("bare", &secrets).unwrap(), "from-env");
        assert_eq!(key("keyed", &secrets).unwrap(), "from-file");
        let none = Secrets::from_lines(std::iter::empty());
        assert!(
            key("keyed", &none).is_ok(),
            "the file's key needs no APP_SECRET"
        );
        let missing = key("bare", &none).unwrap_err();
        assert!(missing.contains("APP_SECRET is not set"), "{missing}");
    }
}
