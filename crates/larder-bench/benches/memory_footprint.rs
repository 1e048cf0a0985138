//! Bytes of heap per entry of each in-process cache (larder's `MemoryCache`, moka,
//! quick_cache) holding 100 000 small entries (`"key:N"` string key -> `u64` value), counted
//! by a global allocator that wraps the system one. Prints a table.
//!
//! `cargo bench -p larder-bench --bench memory_footprint`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use larder_bench::{key_names, InProcessCache};

const ENTRIES: u32 = 100_000;

/// The system allocator, counting the bytes currently allocated.
struct CountingAllocator;

/// Bytes currently allocated through [`CountingAllocator`].
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method passes its arguments unchanged to `System` and returns what `System`
// returned, so `System`'s guarantees are this allocator's. The only addition is an atomic
// counter update, which neither allocates nor panics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; `ptr` came from `System` with `layout`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Builds a cache under measurement with room for `capacity` entries.
type Build = fn(usize) -> Box<dyn Measured>;

/// An [`InProcessCache`] that can also say how many entries it holds once settled.
trait Measured: InProcessCache {
    fn settled_len(&self) -> u64;
}

impl Measured for larder::memory::MemoryCache<u64> {
    fn settled_len(&self) -> u64 {
        self.stats().entries
    }
}

impl Measured for moka::sync::Cache<String, u64> {
    fn settled_len(&self) -> u64 {
        self.run_pending_tasks();
        self.entry_count()
    }
}

impl Measured for quick_cache::sync::Cache<String, u64> {
    fn settled_len(&self) -> u64 {
        self.len() as u64
    }
}

fn main() {
    let builds: [Build; 3] = [
        |n| Box::new(larder::memory::MemoryCache::<u64>::new(n)),
        |n| Box::new(moka::sync::Cache::<String, u64>::new(n as u64)),
        |n| Box::new(quick_cache::sync::Cache::<String, u64>::new(n)),
    ];
    let keys = key_names(ENTRIES);
    let payload: usize = keys.iter().map(|k| k.len() + 8).sum();

    println!(
        "heap per entry, {ENTRIES} entries of \"key:N\" -> u64 (payload {:.1} bytes/entry), capacity {ENTRIES}",
        payload as f64 / f64::from(ENTRIES)
    );
    println!(
        "{:<12} {:>8} {:>12} {:>15}",
        "cache", "entries", "heap bytes", "bytes/entry"
    );
    for build in builds {
        let before = live_bytes();
        let cache = build(ENTRIES as usize);
        for (value, key) in keys.iter().enumerate() {
            cache.set(key, value as u64);
        }
        let entries = cache.settled_len();
        let heap = live_bytes().saturating_sub(before);
        println!(
            "{:<12} {:>8} {:>12} {:>15.1}",
            cache.name(),
            entries,
            heap,
            heap as f64 / entries.max(1) as f64
        );
        drop(cache);
    }
}
