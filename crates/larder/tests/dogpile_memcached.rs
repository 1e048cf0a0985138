//! The distributed dogpile mutex on a real memcached (started on a free loopback port).
#![cfg(feature = "memcached")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use larder::dogpile::{CachedValue, DistributedMutex, KeyedMutex, MemcachedLockStore, Region};
use larder::memcache::Client;
use larder::memory::MemoryCache;
use larder::testing::memcached::MemcachedServer;
use larder::{Cache, Error};

fn mutex(server: &MemcachedServer, ttl: Duration) -> DistributedMutex<MemcachedLockStore> {
    let client = Client::connect(server.addr()).unwrap();
    DistributedMutex::new(MemcachedLockStore::new(client), ttl)
}

#[test]
fn memcached_lock_excludes_other_owners_and_releases_only_its_own() {
    let server = MemcachedServer::start().expect("memcached starts");
    let ours = mutex(&server, Duration::from_secs(1));
    let theirs = mutex(&server, Duration::from_secs(30));
    let peek = Client::connect(server.addr()).unwrap();

    let guard = ours.try_acquire("k").unwrap().expect("free lock");
    assert!(theirs.try_acquire("k").unwrap().is_none());
    let err = theirs.acquire("k", Duration::from_millis(30)).unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    guard.release().unwrap();
    assert_eq!(
        peek.get("lock:k").unwrap(),
        None,
        "released lock is deleted"
    );

    // A holder that outlives its lock TTL never frees the next owner's lock.
    let late = ours.try_acquire("k").unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let current = theirs
        .try_acquire("k")
        .unwrap()
        .expect("lapsed lock is free");
    late.release().unwrap();
    assert!(
        peek.get("lock:k").unwrap().is_some(),
        "new owner keeps its lock"
    );
    drop(current);
    assert_eq!(peek.get("lock:k").unwrap(), None);
}

#[test]
fn region_over_memcached_lock_runs_one_creator() {
    let server = MemcachedServer::start().expect("memcached starts");
    let backend: Arc<dyn Cache<CachedValue<String>>> =
        Arc::new(MemoryCache::builder().max_entries(100).build());
    let region = Region::builder("mc", backend)
        .mutex(Arc::new(mutex(&server, Duration::from_secs(30))))
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (region, calls, barrier) = (region.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                region.get_or_create("hot", move || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(80));
                    Ok("v".to_owned())
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), "v");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
