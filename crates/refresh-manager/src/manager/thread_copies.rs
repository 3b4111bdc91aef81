//! Per-thread copies of what the read path reads, so that reads on many cores write no cache line they share: each
//! manager's registry, and each credential's token.
//!
//! A read hands out an `Arc<AccessToken>`. Cloning the cache's own `Arc` increments one reference count that every
//! reading core then writes, and two cores that read at once pass that line back and forth: the read took three
//! times as long at two threads as at one. Instead, each thread keeps its own `Arc` of a copy of each token it
//! read, made once per thread and token (the one allocation), and a read clones that: a count only its thread
//! touches, however many threads read. Loading the registry from its `ArcSwap` writes too (a slot its debt list
//! shares), and costs more than the rest of a read: each thread keeps the registry it last loaded.
//!
//! A copy is found by the credential's (or the manager's) serial number, and is current while the credential has
//! published no token (the manager has registered nothing) since: a count, which a read loads without a write. A
//! thread keeps at most [`MOST_COPIES`] tokens and [`MOST_REGISTRIES`] registries; past that it starts over. An old
//! token stays in memory until its thread reads that credential again, ends or starts over (then zeroized, as every
//! [`refresh_facade::Secret`]); an old registry, and the credentials only it holds, until the thread reads by id
//! from that manager again, ends or starts over.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{AccessToken, Credentials};

/// How many tokens one thread keeps copies of before it drops them all and starts over.
pub(crate) const MOST_COPIES: usize = 4_096;

/// How many managers' registries one thread keeps before it drops them all and starts over.
pub(crate) const MOST_REGISTRIES: usize = 64;

/// A number no other credential of any manager in the process has: what copies are kept by.
pub(crate) fn next_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Copy {
    /// The credential's publication count when `source` was loaded: `source` is that publication's or a later one.
    published: u64,
    /// The credential's own `Arc`, held so that its address is not reused while the copy lives.
    source: Arc<AccessToken>,
    copy: Arc<AccessToken>,
}

struct Registry {
    /// The manager's registration count when `credentials` was loaded: they are that registration's or a later one.
    registered: u64,
    credentials: Arc<Credentials>,
}

thread_local! {
    static COPIES: RefCell<HashMap<u64, Copy, foldhash::fast::FixedState>> =
        RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::default()));
    static REGISTRIES: RefCell<HashMap<u64, Registry, foldhash::fast::FixedState>> =
        RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::default()));
}

/// `read` of this thread's copy of manager `serial`'s registry, current at its registration count `registered`
/// (`load` loads the registry, after the count was read). The copy is read in place, not cloned: a clone would write
/// the registry's shared count. A `read` that reads a registry again (none does today) reads one `load`ed for it.
#[inline]
pub(crate) fn in_registry<T>(
    serial: u64,
    registered: u64,
    load: impl Fn() -> Arc<Credentials>,
    read: impl Fn(&Credentials) -> T,
) -> T {
    REGISTRIES
        .try_with(|registries| {
            let mut registries = registries.try_borrow_mut().ok()?;
            if let Some(kept) = registries.get(&serial)
                && kept.registered == registered
            {
                return Some(read(&kept.credentials));
            }
            if registries.len() >= MOST_REGISTRIES {
                registries.clear();
            }
            let credentials = load();
            let read = read(&credentials);
            registries.insert(
                serial,
                Registry {
                    registered,
                    credentials,
                },
            );
            Some(read)
        })
        .ok()
        .flatten()
        // The thread is ending, or this is a read within a read.
        .unwrap_or_else(|| read(&load()))
}

/// This thread's copy of credential `serial`'s token, if the credential has published none since it was made
/// (`published` is its publication count now).
#[inline]
pub(crate) fn current(serial: u64, published: u64) -> Option<Arc<AccessToken>> {
    COPIES
        .try_with(|copies| {
            let copies = copies.borrow();
            let kept = copies.get(&serial)?;
            (kept.published == published).then(|| Arc::clone(&kept.copy))
        })
        .ok()
        .flatten()
}

