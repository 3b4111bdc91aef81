//! What the manager reports: counters and latencies by outcome through the `metrics` facade, and `tracing`
//! events, with no token in any of them. Its own test binary: the metrics recorder and the log subscriber are
//! global.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use refresh_manager::observe::{ANOMALIES, RENEWALS, VENDOR_CALL_SECONDS, VENDOR_CALLS};
use refresh_manager::{MemoryStore, TokenStore};
use refresh_sandbox::{Emulator, Fault};
use support::{Harness, id, settle};

/// Everything logged, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_counted_and_no_token_is_reported() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = id("observed");
    let store = MemoryStore::new();
    let manager = h.manager(store.clone());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    let mut tokens = Vec::new();
    let mut keep = |record: refresh_manager::Versioned| {
        tokens.push(record.tokens.access_token.expose_secret().to_owned());
        tokens.push(record.tokens.refresh_token.expose_secret().to_owned());
    };

    let first = manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    keep(store.load(&id).await.unwrap().unwrap());
    // A 503, then the retry after the backoff's first wait.
    h.sandbox
        .inject(Emulator::ISolarCloud, Fault::server_error(503));
    h.advance_past(first.expires_at, Duration::from_secs(1));
    assert!(manager.access_token(&id).await.unwrap_err().is_retryable());
    // The retry's answer has an expiry of another type: kept, with a conservative lifetime, and counted.
    h.sandbox.inject(
        Emulator::ISolarCloud,
        Fault::retype("/result_data/expires_in", serde_json::json!({"seconds": 1})),
    );
    h.advance(Duration::from_secs(2));
    settle().await;
    let second = manager.access_token(&id).await.unwrap();
    keep(store.load(&id).await.unwrap().unwrap());
    // Spent elsewhere: refused for good.
    let stored = store.load(&id).await.unwrap().unwrap();
    let elsewhere = h
        .refresher(Emulator::ISolarCloud)
        .refresh(&stored.tokens.grant())
        .await
        .unwrap();
    tokens.push(elsewhere.access_token.expose_secret().to_owned());
    tokens.push(elsewhere.refresh_token.expose_secret().to_owned());
    h.advance_past(second.expires_at, Duration::from_secs(1));
    assert!(
        manager
            .access_token(&id)
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );

    let mut counters = Vec::new();
    let mut labels_seen = String::new();
    let mut timed = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels_seen.push_str(&format!("{} {labels:?}\n", key.name()));
        match value {
            DebugValue::Counter(n) => counters.push((key.name().to_owned(), labels.join(","), n)),
            DebugValue::Histogram(samples) if key.name() == VENDOR_CALL_SECONDS => {
                timed += samples.len()
            }
            _ => {}
        }
    }
    let count = |name: &str, labels: &str| {
        counters
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map_or(0, |(_, _, c)| *c)
    };
    assert_eq!(
        count(
            VENDOR_CALLS,
            "vendor=isolarcloud,operation=login,outcome=ok"
        ),
        1,
        "{labels_seen}"
    );
    for kind in ["undocumented_types", "no_readable_expiry"] {
        assert_eq!(
            count(ANOMALIES, &format!("vendor=isolarcloud,anomaly={kind}")),
            1,
            "{labels_seen}"
        );
    }
    assert_eq!(
        count(
            VENDOR_CALLS,
            "vendor=isolarcloud,operation=refresh,outcome=transient"
        ),
        1
    );
    assert_eq!(
        count(
            VENDOR_CALLS,
            "vendor=isolarcloud,operation=refresh,outcome=ok"
        ),
        1
    );
    assert_eq!(
        count(
            VENDOR_CALLS,
            "vendor=isolarcloud,operation=refresh,outcome=reauthorization_required"
        ),
        1
    );
    assert_eq!(count(RENEWALS, "vendor=isolarcloud,outcome=logged_in"), 1);
    assert_eq!(count(RENEWALS, "vendor=isolarcloud,outcome=refreshed"), 1);
    assert_eq!(count(RENEWALS, "vendor=isolarcloud,outcome=transient"), 1);
    assert_eq!(
        count(
            RENEWALS,
            "vendor=isolarcloud,outcome=reauthorization_required"
        ),
        1
    );
    assert_eq!(timed, 4, "one latency per vendor call");

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("trying again later") && logged.contains("needs attention"),
        "{logged}"
    );
    // Each event of a renewal is in its span, which names the credential and the vendor.
    assert!(
        logged.contains("renewal{credential=observed vendor=isolarcloud}"),
        "{logged}"
    );
    assert_eq!(tokens.len(), 6);
    for token in &tokens {
        assert!(!logged.contains(token.as_str()), "a token in the logs");
        assert!(
            !labels_seen.contains(token.as_str()),
            "a token in the metrics"
        );
    }
}
