//! `GET /v1/tokens/{profile}` over the agent's unix socket, at 1 and 64 concurrent clients, beside two baselines in
//! the same run: reading the profile's JSON sink file, and a minimal hyper handler on the same kind of socket that
//! answers a fixed body (the floor: what any HTTP-over-unix-socket server costs). Each client keeps one connection
//! and sends its requests one after another; latencies are per request.
//!
//! Reported: p50 and p99 in microseconds, and the agent's p99 over the floor's (the goal: at most 1.5×).
//!
//! `cargo bench -p refresh-agent --bench socket` (`REFRESH_KIT_BENCH_REQUESTS` changes the 20,000 requests per
//! run).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use refresh_agent::{Agent, Format, Profile, Readers, Sink};
use refresh_facade::{EkuaibaoConfig, Refresher, Vendor, VendorConfig};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, MemoryStore, StoredTokens, TokenStore,
};
use tokio::net::UnixStream;

const PROFILE: &str = "bench";

fn requests() -> usize {
    std::env::var("REFRESH_KIT_BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

/// p50 and p99 of `samples`, in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50).as_secs_f64() * 1e6, at(0.99).as_secs_f64() * 1e6)
}

/// `clients` connections to `socket`, each sending `per_client` `GET path` one after another.
async fn over_socket(
    socket: &Path,
    path: &str,
    clients: usize,
    per_client: usize,
) -> Vec<Duration> {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (socket, path) = (socket.to_owned(), path.to_owned());
            tokio::spawn(async move {
                let stream = UnixStream::connect(&socket).await.unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                let mut latencies = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let request = Request::get(format!("http://agent{path}"))
                        .header("host", "agent")
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let started = Instant::now();
                    let response = sender.send_request(request).await.unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    latencies.push(started.elapsed());
                    assert!(body.len() > 20);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// `clients` threads, each reading the sink file `per_client` times.
fn sink_reads(path: &Path, clients: usize, per_client: usize) -> Vec<Duration> {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let path = path.to_owned();
            std::thread::spawn(move || {
                (0..per_client)
                    .map(|_| {
                        let started = Instant::now();
                        let text = std::fs::read(&path).unwrap();
                        let took = started.elapsed();
                        assert!(text.len() > 20);
                        took
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

/// The floor: a minimal hyper server on a unix socket answering a fixed JSON body.
async fn floor_server(socket: PathBuf, body: Bytes) {
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sink = dir.path().join("bench.json");
        let manager = Manager::new(MemoryStore::new());
        let id = CredentialId::new(PROFILE).unwrap();
        let now = chrono::Utc::now();
        let tokens: StoredTokens = serde_json::from_value(serde_json::json!({
            "vendor": Vendor::Ekuaibao,
            "access_token": "ID_3vMMouDbGqM:djg8LshfUkfM00",
            "refresh_token": "ID_3vMMouDbHqM:djg8LshfUkfM00",
            "expires_at": now + chrono::TimeDelta::hours(2),
            "obtained_at": now,
            "refreshable_until": null,
        }))
        .unwrap();
        let _ = manager
            .store()
            .compare_and_swap_under_lock(&id, None, &tokens)
            .await
            .unwrap();
        // Its vendor does not exist: the token is fresh, and no sample asks a vendor.
        let config = EkuaibaoConfig::new().with_base_url("http://127.0.0.1:9");
        let agent = Agent::new(manager);
        agent.apply(vec![Profile {
            name: PROFILE.into(),
            id,
            vendor: Vendor::Ekuaibao,
            credential: CredentialOptions::new(
                Refresher::new(VendorConfig::Ekuaibao(config)).unwrap(),
            ),
            sinks: vec![Sink::new(&sink, Format::Json)],
            readers: Readers::default(),
        }]);
        for _ in 0..500 {
            if sink.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let agent_socket = dir.path().join("agent.sock");
        let listener = refresh_agent::api::bind(&agent_socket).unwrap();
        tokio::spawn(refresh_agent::api::serve(
            listener,
            agent,
            None,
            std::future::pending(),
        ));
        let floor_socket = dir.path().join("floor.sock");
        let body = Bytes::from(std::fs::read(&sink).unwrap());
        floor_server(floor_socket.clone(), body).await;

        let total = requests();
        println!(
            "{:<28} {:>8} {:>10} {:>10}",
            "GET /v1/tokens/{profile}", "clients", "p50 µs", "p99 µs"
        );
        for clients in [1, 64] {
            let per_client = (total / clients).max(1);
            // Warm up each server once.
            over_socket(&agent_socket, "/v1/tokens/bench", clients, 10).await;
            over_socket(&floor_socket, "/", clients, 10).await;
            let agent = percentiles(
                over_socket(&agent_socket, "/v1/tokens/bench", clients, per_client).await,
            );
            let floor = percentiles(over_socket(&floor_socket, "/", clients, per_client).await);
            let (sink_path, sink_clients) = (sink.clone(), clients);
            let sink = percentiles(
                tokio::task::spawn_blocking(move || {
                    sink_reads(&sink_path, sink_clients, per_client)
                })
                .await
                .unwrap(),
            );
            for (name, (p50, p99)) in [
                ("agent", agent),
                ("floor (minimal hyper)", floor),
                ("JSON sink file read", sink),
            ] {
                println!("{name:<28} {clients:>8} {p50:>10.1} {p99:>10.1}");
            }
            println!(
                "agent p99 / floor p99 at {clients} client(s): {:.2}× (goal ≤ 1.5×)",
                agent.1 / floor.1
            );
        }
    });
}
