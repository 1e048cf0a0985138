//! The README's quick start: a bounded in-process cache, TTLs, `add`, counters, and a
//! boxed `dyn Cache` (run with `cargo run -p larder --example quickstart`).

use larder::memory::MemoryCache;
use larder::{Cache, Expiry};
use std::time::Duration;

fn main() -> larder::Result<()> {
    // Bounded to 10 000 entries; the eviction policy keeps the frequently used ones.
    let cache: MemoryCache<String> = MemoryCache::builder().max_entries(10_000).build();

    cache.set(
        "greeting",
        "hello".to_string(),
        Expiry::After(Duration::from_secs(60)),
    )?;
    assert_eq!(cache.get("greeting")?, Some("hello".to_string()));

    // add stores only when absent; counters are atomic.
    assert!(!cache.add("greeting", "other".to_string(), Expiry::Never)?);
    cache.set("hits", "0".to_string(), Expiry::Never)?;
    assert_eq!(cache.incr("hits", 1)?, Some(1));

    // Backends swap by configuration: any Cache<V> fits in a Box<dyn Cache<V>>.
    let boxed: Box<dyn Cache<String>> = Box::new(cache);
    boxed.delete("greeting")?;
    Ok(())
}
