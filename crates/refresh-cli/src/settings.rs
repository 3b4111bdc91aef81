//! What `refresh once` and `refresh login` share: the vendor's settings from flags or the environment, the
//! secrets from the environment or standard input, and the refresher they make.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

use refresh_facade::{
    EkuaibaoConfig, HttpOptions, ISolarCloudConfig, MisaCukcukConfig, Refresher, Secret,
    SugonAcConfig, Vendor, VendorConfig, WechatOpenConfig,
};

/// The settings of a vendor: where it is and who the app is. No secrets: those come from [`Secrets`].
#[derive(Debug, clap::Args)]
pub struct Settings {
    /// The vendor (required without a profile).
    #[arg(long, value_parser = vendor_names())]
    pub vendor: Option<Vendor>,
    /// The vendor's base URL [default: the vendor's documented host].
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Allow a plain http:// base URL for a host that is not loopback.
    #[arg(long)]
    allow_insecure: bool,
    /// Time allowed for the whole request.
    #[arg(long, value_name = "SECONDS", default_value_t = refresh_facade::HttpOptions::DEFAULT_TIMEOUT.as_secs())]
    timeout: u64,
    /// iSolarCloud and Ekuaibao app key.
    #[arg(long, env = "APP_KEY", hide_env_values = true)]
    pub app_key: Option<String>,
    /// MISA CukCuk company (restaurant) code.
    #[arg(long, env = "COMPANY_CODE", hide_env_values = true)]
    pub company_code: Option<String>,
    /// WeChat third-party platform appid.
    #[arg(long, env = "COMPONENT_APPID", hide_env_values = true)]
    component_appid: Option<String>,
    /// WeChat authorizer (Official Account or Mini Program) appid.
    #[arg(long, env = "AUTHORIZER_APPID", hide_env_values = true)]
    authorizer_appid: Option<String>,
    /// Sugon AC compute region whose token a login returns [default: the platform token, 0].
    #[arg(long, env = "CLUSTER_ID", hide_env_values = true)]
    cluster_id: Option<String>,
    /// Ekuaibao: ask for this validity in days (default: the plain refresh, 32 days).
    #[arg(long, value_name = "DAYS")]
    validity_days: Option<u32>,
    /// Read the secrets as NAME=value lines from standard input instead of the environment.
    #[arg(long)]
    pub stdin: bool,
}

/// `--vendor`'s values, which `--help` lists: the vendors' names.
fn vendor_names() -> impl clap::builder::TypedValueParser<Value = Vendor> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Vendor::ALL.map(Vendor::as_str))
        .try_map(|name| name.parse::<Vendor>())
}

/// A failure before any request: the configuration cannot work.
pub struct Misconfigured(pub String);

/// The value of a setting `vendor` needs.
pub fn setting(
    vendor: Vendor,
    value: &Option<String>,
    name: &str,
) -> Result<String, Misconfigured> {
    value.clone().ok_or_else(|| {
        Misconfigured(format!(
            "{vendor} needs {name} (flag or environment variable)"
        ))
    })
}

impl Settings {
    /// The vendor `--vendor` names.
    pub fn vendor(&self) -> Result<Vendor, Misconfigured> {
        self.vendor
            .ok_or_else(|| Misconfigured("--vendor is required (or name a profile)".into()))
    }

    /// The value of a setting the vendor needs.
    pub fn setting(&self, value: &Option<String>, name: &str) -> Result<String, Misconfigured> {
        setting(self.vendor()?, value, name)
    }

