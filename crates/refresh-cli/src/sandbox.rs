//! `refresh sandbox`: the vendor emulators, until Ctrl-C.

use std::process::ExitCode;

use refresh_sandbox::{Emulator, Sandbox, SandboxOptions, accounts};
use serde_json::json;

use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only this vendor's emulator (repeat for several) [default: all five].
    #[arg(long, value_name = "VENDOR")]
    vendor: Vec<Emulator>,
    /// The first emulator's port; the others take the next ones [default: free ports].
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Print the base URLs and credentials as one JSON line.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> ExitCode {
    let mut options = SandboxOptions::default().with_port(args.port);
    if !args.vendor.is_empty() {
        options.emulators = args.vendor;
    }
    let sandbox = match Sandbox::start(options).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("error: cannot start the sandbox: {error}");
            return exit::code(exit::FAILURE);
        }
    };
    let urls = sandbox.base_urls();
    let misa = sandbox.login(Emulator::MisaCukcuk);
    let credentials = json!({
        "isolarcloud": {"app_key": accounts::ISOLARCLOUD_APP_KEY, "access_key": accounts::ISOLARCLOUD_ACCESS_KEY,
            "redirect_uri": accounts::ISOLARCLOUD_REDIRECT_URI, "authorization_code": sandbox.authorization_code(Emulator::ISolarCloud)},
        "sugon-ac": {"user": accounts::SUGON_USER, "password": accounts::SUGON_PASSWORD, "org_id": accounts::SUGON_ORG_ID},
        "misa-cukcuk": {"company_code": accounts::MISA_COMPANY_CODE, "access_token": misa.access_token, "refresh_token": misa.refresh_token},
        "wechat-open": {"component_appid": accounts::WECHAT_COMPONENT_APPID, "component_appsecret": accounts::WECHAT_COMPONENT_APPSECRET,
            "component_verify_ticket": accounts::WECHAT_VERIFY_TICKET, "authorizer_appid": accounts::WECHAT_AUTHORIZER_APPID,
            "authorization_code": sandbox.authorization_code(Emulator::WechatOpen)},
        "ekuaibao": {"app_key": accounts::EKUAIBAO_APP_KEY, "app_security": accounts::EKUAIBAO_APP_SECURITY},
    });
    if args.json {
        let base_urls: serde_json::Map<String, serde_json::Value> = urls
            .iter()
            .map(|(e, url)| (e.to_string(), url.clone().into()))
            .collect();
        println!(
            "{}",
            json!({"base_urls": base_urls, "credentials": credentials})
        );
    } else {
        println!(
            "refresh-kit sandbox: emulators of the vendors' token endpoints (stop with Ctrl-C)"
        );
        for (emulator, url) in &urls {
            println!("  {:<12} {url}", emulator.as_str());
        }
        println!("credentials they accept (the sandbox's own, not real ones):");
        for (emulator, _) in &urls {
            println!(
                "  {:<12} {}",
                emulator.as_str(),
                credentials[emulator.as_str()]
            );
        }
    }
    let waited = tokio::signal::ctrl_c().await;
    sandbox.shutdown().await;
    match waited {
        Ok(()) => {
            if !args.json {
                println!("stopped");
            }
            exit::code(exit::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: cannot wait for Ctrl-C: {error}");
            exit::code(exit::FAILURE)
        }
    }
}
