//! `refresh check`: validates the profiles file before anything depends on it: its permissions, each profile's
//! settings (as the facade reads them), its sinks' directories, and that the token store can be reached. One line
//! per finding; the exit code is 0 without errors, else the configuration code.

use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use refresh_manager::{CredentialId, TokenStore};

use crate::exit;
use crate::login::{profiles_and_secrets, unattended_login};
use crate::profiles::ConfigArgs;
use crate::settings::{Misconfigured, refresher};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Read the secrets as NAME=value lines from standard input instead of the environment.
    #[arg(long)]
    stdin: bool,
}

/// What was found, in order.
#[derive(Default)]
struct Findings {
    lines: Vec<(&'static str, String)>,
}

impl Findings {
    fn ok(&mut self, what: String) {
        self.lines.push(("ok", what));
    }
    fn warning(&mut self, what: String) {
        self.lines.push(("warning", what));
    }
    fn error(&mut self, what: String) {
        self.lines.push(("error", what));
    }
    fn errors(&self) -> usize {
        self.lines
            .iter()
            .filter(|(level, _)| *level == "error")
            .count()
    }
}

pub async fn run(args: Args) -> ExitCode {
    let mut findings = Findings::default();
    check(&args, &mut findings).await;
    for (level, what) in &findings.lines {
        println!("{level:<8}{what}");
    }
    let errors = findings.errors();
    if errors == 0 {
        exit::code(exit::SUCCESS)
    } else {
        eprintln!("{errors} error(s)");
        exit::code(exit::CONFIGURATION)
    }
}

async fn check(args: &Args, findings: &mut Findings) {
    let path = match args.config.path() {
        Ok(path) => path,
        Err(Misconfigured(message)) => return findings.error(message),
    };
    match std::fs::metadata(&path) {
        Ok(metadata) => {
            let mode = metadata.mode() & 0o777;
            if mode & 0o077 != 0 {
                findings.error(format!(
                    "{} may be read by others (mode {mode:o}) and may hold app secrets: chmod 600 {}",
                    path.display(),
                    path.display()
                ));
            } else {
                findings.ok(format!("{} is private (mode {mode:o})", path.display()));
            }
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if metadata.uid() != me {
                findings.warning(format!(
                    "{} belongs to uid {}, not to this user ({me})",
                    path.display(),
                    metadata.uid()
                ));
            }
        }
        Err(error) => {
            return findings.error(format!(
                "{}: {error}; create it with `refresh profiles add NAME --vendor VENDOR …`",
                path.display()
            ));
        }
    }
    let (profiles, secrets) = match profiles_and_secrets(&args.config, args.stdin) {
        Ok(loaded) => loaded,
        Err(Misconfigured(message)) => return findings.error(message),
    };
    if profiles.profiles.is_empty() {
        findings.warning("the file has no profiles".into());
    }
    for profile in profiles.profiles.values() {
        let name = &profile.name;
        let configured = profile.vendor_config(&secrets).and_then(|config| {
            refresher(config, false, refresh_facade::HttpOptions::DEFAULT_TIMEOUT)
        });
        match configured {
            Ok(_) => findings.ok(format!("profile {name} ({}): settings", profile.vendor)),
            Err(Misconfigured(message)) => findings.error(format!("profile {name}: {message}")),
        }
        if unattended_login(profile, &secrets).is_some() {
            findings.ok(format!(
                "profile {name}: logs in again by itself (its secret is set)"
            ));
        }
        for sink in &profile.sinks {
            let dir = sink.path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.unwrap_or(std::path::Path::new("."));
            let writable = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
                // SAFETY: a valid C string; access has no other preconditions.
                .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0);
            if dir.is_dir() && writable {
                findings.ok(format!("profile {name}: sink {}", sink.path.display()));
            } else {
                findings.error(format!(
                    "profile {name}: sink {}: its directory {} does not exist or cannot be written",
                    sink.path.display(),
                    dir.display()
                ));
            }
        }
    }
    match profiles.store() {
        Ok(store) => {
            // A read of a record no profile has: it reaches the store without touching a credential.
            let probe = CredentialId::new("_refresh-check").expect("a valid id");
            match store.load(&probe).await {
                Ok(_) => findings.ok("the token store answers".into()),
                Err(error) => findings.error(format!("the token store: {error}")),
            }
        }
        Err(Misconfigured(message)) => findings.error(message),
    }
    let socket = profiles.socket();
    if let Some(dir) = socket.parent()
        && !dir.is_dir()
    {
        findings.warning(format!(
            "refresh agent's socket directory {} does not exist yet (the agent creates it)",
            dir.display()
        ));
    }
}
