//! Replicas in separate processes sharing credentials through one PostgreSQL, against a sandbox in this process
//! (which enforces rotation): exactly one vendor refresh per credential per expiry across 20 replicas; a lease
//! holder paused past its lease whose write is refused and kept as an orphan; replicas killed with SIGKILL
//! mid-refresh that never leave the store without a live refresh token, but inside the unavoidable window; and a
//! database restart that callers ride out.
//!
//! The children are this test binary again, running the ignored test `child` with `REFRESH_KIT_CHILD` set.
//! `REFRESH_KIT_PG_EXPIRIES` and `REFRESH_KIT_PG_KILLS` raise the counts.

#[path = "support/replica_world.rs"]
mod replica_world;
mod support;

use std::time::{Duration, Instant, UNIX_EPOCH};

use futures_util::future::join_all;
use refresh_manager::testing::{CHILD_LOG, Timed, child_command, child_role};
use refresh_manager::{
    CredentialId, Manager, ManagerError, ManagerOptions, ManualClock, RefreshPolicy, TokenStore,
};
use refresh_sandbox::{Emulator, RefreshTokenState};
use replica_world::{PAST_EXPIRY, connect, grant, ids, logged_in, refreshes};
use support::Database;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

fn count(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The call timeout of replicas: `REFRESH_KIT_CALL_TIMEOUT_MS`, else the facade's default.
fn call_timeout() -> Duration {
    let default = refresh_facade::HttpOptions::DEFAULT_TIMEOUT.as_millis() as usize;
    Duration::from_millis(count("REFRESH_KIT_CALL_TIMEOUT_MS", default) as u64)
}

/// A manager of `credentials` whose calls take at most [`call_timeout`].
fn manager<S: TokenStore + 'static>(
    store: S,
    base: &str,
    credentials: &[CredentialId],
    options: ManagerOptions,
    policy: Option<RefreshPolicy>,
) -> Manager<S> {
    replica_world::manager(store, base, credentials, options, policy, call_timeout())
}

struct Replica {
    process: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    fn spawn(role: &str, url: &str, base: &str, seed: u64, credentials: usize) -> Replica {
        Self::spawn_with(role, url, base, seed, credentials, &[])
    }

    fn spawn_with(
        role: &str,
        url: &str,
        base: &str,
        seed: u64,
        credentials: usize,
        env: &[(&str, String)],
    ) -> Replica {
        let mut process = child_command(role)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .env("REFRESH_KIT_DATABASE", url)
            .env("REFRESH_KIT_BASE_URL", base)
            .env("REFRESH_KIT_SEED", seed.to_string())
            .env("REFRESH_KIT_CREDENTIALS", credentials.to_string())
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
    let Some(role) = child_role() else {
        return;
    };
    if std::env::var_os(CHILD_LOG).is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
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
    let millis = |variable, default| Duration::from_millis(count(variable, default) as u64);
    let options = ManagerOptions::default()
        .with_clock(clock.clone())
        .with_seed(seed);
    let store = Timed::new(connect(url, millis("REFRESH_KIT_LEASE_MS", 30_000)).await)
        .with_delay(millis("REFRESH_KIT_WRITE_DELAY_MS", 0));
    let manager = manager(store, base, credentials, options, None);
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
    let store = Timed::new(connect(url, Duration::from_secs(1)).await);
    // Calls of at most 300 ms (REFRESH_KIT_CALL_TIMEOUT_MS, set by the test that spawns it).
    let options = ManagerOptions::default().with_seed(seed);
    // Due at once, and with no pause between renewals (the policy's minimum interval is for real vendors).
    let always_due = RefreshPolicy::ahead(Duration::from_secs(1000 * 24 * 3600))
        .with_minimum_interval(Duration::ZERO);
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

/// A replica stopped (SIGSTOP) after the vendor answered and before its write, past its lease: another replica
/// takes the lease and logs in; resumed (SIGCONT), the stopped replica's write is refused by the fence, its tokens
/// land in the orphans, and the newer tokens stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_paused_past_its_lease_has_its_write_refused_and_kept_as_an_orphan() {
    let (sandbox, base, database) = logged_in(Database::new(), 1).await;
    let id = ids(1).remove(0);
    let env = [
        ("REFRESH_KIT_LEASE_MS", "2000".to_owned()),
        ("REFRESH_KIT_CALL_TIMEOUT_MS", "1000".to_owned()),
        ("REFRESH_KIT_WRITE_DELAY_MS", "500".to_owned()),
    ];
    let mut stalled = Replica::spawn_with("share", &database.url, &base, 1, 1, &env);
    stalled.next(&["ready"]).await;
    sandbox.clock().advance(PAST_EXPIRY);
    stalled
        .send(&format!("advance {}", PAST_EXPIRY.as_millis()))
        .await;
    // The vendor answered; the write waits half a second.
    stalled.next(&["write "]).await;
    stalled.signal("-STOP");
    let rotated = sandbox.last_refresh_token(Emulator::ISolarCloud).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let store = connect(&database.url, Duration::from_secs(30)).await;
    // On the sandbox's time, as the stopped replica is.
    let clock = ManualClock::new();
    clock.advance(PAST_EXPIRY);
    let options = ManagerOptions::default().with_clock(clock);
    let other = manager(
        store.clone(),
        &base,
        std::slice::from_ref(&id),
        options,
        None,
    );
    let logged_in = other.login(&id, &grant(&sandbox)).await.unwrap();
    assert_eq!(logged_in.version, 2);
    let newer = store.load(&id).await.unwrap().unwrap();
    drop(other);

    stalled.signal("-CONT");
    let answer = stalled.next(&["versions ", "error "]).await;
    assert_eq!(
        answer, "versions 2",
        "the resumed replica adopts the newer tokens"
    );
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.version, &record.tokens),
        (2, &newer.tokens),
        "nothing newer was overwritten"
    );
    assert_eq!(record.orphans.len(), 1, "{:?}", record.orphans);
    let orphan = &record.orphans[0];
    assert_eq!(orphan.tokens.refresh_token.expose_secret(), rotated);
    assert_eq!(orphan.lost_to_version, 2);
    assert_eq!(
        sandbox.refresh_token_state(Emulator::ISolarCloud, &rotated),
        RefreshTokenState::Live
    );
    assert_eq!(refreshes(&sandbox), 1);
}

