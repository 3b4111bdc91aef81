//! `refresh agent`: keeps every profile (or the ones named) valid in the background, rewrites their sinks before
//! each token expires, and serves tokens on a unix socket to the callers each profile allows. SIGHUP re-reads the
//! profiles file (adding, changing and removing profiles without a restart); SIGTERM or Ctrl-C finishes running
//! renewals, writes what the store refused earlier, and exits. Under systemd (`Type=notify`), it says READY when it
//! listens, and pings the watchdog when `WatchdogSec=` asks.

use std::process::ExitCode;

use refresh_agent::{Agent, Applied};
use refresh_manager::{Manager, ManagerOptions};
use tokio::signal::unix::{SignalKind, signal};

use crate::login::{managed, profiles_and_secrets};
use crate::profiles::Profiles;
use crate::settings::{Misconfigured, ProfileRun, Secrets};
use crate::store::ProfileStore;
use crate::{exit, output};

pub fn help() -> &'static str {
    "\
Secrets come from the environment (or with --stdin, NAME=value lines on standard input), as for `refresh token`:
a profile whose login's secret is at hand logs in again by itself when it must.

Endpoints (HTTP/1.1 on the socket; `curl --unix-socket PATH http://agent/...`):
  GET /v1/tokens/PROFILE   the valid token as JSON, to the profile's readers (uids, gids) and the agent's own uid;
                           403 to anyone else
  GET /v1/status           every profile's state: ok, degraded, dead (and why), unsaved tokens, next refresh
  GET /healthz             200 when every profile has a valid token, else 503 and the ones that do not
  GET /metrics             Prometheus text format

A sink never holds an expired token: it is removed when its token expires unrenewed or its credential dies, and
written again with the next token.

Notifications: with `[agent] webhook = URL` (https://, or http:// to loopback) and REFRESH_WEBHOOK_SECRET, a JSON
body {event, profile, vendor, at, detail} is POSTed when a credential needs a person (needs_person), recovers
(recovered), holds tokens the store refused (tokens_unsaved), had an answer kept as an orphan (orphan_kept), or
fails to renew 6 hours before its refresh window closes with no login past it (window_closing);
`X-Refresh-Signature: sha256=<hex HMAC-SHA256 of the body>`. Retried with backoff, from a bounded queue.

Examples:
  refresh agent
  refresh agent --socket /run/refresh/agent.sock prod staging
  kill -HUP $(pidof refresh)    # re-read the profiles file"
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The profiles to keep [default: every profile of the file].
    profiles: Vec<String>,
    #[command(flatten)]
    run: ProfileRun,
    /// The socket to listen on [default: the file's [agent] socket, else $XDG_RUNTIME_DIR/refresh/agent.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<std::path::PathBuf>,
}

/// The agent's profiles, as the file and the arguments name them.
fn profiles_of(
    args: &Args,
    profiles: &Profiles,
    secrets: &Secrets,
) -> Result<Vec<refresh_agent::Profile>, Misconfigured> {
    let names: Vec<&String> = if args.profiles.is_empty() {
        profiles.profiles.keys().collect()
    } else {
        args.profiles.iter().collect()
    };
    let mut kept = Vec::new();
    let mut components = std::collections::BTreeSet::new();
    for name in names {
        let profile = profiles.get(name)?;
        let refresher = args.run.refresher(profile, secrets)?;
        let (credential, component) = managed(profile, secrets, refresher);
        // WeChat's component token: one credential per platform, kept like a profile without sinks or readers.
        if let Some((id, options)) = component
            && components.insert(id.clone())
        {
            kept.push(refresh_agent::Profile {
                name: id.to_string(),
                id,
                vendor: profile.vendor,
                credential: options,
                sinks: Vec::new(),
                readers: refresh_agent::Readers::default(),
            });
        }
        kept.push(refresh_agent::Profile {
            name: profile.name.clone(),
            id: profile.id.clone(),
            vendor: profile.vendor,
            credential,
            sinks: profile.sinks.clone(),
            readers: profile.readers.clone(),
        });
    }
    Ok(kept)
}

/// Tells systemd `state` (`READY=1`, `WATCHDOG=1`, `STOPPING=1`) when it asked to be told (`NOTIFY_SOCKET`, a path or
/// an abstract name beginning with `@`). Nothing otherwise.
fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let target = target.to_string_lossy().into_owned();
    let address = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&target),
    };
    let sent = address
        .and_then(|address| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &address));
    if let Err(error) = sent {
        eprintln!("refresh agent: cannot notify systemd ({target}): {error}");
    }
}

