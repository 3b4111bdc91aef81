//! The commands without profiles: `--help` and `--version` everywhere, `demo`, and `sandbox`.

use std::time::Duration;

use refresh_sandbox::{Emulator, accounts};
use serde_json::Value;

use crate::support::*;

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
