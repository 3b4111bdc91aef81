//! Per-thread copies of the cached tokens, so that reads on many cores write no cache line they share.
//!
//! A read hands out an `Arc<AccessToken>`. Cloning the cache's own `Arc` increments one reference count that every
//! reading core then writes, and two cores that read at once pass that line back and forth: the read took three
//! times as long at two threads as at one. Instead, each thread keeps its own `Arc` of a copy of each token it
//! read, made once per thread and token (the one allocation), and a read clones that: a count only its thread
//! touches, however many threads read.
//!
//! A copy is found by the credential's serial number and is current while its source is the `Arc` the credential
//! caches now (pointers compared; the copy holds its source, so the address cannot be reused while it lives). A
//! thread keeps at most [`MOST_COPIES`] copies; past that it starts over. An old token stays in memory until its
//! thread reads that credential again, ends or starts over (then zeroized, as every [`refresh_facade::Secret`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::manager::AccessToken;

/// How many tokens one thread keeps copies of before it drops them all and starts over.
pub(crate) const MOST_COPIES: usize = 4_096;

/// A number no other credential of any manager in the process has: what copies are kept by.
pub(crate) fn next_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Copy {
    source: Arc<AccessToken>,
    copy: Arc<AccessToken>,
}

thread_local! {
    static COPIES: RefCell<HashMap<u64, Copy, foldhash::fast::FixedState>> =
        RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::default()));
}

/// `cached` (credential `serial`'s token now) as this thread's own `Arc`.
pub(crate) fn local(serial: u64, cached: &Arc<AccessToken>) -> Arc<AccessToken> {
    COPIES
        .try_with(|copies| {
            let mut copies = copies.borrow_mut();
            if let Some(kept) = copies.get(&serial)
                && Arc::ptr_eq(&kept.source, cached)
            {
                return Arc::clone(&kept.copy);
            }
            if copies.len() >= MOST_COPIES {
                copies.clear();
            }
            let copy = Arc::new(cached.duplicate());
            copies.insert(
                serial,
                Copy {
                    source: Arc::clone(cached),
                    copy: Arc::clone(&copy),
                },
            );
            copy
        })
        // The thread is ending (its locals are gone): the shared `Arc` does.
        .unwrap_or_else(|_| Arc::clone(cached))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::tests::token_for_tests;

    #[test]
    fn a_thread_reuses_its_copy_until_the_token_changes() {
        let serial = next_serial();
        let first = Arc::new(token_for_tests("first", 1));
        let a = local(serial, &first);
        let b = local(serial, &first);
        assert!(Arc::ptr_eq(&a, &b), "the same copy");
        assert!(!Arc::ptr_eq(&a, &first), "not the shared Arc");
        assert_eq!(a.secret.expose_secret(), "first");
        assert_eq!(a.version, 1);

        let second = Arc::new(token_for_tests("second", 2));
        let c = local(serial, &second);
        assert_eq!((c.secret.expose_secret(), c.version), ("second", 2));
        // Another credential's copy is its own, and reading it keeps this one's (below the bound, nothing is
        // dropped).
        let other = local(next_serial(), &first);
        assert!(!Arc::ptr_eq(&other, &a));
        assert_eq!(other.secret.expose_secret(), "first");
        assert!(
            Arc::ptr_eq(&local(serial, &second), &c),
            "kept beside the other"
        );
    }

    #[test]
    fn each_thread_has_its_own_copy() {
        let serial = next_serial();
        let token = Arc::new(token_for_tests("shared", 3));
        let here = local(serial, &token);
        let there =
            std::thread::scope(|scope| scope.spawn(|| local(serial, &token)).join().unwrap());
        assert!(!Arc::ptr_eq(&here, &there));
        assert_eq!(there.secret.expose_secret(), "shared");
    }

    #[test]
    fn a_thread_starts_over_past_its_bound() {
        let token = Arc::new(token_for_tests("many", 4));
        let first_serial = next_serial();
        let first = local(first_serial, &token);
        for _ in 0..MOST_COPIES {
            local(next_serial(), &token);
        }
        let size = COPIES.with(|copies| copies.borrow().len());
        assert!(size <= MOST_COPIES, "{size} copies kept");
        assert!(
            !Arc::ptr_eq(&first, &local(first_serial, &token)),
            "the first copy was dropped with the others"
        );
    }
}
