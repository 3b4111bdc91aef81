//! Replicas in separate processes sharing credentials through one PostgreSQL, against a sandbox in this process
//! (which enforces rotation): exactly one vendor refresh per credential per expiry across 20 replicas; a lease
//! holder paused past its lease whose write is refused and kept as an orphan; replicas killed with SIGKILL
//! mid-refresh that never leave the store without a live refresh token, but inside the unavoidable window; and a
//! database restart that callers ride out.
//!
//! The children are this test binary again, running the ignored test `child` with `REFRESH_KIT_CHILD` set.
//! `REFRESH_KIT_PG_EXPIRIES` and `REFRESH_KIT_PG_KILLS` raise the counts.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use refresh_facade::{Grant, ISolarCloudConfig, Refresher, VendorConfig};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerError, ManagerOptions, ManualClock,
    RefreshPolicy, StoreError, StoredTokens, Swap, TokenStore, Versioned,
};
use refresh_postgres::{PgStore, PgStoreOptions};
use refresh_sandbox::{Emulator, RefreshTokenState, Sandbox, SandboxOptions, accounts};
use support::{Database, keys};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// iSolarCloud's documented access token lifetime, plus a second.
const PAST_EXPIRY: Duration = Duration::from_secs(172_799 + 1);
const REFRESH: &str = "refreshToken";

fn count(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn ids(credentials: usize) -> Vec<CredentialId> {
    (0..credentials)
        .map(|n| CredentialId::new(format!("credential-{n}")).unwrap())
        .collect()
}

fn refresher(base_url: &str, clock: refresh_facade::Clock) -> Refresher {
    let config = ISolarCloudConfig::new(
        accounts::ISOLARCLOUD_APP_KEY,
        accounts::ISOLARCLOUD_ACCESS_KEY,
    )
    .with_base_url(base_url);
    Refresher::new(VendorConfig::ISolarCloud(config))
        .unwrap()
        .with_clock(clock)
}

fn grant(sandbox: &Sandbox) -> Grant {
    Grant::ISolarCloudAuthorizationCode {
        code: sandbox
            .authorization_code(Emulator::ISolarCloud)
            .unwrap()
            .into(),
        redirect_uri: accounts::ISOLARCLOUD_REDIRECT_URI.into(),
    }
}

/// A replica's store: a short lease where the test needs one to lapse.
async fn connect(url: &str, lease: Duration) -> PgStore {
    let options = PgStoreOptions::default()
        .with_lease(lease)
        .with_pool_size(4);
    PgStore::connect_with(url, keys(), options).await.unwrap()
}

/// A manager of `credentials` on `store`, with the sandbox at `base`.
fn manager<S: TokenStore + 'static>(
    store: S,
    base: &str,
    credentials: &[CredentialId],
    options: ManagerOptions,
    policy: Option<RefreshPolicy>,
) -> Manager<S> {
    let manager = Manager::with_options(store, options);
    for id in credentials {
        let mut credential =
            CredentialOptions::new(refresher(base, manager.clock().facade_clock()));
        if let Some(policy) = &policy {
            credential = credential.with_policy(policy.clone());
        }
        manager.manage(id.clone(), credential);
    }
    manager
}

/// A sandbox, its base URL, a database, and `credentials` logged in there.
async fn logged_in(database: Database, credentials: usize) -> (Sandbox, String, Database) {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::ISolarCloud))
        .await
        .unwrap();
    let base = sandbox.base_url(Emulator::ISolarCloud).unwrap();
    let store = connect(&database.url, Duration::from_secs(30)).await;
    let manager = manager(
        store,
        &base,
        &ids(credentials),
        ManagerOptions::default(),
        None,
    );
    for id in ids(credentials) {
        manager.login(&id, &grant(&sandbox)).await.unwrap();
    }
    (sandbox, base, database)
}

