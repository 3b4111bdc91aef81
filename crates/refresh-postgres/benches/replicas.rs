//! Replicas sharing credentials through PostgreSQL, beside their floor, in one run.
//!
//! - **replicas**: `REPLICAS` processes (this binary again), each a `Manager` over a `PgStore`, share `CREDENTIALS`
//!   iSolarCloud credentials at the sandbox. One sample is one expiry: every credential is due in every replica at
//!   once, every replica reads every credential, and exactly one refreshes each (checked).
//! - **floor**: the same database work with no manager and no vendor, by a minimal tokio-postgres client: per
//!   credential, each of `REPLICAS` replicas reads the row; one takes the lease (`UPDATE`), writes under it
//!   (`SELECT … FOR UPDATE`, `UPDATE`, `pg_notify`, commit) and gives it up; the others wait for the `NOTIFY` on
//!   their `LISTEN` connection and read the row.
//!
//! Reported after divan's table: refreshes/s (credentials ÷ the median expiry), and what a waiting replica adds
//! beyond the one that refreshed (its read's end minus the refresher's, p50/p99); for the floor, the same
//! figure is its NOTIFY round trip. The goals: replicas reach at least half the floor's throughput, and their
//! waiters' p99 is at most twice the floor's.
//!
//! `cargo bench -p refresh-postgres --bench replicas` (`REFRESH_KIT_BENCH_REPLICAS`, `REFRESH_KIT_BENCH_CREDENTIALS`
//! change the 20 × 100).

#[path = "../tests/support/replica_world.rs"]
mod replica_world;
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use refresh_manager::{ManagerOptions, ManualClock};
use refresh_sandbox::Sandbox;
use replica_world::{PAST_EXPIRY, POOL, connect, ids, logged_in, refreshes};
use support::Database;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::broadcast;

const CHILD: &str = "REFRESH_KIT_BENCH_REPLICA";

fn count(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn replicas() -> usize {
    count("REFRESH_KIT_BENCH_REPLICAS", 20)
}

fn credentials() -> usize {
    count("REFRESH_KIT_BENCH_CREDENTIALS", 100)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        return replica();
    }
    LazyLock::force(&WORLD);
    divan::main();
    report();
}

// ---------------------------------------------------------------------------------------------------------------
// The replicas: managers in processes of their own.

/// A replica process: reads `advance <ms>` lines, moves its clock, reads every credential at once, and prints
/// `done <end of each read, ns since the epoch>` (or `error <what>`).
fn replica() {
    let url = std::env::var("REFRESH_KIT_DATABASE").unwrap();
    let base = std::env::var("REFRESH_KIT_BASE_URL").unwrap();
    let seed: u64 = std::env::var(CHILD).unwrap().parse().unwrap();
    let credentials = ids(credentials());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = ManualClock::new();
        let options = ManagerOptions::default()
            .with_clock(clock.clone())
            .with_seed(seed);
        let store = connect(&url, refresh_postgres::PgStoreOptions::default().lease).await;
        let manager = replica_world::manager(
            store,
            &base,
            &credentials,
            options,
            None,
            refresh_facade::HttpOptions::DEFAULT_TIMEOUT,
        );
        println!("ready");
        for line in std::io::stdin().lines() {
            let line = line.unwrap();
            let Some(millis) = line.strip_prefix("advance ") else {
                continue;
            };
            clock.advance(Duration::from_millis(millis.parse().unwrap()));
            let ends = join_all(
                credentials
                    .iter()
                    .map(|id| async { manager.access_token(id).await.map(|_| now_nanos()) }),
            )
            .await;
            match ends.into_iter().collect::<Result<Vec<_>, _>>() {
                Ok(ends) => println!(
                    "done {}",
                    ends.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Err(error) => println!("error {error}"),
            }
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
        }
    });
}

struct Replica {
    _process: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    fn spawn(n: usize, url: &str, base: &str) -> Replica {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, n.to_string())
            .env("REFRESH_KIT_DATABASE", url)
            .env("REFRESH_KIT_BASE_URL", base)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Replica {
            stdin: process.stdin.take().unwrap(),
            stdout: BufReader::new(process.stdout.take().unwrap()).lines(),
            _process: process,
        }
    }

    async fn line(&mut self) -> String {
        self.stdout
            .next_line()
            .await
            .unwrap()
            .expect("the replica answers")
    }
}

struct World {
    runtime: tokio::runtime::Runtime,
    sandbox: Sandbox,
    replicas: tokio::sync::Mutex<Vec<Replica>>,
    expiries: Mutex<usize>,
    floor: Floor,
    _database: Database,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sandbox, replicas, floor, database) = runtime.block_on(async {
        let (sandbox, base, database) = logged_in(Database::new(), credentials()).await;
        let mut replicas: Vec<_> = (0..replicas())
            .map(|n| Replica::spawn(n, &database.url, &base))
            .collect();
        for replica in &mut replicas {
            assert_eq!(replica.line().await, "ready");
        }
        let floor = Floor::start(&database.url).await;
        (sandbox, replicas, floor, database)
    });
    World {
        runtime,
        sandbox,
        replicas: tokio::sync::Mutex::new(replicas),
        expiries: Mutex::new(0),
        floor,
        _database: database,
    }
});