/// The database is stopped as a crash would stop it, then started again, mid-run. Callers keep their valid cached
/// tokens while it is down, get retryable errors once those expire, no vendor call is made without a lease, and
/// callers recover by themselves once it is back, with no token lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_ride_out_a_database_restart_without_losing_a_token() {
    let credentials = ids(10);
    let (sandbox, base, database) = logged_in(Database::throwaway(), credentials.len()).await;
    let clock = ManualClock::new();
    let advance = |by: Duration| {
        sandbox.clock().advance(by);
        clock.advance(by);
    };
    let options = ManagerOptions::default()
        .with_clock(clock.clone())
        .with_seed(3);
    let store = connect(&database.url, Duration::from_secs(30)).await;
    let manager = manager(store.clone(), &base, &credentials, options, None);
    let read_all = || join_all(credentials.iter().map(|id| manager.access_token(id)));
    for token in read_all().await {
        assert_eq!(token.unwrap().version, 1);
    }

    database.cluster().stop_server();
    advance(Duration::from_secs(60));
    for token in read_all().await {
        assert_eq!(
            token.unwrap().version,
            1,
            "a valid cached token is served while the database is down"
        );
    }
    advance(PAST_EXPIRY);
    for token in read_all().await {
        let error = token.unwrap_err();
        assert!(
            error.is_retryable() && !error.is_reauthorization_required(),
            "{error}"
        );
    }
    assert_eq!(refreshes(&sandbox), 0, "no refresh without a lease");

    database.cluster().start_server();
    let restarted = Instant::now();
    let recovered = loop {
        advance(Duration::from_secs(1));
        let tokens = read_all().await;
        if tokens.iter().all(Result::is_ok) {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "callers recover by themselves"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "after the database restarted, every caller had a valid token again within {recovered:?}"
    );
    for id in &credentials {
        let record = store.load(id).await.unwrap().unwrap();
        assert_eq!(record.version, 2);
        let held = record.tokens.refresh_token.expose_secret().to_owned();
        assert_eq!(
            sandbox.refresh_token_state(Emulator::ISolarCloud, &held),
            RefreshTokenState::Live
        );
    }
    assert_eq!(refreshes(&sandbox), credentials.len());
}

