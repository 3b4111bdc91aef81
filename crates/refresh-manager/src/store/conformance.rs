//! What every [`TokenStore`] must do, as functions a store's own tests call (enable the `conformance` feature in
//! `[dev-dependencies]`). Each uses credential ids of its own; give each a fresh, empty store.

use std::sync::Arc;
use std::time::Duration;

use super::{LockKind, Swap, TokenStore};
use crate::record::{CredentialId, StoredTokens};

fn id(name: &str) -> CredentialId {
    CredentialId::new(name).unwrap()
}

/// Only a write from the expected version goes in; a conflict changes nothing and tells what is there.
pub async fn compare_and_swap_writes_only_the_expected_version(store: &impl TokenStore) {
    let id = id("cas");
    assert_eq!(store.load(&id).await.unwrap(), None);
    let held = store.lock(&id).await.unwrap();
    assert_eq!(
        store
            .compare_and_swap(&held, None, &tokens("1"))
            .await
            .unwrap(),
        Swap::Written { version: 1 }
    );
    let first = store.load(&id).await.unwrap().unwrap();
    assert_eq!((first.version, &first.tokens), (1, &tokens("1")));

    // A second first write, or a write from a stale version, loses and changes nothing.
    for stale in [None, Some(0), Some(2)] {
        let swap = store
            .compare_and_swap(&held, stale, &tokens("x"))
            .await
            .unwrap();
        assert_eq!(
            swap,
            Swap::Conflict {
                current: Some(first.clone())
            },
            "{stale:?}"
        );
    }
    assert_eq!(
        store
            .compare_and_swap(&held, Some(1), &tokens("2"))
            .await
            .unwrap(),
        Swap::Written { version: 2 }
    );
    let second = store.load(&id).await.unwrap().unwrap();
    assert_eq!((second.version, &second.tokens), (2, &tokens("2")));
    // Records are per credential.
    assert_eq!(store.load(&self::id("other")).await.unwrap(), None);
}

/// Orphans are kept, across writes; without a record, kept tokens become it.
pub async fn orphans_are_kept_across_writes(store: &impl TokenStore) {
    let id = id("orphans");
    let held = store.lock(&id).await.unwrap();
    // Without a record, kept tokens become the record: they are the only ones.
    store.keep_orphan(&held, &tokens("lone")).await.unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!((record.version, &record.tokens), (1, &tokens("lone")));
    assert!(record.orphans.is_empty());

    store.keep_orphan(&held, &tokens("lost")).await.unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(record.version, 1, "keeping an orphan is not a new version");
    assert_eq!(record.orphans.len(), 1);
    assert_eq!(record.orphans[0].tokens, tokens("lost"));
    assert_eq!(record.orphans[0].lost_to_version, 1);

    let _ = store
        .compare_and_swap(&held, Some(1), &tokens("next"))
        .await
        .unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(record.tokens, tokens("next"));
    assert_eq!(record.orphans.len(), 1, "a write keeps the orphans");
}

/// A write prunes the orphans beyond the most a credential keeps ([`super::MOST_ORPHANS`]), oldest first; the
/// newest stay (their kept time is now, well inside [`super::ORPHAN_RETENTION`]).
pub async fn orphans_are_pruned_to_the_most_a_credential_keeps(store: &impl TokenStore) {
    let id = id("many-orphans");
    let held = store.lock(&id).await.unwrap();
    let _ = store
        .compare_and_swap(&held, None, &tokens("0"))
        .await
        .unwrap();
    let kept = super::MOST_ORPHANS + 8;
    for n in 0..kept {
        store
            .keep_orphan(&held, &tokens(&format!("lost-{n}")))
            .await
            .unwrap();
    }
    assert_eq!(store.load(&id).await.unwrap().unwrap().orphans.len(), kept);
    let _ = store
        .compare_and_swap(&held, Some(1), &tokens("1"))
        .await
        .unwrap();
    let orphans = store.load(&id).await.unwrap().unwrap().orphans;
    assert_eq!(orphans.len(), super::MOST_ORPHANS);
    assert_eq!(orphans[0].tokens, tokens("lost-8"), "the oldest went first");
    assert_eq!(
        orphans.last().unwrap().tokens,
        tokens(&format!("lost-{}", kept - 1))
    );
}

