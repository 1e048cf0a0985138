//! `MemoryCache`'s eviction listener (every cause, called outside the shard lock so it may
//! use the cache) and its loaders (`get_with`, `try_get_with`: one load per key at a time).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use larder::clock::ManualClock;
use larder::memory::{EvictionCause, MemoryCache};
use larder::{Error, Expiry};

type Seen = Arc<Mutex<Vec<(String, u64, EvictionCause)>>>;

fn recording(max_entries: usize, clock: &ManualClock) -> (MemoryCache<u64>, Seen) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let cache = MemoryCache::builder()
        .max_entries(max_entries)
        .shards(1)
        .clock(Arc::new(clock.clone()))
        .on_evict(move |key, value, cause| log.lock().unwrap().push((key.to_owned(), value, cause)))
        .build();
    (cache, seen)
}

fn take(seen: &Seen) -> Vec<(String, u64, EvictionCause)> {
    std::mem::take(&mut *seen.lock().unwrap())
}

#[test]
fn every_removal_reaches_the_listener_with_its_cause() {
    let clock = ManualClock::new();
    let (c, seen) = recording(4, &clock);
    c.set("a", 1, Expiry::Never).unwrap();
    c.set("a", 2, Expiry::Never).unwrap();
    assert_eq!(take(&seen), [("a".into(), 1, EvictionCause::Replaced)]);
    assert_eq!(c.incr("a", 5).unwrap(), Some(7));
    assert_eq!(take(&seen), [("a".into(), 2, EvictionCause::Replaced)]);
    assert!(c.delete("a").unwrap());
    assert_eq!(take(&seen), [("a".into(), 7, EvictionCause::Removed)]);

    // Expired: found by a read, and reclaimed by a write.
    c.set("t1", 10, Expiry::After(Duration::from_secs(1)))
        .unwrap();
    c.set("t2", 20, Expiry::After(Duration::from_secs(1)))
        .unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.get("t1").unwrap(), None);
    assert_eq!(take(&seen), [("t1".into(), 10, EvictionCause::Expired)]);
    c.set("x", 0, Expiry::Never).unwrap();
    assert_eq!(take(&seen), [("t2".into(), 20, EvictionCause::Expired)]);

    // Evicted: a bound of 4 entries and 10 distinct keys.
    for i in 0..10 {
        c.set(&format!("e{i}"), i, Expiry::Never).unwrap();
    }
    let evicted = take(&seen);
    assert_eq!(evicted.len(), 11 - 4, "{evicted:?}");
    assert!(evicted
        .iter()
        .all(|(_, _, cause)| *cause == EvictionCause::Evicted));
    assert_eq!(c.stats().evictions, evicted.len() as u64);

    c.clear().unwrap();
    let cleared = take(&seen);
    assert_eq!(cleared.len(), 4);
    assert!(cleared
        .iter()
        .all(|(_, _, cause)| *cause == EvictionCause::Removed));
}

#[test]
fn a_value_too_heavy_to_store_reports_the_old_one_as_removed() {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let c: MemoryCache<u64> = MemoryCache::builder()
        .max_weight(100)
        .shards(1)
        .weigher(|_, v: &u64| *v)
        .on_evict(move |key, value, cause| log.lock().unwrap().push((key.to_owned(), value, cause)))
        .build();
    c.set("k", 10, Expiry::Never).unwrap();
    assert!(matches!(
        c.set("k", 500, Expiry::Never),
        Err(Error::ValueTooLarge { .. })
    ));
    assert_eq!(take(&seen), [("k".into(), 10, EvictionCause::Removed)]);
    assert_eq!(c.get("k").unwrap(), None);
}

#[test]
fn the_listener_may_use_the_cache_without_deadlocking() {
    let clock = ManualClock::new();
    let slot: Arc<Mutex<Option<MemoryCache<u64>>>> = Arc::default();
    let inner = Arc::clone(&slot);
    let reentered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&reentered);
    let cache: MemoryCache<u64> = MemoryCache::builder()
        .max_entries(1_000)
        .shards(1)
        .clock(Arc::new(clock.clone()))
        .on_evict(move |key, value, cause| {
            let cache = inner.lock().unwrap().clone();
            match cache {
                // Touch the same shard, even the key being removed (its own writes'
                // removals are left alone, so the listener does not feed itself).
                Some(cache) if key != "log" && cause != EvictionCause::Evicted => {
                    let _ = cache.get(key);
                    cache.set("log", value, Expiry::Never).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        })
        .build();
    *slot.lock().unwrap() = Some(cache.clone());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = cache.clone();
    std::thread::spawn(move || {
        for i in 0..200u64 {
            worker.set(&format!("k{i}"), i, Expiry::Never).unwrap();
            worker.set(&format!("k{i}"), i + 1, Expiry::Never).unwrap();
        }
        done_tx.send(()).unwrap();
    });
    // A deadlock would hang the worker; fail instead of hanging the test run.
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the writer finished: the listener did not deadlock on the cache");
    assert_eq!(
        reentered.load(Ordering::Relaxed),
        200,
        "one call per overwrite"
    );
    assert_eq!(cache.get("log").unwrap(), Some(199));
    *slot.lock().unwrap() = None;
}

#[test]
fn concurrent_get_with_runs_one_loader_per_key() {
    const THREADS: usize = 16;
    let cache: MemoryCache<String> = MemoryCache::new(1_000);
    let loads = AtomicUsize::new(0);
    let arrived = AtomicUsize::new(0);
    let start = Barrier::new(THREADS);
    let values: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    arrived.fetch_add(1, Ordering::SeqCst);
                    cache
                        .get_with("key", Expiry::Never, || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            // Hold the load until every caller has called `get_with`, so
                            // they all miss together (bounded, in case one never comes).
                            let deadline = Instant::now() + Duration::from_secs(10);
                            while arrived.load(Ordering::SeqCst) < THREADS
                                && Instant::now() < deadline
                            {
                                std::thread::yield_now();
                            }
                            "loaded".to_owned()
                        })
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(loads.load(Ordering::SeqCst), 1, "one loader ran");
    assert!(values.iter().all(|v| v == "loaded"));
    assert_eq!(cache.get("key").unwrap().as_deref(), Some("loaded"));
}

#[test]
fn a_failed_load_is_returned_and_not_cached() {
    let clock = ManualClock::new();
    let cache: MemoryCache<u64> = MemoryCache::builder()
        .clock(Arc::new(clock.clone()))
        .build();
    let err = cache
        .try_get_with("k", Expiry::Never, || {
            Err(Error::Unavailable("backend down".into()))
        })
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(cache.get("k").unwrap(), None);
    let ttl = Expiry::After(Duration::from_secs(5));
    assert_eq!(cache.try_get_with("k", ttl, || Ok(7)).unwrap(), 7);
    assert_eq!(
        cache.get_with("k", ttl, || 8).unwrap(),
        7,
        "cached: no second load"
    );
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        cache.get_with("k", ttl, || 9).unwrap(),
        9,
        "expired: loaded again"
    );
}
