//! `refresh login`: first tokens through the facade's `Refresher::obtain`, as JSON (the same keys and exit codes
//! as `refresh once`).

use std::process::ExitCode;

use refresh_facade::{Grant, RefreshError, Refresher, TokenSet, Vendor};

use crate::output;
use crate::settings::{Misconfigured, Secrets, Settings};

/// `refresh login --help`: which secrets and settings each vendor's login takes, and the output tables.
pub fn help() -> String {
    let secrets = "\
Secrets come from environment variables, or with --stdin from NAME=value lines on standard input, as for
`refresh once`:
  AUTHORIZATION_CODE       the code the authorization redirect brought back    isolarcloud, wechat-open
  APP_SECRET               the app's secret key (sent as x-access-key)         isolarcloud
  PASSWORD                 the user's password                                 sugon-ac
  APP_SECURITY             the app's appSecurity                               ekuaibao
  COMPONENT_ACCESS_TOKEN   the platform's current component access token, or   wechat-open
  COMPONENT_APPSECRET and COMPONENT_VERIFY_TICKET to obtain one first          wechat-open
Settings come from flags or the environment: APP_KEY and REDIRECT_URI (isolarcloud), USER_NAME, ORG_ID and
CLUSTER_ID (sugon-ac), APP_KEY (ekuaibao), COMPONENT_APPID and AUTHORIZER_APPID (wechat-open).
misa-cukcuk documents no public login: the command exits with the unsupported code.
";
    let examples = "\
Examples:
  PASSWORD=... refresh login --vendor sugon-ac --user slurmtest --org-id 6048ce7b...
  APP_SECURITY=... refresh login --vendor ekuaibao --app-key my-app
  COMPONENT_APPSECRET=... COMPONENT_VERIFY_TICKET=... refresh login --vendor wechat-open --component-token";
    format!("{secrets}\n{}\n{examples}", output::tables_help("login"))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: Settings,
    /// iSolarCloud: the redirect URI the authorization code was issued for.
    #[arg(long, env = "REDIRECT_URI", hide_env_values = true)]
    redirect_uri: Option<String>,
    /// Sugon AC: the user name.
    #[arg(long, env = "USER_NAME", hide_env_values = true)]
    user: Option<String>,
    /// Sugon AC: the organization id.
    #[arg(long, env = "ORG_ID", hide_env_values = true)]
    org_id: Option<String>,
    /// WeChat: obtain only the platform's component access token (it is obtained again, never refreshed).
    #[arg(long)]
    component_token: bool,
}

pub async fn run(args: Args) -> ExitCode {
    let vendor = args.settings.vendor;
    let (refresher, secrets) = match Secrets::read(args.settings.stdin)
        .and_then(|secrets| Ok((args.settings.refresher(&secrets)?, secrets)))
    {
        Ok(configured) => configured,
        Err(misconfigured) => return output::misconfigured(vendor, misconfigured),
    };
    if let Err(unsupported) = refresher.ensure_login_offered() {
        return output::report(Err(unsupported));
    }
    match login(&args, &refresher, &secrets).await {
        Ok(result) => output::report(result),
        Err(misconfigured) => output::misconfigured(vendor, misconfigured),
    }
}

/// The vendor's login with the grant the arguments and secrets make.
async fn login(
    args: &Args,
    refresher: &Refresher,
    secrets: &Secrets,
) -> Result<Result<TokenSet, RefreshError>, Misconfigured> {
    let settings = &args.settings;
    let grant = match settings.vendor {
        Vendor::ISolarCloud => Grant::ISolarCloudAuthorizationCode {
            code: secrets.require("AUTHORIZATION_CODE")?,
            redirect_uri: settings.setting(&args.redirect_uri, "--redirect-uri / REDIRECT_URI")?,
        },
        Vendor::SugonAc => Grant::SugonAcPassword {
            user: settings.setting(&args.user, "--user / USER_NAME")?,
            password: secrets.require("PASSWORD")?,
            org_id: settings.setting(&args.org_id, "--org-id / ORG_ID")?,
        },
        Vendor::Ekuaibao => Grant::EkuaibaoAppCredentials {
            app_key: settings.setting(&settings.app_key, "--app-key / APP_KEY")?,
            app_security: secrets.require("APP_SECURITY")?,
        },
        Vendor::WechatOpen => {
            let component_access_token = match secrets.get("COMPONENT_ACCESS_TOKEN") {
                Some(token) if !args.component_token => token,
                _ => {
                    let grant = Grant::WechatOpenComponentToken {
                        component_appsecret: secrets.require("COMPONENT_APPSECRET")?,
                        component_verify_ticket: secrets.require("COMPONENT_VERIFY_TICKET")?,
                    };
                    let component = refresher.obtain(&grant).await;
                    match component {
                        Ok(component) if !args.component_token => component.access_token,
                        other => return Ok(other),
                    }
                }
            };
            Grant::WechatOpenAuthorizationCode {
                authorization_code: secrets.require("AUTHORIZATION_CODE")?,
                component_access_token,
            }
        }
        other => {
            return Err(Misconfigured(format!("{other} has no login in this build")));
        }
    };
    Ok(refresher.obtain(&grant).await)
}
