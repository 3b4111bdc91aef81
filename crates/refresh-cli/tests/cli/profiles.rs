//! Profiles: `login`, `token`, `status` and the stores they keep tokens in (files, PostgreSQL), and what a
//! broken state directory costs.

use std::time::Duration;

use refresh_sandbox::{Emulator, Fault, Sandbox, SandboxOptions, accounts};
use serde_json::Value;

use crate::support::*;

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
    // (Its last line: a warning about the file's mode comes first.)
    let failure: Value = serde_json::from_str(refused.stderr.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", refused.stderr));
    assert_eq!(failure["kind"], "store_error", "{}", refused.stderr);
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

/// A profiles file with a `[postgres]` table keeps the tokens in PostgreSQL, shared with a service's replicas:
/// `login` and `token` write there (encrypted), and `status` shows the records and their orphans.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_profiles_keep_tokens_in_the_shared_store_and_status_shows_orphans() {
    use refresh_manager::TokenStore;
    let database = crate::pg::Database::new();
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
    let store = refresh_postgres::PgStore::connect(&database.url, crate::pg::keys())
        .await
        .unwrap();
    let id = refresh_manager::CredentialId::new("hpc").unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        record.tokens.access_token.expose_secret(),
        token.stdout.trim_end()
    );
    // A replica's answer that lost its fenced write.
    store
        .keep_orphan_under_lock(&id, &record.tokens)
        .await
        .unwrap();

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
