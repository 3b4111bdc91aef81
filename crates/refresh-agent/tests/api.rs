//! The local API on a real unix socket, asked by curl and by Python's standard library: tokens to the callers a
//! profile allows, 403 to others (a real second user, `nobody`, through runuser, when the test runs as root),
//! status, health, and metrics that a Prometheus exposition parser reads.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use refresh_agent::{Agent, Format, Profile, Readers, Sink};
use refresh_facade::{EkuaibaoConfig, Grant, Refresher, Vendor, VendorConfig};
use refresh_manager::{CredentialId, CredentialOptions, Manager, MemoryStore};
use refresh_sandbox::{Emulator, Sandbox, SandboxOptions, accounts};

/// `curl --unix-socket`: the status code and the body.
fn curl(socket: &Path, path: &str, as_user: Option<&str>) -> (u16, String) {
    let mut args: Vec<String> = Vec::new();
    let program = match as_user {
        Some(user) => {
            args.extend(["-u".into(), user.into(), "--".into(), "curl".into()]);
            "runuser"
        }
        None => "curl",
    };
    args.extend([
        "-s".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "--unix-socket".into(),
        socket.display().to_string(),
        format!("http://agent{path}"),
    ]);
    let output = Command::new(program).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Python's standard library, as a service in another language would ask: the token from the JSON.
fn python_token(socket: &Path, profile: &str) -> String {
    let script = format!(
        r#"
import http.client, json, socket
class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect({socket:?})
connection = UnixConnection("agent")
connection.request("GET", "/v1/tokens/{profile}")
response = connection.getresponse()
assert response.status == 200, response.status
print(json.load(response)["access_token"], end="")
"#,
        socket = socket.display().to_string()
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_serves_tokens_to_allowed_callers_and_refuses_the_others() {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::Ekuaibao))
        .await
        .unwrap();
    let base = sandbox.base_url(Emulator::Ekuaibao).unwrap();
    let refresher =
        Refresher::new(VendorConfig::Ekuaibao(EkuaibaoConfig::new()).with_base_url(base)).unwrap();
    let login = Grant::EkuaibaoAppCredentials {
        app_key: accounts::EKUAIBAO_APP_KEY.into(),
        app_security: accounts::EKUAIBAO_APP_SECURITY.into(),
    };
    let dir = tempfile::tempdir().unwrap();
    // Other users must reach the socket to be refused by the agent rather than by the file system.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let profile = |name: &str, readers: Readers| Profile {
        name: name.into(),
        id: CredentialId::new(name).unwrap(),
        vendor: Vendor::Ekuaibao,
        credential: CredentialOptions::new(refresher.clone()).with_login(login.clone()),
        sinks: vec![Sink::new(
            dir.path().join(format!("{name}.token")),
            Format::Token,
        )],
        readers,
    };
    let agent = Agent::new(Manager::new(MemoryStore::new()));
    // `shared` lets nobody (65534) read; `private` lists no one.
    let nobody = Readers {
        uids: vec![65534],
        gids: Vec::new(),
    };
    agent.apply(vec![
        profile("shared", nobody),
        profile("private", Readers::default()),
    ]);
    let socket = dir.path().join("agent.sock");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = refresh_agent::api::bind(&socket).unwrap();
    let server = tokio::spawn(refresh_agent::api::serve(
        listener,
        agent.clone(),
        Some(metrics),
        async {
            let _ = stopped.await;
        },
    ));
    let socket_mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(socket_mode, 0o666, "any local user may connect");

    let (socket_for_blocking, agent_token) = (socket.clone(), agent.clone());
    let checks = tokio::task::spawn_blocking(move || {
        let socket = socket_for_blocking;
        let (status, body) = curl(&socket, "/v1/tokens/shared", None);
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let token = answer["access_token"].as_str().unwrap().to_owned();
        assert_eq!(answer["vendor"], "ekuaibao");
        assert_eq!(python_token(&socket, "shared"), token);
        let (status, body) = curl(&socket, "/v1/tokens/missing", None);
        assert_eq!(
            (status, body.contains("unknown_profile")),
            (404, true),
            "{body}"
        );

        let (status, body) = curl(&socket, "/v1/status", None);
        assert_eq!(status, 200);
        assert!(!body.contains(&token), "status shows no token: {body}");
        let status_json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status_json["profiles"]["shared"]["health"], "ok", "{body}");
        let (status, _) = curl(&socket, "/healthz", None);
        assert_eq!(status, 200);

        if is_root() {
            let (status, body) = curl(&socket, "/v1/tokens/shared", Some("nobody"));
            assert_eq!(status, 200, "nobody is a reader of shared: {body}");
            let (status, body) = curl(&socket, "/v1/tokens/private", Some("nobody"));
            assert_eq!(status, 403, "{body}");
            assert!(!body.contains("access_token"), "{body}");
        } else {
            eprintln!(
                "not root: the refusal of another uid is checked by the unit test of Readers only"
            );
        }

        let (status, body) = curl(&socket, "/metrics", None);
        assert_eq!(status, 200);
        assert!(!body.contains(&token), "metrics carry no token");
        let lines = body.lines().map(|line| Ok(line.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("the Prometheus text format");
        let renewals: f64 = scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == "refresh_kit_renewals_total"
                    && s.labels.get("vendor") == Some("ekuaibao")
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum();
        assert!(renewals >= 2.0, "two logins at least: {body}");
        token
    });
    let token = checks.await.unwrap();
    let via_manager = agent_token
        .manager()
        .access_token(&CredentialId::new("shared").unwrap())
        .await
        .unwrap();
    assert_eq!(via_manager.secret.expose_secret(), token);

    // New tokens (a login here, as a rotation would): the socket answers with them, not with the last answer.
    let shared = CredentialId::new("shared").unwrap();
    let renewed = agent_token.manager().login(&shared, &login).await.unwrap();
    assert_ne!(renewed.secret.expose_secret(), token);
    let socket_for_blocking = socket.clone();
    let (status, body) =
        tokio::task::spawn_blocking(move || curl(&socket_for_blocking, "/v1/tokens/shared", None))
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["access_token"], renewed.secret.expose_secret());
    assert_eq!(answer["version"], renewed.version);

    // A profile without tokens or a login of its own is dead: health says which, with 503.
    let mut orphaned = profile("nothing", Readers::default());
    orphaned.credential = CredentialOptions::new(refresher.clone());
    agent_token.apply(vec![
        profile("shared", Readers::default()),
        profile("private", Readers::default()),
        orphaned,
    ]);
    let socket_for_blocking = socket.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut last = (0, String::new());
        for _ in 0..500 {
            last = curl(&socket_for_blocking, "/healthz", None);
            if last.0 == 503 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        last
    })
    .await
    .unwrap();
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, &health["profiles"]),
        (503, &serde_json::json!(["nothing"])),
        "{body}"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    agent.shutdown().await.unwrap();
}
