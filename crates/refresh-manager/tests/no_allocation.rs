//! A cached `access_token()` allocates nothing: counted by a counting allocator, on this test binary's one
//! thread that reads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use refresh_facade::{EkuaibaoConfig, Refresher, Vendor, VendorConfig};
use refresh_manager::{
    CredentialId, CredentialOptions, Manager, ManagerOptions, ManualClock, MemoryStore,
    StoredTokens, TokenStore,
};

/// The system allocator, counting the allocations of the thread that asks.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn a_cached_read_allocates_nothing() {
    cached_reads_allocate_nothing(ManagerOptions::default().with_clock(ManualClock::new()));
}

/// The system clocks' read path (this thread's basis for the coarse clocks, `clock::ClockBasis`) allocates nothing
/// either.
#[test]
fn a_cached_read_on_the_system_clocks_allocates_nothing() {
    cached_reads_allocate_nothing(ManagerOptions::default());
}

fn cached_reads_allocate_nothing(options: ManagerOptions) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let manager = Manager::with_options(MemoryStore::new(), options);
        let now = manager.clock().wall();
        let id = CredentialId::new("cached").unwrap();
        // Never called: the token in the store is fresh.
        let config = EkuaibaoConfig::new().with_base_url("http://127.0.0.1:9");
        let refresher = Refresher::new(VendorConfig::Ekuaibao(config)).unwrap();
        manager.manage(id.clone(), CredentialOptions::new(refresher));
        let tokens: StoredTokens = serde_json::from_value(serde_json::json!({
            "vendor": Vendor::Ekuaibao,
            "access_token": "access",
            "refresh_token": "refresh",
            "expires_at": now + chrono::TimeDelta::hours(1),
            "obtained_at": now,
            "refreshable_until": null,
        }))
        .unwrap();
        let _ = manager
            .store()
            .compare_and_swap_under_lock(&id, None, &tokens)
            .await
            .unwrap();
        // The first read loads the store into the cache; the second makes this thread's copy of the token (one
        // allocation per thread and token, so that reads on other cores write nothing this one reads).
        let first = manager.access_token(&id).await.unwrap();
        manager.access_token(&id).await.unwrap();

        let handle = manager.handle(&id).unwrap();
        handle.access_token().await.unwrap();

        let before = allocations();
        for _ in 0..1_000 {
            let token = manager.access_token(&id).await.unwrap();
            assert_eq!(token.version, first.version);
            let token = handle.access_token().await.unwrap();
            assert_eq!(token.version, first.version);
        }
        assert_eq!(
            allocations() - before,
            0,
            "allocations in 2,000 cached reads"
        );
    });
}