/// What each sample measured, for the report after divan's table.
#[derive(Default)]
struct Figures {
    rounds: Vec<Duration>,
    added: Vec<u64>,
}

static REPLICAS: LazyLock<Mutex<Figures>> = LazyLock::new(Mutex::default);
static FLOOR: LazyLock<Mutex<Figures>> = LazyLock::new(Mutex::default);

/// Per credential, what each reader's end adds to the first reader's (the one that refreshed), in ns.
fn added_beyond_first(ends_by_reader: &[Vec<u64>]) -> Vec<u64> {
    let mut added = Vec::new();
    for credential in 0..ends_by_reader[0].len() {
        let mut ends: Vec<u64> = ends_by_reader.iter().map(|ends| ends[credential]).collect();
        ends.sort_unstable();
        added.extend(ends[1..].iter().map(|end| end - ends[0]));
    }
    added
}

/// One expiry across every replica.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn replicas_one_expiry() {
    let world = &*WORLD;
    world.runtime.block_on(async {
        let mut replicas = world.replicas.lock().await;
        let expiry = {
            let mut expiries = world.expiries.lock().unwrap();
            *expiries += 1;
            *expiries
        };
        let started = Instant::now();
        world.sandbox.clock().advance(PAST_EXPIRY);
        for replica in replicas.iter_mut() {
            let line = format!("advance {}\n", PAST_EXPIRY.as_millis());
            replica.stdin.write_all(line.as_bytes()).await.unwrap();
            replica.stdin.flush().await.unwrap();
        }
        let mut ends = Vec::new();
        for replica in replicas.iter_mut() {
            let line = replica.line().await;
            let Some(done) = line.strip_prefix("done ") else {
                panic!("a replica failed at expiry {expiry}: {line}");
            };
            ends.push(done.split(',').map(|end| end.parse().unwrap()).collect());
        }
        let round = started.elapsed();
        assert_eq!(
            refreshes(&world.sandbox),
            expiry * credentials(),
            "one refresh per credential per expiry"
        );
        let mut figures = REPLICAS.lock().unwrap();
        figures.rounds.push(round);
        figures.added.extend(added_beyond_first(&ends));
    });
}

// ---------------------------------------------------------------------------------------------------------------
// The floor: the same statements, with no manager and no vendor.

struct Floor {
    /// One pool per replica, of [`POOL`] connections.
    pools: Vec<deadpool_postgres::Pool>,
    /// One LISTEN connection per replica; each hands on the ids it is notified of.
    notices: Vec<broadcast::Sender<String>>,
    version: Mutex<i64>,
}

const FLOOR_CHANNEL: &str = "refresh_kit_floor";

impl Floor {
    async fn start(url: &str) -> Floor {
        let config: tokio_postgres::Config = url.parse().unwrap();
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE floor (id text PRIMARY KEY, version bigint NOT NULL DEFAULT 0, tokens bytea,
                                     lease_owner text, lease_epoch bigint NOT NULL DEFAULT 0, lease_until timestamptz)",
            )
            .await
            .unwrap();
        for id in ids(credentials()) {
            client
                .execute("INSERT INTO floor (id) VALUES ($1)", &[&id.as_str()])
                .await
                .unwrap();
        }
        let mut pools = Vec::new();
        let mut notices = Vec::new();
        for _ in 0..replicas() {
            let manager = deadpool_postgres::Manager::from_config(
                config.clone(),
                tokio_postgres::NoTls,
                deadpool_postgres::ManagerConfig {
                    recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                },
            );
            let pool = deadpool_postgres::Pool::builder(manager)
                .max_size(POOL)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .unwrap();
            pools.push(pool);
            notices.push(listen(&config).await);
        }
        Floor {
            pools,
            notices,
            version: Mutex::new(0),
        }
    }
}

/// A LISTEN connection whose notifications (the credential ids) go to the returned sender's receivers.
async fn listen(config: &tokio_postgres::Config) -> broadcast::Sender<String> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let (sender, _) = broadcast::channel(4096);
    let notices = sender.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(notification) = message {
                let _ = notices.send(notification.payload().to_owned());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {FLOOR_CHANNEL}"))
        .await
        .unwrap();
    // The connection lives as long as its client: keep the client in a task that never ends.
    tokio::spawn(async move {
        let _client = client;
        std::future::pending::<()>().await
    });
    sender
}

