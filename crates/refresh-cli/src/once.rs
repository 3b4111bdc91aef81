//! `refresh once`: one refresh, as JSON.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use refresh_facade::{
    EkuaibaoConfig, HttpOptions, ISolarCloudConfig, MisaCukcukConfig, RefreshGrant, Refresher,
    SugonAcConfig, Vendor, VendorConfig, WechatOpenConfig,
};

use crate::exit;
use crate::output::{self, Failure};

/// `refresh once --help`: where secrets come from, and the JSON keys from the tables the code prints.
pub fn help() -> String {
    let secrets = "\
Secrets come from environment variables, or with --stdin from NAME=value lines on standard input; never from
flags (they would show in shell history and process lists), and they are never printed except the new tokens:
  REFRESH_TOKEN            the refresh token (Sugon AC: the current token)   every vendor
  ACCESS_TOKEN             the current access token                          ekuaibao
  APP_SECRET               the app's secret key (sent as x-access-key)       isolarcloud
  COMPONENT_ACCESS_TOKEN   the platform's component access token             wechat-open
Settings come from flags or the environment: APP_KEY (isolarcloud), COMPANY_CODE (misa-cukcuk),
COMPONENT_APPID and AUTHORIZER_APPID (wechat-open).
";
    let examples = "\
--base-url takes http:// for loopback hosts only (127.0.0.0/8, ::1, localhost) unless --allow-insecure.

Examples:
  REFRESH_TOKEN=eyJhbGciOi... refresh once --vendor sugon-ac --base-url https://www.scnet.cn
  printf 'REFRESH_TOKEN=%s\\nACCESS_TOKEN=%s\\n' \"$RT\" \"$AT\" | refresh once --vendor ekuaibao --stdin --validity-days 7
  APP_SECRET=... REFRESH_TOKEN=... refresh once --vendor isolarcloud --app-key my-app --base-url https://gateway.isolarcloud.eu";
    format!(
        "{secrets}\n{}\n{}\n{}\n{examples}",
        output::help(
            "On success, one JSON object on stdout:",
            output::SUCCESS_KEYS
        ),
        output::help(
            "On failure, one JSON object on stderr, and the exit code of its kind:",
            output::FAILURE_KEYS
        ),
        exit::help(),
    )
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The vendor: isolarcloud, sugon-ac, misa-cukcuk, wechat-open, ekuaibao.
    #[arg(long)]
    vendor: Vendor,
    /// The vendor's base URL [default: the vendor's documented host].
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Allow a plain http:// base URL for a host that is not loopback.
    #[arg(long)]
    allow_insecure: bool,
    /// Time allowed for the whole refresh.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    timeout: u64,
    /// iSolarCloud app key.
    #[arg(long, env = "APP_KEY", hide_env_values = true)]
    app_key: Option<String>,
    /// MISA CukCuk company (restaurant) code.
    #[arg(long, env = "COMPANY_CODE", hide_env_values = true)]
    company_code: Option<String>,
    /// WeChat third-party platform appid.
    #[arg(long, env = "COMPONENT_APPID", hide_env_values = true)]
    component_appid: Option<String>,
    /// WeChat authorizer (Official Account or Mini Program) appid.
    #[arg(long, env = "AUTHORIZER_APPID", hide_env_values = true)]
    authorizer_appid: Option<String>,
    /// Ekuaibao: ask for this validity in days (default: the plain refresh, 32 days).
    #[arg(long, value_name = "DAYS")]
    validity_days: Option<u32>,
    /// Read the secrets as NAME=value lines from standard input instead of the environment.
    #[arg(long)]
    stdin: bool,
}

/// A failure before any request: the configuration cannot work.
struct Misconfigured(String);

pub async fn run(args: Args) -> ExitCode {
    let vendor = args.vendor;
    let refresher_and_grant = configure(&args);
    let (refresher, grant) = match refresher_and_grant {
        Ok(configured) => configured,
        Err(Misconfigured(message)) => {
            let failure = Failure::configuration(vendor, message);
            eprintln!("{}", output::to_json(output::FAILURE_KEYS, &failure));
            return exit::code(exit::CONFIGURATION);
        }
    };
    match refresher.refresh(&grant).await {
        Ok(tokens) => {
            println!("{}", output::to_json(output::SUCCESS_KEYS, &tokens));
            exit::code(exit::SUCCESS)
        }
        Err(error) => {
            let code = exit::for_kind(error.kind());
            eprintln!(
                "{}",
                output::to_json(output::FAILURE_KEYS, &Failure::from(error))
            );
            exit::code(code)
        }
    }
}