    /// The refresher these settings (and, for iSolarCloud, the secret key in `secrets`) describe.
    pub fn refresher(&self, secrets: &Secrets) -> Result<Refresher, Misconfigured> {
        let config = match self.vendor()? {
            Vendor::ISolarCloud => VendorConfig::ISolarCloud(ISolarCloudConfig::new(
                self.setting(&self.app_key, "--app-key / APP_KEY")?,
                secrets.require(SecretName::AppSecret)?,
            )),
            Vendor::SugonAc => {
                let mut config = SugonAcConfig::new();
                config.cluster_id = self.cluster_id.clone();
                VendorConfig::SugonAc(config)
            }
            Vendor::MisaCukcuk => VendorConfig::MisaCukcuk(MisaCukcukConfig::new(
                self.setting(&self.company_code, "--company-code / COMPANY_CODE")?,
            )),
            Vendor::WechatOpen => VendorConfig::WechatOpen(WechatOpenConfig::new(
                self.setting(&self.component_appid, "--component-appid / COMPONENT_APPID")?,
                self.setting(
                    &self.authorizer_appid,
                    "--authorizer-appid / AUTHORIZER_APPID",
                )?,
            )),
            Vendor::Ekuaibao => {
                let mut config = EkuaibaoConfig::new();
                config.validity_days = self.validity_days;
                VendorConfig::Ekuaibao(config)
            }
            other => {
                return Err(Misconfigured(format!(
                    "{other} is not supported by this build"
                )));
            }
        };
        self.refresher_for(config)
    }

    /// A refresher for `config` (a profile's), with these settings' base URL, if any, and timeout.
    pub fn refresher_for(&self, config: VendorConfig) -> Result<Refresher, Misconfigured> {
        let config = match &self.base_url {
            Some(url) => config.with_base_url(url),
            None => config,
        };
        refresher(
            config,
            self.allow_insecure,
            Duration::from_secs(self.timeout),
        )
    }
}

/// A refresher for `config`, whose base URL (if it names one) must pass [`check_base_url`].
pub fn refresher(
    config: VendorConfig,
    allow_insecure: bool,
    timeout: Duration,
) -> Result<Refresher, Misconfigured> {
    if let Some(url) = config.base_url() {
        check_base_url(url, allow_insecure)?;
    }
    // The timeout bounds the HTTP client and, through the refresher, the manager's wait and its lease check.
    let http = HttpOptions::default().with_timeout(timeout);
    Refresher::with_http_options(config, &http).map_err(|e| Misconfigured(e.to_string()))
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

/// A secret a command reads, by the name it has in the environment and on standard input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretName {
    RefreshToken,
    AccessToken,
    AppSecret,
    ComponentAccessToken,
    AuthorizationCode,
    Password,
    AppSecurity,
    ComponentAppsecret,
    ComponentVerifyTicket,
    SecretKey,
}

impl SecretName {
    /// Every secret a command reads; a line of another name on standard input is ignored.
    pub const ALL: [SecretName; 10] = [
        SecretName::RefreshToken,
        SecretName::AccessToken,
        SecretName::AppSecret,
        SecretName::ComponentAccessToken,
        SecretName::AuthorizationCode,
        SecretName::Password,
        SecretName::AppSecurity,
        SecretName::ComponentAppsecret,
        SecretName::ComponentVerifyTicket,
        SecretName::SecretKey,
    ];

    /// Its name in the environment and on standard input.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretName::RefreshToken => "REFRESH_TOKEN",
            SecretName::AccessToken => "ACCESS_TOKEN",
            SecretName::AppSecret => "APP_SECRET",
            SecretName::ComponentAccessToken => "COMPONENT_ACCESS_TOKEN",
            SecretName::AuthorizationCode => "AUTHORIZATION_CODE",
            SecretName::Password => "PASSWORD",
            SecretName::AppSecurity => "APP_SECURITY",
            SecretName::ComponentAppsecret => "COMPONENT_APPSECRET",
            SecretName::ComponentVerifyTicket => "COMPONENT_VERIFY_TICKET",
            SecretName::SecretKey => "SECRET_KEY",
        }
    }

    fn named(name: &str) -> Option<SecretName> {
        SecretName::ALL
            .into_iter()
            .find(|secret| secret.as_str() == name)
    }
}

/// The secrets, from the environment or from `NAME=value` lines on standard input.
pub struct Secrets(HashMap<SecretName, Secret>);

impl Secrets {
    pub fn read(from_stdin: bool) -> Result<Secrets, Misconfigured> {
        if from_stdin {
            let mut lines = Vec::new();
            for line in std::io::stdin().lock().lines() {
                lines.push(
                    line.map_err(|e| Misconfigured(format!("cannot read standard input: {e}")))?,
                );
            }
            Ok(Secrets::from_lines(lines.iter().map(String::as_str)))
        } else {
            Ok(Secrets::from_pairs(SecretName::ALL.into_iter().filter_map(
                |name| std::env::var(name.as_str()).ok().map(|value| (name, value)),
            )))
        }
    }

