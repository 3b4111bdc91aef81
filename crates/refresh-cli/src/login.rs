//! `refresh login`: first tokens through the facade's `Refresher::obtain`, as JSON (the same keys and exit codes
//! as `refresh once`).

use std::process::ExitCode;

use refresh_facade::{Grant, RefreshError, Refresher, Secret, TokenSet, Vendor};
use refresh_manager::{CredentialOptions, Manager, ManagerError, ManagerOptions};

use crate::output;
use crate::profiles::{Anomalies, ConfigArgs, LoginSettings, Profile, Profiles};
use crate::settings::{Misconfigured, SecretName, Secrets, Settings, setting};

/// `refresh login --help`: which secrets and settings each vendor's login takes, and the output tables.
pub fn help() -> String {
    let secrets = "\
Secrets come from environment variables, or with --stdin from NAME=value lines on standard input, as for
`refresh once`:
  AUTHORIZATION_CODE       the code the authorization redirect brought back    isolarcloud, wechat-open
  APP_SECRET               the app's secret key (sent as x-access-key)         isolarcloud
  PASSWORD                 the user's password                                 sugon-ac
  APP_SECURITY             the app's appSecurity                               ekuaibao
  SECRET_KEY               the app's secret key (signs the login, never sent)  misa-cukcuk
  COMPONENT_ACCESS_TOKEN   the platform's current component access token, or   wechat-open
  COMPONENT_APPSECRET and COMPONENT_VERIFY_TICKET to obtain one first          wechat-open
Settings come from flags or the environment: APP_KEY and REDIRECT_URI (isolarcloud), USER_NAME, ORG_ID and
CLUSTER_ID (sugon-ac), APP_KEY (ekuaibao), COMPONENT_APPID and AUTHORIZER_APPID (wechat-open), COMPANY_CODE,
APP_ID and DOMAIN (misa-cukcuk; DOMAIN defaults to the company code). misa-cukcuk's OpenPlatform login issues no
refresh token: a profile logs in again by itself while SECRET_KEY is at hand.
";
    let examples = "\
Examples:
  PASSWORD=... refresh login --vendor sugon-ac --user slurmtest --org-id 6048ce7b...
  APP_SECURITY=... refresh login --vendor ekuaibao --app-key my-app
  SECRET_KEY=... refresh login --vendor misa-cukcuk --company-code my-shop --app-id CUKCUKOpenPlatform
  COMPONENT_APPSECRET=... COMPONENT_VERIFY_TICKET=... refresh login --vendor wechat-open --component-token";
    format!("{secrets}\n{}\n{examples}", output::tables_help("login"))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A profile of the profiles file: log in with its settings and store its tokens for `refresh token`.
    profile: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
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
    /// MISA CukCuk: the OpenPlatform app id.
    #[arg(long, env = "APP_ID", hide_env_values = true)]
    app_id: Option<String>,
    /// MISA CukCuk: the connection's domain [default: the company code].
    #[arg(long, env = "DOMAIN", hide_env_values = true)]
    domain: Option<String>,
    /// WeChat: obtain only the platform's component access token (it is obtained again, never refreshed).
    #[arg(long)]
    component_token: bool,
}

impl Args {
    /// The login settings the flags give, over those of `profile`.
    fn login_settings(&self, profile: Option<&LoginSettings>) -> LoginSettings {
        let profile = profile.cloned().unwrap_or_default();
        LoginSettings {
            redirect_uri: self.redirect_uri.clone().or(profile.redirect_uri),
            user: self.user.clone().or(profile.user),
            org_id: self.org_id.clone().or(profile.org_id),
            app_key: self.settings.app_key.clone().or(profile.app_key),
            app_id: self.app_id.clone().or(profile.app_id),
            domain: (self.domain.clone().or(profile.domain))
                .or_else(|| self.settings.company_code.clone()),
        }
    }
}

pub async fn run(args: Args) -> ExitCode {
    if let Some(name) = &args.profile {
        return log_in_profile(&args, name).await;
    }
    let vendor = match args.settings.vendor() {
        Ok(vendor) => vendor,
        Err(Misconfigured(message)) => return output::usage(&message),
    };
    let (refresher, secrets) = match Secrets::read(args.settings.stdin)
        .and_then(|secrets| Ok((args.settings.refresher(&secrets)?, secrets)))
    {
        Ok(configured) => configured,
        Err(misconfigured) => return output::misconfigured(vendor, misconfigured),
    };
    match login(&args, vendor, &refresher, &secrets).await {
        Ok(result) => output::report(result),
        Err(misconfigured) => output::misconfigured(vendor, misconfigured),
    }
}