/// One replica's read of one credential due at `target`: the row if it is there already, else the lease and the
/// write, else the NOTIFY and the row. Returns when the read ended (ns since the epoch).
async fn floor_read(
    pool: &deadpool_postgres::Pool,
    notices: &broadcast::Sender<String>,
    owner: &str,
    id: &str,
    target: i64,
) -> u64 {
    let current = |client: deadpool_postgres::Object| async move {
        client
            .query_one("SELECT version, tokens FROM floor WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    if current(pool.get().await.unwrap()).await >= target {
        return now_nanos();
    }
    loop {
        let mut woken = notices.subscribe();
        let mut client = pool.get().await.unwrap();
        let taken = client
            .query_opt(
                "UPDATE floor SET lease_owner = $2, lease_epoch = lease_epoch + 1,
                                  lease_until = now() + interval '30 seconds'
                  WHERE id = $1 AND version < $3 AND (lease_until IS NULL OR lease_until <= now())
              RETURNING lease_epoch",
                &[&id, &owner, &target],
            )
            .await
            .unwrap();
        if let Some(row) = taken {
            let epoch: i64 = row.get(0);
            let tx = client.transaction().await.unwrap();
            tx.query_one(
                "SELECT version, tokens FROM floor WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .unwrap();
            tx.execute(
                "UPDATE floor SET version = $3, tokens = $4 WHERE id = $1 AND lease_epoch = $2",
                &[&id, &epoch, &target, &vec![7u8; 200]],
            )
            .await
            .unwrap();
            tx.execute("SELECT pg_notify($1, $2)", &[&FLOOR_CHANNEL, &id])
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let end = now_nanos();
            client
                .execute(
                    "UPDATE floor SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_epoch = $2",
                    &[&id, &epoch],
                )
                .await
                .unwrap();
            return end;
        }
        if current(client).await >= target {
            return now_nanos();
        }
        // Held by another replica: its commit's notice, then the row.
        loop {
            match woken.recv().await {
                Ok(of) if of == id => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if current(pool.get().await.unwrap()).await >= target {
            return now_nanos();
        }
    }
}

/// One expiry's worth of the floor's statements.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn floor_one_expiry() {
    let world = &*WORLD;
    let floor = &world.floor;
    let target = {
        let mut version = floor.version.lock().unwrap();
        *version += 1;
        *version
    };
    world.runtime.block_on(async {
        let ids = ids(credentials());
        let started = Instant::now();
        let replicas = (0..replicas()).map(|n| {
            let ids = &ids;
            async move {
                let owner = format!("floor {n}");
                let (pool, notices) = (&floor.pools[n], &floor.notices[n]);
                join_all(
                    ids.iter()
                        .map(|id| floor_read(pool, notices, &owner, id.as_str(), target)),
                )
                .await
            }
        });
        let ends: Vec<Vec<u64>> = join_all(replicas).await;
        let round = started.elapsed();
        let mut figures = FLOOR.lock().unwrap();
        figures.rounds.push(round);
        figures.added.extend(added_beyond_first(&ends));
    });
}

// ---------------------------------------------------------------------------------------------------------------

fn summary(figures: &Figures) -> (f64, Duration, Duration) {
    let mut rounds = figures.rounds.clone();
    rounds.sort_unstable();
    let median = rounds[rounds.len() / 2];
    let mut added = figures.added.clone();
    added.sort_unstable();
    let percentile = |p: usize| Duration::from_nanos(added[(added.len() - 1) * p / 100]);
    (
        credentials() as f64 / median.as_secs_f64(),
        percentile(50),
        percentile(99),
    )
}

fn report() {
    let (replicas, floor) = (REPLICAS.lock().unwrap(), FLOOR.lock().unwrap());
    if replicas.rounds.is_empty() || floor.rounds.is_empty() {
        return; // Filtered to one side: nothing to compare.
    }
    let (throughput, p50, p99) = summary(&replicas);
    let (floor_throughput, floor_p50, floor_p99) = summary(&floor);
    println!(
        "\n{} replicas x {} credentials, {} expiries each side",
        self::replicas(),
        credentials(),
        replicas.rounds.len()
    );
    println!(
        "replicas: {throughput:7.0} refreshes/s; a waiter's read ends p50 {p50:?}, p99 {p99:?} after the refresher's"
    );
    println!(
        "floor:    {floor_throughput:7.0} refreshes/s; NOTIFY round trip (commit to a waiter's read) p50 {floor_p50:?}, p99 {floor_p99:?}"
    );
    let share = throughput / floor_throughput;
    let ratio = p99.as_secs_f64() / floor_p99.as_secs_f64();
    println!(
        "goals: throughput >= 0.5 x floor: {share:.2} x ({}); waiters' p99 <= 2 x floor's: {ratio:.2} x ({})",
        if share >= 0.5 { "met" } else { "NOT met" },
        if ratio <= 2.0 { "met" } else { "NOT met" },
    );
}