/// systemd's watchdog interval, if it set one (`WATCHDOG_USEC`, for this process when `WATCHDOG_PID` says so).
fn watchdog_interval() -> Option<std::time::Duration> {
    let pid = std::env::var("WATCHDOG_PID").ok();
    if pid.is_some_and(|pid| pid != std::process::id().to_string()) {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(std::time::Duration::from_micros(usec))
}

fn report(applied: &Applied) {
    for (what, names) in [
        ("keeping", &applied.added),
        ("restarted", &applied.restarted),
        ("stopped", &applied.removed),
    ] {
        if !names.is_empty() {
            eprintln!("refresh agent: {what} {}", names.join(", "));
        }
    }
}

pub async fn run(args: Args) -> ExitCode {
    let (profiles, secrets) = match profiles_and_secrets(&args.run.config, args.run.stdin) {
        Ok(loaded) => loaded,
        Err(Misconfigured(message)) => return output::unconfigured(&message),
    };
    let kept = match profiles_of(&args, &profiles, &secrets) {
        Ok(kept) => kept,
        Err(Misconfigured(message)) => return output::unconfigured(&message),
    };
    let store: ProfileStore = match profiles.store() {
        Ok(store) => store,
        Err(Misconfigured(message)) => return output::unconfigured(&message),
    };
    let metrics = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(error) => {
            eprintln!("warning: no metrics: {error}");
            None
        }
    };
    let webhook = match profiles.webhook() {
        Ok(webhook) => webhook,
        Err(Misconfigured(message)) => return output::unconfigured(&message),
    };
    let mut options = ManagerOptions::default().with_rescue(profiles.rescue());
    let notifier = match webhook {
        Some(webhook) => match refresh_facade::HttpOptions::default().build_client() {
            Ok(http) => Some(refresh_agent::Notifier::start(webhook, http)),
            Err(error) => {
                return output::unconfigured(&format!("the webhook's HTTP client: {error}"));
            }
        },
        None => None,
    };
    if let Some(notifier) = &notifier {
        options = options.on_rotate(notifier.rotation_hook());
    }
    let mut agent = Agent::new(Manager::with_options(store, options));
    if let Some(notifier) = notifier {
        agent = agent.with_notifier(notifier);
    }
    report(&agent.apply(kept));

    let socket = args.socket.clone().unwrap_or_else(|| profiles.socket());
    if let Some(dir) = socket.parent()
        && let Err(error) = std::fs::create_dir_all(dir)
    {
        return output::unconfigured(&format!("cannot create {}: {error}", dir.display()));
    }
    let listener = match refresh_agent::api::bind(&socket) {
        Ok(listener) => listener,
        Err(error) => {
            return output::unconfigured(&format!(
                "cannot listen on {}: {error}",
                socket.display()
            ));
        }
    };
    eprintln!("refresh agent: listening on {}", socket.display());
    sd_notify("READY=1");
    if let Some(interval) = watchdog_interval() {
        // Half the interval, as systemd advises; the runtime that serves the socket is the one that pings.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval / 2).await;
                sd_notify("WATCHDOG=1");
            }
        });
    }
    let (Ok(mut hangup), Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return output::unconfigured("cannot handle signals");
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(refresh_agent::api::serve(
        listener,
        agent.clone(),
        metrics,
        async {
            let _ = stopped.await;
        },
    ));
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                // The secrets read at start stay: standard input cannot be read twice.
                let reloaded = args.run.config.load().and_then(|profiles| profiles_of(&args, &profiles, &secrets));
                match reloaded {
                    Ok(kept) => {
                        sd_notify("RELOADING=1");
                        report(&agent.apply(kept));
                        sd_notify("READY=1");
                    }
                    Err(Misconfigured(message)) => {
                        eprintln!("refresh agent: the profiles file was not reloaded, the running profiles stay: {message}");
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    eprintln!("refresh agent: stopping");
    sd_notify("STOPPING=1");
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);
    match agent.shutdown().await {
        Ok(()) => exit::code(exit::SUCCESS),
        Err(error) => {
            eprintln!("refresh agent: tokens could not be written before stopping: {error}");
            exit::code(exit::FAILURE)
        }
    }
}
