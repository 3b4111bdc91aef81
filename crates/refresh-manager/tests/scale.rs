//! Many credentials in one manager: what each costs in memory (counted by this binary's allocator), one timer
//! heap for all of them, and, with all of them expiring in the same minute, every refresh done before the first
//! expiry under the manager's limit of concurrent vendor calls, against a sandbox that answers after a delay.
//!
//! `REFRESH_KIT_CREDENTIALS` (CI: 5,000), `REFRESH_KIT_SPEEDUP` (how much faster than real time the fake clock
//! runs; CI: 10) and `REFRESH_KIT_CALL_LIMIT` (CI: 16) set the scale;
//! `REFRESH_KIT_CREDENTIALS=100000 REFRESH_KIT_SPEEDUP=1 REFRESH_KIT_CALL_LIMIT=64` is the figure.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use refresh_manager::{CredentialId, MemoryStore, StoredTokens, TokenStore};
use refresh_sandbox::Emulator;
use serde_json::json;
use support::Harness;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A credential's number, and when its rotation was durable.
type Rotation = (usize, DateTime<Utc>);

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_credentials_expiring_in_one_minute_all_refresh_before_expiry() {
    let count = setting("REFRESH_KIT_CREDENTIALS", 5_000);
    let speedup = setting("REFRESH_KIT_SPEEDUP", 10) as u32;
    let limit = setting("REFRESH_KIT_CALL_LIMIT", 16);
    let h = Harness::start(Emulator::ISolarCloud).await;
    let store = MemoryStore::new();
    // When each rotation was durable, by credential number.
    let rotated: Arc<Mutex<Vec<Rotation>>> = Arc::default();
    let options = h.options().with_max_concurrent_calls(limit).on_rotate({
        let (rotated, clock) = (Arc::clone(&rotated), h.clock());
        move |event| {
            let n = event
                .id
                .as_str()
                .trim_start_matches("scale-")
                .parse()
                .unwrap();
            rotated.lock().unwrap().push((n, clock.wall()));
        }
    });
    let manager = refresh_manager::Manager::with_options(store.clone(), options);
    // Tokens issued now, expiring over one minute starting ten minutes from now: refreshes are due from 90 s
    // (margin 60 s, jitter up to 30 s) before the first expiry.
    let now = h.clock().wall();
    let first_expiry = now + TimeDelta::minutes(10);
    // Spread over the minute.
    let expiry = |n: usize| first_expiry + TimeDelta::milliseconds((n * 60_000 / count) as i64);
    let ids: Vec<CredentialId> = (0..count)
        .map(|n| support::id(&format!("scale-{n}")))
        .collect();
    for (n, id) in ids.iter().enumerate() {
        let issued = h.sandbox.login(Emulator::ISolarCloud);
        let tokens: StoredTokens = serde_json::from_value(json!({
            "vendor": "isolarcloud",
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "obtained_at": now,
            "expires_at": expiry(n),
            "refreshable_until": null,
        }))
        .unwrap();
        let _ = store
            .compare_and_swap_under_lock(id, None, &tokens)
            .await
            .unwrap();
    }

    let before = LIVE.load(Ordering::SeqCst);
    let options = h.credential(Emulator::ISolarCloud);
    manager.manage_all(ids.iter().map(|id| (id.clone(), options.clone())));
    for id in &ids {
        manager.access_token(id).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let per_credential = (LIVE.load(Ordering::SeqCst) - before) / count as isize;
    let timers = manager.pending_timers();
    assert!(
        timers <= count + 64,
        "{timers} timers for {count} credentials: one heap entry each"
    );

    h.sandbox
        .set_latency(Emulator::ISolarCloud, Duration::from_millis(20));
    let started = tokio::time::Instant::now();
    h.advance(Duration::from_secs(10 * 60 - 90));
    // The fake clock runs `speedup` times faster than real time from here.
    let tick = Duration::from_millis(10);
    let last_expiry = first_expiry + TimeDelta::minutes(1);
    // Until every rotation is durable (a request logged by the sandbox may still be on its way back).
    while rotated.lock().unwrap().len() < count && h.clock().wall() < last_expiry {
        tokio::time::sleep(tick).await;
        h.advance(tick * (speedup - 1));
    }
    let took = started.elapsed();
    let finished_at = h.clock().wall();
    for id in &ids {
        let token = manager.access_token(id).await.unwrap();
        assert_eq!(token.version, 2, "{id}");
    }
    assert_eq!(h.requests_to(Emulator::ISolarCloud, "refreshToken"), count);
    let most = h.sandbox.most_in_flight(Emulator::ISolarCloud);
    assert!(most <= limit, "{most} vendor calls at once");
    let rotated = rotated.lock().unwrap();
    assert_eq!(rotated.len(), count);
    let late = rotated.iter().filter(|(n, at)| *at >= expiry(*n)).count();
    assert_eq!(
        late, 0,
        "{late} of {count} refreshed after their token expired"
    );
    let margin = rotated
        .iter()
        .map(|(n, at)| expiry(*n) - *at)
        .min()
        .unwrap();
    eprintln!(
        "{count} credentials: {per_credential} bytes each in the manager (registry, state, cached token, timer); \
         {timers} timer entries on one heap; all refreshed by {}s before the last expiry, each at least {}s before \
         its own, in {:.1}s of real time at {speedup}x, at most {most} vendor calls at once (limit {limit}) with 20 ms \
         latency",
        (last_expiry - finished_at).num_seconds(),
        margin.num_seconds(),
        took.as_secs_f64(),
    );
}
