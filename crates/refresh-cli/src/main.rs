//! `refresh`: profiles whose tokens `refresh-manager` keeps (`login`, `token`, `status`, and `agent` for every
//! process on the host), a first login and one
//! token refresh at any vendor (`login --vendor`, `once`), the vendor emulators (`sandbox`), and a demo of them
//! (`demo`). A thin layer: the work is done by `refresh-facade`, `refresh-manager` and `refresh-sandbox`; it
//! imports no vendor crate.

mod agent;
mod check;
mod day;
mod demo;
mod exec;
mod exit;
mod login;
mod once;
mod output;
mod profiles;
mod profiles_cmd;
mod sandbox;
mod settings;
mod status;
mod store;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Refresh access tokens at vendors whose token APIs are not standard OAuth2.
#[derive(Debug, Parser)]
#[command(name = "refresh", version, about, after_help = exit::help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the vendor emulators in-process, then obtain and refresh a token at every vendor through the
    /// facade, and print what happened.
    #[command(after_help = "Examples:\n  refresh demo\n  refresh demo --json")]
    Demo(demo::Args),
    /// Run the vendor emulators on loopback until Ctrl-C, printing their base URLs and the credentials they accept.
    #[command(
        after_help = "Examples:\n  refresh sandbox\n  refresh sandbox --vendor ekuaibao --port 8080"
    )]
    Sandbox(sandbox::Args),
    /// Refresh one token and print the new tokens as JSON on stdout (errors as JSON on stderr).
    #[command(after_help = once::help())]
    Once(once::Args),
    /// Obtain first tokens (a login): with a PROFILE, store them for `refresh token`; with --vendor, print them
    /// as JSON on stdout (errors as JSON on stderr).
    #[command(after_help = login::help())]
    Login(login::Args),
    /// Print a profile's valid access token, refreshing and storing it first when it is due.
    #[command(after_help = token::help())]
    Token(token::Args),
    /// Keep profiles valid in the background: sinks rewritten before each expiry, tokens served on a unix socket
    /// to the callers each profile allows.
    #[command(after_help = agent::help())]
    Agent(agent::Args),
    /// Run a command with a profile's valid token in its environment, restarting it (or signalling it) when the
    /// token rotates.
    #[command(after_help = exec::help())]
    Exec(exec::Args),
    /// Validate the profiles file: permissions, each profile's settings and sinks, a reachable token store.
    #[command(
        after_help = "Examples:\n  refresh check\n  refresh check --config /etc/refresh/config.toml"
    )]
    Check(check::Args),
    /// Add, list and remove profiles in the profiles file.
    #[command(
        after_help = "Examples:\n  refresh profiles add erp --vendor ekuaibao --app-key my-app\n  refresh profiles list --json\n  refresh profiles remove erp"
    )]
    Profiles(profiles_cmd::Args),
    /// The profiles: vendor, expiry, refresh window, last outcome, orphans.
    #[command(after_help = "Examples:\n  refresh status\n  refresh status --json")]
    Status(status::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Once(args) => once::run(args).await,
        Command::Login(args) => login::run(args).await,
        Command::Token(args) => token::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Agent(args) => agent::run(args).await,
        Command::Profiles(args) => profiles_cmd::run(args),
        Command::Check(args) => check::run(args).await,
        Command::Exec(args) => exec::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    /// Every subcommand's arguments are consistent (clap's own check: no name used twice, valid defaults).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