/// The vendor's login with the grant the arguments and secrets make.
async fn login(
    args: &Args,
    vendor: Vendor,
    refresher: &Refresher,
    secrets: &Secrets,
) -> Result<Result<TokenSet, RefreshError>, Misconfigured> {
    let component = match vendor {
        Vendor::WechatOpen => {
            let component_access_token = match secrets.get(SecretName::ComponentAccessToken) {
                Some(token) if !args.component_token => token,
                _ => match refresher.obtain(&component_grant(secrets)?).await {
                    Ok(component) if !args.component_token => component.access_token,
                    other => return Ok(other),
                },
            };
            Some(component_access_token)
        }
        _ => None,
    };
    let grant = grant(vendor, &args.login_settings(None), secrets, component)?;
    Ok(refresher.obtain(&grant).await)
}

/// WeChat: the platform's component token, from its appsecret and the latest verify ticket.
pub fn component_grant(secrets: &Secrets) -> Result<Grant, Misconfigured> {
    Ok(Grant::WechatOpenComponentToken {
        component_appsecret: secrets.require(SecretName::ComponentAppsecret)?,
        component_verify_ticket: secrets.require(SecretName::ComponentVerifyTicket)?,
    })
}

/// The login grant of `vendor` from its settings and secrets; WeChat's presents the platform's current
/// `component` token.
pub fn grant(
    vendor: Vendor,
    login: &LoginSettings,
    secrets: &Secrets,
    component: Option<Secret>,
) -> Result<Grant, Misconfigured> {
    Ok(match vendor {
        Vendor::ISolarCloud => Grant::ISolarCloudAuthorizationCode {
            code: secrets.require(SecretName::AuthorizationCode)?,
            redirect_uri: setting(vendor, &login.redirect_uri, "--redirect-uri / REDIRECT_URI")?,
        },
        Vendor::SugonAc => Grant::SugonAcPassword {
            user: setting(vendor, &login.user, "--user / USER_NAME")?,
            password: secrets.require(SecretName::Password)?,
            org_id: setting(vendor, &login.org_id, "--org-id / ORG_ID")?,
        },
        Vendor::Ekuaibao => Grant::EkuaibaoAppCredentials {
            app_key: setting(vendor, &login.app_key, "--app-key / APP_KEY")?,
            app_security: secrets.require(SecretName::AppSecurity)?,
        },
        Vendor::MisaCukcuk => Grant::MisaCukcukAppSignature {
            app_id: setting(vendor, &login.app_id, "--app-id / APP_ID")?,
            domain: setting(
                vendor,
                &login.domain,
                "--domain / DOMAIN (or a company code)",
            )?,
            secret_key: secrets.require(SecretName::SecretKey)?,
        },
        Vendor::WechatOpen => Grant::WechatOpenAuthorizationCode {
            authorization_code: secrets.require(SecretName::AuthorizationCode)?,
            component_access_token: component
                .ok_or_else(|| Misconfigured("wechat-open needs the component token".into()))?,
        },
        other => return Err(Misconfigured(format!("{other} has no login in this build"))),
    })
}

/// The login a profile can repeat without a person (Sugon AC, Ekuaibao, MISA CukCuk, WeChat's component token), if
/// its secrets are at hand.
pub fn unattended_login(profile: &Profile, secrets: &Secrets) -> Option<Grant> {
    match profile.vendor {
        Vendor::SugonAc | Vendor::Ekuaibao | Vendor::MisaCukcuk => {
            grant(profile.vendor, &profile.login, secrets, None).ok()
        }
        _ => None,
    }
}

