//! The `refresh` binary end to end against the sandbox (in this test process): every vendor, rotation, the
//! refresh windows, every injected fault, and every exit code.

use std::time::Duration;

use refresh_sandbox::{Emulator, Fault, Login, Sandbox, SandboxOptions, accounts};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_refresh");

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json_out(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
    fn json_err(&self) -> Value {
        serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", self.stderr))
    }
}

async fn refresh(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
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
async fn once(sandbox: &Sandbox, emulator: Emulator, login: &Login, extra: &[&str]) -> Run {
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

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default()).await.unwrap()
}

/// The vendor code the emulator uses for a used-up or invalid refresh token.
/// The vendor code and HTTP status each emulator answers a used refresh token with. MISA sends no code: its
/// HTTP 401 is the whole answer, and a status is never reported as a vendor code.
fn invalid_refresh_answer(emulator: Emulator) -> (Option<&'static str>, u16) {
    match emulator {
        Emulator::ISolarCloud => (Some("5"), 200),
        Emulator::SugonAc => (Some("10004"), 200),
        Emulator::MisaCukcuk => (None, 401),
        Emulator::WechatOpen => (Some("61023"), 200),
        Emulator::Ekuaibao => (Some("403"), 403),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_vendor_refreshes_and_a_used_refresh_token_needs_reauthorization() {
    let sandbox = sandbox().await;
    for emulator in Emulator::ALL {
        let login = sandbox.login(emulator);
        let run = once(&sandbox, emulator, &login, &[]).await;
        assert_eq!(run.code, 0, "{emulator}: {}", run.stderr);
        let out = run.json_out();
        assert_eq!(out["vendor"], emulator.as_str());
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "access_token",
                "anomalies",
                "expires_at",
                "refresh_token",
                "rotated",
                "rotation",
                "token_type",
                "vendor"
            ]
        );
        let expires_at = out["expires_at"].as_str().unwrap();
        assert!(
            expires_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(expires_at).is_ok(),
            "{expires_at}"
        );
        assert!(!out["access_token"].as_str().unwrap().is_empty());
        assert_eq!(
            out["anomalies"],
            serde_json::json!([]),
            "{emulator}: the documented answer"
        );
        // WeChat keeps the authorizer refresh token; the others rotate it.
        assert_eq!(
            out["rotated"],
            emulator != Emulator::WechatOpen,
            "{emulator}"
        );
        assert_eq!(sandbox.refresh_count(emulator, &login.refresh_token), 1);

        let mut reused = login.clone();
        if emulator == Emulator::WechatOpen {
            reused.refresh_token = "refreshtoken@@@not-issued".into();
        }
        let run = once(&sandbox, emulator, &reused, &[]).await;
        // Sugon AC documents 10004 as "invalid parameter" only; its token is fresh, so nothing says it is gone for
        // good (`sugon_renews_up_to_24_hours_after_expiry_and_not_later` has the case that does).
        let (exit, kind) = match emulator {
            Emulator::SugonAc => (6, "invalid_request"),
            _ => (4, "reauthorization_required"),
        };
        assert_eq!(
            run.code, exit,
            "{emulator}: the used refresh token must be refused: {}",
            run.stderr
        );
        let err = run.json_err();
        assert_eq!(err["kind"], kind);
        let (code, status) = invalid_refresh_answer(emulator);
        assert_eq!(err["code"], serde_json::json!(code), "{emulator}: {err}");
        assert_eq!(err["http_status"], status, "{emulator}: {err}");
        assert_eq!(err["retryable"], false);
        assert_eq!(err["vendor"], emulator.as_str());
        assert!(
            !run.stderr.contains(&reused.refresh_token),
            "the error never echoes the token"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sugon_renews_up_to_24_hours_after_expiry_and_not_later() {
    // The command reads the system clock, so the tokens are issued in the past instead of the time moving on.
    let sandbox = sandbox().await;
    let hours = |h: u64| Duration::from_secs(h * 3600);
    sandbox.clock().rewind(hours(2 + 25));
    let too_late = sandbox.login(Emulator::SugonAc); // a 2 h token that expired 25 h ago
    sandbox.clock().advance(hours(2));
    let late = sandbox.login(Emulator::SugonAc); // expired 23 h ago
    sandbox.clock().advance(hours(25));
    assert_eq!(once(&sandbox, Emulator::SugonAc, &late, &[]).await.code, 0);
    let run = once(&sandbox, Emulator::SugonAc, &too_late, &[]).await;
    assert_eq!(
        (run.code, run.json_err()["code"].as_str()),
        (4, Some("10004")),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ekuaibao_refreshes_only_before_the_access_token_expires() {
    let sandbox = sandbox().await;
    let in_time = sandbox.login(Emulator::Ekuaibao);
    let late = sandbox.login(Emulator::Ekuaibao);
    sandbox.clock().advance(Duration::from_secs(3600 + 59 * 60)); // 1 h 59 of 2 h
    let run = once(
        &sandbox,
        Emulator::Ekuaibao,
        &in_time,
        &["--validity-days", "3"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expires =
        chrono::DateTime::parse_from_rfc3339(run.json_out()["expires_at"].as_str().unwrap())
            .unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - sandbox.clock().now()).num_hours();
    assert!((71..=72).contains(&days), "a 3-day validity, got {days} h");
    sandbox.clock().advance(Duration::from_secs(2 * 60));
    let run = once(&sandbox, Emulator::Ekuaibao, &late, &[]).await;
    assert_eq!(
        (run.code, run.json_err()["code"].as_str()),
        (4, Some("403")),
        "{}",
        run.stderr
    );
}

/// An Ekuaibao answer whose `refreshToken` is the number 1e308: the tokens are kept (the old refresh token carried
/// over), and the JSON says what was odd instead of staying silent.
#[tokio::test(flavor = "multi_thread")]
async fn an_odd_answer_is_kept_and_its_anomalies_are_printed() {
    let sandbox = sandbox().await;
    let vendor = Emulator::Ekuaibao;
    sandbox.inject(
        vendor,
        Fault::retype("/value/refreshToken", serde_json::json!(1e308)),
    );
    let run = once(&sandbox, vendor, &sandbox.login(vendor), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.json_out();
    assert_eq!(out["rotation"], "carried_over", "{out}");
    let anomalies = out["anomalies"].as_array().unwrap();
    let not_text = anomalies
        .iter()
        .find(|a| a["kind"] == "token_not_text")
        .unwrap_or_else(|| panic!("{anomalies:?}"));
    assert_eq!(
        not_text["detail"],
        "`value.refreshToken` is a number, not a token: ignored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_get_their_exit_codes() {
    let sandbox = sandbox().await;
    let vendor = Emulator::ISolarCloud;

    sandbox.inject(vendor, Fault::Latency(Duration::from_secs(3)));
    let run = once(
        &sandbox,
        vendor,
        &sandbox.login(vendor),
        &["--timeout", "1"],
    )
    .await;
    assert_eq!(
        (run.code, run.json_err()["kind"].as_str()),
        (7, Some("transient")),
        "{}",
        run.stderr
    );

    sandbox.inject(vendor, Fault::server_error(503));
    let run = once(&sandbox, vendor, &sandbox.login(vendor), &[]).await;
    assert_eq!(
        (run.code, run.json_err()["http_status"].as_u64()),
        (7, Some(503)),
        "{}",
        run.stderr
    );

    sandbox.inject(vendor, Fault::rate_limited(9));
    let run = once(&sandbox, vendor, &sandbox.login(vendor), &[]).await;
    let err = run.json_err();
    assert_eq!(
        (
            run.code,
            err["retry_after_secs"].as_u64(),
            err["retryable"].as_bool()
        ),
        (7, Some(9), Some(true))
    );

    sandbox.inject(vendor, Fault::html_page());
    let run = once(&sandbox, vendor, &sandbox.login(vendor), &[]).await;
    assert_eq!(
        (run.code, run.json_err()["kind"].as_str()),
        (8, Some("malformed_response")),
        "{}",
        run.stderr
    );

    // The emulator commits the rotation, then drops the connection: the caller never sees the new tokens and
    // the old refresh token is already used up. (Keeping rotated tokens through this is a token manager's job.)
    let login = sandbox.login(vendor);
    sandbox.inject(vendor, Fault::DropAfterCommit);
    let run = once(&sandbox, vendor, &login, &[]).await;
    assert_eq!(
        (run.code, run.json_err()["kind"].as_str()),
        (7, Some("transient")),
        "{}",
        run.stderr
    );
    let run = once(&sandbox, vendor, &login, &[]).await;
    assert_eq!(
        (run.code, run.json_err()["code"].as_str()),
        (4, Some("5")),
        "{}",
        run.stderr
    );
    assert_eq!(sandbox.refresh_count(vendor, &login.refresh_token), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_usage_credentials_and_request_errors_have_their_exit_codes() {
    let sandbox = sandbox().await;
    let base = sandbox.base_url(Emulator::SugonAc).unwrap();

    // 3: no refresh token.
    let run = refresh(
        &["once", "--vendor", "sugon-ac", "--base-url", &base],
        &[],
        None,
    )
    .await;
    assert_eq!(
        (run.code, run.json_err()["kind"].as_str()),
        (3, Some("configuration")),
        "{}",
        run.stderr
    );
    // 3: plain http to a host that is not loopback, and it says how to allow it.
    let run = refresh(
        &[
            "once",
            "--vendor",
            "sugon-ac",
            "--base-url",
            "http://api01.example.com:65102",
        ],
        &[("REFRESH_TOKEN", "t")],
        None,
    )
    .await;
    assert_eq!(run.code, 3);
    assert!(
        run.json_err()["message"]
            .as_str()
            .unwrap()
            .contains("--allow-insecure")
    );
    // 3: iSolarCloud without its secret key.
    let login = sandbox.login(Emulator::ISolarCloud);
    let isolar = sandbox.base_url(Emulator::ISolarCloud).unwrap();
    let run = refresh(
        &[
            "once",
            "--vendor",
            "isolarcloud",
            "--base-url",
            &isolar,
            "--app-key",
            accounts::ISOLARCLOUD_APP_KEY,
        ],
        &[("REFRESH_TOKEN", &login.refresh_token)],
        None,
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.json_err()["message"]
            .as_str()
            .unwrap()
            .contains("APP_SECRET")
    );

    // 5: the wrong secret key (E912), read from standard input.
    let stdin = format!(
        "REFRESH_TOKEN={}\nAPP_SECRET=not-the-key\n",
        login.refresh_token
    );
    let run = refresh(
        &[
            "once",
            "--vendor",
            "isolarcloud",
            "--base-url",
            &isolar,
            "--app-key",
            accounts::ISOLARCLOUD_APP_KEY,
            "--stdin",
        ],
        &[],
        Some(&stdin),
    )
    .await;
    assert_eq!(
        (run.code, run.json_err()["code"].as_str()),
        (5, Some("E912")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not-the-key"));

    // 6: Ekuaibao needs the access token too.
    let login = sandbox.login(Emulator::Ekuaibao);
    let ekuaibao = sandbox.base_url(Emulator::Ekuaibao).unwrap();
    let run = refresh(
        &["once", "--vendor", "ekuaibao", "--base-url", &ekuaibao],
        &[("REFRESH_TOKEN", &login.refresh_token)],
        None,
    )
    .await;
    assert_eq!(
        (run.code, run.json_err()["kind"].as_str()),
        (6, Some("invalid_request")),
        "{}",
        run.stderr
    );

    // 0 through --stdin, both tokens.
    let stdin = format!(
        "REFRESH_TOKEN={}\nACCESS_TOKEN={}\n",
        login.refresh_token, login.access_token
    );
    let run = refresh(
        &[
            "once",
            "--vendor",
            "ekuaibao",
            "--base-url",
            &ekuaibao,
            "--stdin",
        ],
        &[],
        Some(&stdin),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    // 2: usage.
    assert_eq!(
        refresh(&["once", "--vendor", "acme"], &[], None).await.code,
        2
    );
    assert_eq!(refresh(&["frobnicate"], &[], None).await.code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_and_version_work_for_every_subcommand() {
    let run = refresh(&["--version"], &[], None).await;
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("refresh "), "{}", run.stdout);
    let run = refresh(&["--help"], &[], None).await;
    assert!(
        run.stdout.contains("Exit codes:") && run.stdout.contains("4  re-authorization required")
    );
    for subcommand in [
        "demo", "sandbox", "once", "login", "token", "status", "agent", "exec", "profiles", "check",
    ] {
        let run = refresh(&[subcommand, "--help"], &[], None).await;
        assert_eq!(run.code, 0, "{subcommand}");
        assert!(
            run.stdout.contains("Examples:"),
            "{subcommand}: {}",
            run.stdout
        );
    }
}

/// The keys listed under `title` in `refresh once --help` (until the next blank line).
fn listed_keys(help: &str, title: &str) -> Vec<String> {
    let section = help
        .split("\n\n")
        .find(|block| block.starts_with(title))
        .unwrap_or_else(|| panic!("no {title:?} in {help}"));
    section
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .collect()
}

fn keys(object: &Value) -> Vec<String> {
    object.as_object().unwrap().keys().cloned().collect()
}

/// `refresh once --help` lists exactly the JSON keys a run prints, success and failure alike.
#[tokio::test(flavor = "multi_thread")]
async fn once_help_lists_exactly_the_keys_it_prints() {
    let help = refresh(&["once", "--help"], &[], None).await.stdout;
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::SugonAc))
        .await
        .unwrap();
    let login = sandbox.login(Emulator::SugonAc);
    let ok = once(&sandbox, Emulator::SugonAc, &login, &[]).await;
    let mut success = keys(&ok.json_out());
    let mut listed = listed_keys(&help, "On success");
    success.sort();
    listed.sort();
    assert_eq!(success, listed, "{help}");

    let refused = once(&sandbox, Emulator::SugonAc, &login, &[]).await;
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    let misconfigured = refresh(&["once", "--vendor", "sugon-ac"], &[], None).await;
    assert_eq!(misconfigured.code, 3, "{}", misconfigured.stderr);
    let mut listed = listed_keys(&help, "On failure");
    listed.sort();
    for run in [refused, misconfigured] {
        let mut failure = keys(&run.json_err());
        failure.sort();
        assert_eq!(failure, listed, "{}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_refreshes_at_all_five_vendors_then_keeps_them_fresh_for_a_day() {
    let run = refresh(&["demo"], &[], None).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("VENDOR")
            && lines[0].contains("EXPIRES AT")
            && lines[0].ends_with("OUTCOME")
    );
    for (line, vendor) in lines[1..6].iter().zip(Emulator::ALL) {
        assert!(
            line.starts_with(vendor.as_str()) && line.ends_with("ok"),
            "{line}"
        );
    }
    // The day: a header, one row per credential, and the summary.
    assert!(
        lines[6].is_empty() && lines[7].starts_with("A simulated day"),
        "{}",
        run.stdout
    );
    assert!(lines[8].starts_with("CREDENTIAL"), "{}", run.stdout);
    let sugon = lines[9..]
        .iter()
        .find(|l| l.starts_with("sugon-ac "))
        .expect("a row for sugon-ac");
    // Sugon AC's 2-hour tokens: the first login, then a refresh about every 1 h 50 min.
    let renewals: usize = sugon.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((13..=15).contains(&renewals), "{sugon}");
    assert!(
        lines.last().unwrap().ends_with(", 0 caller-visible errors"),
        "{}",
        run.stdout
    );

    let run = refresh(&["demo", "--json"], &[], None).await;
    let out = run.json_out();
    let vendors = out["vendors"].as_array().unwrap();
    assert_eq!(vendors.len(), 5);
    assert!(vendors.iter().all(|r| r["outcome"] == "ok"), "{out}");
    let day = out["day"].as_array().unwrap();
    assert_eq!(day.len(), 6, "{out}");
    assert!(day.iter().all(|t| t["caller_errors"] == 0), "{out}");
    let component = day
        .iter()
        .find(|t| t["credential"] == "wechat-open-component")
        .unwrap();
    let renewals = component["renewals"].as_array().unwrap();
    assert!(
        renewals.len() >= 12 && renewals.iter().all(|r| r["login"] == true),
        "{component}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_serves_until_interrupted_and_fails_on_a_taken_port() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(BIN)
        .args(["sandbox", "--vendor", "sugon-ac", "--json"])
        .stdout(std::process::Stdio::piped())
        // A failed assertion must not leave a sandbox running (it would hold the test's output open).
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let started: Value = serde_json::from_str(&first).unwrap();
    let base = started["base_urls"]["sugon-ac"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        started["credentials"]["sugon-ac"]["user"],
        accounts::SUGON_USER
    );

    // It answers as Sugon AC does, and it rejects a token it never issued (an invalid parameter: the token has
    // no expiry that says it is too old).
    let run = refresh(
        &["once", "--vendor", "sugon-ac", "--base-url", &base],
        &[("REFRESH_TOKEN", "a.b.c")],
        None,
    )
    .await;
    assert_eq!(
        (run.code, run.json_err()["code"].as_str()),
        (6, Some("10004")),
        "{}",
        run.stderr
    );

    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    // 1: the port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = refresh(
        &["sandbox", "--vendor", "sugon-ac", "--port", &port],
        &[],
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot start the sandbox"));
}

/// `refresh login` obtains first tokens through the facade (the same JSON keys and exit codes as `once`), and
/// `refresh once` refreshes what it printed.
#[tokio::test(flavor = "multi_thread")]
async fn login_obtains_first_tokens_that_refresh() {
    let sandbox = sandbox().await;
    let component = [
        ("COMPONENT_APPID", accounts::WECHAT_COMPONENT_APPID),
        ("AUTHORIZER_APPID", accounts::WECHAT_AUTHORIZER_APPID),
        ("COMPONENT_APPSECRET", accounts::WECHAT_COMPONENT_APPSECRET),
        ("COMPONENT_VERIFY_TICKET", accounts::WECHAT_VERIFY_TICKET),
    ];
    for emulator in [
        Emulator::ISolarCloud,
        Emulator::SugonAc,
        Emulator::WechatOpen,
        Emulator::Ekuaibao,
    ] {
        let base = sandbox.base_url(emulator).unwrap();
        let code = sandbox.authorization_code(emulator).unwrap_or_default();
        let mut env: Vec<(&str, &str)> = match emulator {
            Emulator::ISolarCloud => vec![
                ("APP_KEY", accounts::ISOLARCLOUD_APP_KEY),
                ("APP_SECRET", accounts::ISOLARCLOUD_ACCESS_KEY),
                ("REDIRECT_URI", accounts::ISOLARCLOUD_REDIRECT_URI),
                ("AUTHORIZATION_CODE", &code),
            ],
            Emulator::SugonAc => vec![
                ("USER_NAME", accounts::SUGON_USER),
                ("ORG_ID", accounts::SUGON_ORG_ID),
                ("PASSWORD", accounts::SUGON_PASSWORD),
            ],
            Emulator::WechatOpen => {
                [component.as_slice(), &[("AUTHORIZATION_CODE", &code)]].concat()
            }
            _ => vec![
                ("APP_KEY", accounts::EKUAIBAO_APP_KEY),
                ("APP_SECURITY", accounts::EKUAIBAO_APP_SECURITY),
            ],
        };
        let args = ["login", "--vendor", emulator.as_str(), "--base-url", &base];
        let run = refresh(&args, &env, None).await;
        assert_eq!(run.code, 0, "{emulator}: {}", run.stderr);
        let out = run.json_out();
        assert_eq!(out["rotation"], "issued", "{emulator}: {out}");
        assert_eq!(out["vendor"], emulator.as_str());

        // The login's tokens refresh.
        let refresh_token = out["refresh_token"].as_str().unwrap().to_owned();
        let access_token = out["access_token"].as_str().unwrap().to_owned();
        env.retain(|(name, _)| !name.starts_with("COMPONENT_") || *name == "COMPONENT_APPID");
        let component_token;
        if emulator == Emulator::WechatOpen {
            let only = refresh(
                &[&args[..], &["--component-token"]].concat(),
                &component,
                None,
            )
            .await;
            assert_eq!(
                only.json_out()["rotation"],
                "not_refreshable",
                "{}",
                only.stderr
            );
            component_token = only.json_out()["access_token"].as_str().unwrap().to_owned();
            env.push(("COMPONENT_ACCESS_TOKEN", &component_token));
            // --component-token obtains a new one even when a current one is given.
            let given = [
                &component[..],
                &[("COMPONENT_ACCESS_TOKEN", component_token.as_str())],
            ]
            .concat();
            let again = refresh(&[&args[..], &["--component-token"]].concat(), &given, None).await;
            assert_eq!(
                again.json_out()["rotation"],
                "not_refreshable",
                "{}",
                again.stderr
            );
            assert_ne!(again.json_out()["access_token"], component_token.as_str());
            // A login with a given component token needs no appsecret or ticket.
            let code = sandbox.authorization_code(emulator).unwrap();
            let renewed = again.json_out()["access_token"]
                .as_str()
                .unwrap()
                .to_owned();
            let with_token = [
                ("COMPONENT_APPID", accounts::WECHAT_COMPONENT_APPID),
                ("AUTHORIZER_APPID", accounts::WECHAT_AUTHORIZER_APPID),
                ("COMPONENT_ACCESS_TOKEN", renewed.as_str()),
                ("AUTHORIZATION_CODE", &code),
            ];
            let login = refresh(&args, &with_token, None).await;
            assert_eq!(login.json_out()["rotation"], "issued", "{}", login.stderr);
        }
        env.extend([
            ("REFRESH_TOKEN", refresh_token.as_str()),
            ("ACCESS_TOKEN", &access_token),
        ]);
        let args = ["once", "--vendor", emulator.as_str(), "--base-url", &base];
        let run = refresh(&args, &env, None).await;
        assert_eq!(run.code, 0, "{emulator}: {}", run.stderr);
        assert_eq!(
            sandbox.refresh_count(emulator, &refresh_token),
            1,
            "{emulator}"
        );
    }

    // MISA CukCuk's OpenPlatform login: signed with SECRET_KEY (never sent), a token that is obtained again.
    let base = sandbox.base_url(Emulator::MisaCukcuk).unwrap();
    let args = ["login", "--vendor", "misa-cukcuk", "--base-url", &base];
    let env = [
        ("COMPANY_CODE", accounts::MISA_COMPANY_CODE),
        ("APP_ID", accounts::MISA_APP_ID),
        ("SECRET_KEY", accounts::MISA_SECRET_KEY),
    ];
    let run = refresh(&args, &env, None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answer = run.json_out();
    assert_eq!(answer["rotation"], "not_refreshable", "{answer}");
    assert!(!run.stdout.contains(accounts::MISA_SECRET_KEY));
    let wrong = refresh(
        &args,
        &[env[0], env[1], ("SECRET_KEY", "not-the-key")],
        None,
    )
    .await;
    assert_eq!(
        (wrong.code, wrong.json_err()["kind"].as_str()),
        (5, Some("credentials_rejected")),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("not-the-key"), "{}", wrong.stderr);

    // A missing secret is a configuration error, before any request.
    let base = sandbox.base_url(Emulator::SugonAc).unwrap();
    let args = ["login", "--vendor", "sugon-ac", "--base-url", &base];
    let env = [
        ("USER_NAME", accounts::SUGON_USER),
        ("ORG_ID", accounts::SUGON_ORG_ID),
    ];
    let run = refresh(&args, &env, None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("PASSWORD"), "{}", run.stderr);
}

/// Profiles end to end: `status` before and after, `login PROFILE` stores the first tokens, `token PROFILE` prints the
/// stored access token and, once it has expired, refreshes and stores the next one first; an unknown profile is a
/// configuration error and one never logged in asks for a login.
#[tokio::test(flavor = "multi_thread")]
async fn profiles_log_in_print_valid_tokens_and_show_their_status() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::SugonAc))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[profiles.hpc]\nvendor = \"sugon-ac\"\nbase_url = {base:?}\n\
             [profiles.hpc.login]\nuser = {user:?}\norg_id = {org:?}\n\n[profiles.idle]\nvendor = \"sugon-ac\"\n",
            base = sandbox.base_url(Emulator::SugonAc).unwrap(),
            user = accounts::SUGON_USER,
            org = accounts::SUGON_ORG_ID,
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let env = [("REFRESH_CONFIG", config)];
    let status = |run: &Run| -> Vec<Value> { run.json_out().as_array().unwrap().clone() };

    let before = refresh(&["status", "--json"], &env, None).await;
    assert_eq!(before.code, 0, "{}", before.stderr);
    // Written with the default mode, which others may read: said, not silently accepted.
    assert!(
        before.stderr.contains("may be read by others") && before.stderr.contains("chmod 600"),
        "{}",
        before.stderr
    );
    assert!(
        status(&before).iter().all(|p| p["version"].is_null()),
        "{}",
        before.stdout
    );
    let never = refresh(&["token", "idle"], &env, None).await;
    assert_eq!(never.code, 4, "{}", never.stderr);
    assert!(never.stderr.contains("log in first"), "{}", never.stderr);
    let unknown = refresh(&["token", "nope"], &env, None).await;
    assert_eq!(unknown.code, 3, "{}", unknown.stderr);

    // Issued two hours ago by the system clock the command reads: expired, still within Sugon's 24-hour window.
    sandbox.clock().rewind(Duration::from_secs(2 * 3600 + 60));
    let login = refresh(
        &["login", "hpc"],
        &[env[0], ("PASSWORD", accounts::SUGON_PASSWORD)],
        None,
    )
    .await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert_eq!(login.json_out()["version"], 1);
    sandbox.clock().advance(Duration::from_secs(2 * 3600 + 60));
    assert_eq!(login.json_out()["anomalies"], serde_json::json!([]));
    // The renewal's `msg` drifted to a number: its token is kept, and status says what was odd.
    sandbox.inject(
        Emulator::SugonAc,
        Fault::retype("/msg", serde_json::json!(7)),
    );
    // With --json: the token, its deadlines, and what was odd in the answer this command stored.
    let token = refresh(&["token", "hpc", "--json"], &env, None).await;
    assert_eq!(token.code, 0, "{}", token.stderr);
    let out = token.json_out();
    let kinds: Vec<&str> = out["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["undocumented_types"], "{out}");
    assert_eq!(
        (out["profile"].as_str(), out["version"].as_u64()),
        (Some("hpc"), Some(2))
    );
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(out["expires_at"].as_str().unwrap()).unwrap();
    let refresh_at =
        chrono::DateTime::parse_from_rfc3339(out["refresh_at"].as_str().unwrap()).unwrap();
    assert!(refresh_at < expires_at, "{out}");
    let record: Value =
        serde_json::from_slice(&std::fs::read(state.join("tokens/hpc.json")).unwrap()).unwrap();
    assert_eq!(
        record["version"], 2,
        "refreshed and stored before it was printed"
    );
    assert_eq!(record["tokens"]["access_token"], out["access_token"]);
    // Valid now: printed again without a refresh, bare: the token and a newline.
    let again = refresh(&["token", "hpc"], &env, None).await;
    let printed = again.stdout.trim_end_matches('\n');
    assert!(
        !printed.is_empty() && !printed.contains(char::is_whitespace),
        "{}",
        again.stdout
    );
    assert_eq!(out["access_token"], printed);
    assert_eq!(
        sandbox.refresh_count(
            Emulator::SugonAc,
            record["tokens"]["refresh_token"].as_str().unwrap()
        ),
        0
    );
    let quiet = refresh(&["token", "hpc", "--json"], &env, None).await;
    assert_eq!(
        quiet.json_out()["anomalies"],
        serde_json::json!([]),
        "nothing was asked"
    );

    let after = status(&refresh(&["status", "--json"], &env, None).await);
    let hpc = after.iter().find(|p| p["profile"] == "hpc").unwrap();
    assert_eq!(
        (hpc["version"].clone(), hpc["last_outcome"].clone()),
        (2.into(), "ok".into()),
        "{hpc}"
    );
    assert!(hpc["expires_in_secs"].as_i64().unwrap() > 3600, "{hpc}");
    assert_eq!(hpc["orphans"], 0);
    // Kept through the next command, which stored nothing.
    let kinds: Vec<&str> = hpc["last_anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["undocumented_types"], "{hpc}");
    let idle = after.iter().find(|p| p["profile"] == "idle").unwrap();
    assert_eq!(idle["last_outcome"], "not_stored", "{idle}");
    let table = refresh(&["status"], &env, None).await;
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("PROFILE") && lines[0].ends_with("RESCUED"),
        "{}",
        table.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("idle ") && l.contains("not logged in")),
        "{}",
        table.stdout
    );
}

/// Makes `dir` refuse new files until dropped: `chattr +i` as root (whom modes do not stop), mode 0500 otherwise.
struct Unwritable<'a>(&'a std::path::Path);

impl<'a> Unwritable<'a> {
    fn new(dir: &'a std::path::Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        if std::process::Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout
            == b"0\n"
        {
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .status()
                .expect("chattr (e2fsprogs) is installed");
            assert!(status.success());
        } else {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        }
        Unwritable(dir)
    }
}

impl Drop for Unwritable<'_> {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(self.0)
            .status();
        let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(0o700));
    }
}

/// A MISA CukCuk profile needs no first login by hand: with SECRET_KEY at hand, `refresh token` logs in (its
/// OpenPlatform login issues no refresh token), stores the token and prints it; the next run prints the stored one
/// while it is valid. Without the key it cannot: the error says how to get tokens, and nothing is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_misa_profile_logs_in_by_itself_with_its_secret_key() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::MisaCukcuk))
        .await
        .unwrap();
    let base = sandbox.base_url(Emulator::MisaCukcuk).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[profiles.shop]\nvendor = \"misa-cukcuk\"\nbase_url = {base:?}\n\
             company_code = {company:?}\n[profiles.shop.login]\napp_id = {app:?}\n",
            state = dir.path().join("state"),
            company = accounts::MISA_COMPANY_CODE,
            app = accounts::MISA_APP_ID,
        ),
    )
    .unwrap();
    let env = [
        ("REFRESH_CONFIG", config.to_str().unwrap()),
        ("SECRET_KEY", accounts::MISA_SECRET_KEY),
    ];
    let without_key = refresh(&["token", "shop"], &env[..1], None).await;
    assert_ne!(without_key.code, 0, "{}", without_key.stdout);
    assert!(
        without_key.stderr.contains("refresh login shop")
            && without_key.stderr.contains("refresh token --help"),
        "{}",
        without_key.stderr
    );
    assert!(sandbox.requests(Emulator::MisaCukcuk).is_empty());

    let first = refresh(&["token", "shop"], &env, None).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let token = first.stdout.trim().to_owned();
    assert_eq!(
        sandbox.access_token_state(Emulator::MisaCukcuk, &token),
        refresh_sandbox::AccessTokenState::Live
    );
    let again = refresh(&["token", "shop"], &env, None).await;
    assert_eq!(
        (again.code, again.stdout.trim()),
        (0, token.as_str()),
        "{}",
        again.stderr
    );
    assert_eq!(
        sandbox.requests(Emulator::MisaCukcuk).len(),
        1,
        "one login, then the stored token"
    );
}

/// `refresh token` on a state directory that takes no write (read-only, full) fails before it asks the vendor, so
/// the stored refresh token is not spent. Tokens that a command could not store were rescued: `status` shows them,
/// and the next `token` stores and prints them without asking the vendor again.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_state_directory_costs_no_token_and_rescued_tokens_are_stored_first() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::SugonAc))
        .await
        .unwrap();
    let base = sandbox.base_url(Emulator::SugonAc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[profiles.hpc]\nvendor = \"sugon-ac\"\nbase_url = {base:?}\n\
             [profiles.hpc.login]\nuser = {user:?}\norg_id = {org:?}\n",
            user = accounts::SUGON_USER,
            org = accounts::SUGON_ORG_ID,
        ),
    )
    .unwrap();
    let env = [("REFRESH_CONFIG", config.to_str().unwrap())];
    // Issued two hours ago by the system clock the command reads: expired, still within Sugon's window.
    sandbox.clock().rewind(Duration::from_secs(2 * 3600 + 60));
    let login = refresh(
        &["login", "hpc"],
        &[env[0], ("PASSWORD", accounts::SUGON_PASSWORD)],
        None,
    )
    .await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    sandbox.clock().advance(Duration::from_secs(2 * 3600 + 60));
    let record = |state: &std::path::Path| -> Value {
        serde_json::from_slice(&std::fs::read(state.join("tokens/hpc.json")).unwrap()).unwrap()
    };
    let first = record(&state)["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let tokens_dir = state.join("tokens");
    let refused = {
        let _unwritable = Unwritable::new(&tokens_dir);
        refresh(&["token", "hpc"], &env, None).await
    };
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    // The same outcome name as `refresh status` records below and the metrics count.
    assert_eq!(
        refused.json_err()["kind"],
        "store_error",
        "{}",
        refused.stderr
    );
    assert_eq!(
        sandbox.refresh_count(Emulator::SugonAc, &first),
        0,
        "the vendor was asked though nothing could be stored"
    );

    // A command whose write failed after the vendor answered left its tokens in the rescue.
    let refresher = refresh_facade::Refresher::new(refresh_facade::VendorConfig::SugonAc(
        refresh_facade::SugonAcConfig::new().with_base_url(&base),
    ))
    .unwrap();
    let stored = refresh_manager::StoredTokens::from(
        &refresher
            .refresh(&refresh_facade::RefreshGrant::new(
                refresh_facade::Secret::from(first.clone()),
            ))
            .await
            .unwrap(),
    );
    let rescued_token = stored.access_token.expose_secret().to_owned();
    let id = refresh_manager::CredentialId::new("hpc").unwrap();
    let rescue = refresh_manager::Rescue::new([state.join("rescue")]);
    rescue
        .keep(&refresh_manager::Rescued::new(
            id,
            Some(1),
            false,
            stored,
            chrono::Utc::now(),
        ))
        .unwrap();
    let status = refresh(&["status", "--json"], &env, None).await;
    let hpc = status.json_out()[0].clone();
    assert_eq!(hpc["last_outcome"], "store_error", "{hpc}");
    assert!(hpc["rescued_at"].is_string(), "{hpc}");

    let token = refresh(&["token", "hpc"], &env, None).await;
    assert_eq!(token.code, 0, "{}", token.stderr);
    assert_eq!(token.stdout.trim_end(), rescued_token);
    assert_eq!(record(&state)["version"], 2);
    assert!(
        rescue.list().is_empty(),
        "the rescue file is gone once stored"
    );
    assert_eq!(
        sandbox.refresh_count(Emulator::SugonAc, &rescued_token),
        0,
        "stored, not refreshed again"
    );
}

#[path = "../../refresh-postgres/tests/support/mod.rs"]
mod pg;

/// A profiles file with a `[postgres]` table keeps the tokens in PostgreSQL, shared with a service's replicas:
/// `login` and `token` write there (encrypted), and `status` shows the records and their orphans.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_profiles_keep_tokens_in_the_shared_store_and_status_shows_orphans() {
    use refresh_manager::TokenStore;
    let database = pg::Database::new();
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::SugonAc))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[postgres]\nurl = {url:?}\n\n[profiles.hpc]\nvendor = \"sugon-ac\"\n\
             base_url = {base:?}\n[profiles.hpc.login]\nuser = {user:?}\norg_id = {org:?}\n",
            state = dir.path().join("state"),
            url = database.url,
            base = sandbox.base_url(Emulator::SugonAc).unwrap(),
            user = accounts::SUGON_USER,
            org = accounts::SUGON_ORG_ID,
        ),
    )
    .unwrap();
    // The key `test-key-1` of the support module: 32 bytes of 42, in base64.
    let keys = "test-key-1:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
    let config = config.to_str().unwrap();
    let env = [("REFRESH_CONFIG", config), ("REFRESH_KIT_PG_KEYS", keys)];

    let no_keys = refresh(&["status"], &env[..1], None).await;
    assert_eq!(no_keys.code, 3, "{}", no_keys.stderr);
    assert!(
        no_keys.stderr.contains("REFRESH_KIT_PG_KEYS"),
        "{}",
        no_keys.stderr
    );

    let login = refresh(
        &["login", "hpc"],
        &[env[0], env[1], ("PASSWORD", accounts::SUGON_PASSWORD)],
        None,
    )
    .await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    let token = refresh(&["token", "hpc"], &env, None).await;
    assert_eq!(token.code, 0, "{}", token.stderr);
    let store = refresh_postgres::PgStore::connect(&database.url, pg::keys())
        .await
        .unwrap();
    let id = refresh_manager::CredentialId::new("hpc").unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        record.tokens.access_token.expose_secret(),
        token.stdout.trim_end()
    );
    // A replica's answer that lost its fenced write.
    store.keep_orphan(&id, &record.tokens).await.unwrap();

    let status = refresh(&["status", "--json"], &env, None).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let rows = status.json_out();
    let hpc = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "hpc")
        .unwrap()
        .clone();
    assert_eq!(
        (hpc["version"].clone(), hpc["orphans"].clone()),
        (1.into(), 1.into()),
        "{hpc}"
    );
    assert!(
        !status.stdout.contains(token.stdout.trim_end()),
        "no secret in status"
    );
    assert_eq!(hpc["lease"], serde_json::Value::Null, "no one holds it");

    // A replica renewing it holds the lease: status says which, and for how much longer.
    let lease = store.lock(&id).await.unwrap();
    let status = refresh(&["status", "--json"], &env, None).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let rows = status.json_out();
    let hpc = &rows.as_array().unwrap()[0];
    assert_eq!(hpc["lease"]["owner"], store.owner(), "{hpc}");
    let left = hpc["lease"]["left_secs"].as_f64().unwrap();
    assert!((1.0..=60.0).contains(&left), "{hpc}");
    store.release(lease).await;
}
