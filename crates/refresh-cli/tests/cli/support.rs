//! What every test here uses: the binary, run with arguments, environment and standard input, and a sandbox.

use refresh_sandbox::{Emulator, Login, Sandbox, SandboxOptions, accounts};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_refresh");

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json_out(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
    pub fn json_err(&self) -> Value {
        serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", self.stderr))
    }
}

pub async fn refresh(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the refresh binary runs");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Run {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `refresh once` for `emulator` at the sandbox, with the login's tokens (and the vendor's settings).
pub async fn once(sandbox: &Sandbox, emulator: Emulator, login: &Login, extra: &[&str]) -> Run {
    let base = sandbox.base_url(emulator).unwrap();
    let mut args = vec!["once", "--vendor", emulator.as_str(), "--base-url", &base];
    args.extend_from_slice(extra);
    let mut env = vec![
        ("REFRESH_TOKEN", login.refresh_token.as_str()),
        ("ACCESS_TOKEN", login.access_token.as_str()),
    ];
    match emulator {
        Emulator::ISolarCloud => env.extend([
            ("APP_KEY", accounts::ISOLARCLOUD_APP_KEY),
            ("APP_SECRET", accounts::ISOLARCLOUD_ACCESS_KEY),
        ]),
        Emulator::MisaCukcuk => env.push(("COMPANY_CODE", accounts::MISA_COMPANY_CODE)),
        Emulator::WechatOpen => env.extend([
            ("COMPONENT_APPID", accounts::WECHAT_COMPONENT_APPID),
            ("AUTHORIZER_APPID", accounts::WECHAT_AUTHORIZER_APPID),
            (
                "COMPONENT_ACCESS_TOKEN",
                login.credential("component_access_token").unwrap(),
            ),
        ]),
        _ => {}
    }
    refresh(&args, &env, None).await
}

pub async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default()).await.unwrap()
}

/// The vendor code the emulator uses for a used-up or invalid refresh token.
/// The vendor code and HTTP status each emulator answers a used refresh token with. MISA sends no code: its
/// HTTP 401 is the whole answer, and a status is never reported as a vendor code.
pub fn invalid_refresh_answer(emulator: Emulator) -> (Option<&'static str>, u16) {
    match emulator {
        Emulator::ISolarCloud => (Some("5"), 200),
        Emulator::SugonAc => (Some("10004"), 200),
        Emulator::MisaCukcuk => (None, 401),
        Emulator::WechatOpen => (Some("61023"), 200),
        Emulator::Ekuaibao => (Some("403"), 403),
        _ => unreachable!(),
    }
}