/// `cached` (credential `serial`'s token, loaded after its publication count read `published`) as this thread's own
/// `Arc`, kept for the reads that follow.
pub(crate) fn keep(serial: u64, published: u64, cached: &Arc<AccessToken>) -> Arc<AccessToken> {
    COPIES
        .try_with(|copies| {
            let mut copies = copies.borrow_mut();
            if let Some(kept) = copies.get_mut(&serial)
                && Arc::ptr_eq(&kept.source, cached)
            {
                kept.published = published;
                return Arc::clone(&kept.copy);
            }
            if copies.len() >= MOST_COPIES {
                copies.clear();
            }
            let copy = Arc::new(cached.duplicate());
            copies.insert(
                serial,
                Copy {
                    published,
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
        let a = keep(serial, 0, &first);
        let b = keep(serial, 0, &first);
        assert!(Arc::ptr_eq(&a, &b), "the same copy");
        assert!(!Arc::ptr_eq(&a, &first), "not the shared Arc");
        assert_eq!(a.secret.expose_secret(), "first");
        assert_eq!(a.version, 1);

        let second = Arc::new(token_for_tests("second", 2));
        let c = keep(serial, 1, &second);
        assert_eq!((c.secret.expose_secret(), c.version), ("second", 2));
        // Another credential's copy is its own, and reading it keeps this one's (below the bound, nothing is
        // dropped).
        let other = keep(next_serial(), 0, &first);
        assert!(!Arc::ptr_eq(&other, &a));
        assert_eq!(other.secret.expose_secret(), "first");
        assert!(
            Arc::ptr_eq(&keep(serial, 1, &second), &c),
            "kept beside the other"
        );
    }

    #[test]
    fn a_copy_is_current_until_the_credential_publishes_again() {
        let serial = next_serial();
        assert!(current(serial, 0).is_none(), "no copy before a read");
        let token = Arc::new(token_for_tests("kept", 5));
        let kept = keep(serial, 7, &token);
        assert!(Arc::ptr_eq(&current(serial, 7).unwrap(), &kept));
        assert!(current(serial, 8).is_none(), "published since: not current");
        // The same token read again at the later count: the same copy, current at that count.
        assert!(Arc::ptr_eq(&keep(serial, 8, &token), &kept));
        assert!(Arc::ptr_eq(&current(serial, 8).unwrap(), &kept));
        assert!(current(next_serial(), 8).is_none(), "another credential's");
    }

    #[test]
    fn a_registry_copy_is_current_until_the_manager_registers_again() {
        let serial = next_serial();
        let loads = std::cell::Cell::new(0);
        let load = || {
            loads.set(loads.get() + 1);
            Arc::new(Credentials::default())
        };
        assert_eq!(in_registry(serial, 0, load, Credentials::len), 0);
        in_registry(serial, 0, load, |_| ());
        assert_eq!(loads.get(), 1, "read from this thread's copy");
        in_registry(serial, 1, load, |_| ());
        assert_eq!(loads.get(), 2, "registered since: loaded again");
        // A read within a read loads its own registry, and the copy kept stays the one it was.
        in_registry(serial, 1, load, |_| in_registry(serial, 1, load, |_| ()));
        assert_eq!(loads.get(), 3);
        in_registry(serial, 1, load, |_| ());
        assert_eq!(loads.get(), 3);
    }

    #[test]
    fn a_thread_keeps_a_bounded_number_of_registries() {
        let first = next_serial();
        in_registry(first, 0, || Arc::new(Credentials::default()), |_| ());
        // Below the bound, another manager's registry is kept beside it.
        in_registry(
            next_serial(),
            0,
            || Arc::new(Credentials::default()),
            |_| (),
        );
        in_registry(
            first,
            0,
            || panic!("the first registry was dropped"),
            |_| (),
        );
        for _ in 0..MOST_REGISTRIES {
            in_registry(
                next_serial(),
                0,
                || Arc::new(Credentials::default()),
                |_| (),
            );
        }
        let size = REGISTRIES.with(|registries| registries.borrow().len());
        assert!(size <= MOST_REGISTRIES, "{size} registries kept");
        let reloaded = std::cell::Cell::new(false);
        in_registry(
            first,
            0,
            || {
                reloaded.set(true);
                Arc::new(Credentials::default())
            },
            |_| (),
        );
        assert!(
            reloaded.get(),
            "the first registry was dropped with the others"
        );
    }

    #[test]
    fn each_thread_has_its_own_copy() {
        let serial = next_serial();
        let token = Arc::new(token_for_tests("shared", 3));
        let here = keep(serial, 0, &token);
        let there =
            std::thread::scope(|scope| scope.spawn(|| keep(serial, 0, &token)).join().unwrap());
        assert!(!Arc::ptr_eq(&here, &there));
        assert_eq!(there.secret.expose_secret(), "shared");
    }

    #[test]
    fn a_thread_starts_over_past_its_bound() {
        let token = Arc::new(token_for_tests("many", 4));
        let first_serial = next_serial();
        let first = keep(first_serial, 0, &token);
        for _ in 0..MOST_COPIES {
            keep(next_serial(), 0, &token);
        }
        let size = COPIES.with(|copies| copies.borrow().len());
        assert!(size <= MOST_COPIES, "{size} copies kept");
        assert!(
            !Arc::ptr_eq(&first, &keep(first_serial, 0, &token)),
            "the first copy was dropped with the others"
        );
    }
}
