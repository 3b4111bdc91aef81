//! Many rotations under concurrent callers, and a herd at expiry, against the sandbox (which refuses a refresh
//! token used twice). `REFRESH_KIT_ROTATIONS` raises the rotation count (CI runs 2,000).

mod support;

use std::time::Duration;

use refresh_manager::{CredentialId, MemoryStore, TokenStore};
use refresh_sandbox::Emulator;
use support::Harness;

/// iSolarCloud's documented access token lifetime, plus a second.
const PAST_EXPIRY: Duration = Duration::from_secs(172_799 + 1);

/// Rounds of: every credential expires, and four callers per credential ask at once (while the background
/// timers renew too). Not one refresh is refused: no refresh token is ever presented twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_concurrent_callers_never_present_a_refresh_token_twice() {
    let rotations: usize = std::env::var("REFRESH_KIT_ROTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let credentials = 20;
    let rounds = rotations.div_ceil(credentials);
    let h = Harness::start(Emulator::ISolarCloud).await;
    let manager = h.manager(MemoryStore::new());
    let ids: Vec<CredentialId> = (0..credentials)
        .map(|n| support::id(&format!("load-{n}")))
        .collect();
    for id in &ids {
        manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
        manager
            .login(id, &h.login(Emulator::ISolarCloud))
            .await
            .unwrap();
    }
    assert_eq!(manager.pending_timers(), credentials, "one timer each");
    let mut errors = Vec::new();
    for round in 0..rounds {
        h.advance(PAST_EXPIRY);
        let callers: Vec<_> = ids
            .iter()
            .flat_map(|id| std::iter::repeat_n(id, 4))
            .map(|id| {
                let (manager, id) = (manager.clone(), id.clone());
                tokio::spawn(async move { manager.access_token(&id).await })
            })
            .collect();
        for caller in callers {
            match caller.await.unwrap() {
                Ok(token) => assert_eq!(token.version, round as u64 + 2, "round {round}"),
                Err(error) => errors.push(error.to_string()),
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} errors, the first: {:?}",
        errors.len(),
        errors.first()
    );
    let refreshes = h.requests_to(Emulator::ISolarCloud, "refreshToken");
    assert_eq!(
        refreshes,
        rounds * credentials,
        "one rotation per credential per round"
    );
    for id in &ids {
        let stored = manager.store().load(id).await.unwrap().unwrap();
        assert_eq!(stored.version, rounds as u64 + 1);
        assert!(
            stored.orphans.is_empty(),
            "no write lost a compare-and-swap"
        );
    }
    eprintln!(
        "{refreshes} rotations, {} callers, 0 refused",
        rounds * credentials * 4
    );
}

/// 10,000 callers arrive at once when the token has expired: one upstream refresh serves them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_of_ten_thousand_callers_at_expiry_causes_one_refresh() {
    let h = Harness::start(Emulator::ISolarCloud).await;
    let id = support::id("herd");
    let manager = h.manager(MemoryStore::new());
    manager.manage(id.clone(), h.credential(Emulator::ISolarCloud));
    manager
        .login(&id, &h.login(Emulator::ISolarCloud))
        .await
        .unwrap();
    // Slow enough that every caller arrives while the one refresh is under way.
    h.sandbox
        .set_latency(Emulator::ISolarCloud, Duration::from_millis(200));
    h.advance(PAST_EXPIRY);
    let callers: Vec<_> = (0..10_000)
        .map(|_| {
            let (manager, id) = (manager.clone(), id.clone());
            tokio::spawn(async move { manager.access_token(&id).await.map(|token| token.version) })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), 2);
    }
    assert_eq!(h.requests_to(Emulator::ISolarCloud, "refreshToken"), 1);
}
