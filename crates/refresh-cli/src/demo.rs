//! `refresh demo`: the sandbox in-process, a first login at every vendor (the vendors' companion endpoints,
//! through the generated clients), then a refresh through the facade.

use std::process::ExitCode;

use refresh_facade::{
    EkuaibaoConfig, HttpOptions, ISolarCloudConfig, MisaCukcukConfig, RefreshGrant, Refresher,
    SugonAcConfig, TokenSet, Vendor, VendorConfig, WechatOpenConfig,
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
    for (vendor, emulator) in VENDORS {
        let base = sandbox
            .base_url(emulator)
            .expect("every emulator was started");
        let result = login_and_refresh(vendor, &sandbox, &base, &http).await;
        outcomes.push(Outcome { vendor, result });
    }
    sandbox.shutdown().await;

    if args.json {
        let rows: Vec<_> = outcomes.iter().map(json_row).collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        print_table(&outcomes);
    }
    if outcomes.iter().all(|o| o.result.is_ok()) {
        exit::code(exit::SUCCESS)
    } else {
        exit::code(exit::FAILURE)
    }
}

const VENDORS: [(Vendor, Emulator); 5] = [
    (Vendor::ISolarCloud, Emulator::ISolarCloud),
    (Vendor::SugonAc, Emulator::SugonAc),
    (Vendor::MisaCukcuk, Emulator::MisaCukcuk),
    (Vendor::WechatOpen, Emulator::WechatOpen),
    (Vendor::Ekuaibao, Emulator::Ekuaibao),
];

/// The first login (each vendor's own way) and one refresh through the facade.
async fn login_and_refresh(
    vendor: Vendor,
    sandbox: &Sandbox,
    base: &str,
    http: &reqwest::Client,
) -> Result<TokenSet, String> {
    let (config, grant) = match vendor {
        Vendor::ISolarCloud => {
            let client = refresh_isolarcloud::Client::new_with_client(base, http.clone());
            let body = refresh_isolarcloud::types::TokenRequest {
                appkey: accounts::ISOLARCLOUD_APP_KEY.into(),
                grant_type: "authorization_code".into(),
                code: sandbox
                    .authorization_code(Emulator::ISolarCloud)
                    .ok_or("login: no authorization code")?
                    .into(),
                redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
            };
            let answer = client
                .exchange_token()
                .x_access_key(accounts::ISOLARCLOUD_ACCESS_KEY)
                .body(body)
                .send()
                .await;
            let data = answer
                .map_err(|e| format!("login: {e}"))?
                .into_inner()
                .result_data
                .unwrap_or_default();
            let refresh = data.refresh_token.ok_or("login: no refresh token")?;
            let config = ISolarCloudConfig::new(
                accounts::ISOLARCLOUD_APP_KEY,
                accounts::ISOLARCLOUD_ACCESS_KEY,
            );
            (
                VendorConfig::ISolarCloud(config.with_base_url(base)),
                RefreshGrant::new(refresh),
            )
        }
        Vendor::SugonAc => {
            let client = refresh_sugon_ac::Client::new_with_client(base, http.clone());
            let call = client
                .get_tokens()
                .user(accounts::SUGON_USER)
                .password(accounts::SUGON_PASSWORD);
            let envelope = call
                .org_id(accounts::SUGON_ORG_ID)
                .send()
                .await
                .map_err(|e| format!("login: {e}"))?
                .into_inner();
            let token = match envelope.data {
                Some(refresh_sugon_ac::types::TokenData::Array(regions)) => {
                    regions.into_iter().find_map(|r| r.token)
                }
                _ => None,
            };
            let token = token.ok_or("login: no token")?;
            (
                VendorConfig::SugonAc(SugonAcConfig::new().with_base_url(base)),
                RefreshGrant::new(token),
            )
        }
        Vendor::MisaCukcuk => {
            // MISA's v2 login is not publicly documented; the sandbox stands in for it.
            let refresh = sandbox.login(Emulator::MisaCukcuk).refresh_token;
            let config = MisaCukcukConfig::new(accounts::MISA_COMPANY_CODE).with_base_url(base);
            (VendorConfig::MisaCukcuk(config), RefreshGrant::new(refresh))
        }
        Vendor::WechatOpen => {
            let client = refresh_wechat_open::Client::new_with_client(base, http.clone());
            let body = refresh_wechat_open::types::ComponentTokenRequest {
                component_appid: accounts::WECHAT_COMPONENT_APPID.into(),
                component_appsecret: accounts::WECHAT_COMPONENT_APPSECRET.into(),
                component_verify_ticket: accounts::WECHAT_VERIFY_TICKET.into(),
            };
            let answer = client
                .get_component_token()
                .body(body)
                .send()
                .await
                .map_err(|e| format!("component token: {e}"))?;
            let component_token = answer
                .into_inner()
                .component_access_token
                .ok_or("no component token")?;
            let body = refresh_wechat_open::types::QueryAuthRequest {
                component_appid: accounts::WECHAT_COMPONENT_APPID.into(),
                authorization_code: sandbox
                    .authorization_code(Emulator::WechatOpen)
                    .ok_or("authorization: no code")?
                    .into(),
            };
            let answer = client
                .query_auth()
                .component_access_token(component_token.expose_secret())
                .body(body)
                .send()
                .await;
            let info = answer
                .map_err(|e| format!("authorization: {e}"))?
                .into_inner()
                .authorization_info
                .unwrap_or_default();
            let refresh = info
                .authorizer_refresh_token
                .ok_or("authorization: no refresh token")?;
            let config = WechatOpenConfig::new(
                accounts::WECHAT_COMPONENT_APPID,
                component_token,
                accounts::WECHAT_AUTHORIZER_APPID,
            );
            (
                VendorConfig::WechatOpen(config.with_base_url(base)),
                RefreshGrant::new(refresh),
            )
        }
        Vendor::Ekuaibao => {
            let client = refresh_ekuaibao::Client::new_with_client(base, http.clone());
            let body = refresh_ekuaibao::types::AppCredentials {
                app_key: accounts::EKUAIBAO_APP_KEY.into(),
                app_security: accounts::EKUAIBAO_APP_SECURITY.into(),
            };
            let answer = client
                .get_access_token()
                .body(body)
                .send()
                .await
                .map_err(|e| format!("login: {e}"))?;
            let tokens = answer.into_inner().value.unwrap_or_default();
            let (Some(access), Some(refresh)) = (tokens.access_token, tokens.refresh_token) else {
                return Err("login: no tokens".into());
            };
            let config = EkuaibaoConfig::new()
                .with_validity_days(7)
                .with_base_url(base);
            (
                VendorConfig::Ekuaibao(config),
                RefreshGrant::new(refresh).with_access_token(access),
            )
        }
        other => return Err(format!("{other} has no demo")),
    };
    let refresher = Refresher::with_http_client(config, http.clone()).map_err(|e| e.to_string())?;
    refresher.refresh(&grant).await.map_err(|e| e.to_string())
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
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
