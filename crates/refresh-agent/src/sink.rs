//! Sinks: files the agent keeps holding a valid token, for processes that read a file (nginx, a cron job, any
//! language).
//!
//! A sink is replaced whole: the new contents go to a temporary file in the same directory, which is given the
//! sink's mode and owner, fsynced, and renamed over the sink, and then the directory is fsynced. A reader opens
//! either the old file or the new one, never a torn one.
//!
//! **A sink never holds an expired token.** When its credential dies (it needs a person), or its token expires
//! before the agent could renew it, the sink is removed: a reader fails at once on a missing file instead of
//! sending a token the vendor will refuse. It comes back with the next token.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use refresh_facade::Vendor;
use serde::Deserialize;

/// What a sink holds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Format {
    /// The bare token, with no newline.
    Token,
    /// `{"profile", "vendor", "access_token", "token_type", "expires_at", "refresh_at"}`.
    Json,
    /// `NAME=token` and `NAME_EXPIRES_AT=…` lines (`NAME` is [`Sink::env_name`]).
    Env,
    /// `Authorization: Bearer token`, one line.
    Header,
}

/// The default mode of a sink: its owner reads and writes, nobody else reads.
pub const DEFAULT_MODE: u32 = 0o600;
/// The default name of an `env` sink's variable.
pub const DEFAULT_ENV_NAME: &str = "ACCESS_TOKEN";
/// How long a sink's command may run before it is killed.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One sink of a profile, as the agent's configuration writes it (`[[profiles.NAME.sinks]]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    pub path: PathBuf,
    pub format: Format,
    /// The file's mode [default: 0o600].
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// The file's owner and group, as numeric ids [default: the agent's own].
    #[serde(default)]
    pub owner: Option<u32>,
    #[serde(default)]
    pub group: Option<u32>,
    /// `env` sinks: the variable's name [default: ACCESS_TOKEN].
    #[serde(default)]
    pub env_name: Option<String>,
    /// A command (program and arguments) run after the sink changed, e.g. `["systemctl", "reload", "nginx"]`.
    /// It never receives a token: not in its arguments, not in its environment.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// How long the command may run [default: 30 s].
    #[serde(default)]
    pub command_timeout_secs: Option<u64>,
}

fn default_mode() -> u32 {
    DEFAULT_MODE
}

/// The token a sink is written from.
#[derive(Clone, Debug)]
pub struct Issued<'a> {
    pub profile: &'a str,
    pub vendor: Vendor,
    pub token: &'a str,
    pub expires_at: DateTime<Utc>,
    pub refresh_at: DateTime<Utc>,
}

impl Sink {
    /// A sink of `format` at `path`, with the default mode and owner.
    pub fn new(path: impl Into<PathBuf>, format: Format) -> Sink {
        Sink {
            path: path.into(),
            format,
            mode: DEFAULT_MODE,
            owner: None,
            group: None,
            env_name: None,
            command: None,
            command_timeout_secs: None,
        }
    }

    pub fn env_name(&self) -> &str {
        self.env_name.as_deref().unwrap_or(DEFAULT_ENV_NAME)
    }

    /// What the sink holds for `issued`.
    pub fn render(&self, issued: &Issued<'_>) -> String {
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        match self.format {
            Format::Token => issued.token.to_owned(),
            Format::Json => serde_json::json!({
                "profile": issued.profile,
                "vendor": issued.vendor.as_str(),
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_at": at(issued.expires_at),
                "refresh_at": at(issued.refresh_at),
            })
            .to_string(),
            Format::Env => {
                let name = self.env_name();
                format!(
                    "{name}={}\n{name}_EXPIRES_AT={}\n",
                    issued.token,
                    at(issued.expires_at)
                )
            }
            Format::Header => format!("Authorization: Bearer {}\n", issued.token),
        }
    }

    /// Replaces the sink's file with `contents`, atomically: a reader sees the old file or the new one.
    pub fn write(&self, contents: &str) -> std::io::Result<()> {
        let dir = parent(&self.path);
        let mut temporary = tempfile::Builder::new()
            .prefix(".refresh-sink-")
            .tempfile_in(dir)?;
        let file = temporary.as_file_mut();
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        if self.owner.is_some() || self.group.is_some() {
            std::os::unix::fs::fchown(&*file, self.owner, self.group)?;
        }
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        temporary.persist(&self.path).map_err(|error| error.error)?;
        sync_dir(dir)
    }

