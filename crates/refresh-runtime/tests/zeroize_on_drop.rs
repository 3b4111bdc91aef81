//! A dropped `Secret` leaves no copy of its value in freed memory.
//!
//! The test binary's allocator looks at every block before it is freed and remembers whether it still holds the
//! canary. A plain `String` with the canary shows that the check sees a leftover value; a `Secret` must leave none.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

use refresh_runtime::Secret;

const CANARY: &[u8] = b"zeroize-canary-7f3a9c";

static WATCHING: AtomicBool = AtomicBool::new(false);
static CANARY_FREED: AtomicBool = AtomicBool::new(false);

struct InspectingAllocator;

// SAFETY: every call is forwarded to `System`; `dealloc` only reads the block it is about to free.
unsafe impl GlobalAlloc for InspectingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::SeqCst) {
            // SAFETY: `ptr` points to `layout.size()` bytes this allocator handed out and that are still live.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(CANARY.len()).any(|w| w == CANARY) {
                CANARY_FREED.store(true, Ordering::SeqCst);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: InspectingAllocator = InspectingAllocator;

/// Whether dropping what `make` returns frees a block that still holds the canary.
fn frees_the_canary<T>(make: impl FnOnce(String) -> T) -> bool {
    let value = make(String::from_utf8(CANARY.to_vec()).unwrap());
    CANARY_FREED.store(false, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    drop(value);
    WATCHING.store(false, Ordering::SeqCst);
    CANARY_FREED.load(Ordering::SeqCst)
}

#[test]
fn a_dropped_secret_leaves_no_copy_but_a_dropped_string_does() {
    assert!(
        frees_the_canary(|s| s),
        "the allocator must see a plain String's value when it is freed"
    );
    assert!(
        !frees_the_canary(Secret::from),
        "a dropped Secret must have zeroized its value"
    );
    assert!(
        !frees_the_canary(|s| Secret::from(s).clone()),
        "a dropped clone of a Secret must have zeroized its value too"
    );
}
