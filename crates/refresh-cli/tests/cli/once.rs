//! `refresh once` at every vendor: rotation, the refresh windows, every injected fault, and every exit code.

use std::time::Duration;

use refresh_sandbox::{Emulator, Fault, Sandbox, SandboxOptions, accounts};
use serde_json::Value;

use crate::support::*;

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
