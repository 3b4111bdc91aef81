//! `refresh once`: one refresh, as JSON.

use std::process::ExitCode;

use refresh_facade::{RefreshGrant, Refresher, Vendor};

use crate::output;
use crate::settings::{Misconfigured, SecretName, Secrets, Settings};

/// `refresh once --help`: where secrets come from, and the JSON keys from the tables the code prints.
pub fn help() -> String {
    let secrets = "\
Secrets come from environment variables, or with --stdin from NAME=value lines on standard input; never from
flags (they would show in shell history and process lists), and they are never printed except the new tokens:
  REFRESH_TOKEN            the refresh token (Sugon AC: the current token)   every vendor
  ACCESS_TOKEN             the current access token                          ekuaibao
  APP_SECRET               the app's secret key (sent as x-access-key)       isolarcloud
  COMPONENT_ACCESS_TOKEN   the platform's current component access token     wechat-open
Settings come from flags or the environment: APP_KEY (isolarcloud), COMPANY_CODE (misa-cukcuk),
COMPONENT_APPID and AUTHORIZER_APPID (wechat-open).
";
    let examples = "\
--base-url takes http:// for loopback hosts only (127.0.0.0/8, ::1, localhost) unless --allow-insecure.

Examples:
  REFRESH_TOKEN=eyJhbGciOi... refresh once --vendor sugon-ac --base-url https://www.scnet.cn
  printf 'REFRESH_TOKEN=%s\\nACCESS_TOKEN=%s\\n' \"$RT\" \"$AT\" | refresh once --vendor ekuaibao --stdin --validity-days 7
  APP_SECRET=... REFRESH_TOKEN=... refresh once --vendor isolarcloud --app-key my-app --base-url https://gateway.isolarcloud.eu";
    format!("{secrets}\n{}\n{examples}", output::tables_help("refresh"))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: Settings,
}

pub async fn run(args: Args) -> ExitCode {
    let Some(vendor) = args.settings.vendor else {
        return output::usage("--vendor is required");
    };
    match configure(&args.settings) {
        Ok((refresher, grant)) => output::report(refresher.refresh(&grant).await),
        Err(misconfigured) => output::misconfigured(vendor, misconfigured),
    }
}

fn configure(settings: &Settings) -> Result<(Refresher, RefreshGrant), Misconfigured> {
    let secrets = Secrets::read(settings.stdin)?;
    let refresher = settings.refresher(&secrets)?;
    let mut grant = RefreshGrant::new(secrets.require(SecretName::RefreshToken)?);
    if let Some(access) = secrets.get(SecretName::AccessToken) {
        grant = grant.with_access_token(access);
    }
    if settings.vendor == Some(Vendor::WechatOpen) {
        grant =
            grant.with_component_access_token(secrets.require(SecretName::ComponentAccessToken)?);
    }
    Ok((refresher, grant))
}
