//! The file stores over a disk that loses its page cache ([`PageCacheFs`]): a power cut at every point of a write
//! leaves the old record or the new one, whole, and never loses a write that returned. A killed process cannot
//! show this (the kernel keeps the page cache); a skipped fsync fails here.

mod support;

use std::path::Path;

use chrono::{TimeDelta, Utc};
use refresh_manager::{CredentialId, FileStore, Rescue, Rescued, StoredTokens, Swap, TokenStore};
use serde_json::json;
use support::page_cache::PageCacheFs;

fn tokens(refresh: &str) -> StoredTokens {
    let now = Utc::now();
    serde_json::from_value(json!({
        "vendor": "sugon-ac",
        "access_token": format!("access-{refresh}"),
        "refresh_token": refresh,
        "obtained_at": now,
        "expires_at": now + TimeDelta::hours(2),
        "refreshable_until": null,
    }))
    .unwrap()
}

const DIR: &str = "/disk/tokens";

/// A new disk whose `FileStore` holds version 1 of `id` (refresh token "one"), durably.
async fn version_one_of(id: &CredentialId) -> (PageCacheFs, FileStore) {
    let disk = PageCacheFs::new();
    let store = FileStore::open_on(disk.process().shared(), DIR).unwrap();
    let _ = store
        .compare_and_swap_under_lock(id, None, &tokens("one"))
        .await
        .unwrap();
    (disk, store)
}

/// Version 1 written and durable; the power then goes at each file operation of the write of version 2 in turn
/// (then once after it returned). Every time, the store opens again on what the disk kept and reads version 1 or
/// version 2 whole, and version 2 whenever its write returned.
#[tokio::test]
async fn a_power_cut_at_any_point_of_a_write_keeps_a_whole_record_and_every_write_that_returned() {
    let id = CredentialId::new("durable").unwrap();
    let mut crash_points = 0;
    for at in 0.. {
        let (disk, store) = version_one_of(&id).await;
        disk.cut_power_at(at);
        let written = store
            .compare_and_swap_under_lock(&id, Some(1), &tokens("two"))
            .await;
        let cut_during = disk.stats().power_cuts == 1;
        if !cut_during {
            assert!(
                matches!(written, Ok(Swap::Written { version: 2 })),
                "{written:?}"
            );
            disk.power_cut();
        }
        let reopened = FileStore::open_on(disk.process().shared(), DIR).unwrap();
        let record = reopened
            .load(&id)
            .await
            .unwrap_or_else(|error| panic!("cut at operation {at}: {error}"))
            .expect("a record");
        let refresh = record.tokens.refresh_token.expose_secret().to_owned();
        match written {
            Ok(_) => assert_eq!(
                (record.version, refresh.as_str()),
                (2, "two"),
                "cut at {at}"
            ),
            Err(_) => assert!(
                [(1, "one"), (2, "two")].contains(&(record.version, refresh.as_str())),
                "cut at {at}: version {} holds {refresh}",
                record.version
            ),
        }
        assert!(
            !disk
                .names(Path::new(DIR))
                .iter()
                .any(|name| name.ends_with(".tmp")),
            "a torn temporary file outlived the reopening: {:?}",
            disk.names(Path::new(DIR))
        );
        if !cut_during {
            break;
        }
        crash_points += 1;
    }
    // The write lock, the read, the temporary file, its data, its fsync, the rename, the directory's fsync.
    assert!(crash_points >= 7, "only {crash_points} crash points");
}

/// The same for a rescue: after a cut anywhere in `keep`, the rescue is there whole or not at all (never a file that
/// does not read), and it is there whenever `keep` returned.
#[test]
fn a_power_cut_at_any_point_of_a_rescue_keeps_it_whole_or_not_at_all() {
    let id = CredentialId::new("rescued").unwrap();
    let rescued = Rescued::new(id.clone(), Some(3), false, tokens("kept"), Utc::now());
    let mut crash_points = 0;
    for at in 0.. {
        let disk = PageCacheFs::new();
        let rescue = Rescue::new(["/disk/rescue"]).on(disk.process().shared());
        disk.cut_power_at(at);
        let kept = rescue.keep(&rescued);
        let cut_during = disk.stats().power_cuts == 1;
        if !cut_during {
            assert!(kept.is_ok(), "{kept:?}");
            disk.power_cut();
        }
        // The next process looks.
        let rescue = Rescue::new(["/disk/rescue"]).on(disk.process().shared());
        let found = rescue.find(&id).map(|(_, found)| found);
        if kept.is_ok() {
            assert_eq!(found.as_ref(), Some(&rescued), "cut at {at}");
        }
        assert!(
            found.is_none() || found.as_ref() == Some(&rescued),
            "cut at {at}"
        );
        assert_eq!(
            rescue.list().len(),
            usize::from(found.is_some()),
            "cut at {at}: a rescue that does not read"
        );
        if !cut_during {
            break;
        }
        crash_points += 1;
    }
    assert!(crash_points >= 5, "only {crash_points} crash points");
}

/// A full disk tears the write (half the record, then ENOSPC): the record stays the old one, the temporary file
/// goes, and the write check fails before the next vendor call would.
#[tokio::test]
async fn a_full_disk_tears_no_record_and_fails_the_write_check() {
    let id = CredentialId::new("full").unwrap();
    let (disk, store) = version_one_of(&id).await;
    disk.fill_for(2);
    assert!(
        store
            .compare_and_swap_under_lock(&id, Some(1), &tokens("two"))
            .await
            .is_err()
    );
    assert!(store.check_writable(&id).await.is_err());
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(record.tokens.refresh_token.expose_secret(), "one");
    assert_eq!(
        disk.names(Path::new(DIR)),
        ["full.json", "full@refresh.lock", "full@write.lock"],
        "no temporary file stays"
    );
    assert_eq!(disk.stats().writes_refused, 2);
    store.check_writable(&id).await.unwrap();
}