struct Replica {
    process: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    fn spawn(role: &str, url: &str, base: &str, seed: u64, credentials: usize) -> Replica {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("REFRESH_KIT_CHILD", role)
            .env("REFRESH_KIT_DATABASE", url)
            .env("REFRESH_KIT_BASE_URL", base)
            .env("REFRESH_KIT_SEED", seed.to_string())
            .env("REFRESH_KIT_CREDENTIALS", credentials.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = process.stdin.take().unwrap();
        let stdout = BufReader::new(process.stdout.take().unwrap()).lines();
        Replica {
            process,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The child's next line that starts with one of `prefixes` (the test harness prints around its lines).
    async fn next(&mut self, prefixes: &[&str]) -> String {
        loop {
            let line = self
                .stdout
                .next_line()
                .await
                .unwrap()
                .expect("the child answers");
            if prefixes.iter().any(|prefix| line.starts_with(prefix)) {
                return line;
            }
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// The child's side (ignored unless run by the tests below).
#[test]
#[ignore = "run by the other tests as a child process"]
fn child() {
    let Ok(role) = std::env::var("REFRESH_KIT_CHILD") else {
        return;
    };
    // The test harness has printed "test child ... " without a newline: end it, so our lines stand alone.
    println!();
    let url = std::env::var("REFRESH_KIT_DATABASE").unwrap();
    let base = std::env::var("REFRESH_KIT_BASE_URL").unwrap();
    let seed: u64 = std::env::var("REFRESH_KIT_SEED").unwrap().parse().unwrap();
    let credentials = ids(count("REFRESH_KIT_CREDENTIALS", 1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "share" => runtime.block_on(share(&url, &base, seed, &credentials)),
        "churn" => runtime.block_on(churn(&url, &base, seed, &credentials[0])),
        other => panic!("unknown role {other}"),
    }
}

/// Reads `advance <ms>` lines: moves its clock, reads every credential, and prints their versions (or the first
/// error).
async fn share(url: &str, base: &str, seed: u64, credentials: &[CredentialId]) {
    let clock = ManualClock::new();
    let options = ManagerOptions::default()
        .with_clock(clock.clone())
        .with_seed(seed);
    let lease = Duration::from_secs(30);
    let manager = manager(connect(url, lease).await, base, credentials, options, None);
    println!("ready");
    // Blocking reads on the thread that drives this future: the manager's tasks run on the runtime's workers.
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        if let Some(millis) = line.strip_prefix("advance ") {
            clock.advance(Duration::from_millis(millis.parse().unwrap()));
        }
        let read = join_all(credentials.iter().map(|id| async {
            let started = Instant::now();
            let token = manager.access_token(id).await;
            (token, started.elapsed().as_micros())
        }))
        .await;
        let micros: Vec<String> = read.iter().map(|(_, micros)| micros.to_string()).collect();
        let versions: Result<Vec<String>, &ManagerError> = read
            .iter()
            .map(|(token, _)| token.as_ref().map(|token| token.version.to_string()))
            .collect();
        match versions {
            Ok(versions) => println!("versions {}", versions.join(",")),
            Err(error) => println!("error {error}"),
        }
        println!("micros {}", micros.join(","));
        std::io::Write::flush(&mut std::io::stdout()).unwrap();
    }
}

/// Rotates without pause (every token is due at once), printing when each write begins and ends.
async fn churn(url: &str, base: &str, seed: u64, id: &CredentialId) {
    // A lease of a second, so that the one a killed replica held lapses soon; the sandbox answers in
    // milliseconds.
    let store = Timed(connect(url, Duration::from_secs(1)).await);
    let options = ManagerOptions::default()
        .with_seed(seed)
        .with_call_timeout(Duration::from_millis(300));
    let always_due = RefreshPolicy::ahead(Duration::from_secs(1000 * 24 * 3600));
    let manager = manager(
        store,
        base,
        std::slice::from_ref(id),
        options,
        Some(always_due),
    );
    println!("ready");
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    loop {
        let _ = manager.access_token(id).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A `PgStore` that prints when each compare-and-swap begins (the vendor's answer has arrived) and when it has
/// returned written (the commit is durable), in nanoseconds since the epoch.
struct Timed(PgStore);

impl TokenStore for Timed {
    type Lock = <PgStore as TokenStore>::Lock;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        self.0.load(id).await
    }

    async fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        use std::io::Write;
        println!("write {}", now_nanos());
        let swap = self.0.compare_and_swap(id, expected, tokens).await;
        if matches!(swap, Ok(Swap::Written { .. })) {
            println!("durable {}", now_nanos());
        }
        std::io::stdout().flush()?;
        swap
    }

    async fn keep_orphan(
        &self,
        id: &CredentialId,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        self.0.keep_orphan(id, tokens).await
    }

    async fn lock(&self, id: &CredentialId) -> Result<Self::Lock, StoreError> {
        self.0.lock(id).await
    }

    fn lock_left(&self, lock: &Self::Lock) -> Option<Duration> {
        self.0.lock_left(lock)
    }
}

fn refreshes(sandbox: &Sandbox) -> usize {
    sandbox
        .requests(Emulator::ISolarCloud)
        .iter()
        .filter(|r| r.path.contains(REFRESH))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_replicas_refresh_each_credential_once_per_expiry() {
    let (replicas, credentials) = (20, 100);
    let expiries = count("REFRESH_KIT_PG_EXPIRIES", 10);
    let (sandbox, base, database) = logged_in(Database::new(), credentials).await;
    let mut children: Vec<_> = (0..replicas)
        .map(|n| Replica::spawn("share", &database.url, &base, n, credentials))
        .collect();
    for child in &mut children {
        child.next(&["ready"]).await;
    }
    let started = Instant::now();
    // What each waiter took beyond the replica that refreshed (the fastest reader of the credential).
    let mut added = Vec::new();
    for expiry in 1..=expiries {
        sandbox.clock().advance(PAST_EXPIRY);
        for child in &mut children {
            child
                .send(&format!("advance {}", PAST_EXPIRY.as_millis()))
                .await;
        }
        let expected = format!(
            "versions {}",
            vec![(expiry + 1).to_string(); credentials].join(",")
        );
        let mut reads: Vec<Vec<u64>> = vec![Vec::new(); credentials];
        for (n, child) in children.iter_mut().enumerate() {
            let answer = child.next(&["versions ", "error "]).await;
            assert!(
                answer == expected,
                "replica {n} at expiry {expiry}: {answer}"
            );
            let micros = child.next(&["micros "]).await;
            for (credential, micros) in micros["micros ".len()..].split(',').enumerate() {
                reads[credential].push(micros.parse().unwrap());
            }
        }
        for mut micros in reads {
            micros.sort_unstable();
            added.extend(micros[1..].iter().map(|waiter| waiter - micros[0]));
        }
        assert_eq!(
            refreshes(&sandbox),
            expiry * credentials,
            "one refresh per credential at expiry {expiry}"
        );
    }
    let elapsed = started.elapsed();
    added.sort_unstable();
    let percentile = |p: usize| Duration::from_micros(added[(added.len() - 1) * p / 100]);
    eprintln!(
        "{replicas} replicas, {credentials} credentials, {expiries} expiries: {} refreshes in {elapsed:?} \
         ({:.0} refreshes/s); a waiter's read beyond the refreshing replica's: p50 {:?}, p99 {:?}",
        refreshes(&sandbox),
        refreshes(&sandbox) as f64 / elapsed.as_secs_f64(),
        percentile(50),
        percentile(99),
    );
}
