//! `refresh token PROFILE`: a valid access token on stdout, refreshed and stored first when it is due, in the
//! style of `gcloud auth print-access-token`: `curl -H "Authorization: Bearer $(refresh token prod)"`.

use std::process::ExitCode;

use refresh_manager::{Manager, ManagerError, ManagerOptions};

use crate::login::manage_profile;
use crate::profiles::Anomalies;
use crate::settings::ProfileRun;
use crate::{exit, output};

pub fn help() -> &'static str {
    "\
Prints the profile's access token and a newline, nothing else (with --json, one JSON object with its expiry and
the anomalies of a vendor answer it stored); errors go to stderr as JSON, with the exit codes of `refresh once`. A token that is due is refreshed first, and the new tokens are stored before it is printed.
Where the vendor's refresh window has closed, the login is repeated without a person if its secrets are in the
environment (or with --stdin on standard input): PASSWORD (sugon-ac), APP_SECURITY (ekuaibao), SECRET_KEY
(misa-cukcuk, whose login's token is never refreshed, so it logs in again each time it is due); WeChat's component
token is obtained again with COMPONENT_APPSECRET and COMPONENT_VERIFY_TICKET. iSolarCloud's APP_SECRET is read
the same way when the profile has no access_key.

Examples:
  refresh token prod
  refresh token prod --json | jq .expires_at
  curl -H \"Authorization: Bearer $(refresh token prod)\" https://api.example/v1/items"
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The profile (see `refresh login --help`).
    profile: String,
    #[command(flatten)]
    run: ProfileRun,
    /// Print one JSON object instead of the bare token: profile, vendor, access_token, expires_at, refresh_at,
    /// version, and the anomalies of a vendor answer this command stored (empty when it asked the vendor nothing;
    /// `refresh status` keeps the last ones).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> ExitCode {
    let (profiles, secrets, store, refresher) = match args.run.open(&args.profile) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let profile = &profiles.profiles[&args.profile];
    // One command, then exit: no renewal may be left running in the background when the process ends.
    let anomalies = Anomalies::default();
    let options = ManagerOptions::default()
        .foreground_only()
        .with_rescue(profiles.rescue())
        .on_rotate(anomalies.hook());
    let manager = Manager::with_options(store, options);
    manage_profile(&manager, profile, &secrets, refresher);
    let result = manager.access_token(&profile.id).await;
    let anomalies = anomalies.taken();
    profiles.record_outcome(
        profile,
        result.as_ref().map_or_else(ManagerError::outcome, |_| "ok"),
        anomalies.as_deref(),
    );
    match result {
        Ok(token) if args.json => {
            let at = |t: chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            println!(
                "{}",
                serde_json::json!({
                    "profile": profile.name,
                    "vendor": profile.vendor.as_str(),
                    "access_token": token.secret.expose_secret(),
                    "expires_at": at(token.expires_at),
                    "refresh_at": at(token.refresh_at),
                    "version": token.version,
                    "anomalies": output::anomalies(anomalies.as_deref().unwrap_or_default()),
                })
            );
            exit::code(exit::SUCCESS)
        }
        Ok(token) => {
            println!("{}", token.secret.expose_secret());
            exit::code(exit::SUCCESS)
        }
        Err(error) => output::manager_failure(profile.vendor, &error),
    }
}