/// SIGKILL, at random moments, of two replicas that rotate one credential without pause. After each round the
/// store holds a refresh token the sandbox accepts, unless a kill fell after the vendor rotated and before the
/// write committed: those are counted apart (and the credential logged in again so the run goes on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_at_random_moments_leave_a_live_refresh_token() {
    let rounds = count("REFRESH_KIT_PG_KILLS", 20);
    let (sandbox, base, database) = logged_in(Database::new(), 1).await;
    let id = ids(1).remove(0);
    let store = connect(&database.url, Duration::from_secs(30)).await;
    let login = manager(
        store.clone(),
        &base,
        std::slice::from_ref(&id),
        ManagerOptions::default(),
        None,
    );
    let mut random = fastrand::Rng::with_seed(2000);
    let (mut live, mut lost, mut inside) = (0, 0, 0);
    // From each rotation to its commit, and from the write's start to the commit, in nanoseconds.
    let mut windows: Vec<(u128, u128)> = Vec::new();
    for round in 0..rounds {
        let rotations_before = sandbox.refresh_times(Emulator::ISolarCloud).len();
        let mut replicas: Vec<_> = (0..2)
            .map(|n| {
                let timeout = [("REFRESH_KIT_CALL_TIMEOUT_MS", "300".to_owned())];
                let seed = (round * 2 + n) as u64;
                Replica::spawn_with("churn", &database.url, &base, seed, 1, &timeout)
            })
            .collect();
        for replica in &mut replicas {
            replica.next(&["ready"]).await;
        }
        let (mut writes, mut durable) = (Vec::new(), Vec::new());
        for mut replica in replicas {
            tokio::time::sleep(Duration::from_millis(random.u64(20..150))).await;
            replica.process.start_kill().unwrap();
            replica.process.wait().await.unwrap();
            while let Ok(Some(line)) = replica.stdout.next_line().await {
                match line.split_once(' ') {
                    Some(("write", at)) => writes.push(at.parse::<u128>().unwrap()),
                    Some(("durable", at)) => durable.push(at.parse::<u128>().unwrap()),
                    _ => {}
                }
            }
        }
        // Give a request sent just before a kill time to be handled.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let rotations: Vec<u128> = sandbox.refresh_times(Emulator::ISolarCloud)[rotations_before..]
            .iter()
            .map(|at| at.duration_since(UNIX_EPOCH).unwrap().as_nanos())
            .collect();
        // One holder at a time: the n-th rotation is followed by the n-th commit, whichever replica made them.
        durable.sort_unstable();
        writes.sort_unstable();
        for (n, end) in durable.iter().enumerate() {
            // The write a commit ends is the last one begun before it (a refused write begins and never commits).
            let began = writes.iter().rev().find(|began| *began <= end);
            if let (Some(rotated), Some(began)) = (rotations.get(n), began) {
                windows.push((end.saturating_sub(*rotated), end.saturating_sub(*began)));
            }
        }
        let (rotated, durable) = (rotations.len(), durable.len());
        // A kill fell inside the window if the vendor rotated more often than the replicas committed.
        let in_window = rotated > durable;
        inside += usize::from(in_window);
        let record = store
            .load(&id)
            .await
            .expect("a readable record")
            .expect("a record");
        let held = record.tokens.refresh_token.expose_secret().to_owned();
        match sandbox.refresh_token_state(Emulator::ISolarCloud, &held) {
            RefreshTokenState::Live => live += 1,
            state => {
                assert!(
                    in_window,
                    "round {round}: the stored token is {state:?} with no kill inside the window"
                );
                let newest = sandbox.last_refresh_token(Emulator::ISolarCloud).unwrap();
                assert_ne!(newest, held, "round {round}: the newest token is {state:?}");
                lost += 1;
                login.login(&id, &grant(&sandbox)).await.unwrap();
            }
        }
    }
    let rotations = sandbox.refresh_times(Emulator::ISolarCloud).len();
    // Mean and 99th percentile, in microseconds.
    let stats = |pick: fn(&(u128, u128)) -> u128| {
        let mut sorted: Vec<u128> = windows.iter().map(pick).collect();
        sorted.sort_unstable();
        let mean = sorted
            .iter()
            .sum::<u128>()
            .checked_div(sorted.len() as u128)
            .unwrap_or(0);
        let p99 = sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or(0);
        (mean / 1000, p99 / 1000)
    };
    let ((window_mean, window_p99), (write_mean, write_p99)) = (stats(|w| w.0), stats(|w| w.1));
    eprintln!(
        "PgStore: {rounds} rounds of 2 kills over {rotations} rotations: {live} left a live refresh token, {inside} had \
         a kill inside the window (rotated, not yet committed), {lost} lost the newest token ({:.1}% of rounds, all \
         inside it); window from the rotation to the commit: mean {window_mean} µs, p99 {window_p99} µs; of it the \
         write: mean {write_mean} µs, p99 {write_p99} µs ({} windows)",
        100.0 * lost as f64 / rounds as f64,
        windows.len(),
    );
    assert!(
        windows.len() >= rounds,
        "too few windows measured: {}",
        windows.len()
    );
    // A debug build on a loaded two-core machine commits a row in a few milliseconds.
    assert!(window_p99 <= 200_000, "the window's p99 is {window_p99} µs");
    assert_eq!(live + lost, rounds);
    assert!(
        rotations > rounds,
        "the replicas rotated ({rotations} rotations)"
    );
}
