//! `refresh demo`: the sandbox in-process, a first login at every vendor, then a refresh, both through the
//! facade (MISA CukCuk's v2 login is undocumented: the sandbox's stands in for it); then a simulated day in which
//! `refresh-manager` keeps every credential valid ([`crate::day`]), printed as a timeline.

use std::process::ExitCode;

use refresh_facade::{
    EkuaibaoConfig, Grant, HttpOptions, ISolarCloudConfig, MisaCukcukConfig, RefreshGrant,
    Refresher, Secret, SugonAcConfig, TokenSet, Vendor, VendorConfig, WechatOpenConfig,
};
use refresh_sandbox::{Emulator, Sandbox, SandboxOptions, accounts};
use serde_json::json;

use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One vendor's demo result.
struct Outcome {
    vendor: Vendor,
    result: Result<TokenSet, String>,
}

pub async fn run(args: Args) -> ExitCode {
    let sandbox = match Sandbox::start(SandboxOptions::default()).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("error: cannot start the sandbox: {error}");
            return exit::code(exit::FAILURE);
        }
    };
    let http = match HttpOptions::default().build_client() {
        Ok(http) => http,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::code(exit::FAILURE);
        }
    };
    let mut outcomes = Vec::new();
    for vendor in Vendor::ALL {
        let result = match emulator(vendor).and_then(|emulator| sandbox.base_url(emulator)) {
            Some(base) => login_and_refresh(vendor, &sandbox, &base, &http).await,
            None => Err(format!("the sandbox has no emulator of {vendor}")),
        };
        outcomes.push(Outcome { vendor, result });
    }
    sandbox.shutdown().await;
    let day = crate::day::simulate(&http).await;

    if args.json {
        let rows: Vec<_> = outcomes.iter().map(json_row).collect();
        let day = match &day {
            Ok(timelines) => {
                serde_json::Value::Array(timelines.iter().map(json_timeline).collect())
            }
            Err(error) => json!({"error": error}),
        };
        println!("{}", json!({"vendors": rows, "day": day}));
    } else {
        print_table(&outcomes);
        println!();
        match &day {
            Ok(timelines) => print_day(timelines),
            Err(error) => println!("the simulated day failed: {error}"),
        }
    }
    let day_ok = day.is_ok_and(|timelines| timelines.iter().all(|t| t.errors == 0));
    if outcomes.iter().all(|o| o.result.is_ok()) && day_ok {
        exit::code(exit::SUCCESS)
    } else {
        exit::code(exit::FAILURE)
    }
}

/// The sandbox's emulator of `vendor`: the one of the same name (the sandbox names vendors as refresh-kit does).
pub fn emulator(vendor: Vendor) -> Option<Emulator> {
    vendor.as_str().parse().ok()
}

/// The first login and one refresh, both through the facade.
async fn login_and_refresh(
    vendor: Vendor,
    sandbox: &Sandbox,
    base: &str,
    http: &reqwest::Client,
) -> Result<TokenSet, String> {
    let code = |emulator| {
        sandbox
            .authorization_code(emulator)
            .map(Secret::from)
            .ok_or("the sandbox issued no authorization code")
    };
    let config = sandbox_config(vendor).ok_or_else(|| format!("{vendor} has no demo"))?;
    let refresher = Refresher::with_http_client(config.with_base_url(base), http.clone())
        .map_err(|e| e.to_string())?;
    let mut component_token = None;
    let grant = match vendor {
        Vendor::ISolarCloud => Some(Grant::ISolarCloudAuthorizationCode {
            code: code(Emulator::ISolarCloud)?,
            redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
        }),
        Vendor::SugonAc => Some(Grant::SugonAcPassword {
            user: accounts::SUGON_USER.into(),
            password: accounts::SUGON_PASSWORD.into(),
            org_id: accounts::SUGON_ORG_ID.into(),
        }),
        Vendor::WechatOpen => {
            let component = Grant::WechatOpenComponentToken {
                component_appsecret: accounts::WECHAT_COMPONENT_APPSECRET.into(),
                component_verify_ticket: accounts::WECHAT_VERIFY_TICKET.into(),
            };
            let component = refresher
                .obtain(&component)
                .await
                .map_err(|e| e.to_string())?;
            component_token = Some(component.access_token.clone());
            Some(Grant::WechatOpenAuthorizationCode {
                authorization_code: code(Emulator::WechatOpen)?,
                component_access_token: component.access_token,
            })
        }
        Vendor::Ekuaibao => Some(Grant::EkuaibaoAppCredentials {
            app_key: accounts::EKUAIBAO_APP_KEY.into(),
            app_security: accounts::EKUAIBAO_APP_SECURITY.into(),
        }),
        // MISA's OpenPlatform login issues no refresh token and its v2 login is undocumented: the sandbox's
        // stand-in for the v2 login gives the refresh token the v2 refresh shown here takes.
        _ => None,
    };
    let mut next = match grant {
        Some(grant) => {
            RefreshGrant::from(&refresher.obtain(&grant).await.map_err(|e| e.to_string())?)
        }
        None => {
            let login = sandbox.login(Emulator::MisaCukcuk);
            RefreshGrant::new(login.refresh_token)
        }
    };
    if let Some(component_token) = component_token {
        next = next.with_component_access_token(component_token);
    }
    refresher.refresh(&next).await.map_err(|e| e.to_string())
}

