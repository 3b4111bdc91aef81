//! `refresh exec PROFILE -- CMD …`: runs a command with the profile's valid token in an environment variable, and
//! when the token rotates restarts it with the new one (or sends it a signal, for a command that reads a sink).
//! Vault Agent's exec mode, for these vendors. SIGTERM and SIGINT are passed on to the command; `refresh exec`
//! exits with the command's status.

use std::process::ExitCode;
use std::time::Duration;

use refresh_manager::{Manager, ManagerOptions};
use tokio::signal::unix::{SignalKind, signal};

use crate::login::manage_profile;
use crate::settings::ProfileRun;
use crate::{exit, output};

/// How long a command may take to stop after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(10);

pub fn help() -> &'static str {
    "\
The token is in the command's environment (ACCESS_TOKEN unless --env names another), never in its arguments.
When the profile's token rotates, the command is stopped (SIGTERM, then SIGKILL after 10 s) and started again with
the new token; with --signal, it is sent that signal instead and keeps running (point it at a sink of `refresh
agent`, since its environment cannot change). If the command exits by itself, `refresh exec` exits with its status
(128 + the signal's number if a signal ended it).

Examples:
  refresh exec erp -- python3 sync.py
  refresh exec erp --env ERP_TOKEN -- ./bin/worker --queue invoices
  refresh exec erp --signal HUP -- nginx -g 'daemon off;'"
}

#[derive(Debug, clap::Args)]
pub struct Args {
    profile: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
    #[command(flatten)]
    run: ProfileRun,
    /// The environment variable that holds the token (the name an `env` sink uses by default).
    #[arg(long, default_value = refresh_agent::sink::DEFAULT_ENV_NAME)]
    env: String,
    /// Send this signal on rotation instead of restarting: HUP, USR1, USR2, INT or TERM.
    #[arg(long, value_parser = signal_number)]
    signal: Option<i32>,
}

fn signal_number(name: &str) -> Result<i32, String> {
    match name.trim_start_matches("SIG") {
        "HUP" => Ok(libc::SIGHUP),
        "USR1" => Ok(libc::SIGUSR1),
        "USR2" => Ok(libc::SIGUSR2),
        "INT" => Ok(libc::SIGINT),
        "TERM" => Ok(libc::SIGTERM),
        other => Err(format!("{other}: one of HUP, USR1, USR2, INT, TERM")),
    }
}

fn send(child: &tokio::process::Child, signal: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill has no memory preconditions; a pid that already exited makes it fail harmlessly.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    }
}

/// Stops `child`: SIGTERM, then SIGKILL after the grace period. Its exit status.
async fn stop(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    send(child, libc::SIGTERM);
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(Ok(status)) => status,
        _ => {
            let _ = child.kill().await;
            child
                .wait()
                .await
                .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(9))
        }
    }
}

fn status_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

pub async fn run(args: Args) -> ExitCode {
    let (profiles, secrets, store, refresher) = match args.run.open(&args.profile) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let profile = &profiles.profiles[&args.profile];
    let manager = Manager::with_options(
        store,
        ManagerOptions::default().with_rescue(profiles.rescue()),
    );
    manage_profile(&manager, profile, &secrets, refresher);
    // Each new token wakes the loop at once, however renewed: the command must not keep one the vendor spent.
    let mut changes = match manager.token_changes(&profile.id) {
        Ok(changes) => changes,
        Err(error) => return output::manager_failure(profile.vendor, &error),
    };
    let clock = manager.clock().clone();
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return output::unconfigured("cannot handle signals");
    };

    let mut token = match manager.access_token(&profile.id).await {
        Ok(token) => token,
        Err(error) => return output::manager_failure(profile.vendor, &error),
    };
    let (program, arguments) = args.command.split_first().expect("clap requires a command");
    let spawn = |token: &str| {
        tokio::process::Command::new(program)
            .args(arguments)
            .env(&args.env, token)
            .kill_on_drop(true)
            .spawn()
    };
    let mut child = match spawn(token.secret.expose_secret()) {
        Ok(child) => child,
        Err(error) => return output::unconfigured(&format!("{program}: {error}")),
    };
    loop {
        // At the token's refresh time (a second at least, while its renewal is under way), or at the next token.
        let wait = (token.refresh_at - clock.wall())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1));
        let look_again = async {
            tokio::select! {
                _ = clock.sleep_until(clock.now().after(wait)) => {}
                () = changes.changed() => {}
            }
        };
        tokio::select! {
            status = child.wait() => {
                let _ = manager.flush().await;
                return match status {
                    Ok(status) => status_code(status),
                    Err(_) => exit::code(exit::FAILURE),
                };
            }
            _ = terminate.recv() => {
                let status = stop(&mut child).await;
                let _ = manager.flush().await;
                return status_code(status);
            }
            _ = interrupt.recv() => {
                send(&child, libc::SIGINT);
            }
            () = look_again => {
                let next = match manager.access_token(&profile.id).await {
                    Ok(next) => next,
                    Err(error) => {
                        eprintln!("refresh exec: the token could not be renewed: {error}");
                        continue;
                    }
                };
                if next.secret == token.secret {
                    token = next;
                    continue;
                }
                token = next;
                match args.signal {
                    Some(signal) => send(&child, signal),
                    None => {
                        let _ = stop(&mut child).await;
                        child = match spawn(token.secret.expose_secret()) {
                            Ok(child) => child,
                            Err(error) => return output::unconfigured(&format!("{program}: {error}")),
                        };
                    }
                }
            }
        }
    }
}