/// Of 16 writers racing from one version, each under the lock in turn, exactly one wins.
pub async fn of_racing_writers_exactly_one_wins<S: TokenStore + 'static>(store: Arc<S>) {
    let id = id("race");
    let held = store.lock(&id).await.unwrap();
    let _ = store
        .compare_and_swap(&held, None, &tokens("0"))
        .await
        .unwrap();
    store.release(held).await;
    let writers: Vec<_> = (0..16)
        .map(|n| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move {
                let held = store.lock(&id).await.unwrap();
                let swap = store
                    .compare_and_swap(&held, Some(1), &tokens(&n.to_string()))
                    .await
                    .unwrap();
                store.release(held).await;
                swap
            })
        })
        .collect();
    let mut written = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Swap::Written { version } => {
                assert_eq!(version, 2);
                written += 1;
            }
            Swap::Conflict { current } => assert_eq!(current.unwrap().version, 2),
        }
    }
    assert_eq!(written, 1);
}

/// One holder of a credential's lock at a time, whichever of the two stores (on the same data) it holds it
/// through; another credential is not held.
pub async fn the_lock_lets_one_holder_in_at_a_time(one: &impl TokenStore, other: &impl TokenStore) {
    let id = id("locked");
    let held = one.lock(&id).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(200), other.lock(&id)).await;
    assert!(waiting.is_err(), "a second holder got in");
    // Another credential is not held.
    let _free = tokio::time::timeout(Duration::from_secs(5), other.lock(&self::id("free")))
        .await
        .expect("another credential's lock is free")
        .unwrap();
    // Released explicitly, it is free at once; dropped, soon.
    one.release(held).await;
    let next = tokio::time::timeout(Duration::from_millis(500), other.lock(&id))
        .await
        .expect("the lock is free once released")
        .unwrap();
    drop(next);
    let _last = tokio::time::timeout(Duration::from_secs(5), one.lock(&id))
        .await
        .expect("the lock is free once dropped")
        .unwrap();
}

/// A write is made under the lock of the credential it writes, and of that credential only; a lock just taken
/// allows writes (a lease has time left).
pub async fn a_write_goes_to_the_credential_its_lock_is_held_on(store: &impl TokenStore) {
    let (mine, other) = (id("mine"), id("not-mine"));
    let held = store.lock(&mine).await.unwrap();
    match store.lock_kind(&held) {
        LockKind::UntilDropped => {}
        LockKind::Lease { left } => {
            assert!(left > Duration::ZERO, "a lease taken with nothing left")
        }
        kind => panic!("a lock just taken allows no write: {kind:?}"),
    }
    let other_held = store.lock(&other).await.unwrap();
    assert_eq!(
        store
            .compare_and_swap(&held, None, &tokens("mine"))
            .await
            .unwrap(),
        Swap::Written { version: 1 }
    );
    store
        .keep_orphan(&held, &tokens("mine-lost"))
        .await
        .unwrap();
    assert_eq!(
        store.load(&other).await.unwrap(),
        None,
        "written to another credential"
    );
    let record = store.load(&mine).await.unwrap().unwrap();
    assert_eq!((record.version, record.orphans.len()), (1, 1));
    store.release(other_held).await;
    store.release(held).await;
}

/// Tokens tagged `tag` (`access-<tag>`, `refresh-<tag>`), with fixed times.
pub fn tokens(tag: &str) -> StoredTokens {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid timestamp");
    StoredTokens {
        vendor: refresh_facade::Vendor::Ekuaibao,
        access_token: format!("access-{tag}").into(),
        refresh_token: format!("refresh-{tag}").into(),
        expires_at: at + chrono::TimeDelta::hours(1),
        obtained_at: at,
        refreshable_until: Some(at + chrono::TimeDelta::hours(1)),
    }
}