/// How a manager keeps `profile`'s credential: its refresher, its own login where its secrets are at hand, and for a
/// WeChat authorizer the platform's component credential (its id and options), which the authorizer presents.
pub fn managed(
    profile: &Profile,
    secrets: &Secrets,
    refresher: Refresher,
) -> (
    CredentialOptions,
    Option<(refresh_manager::CredentialId, CredentialOptions)>,
) {
    let mut credential = CredentialOptions::new(refresher.clone()).with_policy(profile.policy);
    let mut component = None;
    if let Some(component_id) = profile.component_id() {
        let mut options = CredentialOptions::new(refresher);
        if let Ok(grant) = component_grant(secrets) {
            options = options.with_login(grant);
        }
        credential = credential.with_component_token(component_id.clone());
        component = Some((component_id, options));
    }
    if let Some(grant) = unattended_login(profile, secrets) {
        credential = credential.with_login(grant);
    }
    (credential, component)
}

/// Manages `profile`'s credential in `manager` (with [`managed`]'s options), and WeChat's component credential
/// beside it.
pub fn manage_profile<S: refresh_manager::TokenStore + 'static>(
    manager: &Manager<S>,
    profile: &Profile,
    secrets: &Secrets,
    refresher: Refresher,
) {
    let (credential, component) = managed(profile, secrets, refresher);
    if let Some((id, options)) = component {
        manager.manage(id, options);
    }
    manager.manage(profile.id.clone(), credential);
}

/// The profiles file and the secrets (environment, or standard input).
pub fn profiles_and_secrets(
    config: &ConfigArgs,
    stdin: bool,
) -> Result<(Profiles, Secrets), Misconfigured> {
    Ok((config.load()?, Secrets::read(stdin)?))
}

/// `refresh login PROFILE`: the first tokens, stored (durably) in the profiles' token store.
async fn log_in_profile(args: &Args, name: &str) -> ExitCode {
    let (profiles, secrets) = match profiles_and_secrets(&args.config, args.settings.stdin) {
        Ok(loaded) => loaded,
        Err(Misconfigured(message)) => return output::unconfigured(&message),
    };
    let profile = match profiles.get(name) {
        Ok(profile) => profile,
        Err(Misconfigured(message)) => return output::unconfigured(&message),
    };
    let vendor = profile.vendor;
    let (store, refresher) = match profiles.store().and_then(|store| {
        Ok((
            store,
            args.settings
                .refresher_for(profile.vendor_config(&secrets)?)?,
        ))
    }) {
        Ok(configured) => configured,
        Err(misconfigured) => return output::misconfigured(vendor, misconfigured),
    };
    // One command, then exit: no renewal may be left running in the background when the process ends.
    let anomalies = Anomalies::default();
    let options = ManagerOptions::default()
        .foreground_only()
        .with_rescue(profiles.rescue())
        .on_rotate(anomalies.hook());
    let manager = Manager::with_options(store, options);
    let component = match profile.component_id() {
        Some(component_id) => {
            let grant = match component_grant(&secrets) {
                Ok(grant) => grant,
                Err(misconfigured) => return output::misconfigured(vendor, misconfigured),
            };
            manager.manage(
                component_id.clone(),
                CredentialOptions::new(refresher.clone()).with_login(grant),
            );
            match manager.access_token(&component_id).await {
                Ok(token) => Some(token.secret.clone()),
                Err(error) => return output::manager_failure(vendor, &error),
            }
        }
        None => None,
    };
    let grant = match grant(
        vendor,
        &args.login_settings(Some(&profile.login)),
        &secrets,
        component,
    ) {
        Ok(grant) => grant,
        Err(misconfigured) => return output::misconfigured(vendor, misconfigured),
    };
    manager.manage(
        profile.id.clone(),
        CredentialOptions::new(refresher).with_policy(profile.policy),
    );
    let result = manager.login(&profile.id, &grant).await;
    let anomalies = anomalies.taken();
    profiles.record_outcome(
        profile,
        result.as_ref().map_or_else(ManagerError::outcome, |_| "ok"),
        anomalies.as_deref(),
    );
    match result {
        Ok(token) => {
            println!(
                "{}",
                serde_json::json!({
                    "profile": profile.name,
                    "vendor": vendor.as_str(),
                    "expires_at": token.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "version": token.version,
                    "anomalies": output::anomalies(anomalies.as_deref().unwrap_or_default()),
                })
            );
            crate::exit::code(crate::exit::SUCCESS)
        }
        Err(error) => output::manager_failure(vendor, &error),
    }
}