/// The configuration that the sandbox's accounts ([`accounts`]) make for `vendor`.
pub fn sandbox_config(vendor: Vendor) -> Option<VendorConfig> {
    Some(match vendor {
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
        Vendor::Ekuaibao => VendorConfig::Ekuaibao(EkuaibaoConfig::new().with_validity_days(7)),
        _ => return None,
    })
}

fn json_row(outcome: &Outcome) -> serde_json::Value {
    match &outcome.result {
        Ok(tokens) => json!({
            "vendor": outcome.vendor.as_str(),
            "token_type": tokens.token_type,
            "expires_at": tokens.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "rotated": tokens.rotated(),
            "outcome": "ok",
        }),
        Err(error) => {
            json!({"vendor": outcome.vendor.as_str(), "outcome": "failed", "error": error})
        }
    }
}

fn json_timeline(timeline: &crate::day::Timeline) -> serde_json::Value {
    let renewals: Vec<_> = timeline
        .renewals
        .iter()
        .map(|(at, by_login)| json!({"after_secs": at.as_secs(), "login": by_login}))
        .collect();
    json!({"credential": timeline.credential, "renewals": renewals, "caller_errors": timeline.errors})
}

/// `h:mm` after the start of the day; `*` marks a login.
fn clock_time(at: std::time::Duration, by_login: bool) -> String {
    let minutes = at.as_secs() / 60;
    let mark = if by_login { "*" } else { "" };
    format!("{}:{:02}{mark}", minutes / 60, minutes % 60)
}

fn print_day(timelines: &[crate::day::Timeline]) {
    println!(
        "A simulated day on the sandbox's clock: refresh-manager renews in the background, callers ask every 10 minutes"
    );
    let rows: Vec<[String; 4]> = timelines
        .iter()
        .map(|timeline| {
            let when: Vec<String> = timeline
                .renewals
                .iter()
                .map(|(at, login)| clock_time(*at, *login))
                .collect();
            [
                timeline.credential.clone(),
                timeline.renewals.len().to_string(),
                timeline.errors.to_string(),
                if when.is_empty() {
                    "-".into()
                } else {
                    when.join(" ")
                },
            ]
        })
        .collect();
    let header = ["CREDENTIAL", "RENEWALS", "ERRORS", "WHEN (h:mm; * = login)"].map(String::from);
    print_rows(&header, &rows);
    let renewals: usize = timelines.iter().map(|t| t.renewals.len()).sum();
    let errors: usize = timelines.iter().map(|t| t.errors).sum();
    println!("24 h: {renewals} renewals, {errors} caller-visible errors");
}

/// Prints `rows` under `header`, in columns.
pub fn print_rows<const N: usize>(header: &[String; N], rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|i| {
            rows.iter()
                .chain([header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

fn print_table(outcomes: &[Outcome]) {
    let rows: Vec<[String; 5]> = outcomes
        .iter()
        .map(|outcome| match &outcome.result {
            Ok(tokens) => [
                outcome.vendor.to_string(),
                tokens.token_type.clone().unwrap_or_else(|| "-".into()),
                tokens
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                if tokens.rotated() { "yes" } else { "no" }.into(),
                "ok".into(),
            ],
            Err(error) => [
                outcome.vendor.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("failed: {error}"),
            ],
        })
        .collect();
    let header = ["VENDOR", "TOKEN TYPE", "EXPIRES AT", "ROTATED", "OUTCOME"].map(String::from);
    print_rows(&header, &rows);
}