    /// Removes the sink's file (a reader fails fast rather than send a token that is no longer valid). Removing
    /// a sink that is not there is not an error.
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => sync_dir(parent(&self.path)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Runs the sink's command, if it has one, with no token anywhere it could see: arguments as configured, an
    /// environment without the agent's, standard input closed. Killed after its timeout.
    pub async fn run_command(&self) -> Result<(), String> {
        let Some((program, args)) = self.command.as_deref().and_then(<[String]>::split_first)
        else {
            return Ok(());
        };
        let timeout = self
            .command_timeout_secs
            .map_or(DEFAULT_COMMAND_TIMEOUT, Duration::from_secs);
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("REFRESH_SINK", &self.path)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("{program}: {status}")),
            Ok(Err(error)) => Err(format!("{program}: {error}")),
            Err(_) => {
                let _ = child.kill().await;
                Err(format!("{program}: killed after {} s", timeout.as_secs()))
            }
        }
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued() -> Issued<'static> {
        Issued {
            profile: "prod",
            vendor: Vendor::Ekuaibao,
            token: "tok-1",
            expires_at: DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
                .unwrap()
                .to_utc(),
            refresh_at: DateTime::parse_from_rfc3339("2026-12-06T11:50:00Z")
                .unwrap()
                .to_utc(),
        }
    }

    #[test]
    fn a_configured_sink_defaults_to_mode_0600_and_the_agents_owner() {
        let sink: Sink =
            serde_json::from_value(serde_json::json!({"path": "/run/x", "format": "env"})).unwrap();
        assert_eq!(sink, Sink::new("/run/x", Format::Env));
        assert_eq!(sink.mode, 0o600);
        assert_eq!(sink.env_name(), "ACCESS_TOKEN");
        let unknown =
            serde_json::from_value::<Sink>(serde_json::json!({"path": "/x", "format": "xml"}));
        assert!(unknown.is_err());
    }

    #[test]
    fn each_format_renders_what_its_readers_expect() {
        let render = |format| Sink::new("x", format).render(&issued());
        assert_eq!(render(Format::Token), "tok-1");
        assert_eq!(render(Format::Header), "Authorization: Bearer tok-1\n");
        assert_eq!(
            render(Format::Env),
            "ACCESS_TOKEN=tok-1\nACCESS_TOKEN_EXPIRES_AT=2026-12-06T12:00:00Z\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"profile": "prod", "vendor": "ekuaibao", "access_token": "tok-1",
                "token_type": "Bearer", "expires_at": "2026-12-06T12:00:00Z", "refresh_at": "2026-12-06T11:50:00Z"})
        );
        let mut named = Sink::new("x", Format::Env);
        named.env_name = Some("ERP_TOKEN".into());
        assert!(named.render(&issued()).starts_with("ERP_TOKEN=tok-1\n"));
    }

    #[test]
    fn a_write_replaces_the_file_with_the_sinks_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::new(dir.path().join("token"), Format::Token);
        sink.write("one").unwrap();
        sink.write("two").unwrap();
        assert_eq!(std::fs::read_to_string(&sink.path).unwrap(), "two");
        let mode = std::fs::metadata(&sink.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut shared = Sink::new(dir.path().join("shared"), Format::Token);
        shared.mode = 0o640;
        shared.write("x").unwrap();
        let mode = std::fs::metadata(&shared.path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        sink.remove().unwrap();
        assert!(!sink.path.exists());
        sink.remove().unwrap();
    }

    /// As root, a sink can be given to another owner and group (the reader's), still written atomically.
    #[test]
    fn a_sink_takes_its_owner_and_group_when_root() {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            eprintln!("not root: chown cannot be tried");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::new(dir.path().join("token"), Format::Token);
        sink.owner = Some(65534);
        sink.group = Some(65534);
        sink.mode = 0o640;
        sink.write("tok").unwrap();
        let metadata = std::fs::metadata(&sink.path).unwrap();
        assert_eq!(
            (metadata.uid(), metadata.gid(), metadata.mode() & 0o777),
            (65534, 65534, 0o640)
        );
        // An owner alone keeps the agent's group.
        let mut owned = Sink::new(dir.path().join("owned"), Format::Token);
        owned.owner = Some(65534);
        owned.write("tok").unwrap();
        let metadata = std::fs::metadata(&owned.path).unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (65534, 0));
    }

    #[test]
    fn removing_a_sink_that_cannot_be_removed_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the sink's file should be.
        std::fs::create_dir(dir.path().join("token")).unwrap();
        let sink = Sink::new(dir.path().join("token"), Format::Token);
        assert!(sink.remove().is_err());
    }

    #[tokio::test]
    async fn a_command_sees_no_token_and_is_killed_after_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("env");
        let mut sink = Sink::new(dir.path().join("token"), Format::Token);
        sink.command = Some(vec![
            "sh".into(),
            "-c".into(),
            format!("env > {}", seen.display()),
        ]);
        // SAFETY of the test: a variable only this test reads.
        unsafe { std::env::set_var("REFRESH_AGENT_TEST_SECRET", "tok-1") };
        sink.run_command().await.unwrap();
        let env = std::fs::read_to_string(&seen).unwrap();
        assert!(!env.contains("tok-1"), "{env}");
        assert!(env.contains("REFRESH_SINK="), "{env}");

        sink.command = Some(vec!["sleep".into(), "5".into()]);
        sink.command_timeout_secs = Some(0);
        let error = sink.run_command().await.unwrap_err();
        assert!(error.contains("killed"), "{error}");
        sink.command = Some(vec!["false".into()]);
        assert!(sink.run_command().await.is_err());
    }
}