fn configure(args: &Args) -> Result<(Refresher, RefreshGrant), Misconfigured> {
    let secrets = Secrets::read(args.stdin)?;
    if let Some(url) = &args.base_url {
        check_base_url(url, args.allow_insecure)?;
    }
    let setting = |value: &Option<String>, name: &str| {
        value.clone().ok_or_else(|| {
            Misconfigured(format!(
                "{} needs {name} (flag or environment variable)",
                args.vendor
            ))
        })
    };
    let config = match args.vendor {
        Vendor::ISolarCloud => VendorConfig::ISolarCloud(ISolarCloudConfig::new(
            setting(&args.app_key, "--app-key / APP_KEY")?,
            secrets.require("APP_SECRET")?,
        )),
        Vendor::SugonAc => VendorConfig::SugonAc(SugonAcConfig::new()),
        Vendor::MisaCukcuk => VendorConfig::MisaCukcuk(MisaCukcukConfig::new(setting(
            &args.company_code,
            "--company-code / COMPANY_CODE",
        )?)),
        Vendor::WechatOpen => VendorConfig::WechatOpen(WechatOpenConfig::new(
            setting(&args.component_appid, "--component-appid / COMPONENT_APPID")?,
            secrets.require("COMPONENT_ACCESS_TOKEN")?,
            setting(
                &args.authorizer_appid,
                "--authorizer-appid / AUTHORIZER_APPID",
            )?,
        )),
        Vendor::Ekuaibao => {
            let mut config = EkuaibaoConfig::new();
            config.validity_days = args.validity_days;
            VendorConfig::Ekuaibao(config)
        }
        other => {
            return Err(Misconfigured(format!(
                "{other} is not supported by this build"
            )));
        }
    };
    let config = match &args.base_url {
        Some(url) => config.with_base_url(url),
        None => config,
    };
    let http = HttpOptions::default()
        .with_timeout(Duration::from_secs(args.timeout))
        .build_client()
        .map_err(|e| Misconfigured(e.to_string()))?;
    let refresher =
        Refresher::with_http_client(config, http).map_err(|e| Misconfigured(e.to_string()))?;
    let mut grant = RefreshGrant::new(secrets.require("REFRESH_TOKEN")?);
    if let Some(access) = secrets.get("ACCESS_TOKEN") {
        grant = grant.with_access_token(access);
    }
    Ok((refresher, grant))
}

/// `http://` is only for loopback, where nobody else can read the tokens on the wire.
fn check_base_url(base_url: &str, allow_insecure: bool) -> Result<(), Misconfigured> {
    let url = url::Url::parse(base_url)
        .map_err(|e| Misconfigured(format!("--base-url {base_url:?}: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_insecure => Ok(()),
        "http" => Err(Misconfigured(format!(
            "--base-url {base_url:?} is plain http to a host that is not loopback: tokens would cross the network \
             unencrypted (use https, or --allow-insecure)"
        ))),
        scheme => Err(Misconfigured(format!(
            "--base-url {base_url:?}: {scheme}:// is not http(s)"
        ))),
    }
}

/// The secrets, from the environment or from `NAME=value` lines on standard input.
struct Secrets(HashMap<String, String>);

const SECRET_NAMES: [&str; 4] = [
    "REFRESH_TOKEN",
    "ACCESS_TOKEN",
    "APP_SECRET",
    "COMPONENT_ACCESS_TOKEN",
];

impl Secrets {
    fn read(from_stdin: bool) -> Result<Secrets, Misconfigured> {
        let mut secrets = HashMap::new();
        if from_stdin {
            for line in std::io::stdin().lock().lines() {
                let line =
                    line.map_err(|e| Misconfigured(format!("cannot read standard input: {e}")))?;
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                if SECRET_NAMES.contains(&name.trim()) {
                    secrets.insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
        } else {
            for name in SECRET_NAMES {
                if let Ok(value) = std::env::var(name) {
                    secrets.insert(name.to_owned(), value);
                }
            }
        }
        secrets.retain(|_, value| !value.is_empty());
        Ok(Secrets(secrets))
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn require(&self, name: &str) -> Result<String, Misconfigured> {
        self.get(name)
            .ok_or_else(|| Misconfigured(format!("{name} is not set (environment, or --stdin)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_only() {
        for ok in [
            "https://gateway.isolarcloud.eu",
            "http://127.0.0.1:8080",
            "http://127.5.5.5",
            "http://[::1]:1",
            "http://localhost:3000",
        ] {
            assert!(check_base_url(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://gateway.isolarcloud.eu",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(check_base_url(refused, false).is_err(), "{refused}");
        }
        assert!(check_base_url("http://gateway.isolarcloud.eu", true).is_ok());
        assert!(check_base_url("ftp://127.0.0.1", true).is_err());
    }
}
