//! `refresh agent`, the binary, end to end against the sandbox (in this test process): tokens over the socket to
//! curl and to the README's Python client, 403 to a user the profile does not list, sinks on disk, a profile added
//! by SIGHUP, and a restart after a SIGKILL in the middle of a rotation that still serves a valid token.

use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use refresh_manager::{CredentialId, FileStore, TokenStore};
use refresh_sandbox::{AccessTokenState, Emulator, Sandbox, SandboxOptions, accounts};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_refresh");

/// A child process that is killed when dropped: a failed assertion must not leave an agent running, since it would
/// hold the test's stderr, and so the test runner's output, open.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

struct World {
    dir: tempfile::TempDir,
    sandbox: Sandbox,
}

impl World {
    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }
    fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The profiles file: an Ekuaibao profile `erp` with two sinks, and `hpc` (Sugon AC) when `with_hpc`.
    fn write_config(&self, with_hpc: bool) {
        let ekuaibao = self.sandbox.base_url(Emulator::Ekuaibao).unwrap();
        let mut text = format!(
            "state_dir = {state:?}\n\
             [profiles.erp]\nvendor = \"ekuaibao\"\nbase_url = {ekuaibao:?}\n\
             [profiles.erp.login]\napp_key = {key:?}\n\
             [[profiles.erp.sinks]]\npath = {token:?}\nformat = \"token\"\n\
             [[profiles.erp.sinks]]\npath = {json:?}\nformat = \"json\"\n",
            state = self.state(),
            key = accounts::EKUAIBAO_APP_KEY,
            token = self.dir.path().join("erp.token"),
            json = self.dir.path().join("erp.json"),
        );
        if with_hpc {
            let sugon = self.sandbox.base_url(Emulator::SugonAc).unwrap();
            text += &format!(
                "[profiles.hpc]\nvendor = \"sugon-ac\"\nbase_url = {sugon:?}\n\
                 [profiles.hpc.login]\nuser = {user:?}\norg_id = {org:?}\n\
                 [[profiles.hpc.sinks]]\npath = {header:?}\nformat = \"header\"\n",
                user = accounts::SUGON_USER,
                org = accounts::SUGON_ORG_ID,
                header = self.dir.path().join("hpc.header"),
            );
        }
        std::fs::write(self.config(), text).unwrap();
        std::fs::set_permissions(self.config(), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn start(&self) -> Running {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new(BIN)
            .args(["agent", "--socket"])
            .arg(self.socket())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("REFRESH_CONFIG", self.config())
            .env("APP_SECURITY", accounts::EKUAIBAO_APP_SECURITY)
            .env("PASSWORD", accounts::SUGON_PASSWORD)
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("NOTIFY_SOCKET", self.dir.path().join("notify.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let child = Running(child);
        for _ in 0..2_500 {
            if self.socket().exists() {
                return child;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("the agent never listened");
    }

    /// `curl --unix-socket`, as `user` when given (through runuser): the status and the body.
    fn get(&self, path: &str, user: Option<&str>) -> (u16, String) {
        let mut command = match user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--", "curl"]);
                command
            }
            None => Command::new("curl"),
        };
        let output = command
            .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(self.socket())
            .arg(format!("http://agent{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// Polls `GET path` until `done` holds for its JSON (5 s at most).
    fn until(&self, path: &str, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        let mut last = (0, String::new());
        for _ in 0..1_000 {
            last = self.get(path, None);
            if let Ok(json) = serde_json::from_str::<Value>(&last.1)
                && done(last.0, &json)
            {
                return json;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("never {what}: {last:?}");
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The README's Python example (the standard library only), run against `socket`: the token it prints.
fn readme_python_client(socket: &Path) -> String {
    const README: &str = include_str!("../../../README.md");
    let script = README
        .split_once("python3 -c '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(script, _)| script)
        .expect("the README shows a Python client");
    let script = script.replace("/run/refresh/agent.sock", &socket.display().to_string());
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The file at `path` once it exists (5 s at most): a sink is written by the credential's keeper, which may come
/// after the socket has served the same token.
fn read_soon(path: &Path) -> String {
    for _ in 0..1_000 {
        if let Some(text) = read(path) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{} was never written", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_sinks_and_socket_reloads_on_sighup_and_survives_a_sigkill() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        sandbox,
    };
    std::fs::set_permissions(world.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    world.write_config(false);

    let world = std::sync::Arc::new(world);
    let blocking = std::sync::Arc::clone(&world);
    let agent = tokio::task::spawn_blocking(move || {
        let world = blocking;
        // systemd's side of Type=notify: the agent says READY once it listens.
        let notify =
            std::os::unix::net::UnixDatagram::bind(world.dir.path().join("notify.sock")).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let agent = world.start();
        let mut message = [0; 64];
        let length = notify.recv(&mut message).unwrap();
        assert_eq!(&message[..length], b"READY=1");
        // Ekuaibao logs in by itself (APP_SECURITY): the socket and both sinks hold its token.
        let answer = world.until("/v1/tokens/erp", "a token for erp", |status, _| {
            status == 200
        });
        let token = answer["access_token"].as_str().unwrap().to_owned();
        assert_eq!(readme_python_client(&world.socket()), token);
        assert_eq!(read_soon(&world.dir.path().join("erp.token")), token);
        let json: Value =
            serde_json::from_str(&read_soon(&world.dir.path().join("erp.json"))).unwrap();
        assert_eq!(json["access_token"], token.as_str());
        let mode = std::fs::metadata(world.dir.path().join("erp.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        if is_root() {
            let (status, body) = world.get("/v1/tokens/erp", Some("nobody"));
            assert_eq!(status, 403, "{body}");
            assert!(!body.contains(&token), "{body}");
        }

        // SIGHUP: the file now has hpc too.
        world.write_config(true);
        signal(&agent, "-HUP");
        world.until("/v1/status", "hpc kept after SIGHUP", |_, status| {
            status["profiles"]["hpc"]["health"] == "ok"
        });
        let header = read_soon(&world.dir.path().join("hpc.header"));
        assert!(header.starts_with("Authorization: Bearer "), "{header}");
        agent
    })
    .await
    .unwrap();
    let token = world.get("/v1/tokens/hpc", None);
    assert_eq!(token.0, 200, "{}", token.1);

    // SIGTERM: a clean stop, socket removed.
    signal(&agent, "-TERM");
    let mut agent = agent;
    let status = tokio::task::spawn_blocking(move || agent.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!world.socket().exists());

    // A rotation killed in the middle: erp's stored token is due now, the vendor answers slowly, and the agent is
    // killed while it waits. Restarted, it serves a valid token (the rotation's, or a new login's).
    let store = FileStore::open(world.state().join("tokens")).unwrap();
    let id = CredentialId::new("erp").unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    let mut due = record.tokens.clone();
    due.expires_at = chrono::Utc::now() + chrono::TimeDelta::seconds(61);
    let swapped = store
        .compare_and_swap_under_lock(&id, Some(record.version), &due)
        .await
        .unwrap();
    assert!(
        matches!(swapped, refresh_manager::Swap::Written { .. }),
        "{swapped:?}"
    );
    world
        .sandbox
        .set_latency(Emulator::Ekuaibao, Duration::from_secs(2));
    let before = world.sandbox.requests(Emulator::Ekuaibao).len();
    let blocking = std::sync::Arc::clone(&world);
    tokio::task::spawn_blocking(move || {
        let world = blocking;
        let mut agent = world.start();
        for _ in 0..2_500 {
            if world.sandbox.requests(Emulator::Ekuaibao).len() > before {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            world.sandbox.requests(Emulator::Ekuaibao).len() > before,
            "the rotation started"
        );
        signal(&agent, "-KILL");
        let _ = agent.wait();
        world
            .sandbox
            .set_latency(Emulator::Ekuaibao, Duration::ZERO);
        let mut agent = world.start();
        let answer = world.until(
            "/v1/tokens/erp",
            "a token after the restart",
            |status, _| status == 200,
        );
        let token = answer["access_token"].as_str().unwrap();
        assert_eq!(
            world.sandbox.access_token_state(Emulator::Ekuaibao, token),
            AccessTokenState::Live
        );
        signal(&agent, "-TERM");
        assert!(agent.wait().unwrap().success());
    })
    .await
    .unwrap();
}

/// `refresh exec`: the command gets the token in its environment; when the token rotates (the stored one is due at
/// once here), it is restarted with the new one; SIGTERM reaches it, and its status is `refresh exec`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_restarts_the_command_with_each_new_token() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::Ekuaibao))
        .await
        .unwrap();
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        sandbox,
    };
    world.write_config(false);
    let env = |command: &mut Command| {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("REFRESH_CONFIG", world.config())
            .env("APP_SECURITY", accounts::EKUAIBAO_APP_SECURITY);
    };
    let mut first = Command::new(BIN);
    env(first.args(["token", "erp"]));
    assert!(first.output().unwrap().status.success());
    // Due now (it expires in 61 s), and the vendor's first answer is a 503: the command starts with the stored,
    // still valid token; the manager's retry rotates it, and the command is restarted with the new one.
    let store = FileStore::open(world.state().join("tokens")).unwrap();
    let id = CredentialId::new("erp").unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    let mut due = record.tokens.clone();
    due.expires_at = chrono::Utc::now() + chrono::TimeDelta::seconds(61);
    let swapped = store
        .compare_and_swap_under_lock(&id, Some(record.version), &due)
        .await
        .unwrap();
    assert!(matches!(swapped, refresh_manager::Swap::Written { .. }));
    world.sandbox.inject(
        Emulator::Ekuaibao,
        refresh_sandbox::Fault::server_error(503),
    );

    let log = world.dir.path().join("seen.log");
    let script = format!("echo \"$ACCESS_TOKEN\" >> {}; exec sleep 30", log.display());
    let mut exec = Command::new(BIN);
    env(exec.args(["exec", "erp", "--", "sh", "-c", &script]));
    let mut exec = Running(exec.stderr(Stdio::inherit()).spawn().unwrap());
    let world = std::sync::Arc::new(world);
    let blocking = std::sync::Arc::clone(&world);
    let seen = tokio::task::spawn_blocking(move || {
        for _ in 0..2_500 {
            let lines: Vec<String> = read(&log)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            if lines.len() >= 2 {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(4));
        }
        let _ = blocking;
        panic!("the command was not restarted: {:?}", read(&log));
    })
    .await
    .unwrap();
    assert_eq!(
        seen[0],
        due.access_token.expose_secret(),
        "first run: the stored token"
    );
    assert_ne!(seen[1], seen[0], "restarted with the rotated token");
    assert_eq!(
        world
            .sandbox
            .access_token_state(Emulator::Ekuaibao, &seen[1]),
        AccessTokenState::Live
    );
    signal(&exec, "-TERM");
    let status = tokio::task::spawn_blocking(move || exec.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "the command's own end, by SIGTERM"
    );
}

/// The binary's sinks, read throughout 1,000 rotations (`AGENT_ROTATIONS` sets another count): a profile whose tokens
/// are due as soon as they are issued (`ahead` longer than their lifetime) rotates every few milliseconds, and
/// readers of all four formats never see a torn, empty or foreign file, nor a token past its expiry. Stopped by
/// SIGTERM, the agent leaves the sinks with the token the store holds, though a renewal ended during the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_reads_whole_and_unexpired_throughout_rotations() {
    let rotations: usize = std::env::var("AGENT_ROTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::Ekuaibao))
        .await
        .unwrap();
    let world = std::sync::Arc::new(World {
        dir: tempfile::tempdir().unwrap(),
        sandbox,
    });
    let sink = |name: &str| world.dir.path().join(name);
    let text = format!(
        "state_dir = {state:?}\n\
         [profiles.erp]\nvendor = \"ekuaibao\"\nbase_url = {base:?}\n\
         [profiles.erp.login]\napp_key = {key:?}\n\
         [profiles.erp.refresh]\nahead = \"1000days\"\nminimum_interval = \"10ms\"\n\
         [[profiles.erp.sinks]]\npath = {token:?}\nformat = \"token\"\n\
         [[profiles.erp.sinks]]\npath = {json:?}\nformat = \"json\"\n\
         [[profiles.erp.sinks]]\npath = {env:?}\nformat = \"env\"\n\
         [[profiles.erp.sinks]]\npath = {header:?}\nformat = \"header\"\n",
        state = world.state(),
        base = world.sandbox.base_url(Emulator::Ekuaibao).unwrap(),
        key = accounts::EKUAIBAO_APP_KEY,
        token = sink("erp.token"),
        json = sink("erp.json"),
        env = sink("erp.env"),
        header = sink("erp.header"),
    );
    std::fs::write(world.config(), text).unwrap();
    std::fs::set_permissions(world.config(), std::fs::Permissions::from_mode(0o600)).unwrap();

    let blocking = std::sync::Arc::clone(&world);
    let (reads, final_token) = tokio::task::spawn_blocking(move || {
        let world = blocking;
        let agent = world.start();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // One reader per format: each read parses whole, and its token is one the vendor issued, not yet expired.
        let readers: Vec<_> = ["erp.token", "erp.json", "erp.env", "erp.header"]
            .into_iter()
            .map(|name| {
                let (world, stop) = (std::sync::Arc::clone(&world), std::sync::Arc::clone(&stop));
                std::thread::spawn(move || {
                    let path = world.dir.path().join(name);
                    read_soon(&path);
                    let mut reads = 0_u64;
                    let mut seen = std::collections::HashSet::new();
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let text = read(&path).expect("a sink, once written, is always there");
                        let (token, expires_at) = parse_sink(name, &text);
                        assert_ne!(
                            world.sandbox.access_token_state(Emulator::Ekuaibao, &token),
                            AccessTokenState::Unknown,
                            "{name} held a token the vendor never issued: {text:?}"
                        );
                        if let Some(expires_at) = expires_at {
                            assert!(expires_at > chrono::Utc::now(), "{name} expired: {text:?}");
                        }
                        seen.insert(token);
                        reads += 1;
                    }
                    (reads, seen.len())
                })
            })
            .collect();
        let started = std::time::Instant::now();
        while world.sandbox.refresh_times(Emulator::Ekuaibao).len() < rotations {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "only {} rotations in 10 minutes",
                world.sandbox.refresh_times(Emulator::Ekuaibao).len()
            );
            assert!(
                readers.iter().all(|reader| !reader.is_finished()),
                "a reader failed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut agent = agent;
        signal(&agent, "-TERM");
        assert!(agent.wait().unwrap().success());
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let reads: Vec<(u64, usize)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        (reads, read_soon(&world.dir.path().join("erp.token")))
    })
    .await
    .unwrap();
    eprintln!(
        "{rotations} rotations; reads and distinct tokens per sink (token, json, env, header): {reads:?}"
    );
    assert!(
        reads.iter().all(|&(n, _)| n as usize >= rotations),
        "every sink was read throughout: {reads:?}"
    );
    // Each sink followed the rotations (a reader misses the tokens that lived between two of its reads).
    assert!(
        reads.iter().all(|&(_, tokens)| tokens >= rotations / 4),
        "the sinks were rewritten with each rotation: {reads:?}"
    );
    // Stopped, the agent leaves every sink with the stored token, which the vendor still takes.
    let store = FileStore::open(world.state().join("tokens")).unwrap();
    let record = store
        .load(&CredentialId::new("erp").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(final_token, record.tokens.access_token.expose_secret());
    assert_eq!(
        world
            .sandbox
            .access_token_state(Emulator::Ekuaibao, &final_token),
        AccessTokenState::Live
    );
}

/// The token of one sink's file in `name`'s format, and its expiry where the format states one; panics on anything
/// that is not one whole file of that format.
fn parse_sink(name: &str, text: &str) -> (String, Option<chrono::DateTime<chrono::Utc>>) {
    let expiry = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{name}: expiry {text:?}: {e}"))
            .to_utc()
    };
    match name {
        "erp.token" => (text.to_owned(), None),
        "erp.json" => {
            let json: Value =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("torn json ({e}): {text:?}"));
            let token = json["access_token"].as_str().expect("access_token");
            (
                token.to_owned(),
                Some(expiry(json["expires_at"].as_str().expect("expires_at"))),
            )
        }
        "erp.env" => {
            let lines: Vec<&str> = text.lines().collect();
            let (Some(token), Some(expires_at), 2, true) = (
                lines.first().and_then(|l| l.strip_prefix("ACCESS_TOKEN=")),
                lines
                    .get(1)
                    .and_then(|l| l.strip_prefix("ACCESS_TOKEN_EXPIRES_AT=")),
                lines.len(),
                text.ends_with('\n'),
            ) else {
                panic!("torn env file: {text:?}");
            };
            (token.to_owned(), Some(expiry(expires_at)))
        }
        _ => {
            let token = text
                .strip_prefix("Authorization: Bearer ")
                .and_then(|rest| rest.strip_suffix('\n'))
                .unwrap_or_else(|| panic!("torn header file: {text:?}"));
            (token.to_owned(), None)
        }
    }
}