    /// The secrets of `NAME=value` lines; other lines, and names no command reads, are ignored.
    pub(crate) fn from_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Secrets {
        Secrets::from_pairs(lines.filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            Some((SecretName::named(name.trim())?, value.trim().to_owned()))
        }))
    }

    /// Blank values are as good as none.
    fn from_pairs(pairs: impl Iterator<Item = (SecretName, String)>) -> Secrets {
        Secrets(
            pairs
                .map(|(name, value)| (name, Secret::from(value)))
                .filter(|(_, value)| !value.is_blank())
                .collect(),
        )
    }

    pub fn get(&self, name: SecretName) -> Option<Secret> {
        self.0.get(&name).cloned()
    }

    pub fn require(&self, name: SecretName) -> Result<Secret, Misconfigured> {
        self.get(name).ok_or_else(|| {
            Misconfigured(format!(
                "{} is not set (environment, or --stdin)",
                name.as_str()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_read_by_their_names_and_blank_ones_are_none() {
        let secrets = Secrets::from_lines(
            [
                "REFRESH_TOKEN = rt",
                "PASSWORD=",
                "UNKNOWN=x",
                "no equals sign",
                "SECRET_KEY=k=v",
            ]
            .into_iter(),
        );
        assert_eq!(
            secrets
                .get(SecretName::RefreshToken)
                .unwrap()
                .expose_secret(),
            "rt"
        );
        assert!(secrets.get(SecretName::Password).is_none(), "blank");
        assert_eq!(
            secrets.get(SecretName::SecretKey).unwrap().expose_secret(),
            "k=v"
        );
        assert_eq!(secrets.0.len(), 2);
        let missing = secrets.require(SecretName::AppSecurity).err().unwrap().0;
        assert_eq!(missing, "APP_SECURITY is not set (environment, or --stdin)");
        for name in SecretName::ALL {
            assert_eq!(SecretName::named(name.as_str()), Some(name));
        }
    }

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

/// What the commands that keep a profile's token share (`token`, `exec`, `agent`): the profiles file, where the
/// secrets come from, and how the vendor may be reached.
#[derive(Debug, clap::Args)]
pub struct ProfileRun {
    #[command(flatten)]
    pub config: crate::profiles::ConfigArgs,
    /// Read the secrets as NAME=value lines from standard input instead of the environment.
    #[arg(long)]
    pub stdin: bool,
    /// Allow a profile's plain http:// base URL for a host that is not loopback.
    #[arg(long)]
    pub allow_insecure: bool,
    /// Time allowed for each request to the vendor.
    #[arg(long, value_name = "SECONDS", default_value_t = refresh_facade::HttpOptions::DEFAULT_TIMEOUT.as_secs())]
    pub timeout: u64,
}

impl ProfileRun {
    /// Opens profile `name` for a command that keeps its token: the profiles file, the secrets, the token store
    /// and the profile's refresher. A failure is printed, and is the command's exit code. The profile is
    /// `profiles.profiles[name]`.
    pub fn open(
        &self,
        name: &str,
    ) -> Result<
        (
            crate::profiles::Profiles,
            Secrets,
            crate::store::ProfileStore,
            Refresher,
        ),
        std::process::ExitCode,
    > {
        let (profiles, secrets) = crate::login::profiles_and_secrets(&self.config, self.stdin)
            .map_err(|Misconfigured(message)| crate::output::unconfigured(&message))?;
        let profile = profiles
            .get(name)
            .map_err(|Misconfigured(message)| crate::output::unconfigured(&message))?;
        let (store, refresher) = profiles
            .store()
            .and_then(|store| Ok((store, self.refresher(profile, &secrets)?)))
            .map_err(|misconfigured| crate::output::misconfigured(profile.vendor, misconfigured))?;
        Ok((profiles, secrets, store, refresher))
    }

    /// The refresher of `profile`, with these options.
    pub fn refresher(
        &self,
        profile: &crate::profiles::Profile,
        secrets: &Secrets,
    ) -> Result<Refresher, Misconfigured> {
        refresher(
            profile.vendor_config(secrets)?,
            self.allow_insecure,
            Duration::from_secs(self.timeout),
        )
    }
}
