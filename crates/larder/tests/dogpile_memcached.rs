//! The distributed dogpile mutex on a real memcached (started on a free loopback port).
#![cfg(feature = "memcached")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use larder::codec::TextCodec;
use larder::dogpile::{CachedValue, DistributedMutex, KeyedMutex, Lookup, Region};
use larder::memcache::{Client, MemcachedLockStore, MetaRegion};
use larder::memory::MemoryCache;
use larder::Error;
use larder_testing::memcached::MemcachedServer;

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
    let backend = MemoryCache::<CachedValue<String>>::new(100);
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

fn meta_region(server: &MemcachedServer) -> MetaRegion<String, TextCodec> {
    let client = Client::connect(server.addr()).unwrap();
    MetaRegion::new(client, TextCodec, "meta", Duration::from_secs(300))
}

#[test]
fn meta_region_cold_key_16_threads_one_creator_call() {
    let server = MemcachedServer::start().expect("memcached starts");
    let region = Arc::new(meta_region(&server));
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (region, calls, barrier) = (region.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                region.get_or_create("hot", || {
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

#[test]
fn meta_region_invalidation_serves_stale_while_one_recreates() {
    let server = MemcachedServer::start().expect("memcached starts");
    let region = Arc::new(meta_region(&server));
    assert_eq!(region.get_or_create("k", || Ok("v1".into())).unwrap(), "v1");
    assert!(region.invalidate("k").unwrap());

    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let winner = {
        let region = region.clone();
        std::thread::spawn(move || {
            region.get_or_create("k", move || {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok("v2".to_owned())
            })
        })
    };
    entered_rx.recv().unwrap();
    let other = region
        .get_or_create("k", || panic!("second creator"))
        .unwrap();
    assert_eq!(other, "v1", "others get the stale value at once");
    release_tx.send(()).unwrap();
    assert_eq!(winner.join().unwrap().unwrap(), "v2");
    assert_eq!(region.get_or_create("k", || panic!("fresh")).unwrap(), "v2");
}

#[test]
fn meta_region_failed_creator_frees_the_placeholder() {
    let server = MemcachedServer::start().expect("memcached starts");
    let region = meta_region(&server).lock_wait(Duration::from_millis(50));
    let err = region
        .get_or_create("k", || Err(Error::user("backend down")))
        .unwrap_err();
    assert!(err.to_string().contains("backend down"), "{err}");
    // No placeholder left behind: the next caller wins at once instead of waiting.
    assert_eq!(region.get_or_create("k", || Ok("v".into())).unwrap(), "v");
    assert!(region.delete("k").unwrap());
}

#[test]
fn meta_region_recaches_early_by_one_caller() {
    let server = MemcachedServer::start().expect("memcached starts");
    // Every value is inside the recache window (300 s TTL < 400 s): the next read recaches.
    let region = Arc::new(meta_region(&server).recache_before(Duration::from_secs(400)));
    assert_eq!(region.get_or_create("k", || Ok("v1".into())).unwrap(), "v1");
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let winner = {
        let region = region.clone();
        std::thread::spawn(move || {
            region.get_or_create("k", move || {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok("v2".to_owned())
            })
        })
    };
    entered_rx.recv().unwrap();
    let other = region
        .get_or_create("k", || panic!("second recache"))
        .unwrap();
    assert_eq!(other, "v1");
    release_tx.send(()).unwrap();
    assert_eq!(winner.join().unwrap().unwrap(), "v2");
}

const CHILD_ENV: &str = "LARDER_DOGPILE_MEMCACHED_CHILD";

/// Child mode of `four_processes_share_a_memcached_lock`: does nothing unless started by it.
/// The value, the lock and the count of creator calls all live on the shared memcached.
#[test]
fn memcached_lock_child() {
    let Ok(addr) = std::env::var(CHILD_ENV) else {
        return;
    };
    let client = Client::connect(&addr).unwrap();
    let mutex = DistributedMutex::new(
        MemcachedLockStore::new(client.clone()),
        Duration::from_secs(10),
    );
    let lock = larder::dogpile::Lock::new(&mutex).wait(Duration::from_secs(20));
    let value = lock
        .get(
            "shared-key",
            || {
                client
                    .incr("creator-calls", 1)
                    .unwrap()
                    .expect("counter exists");
                std::thread::sleep(Duration::from_millis(200));
                client
                    .set("value", b"made", 0, larder::Expiry::Never)
                    .unwrap();
                Ok("made".to_owned())
            },
            || {
                Ok(match client.get("value").unwrap() {
                    Some((v, _)) => Lookup::Value {
                        value: String::from_utf8(v).unwrap(),
                        created_at: Duration::ZERO,
                    },
                    None => Lookup::NeedRegeneration,
                })
            },
        )
        .unwrap();
    assert_eq!(value, "made");
}

#[test]
fn four_processes_share_a_memcached_lock() {
    let server = MemcachedServer::start().unwrap();
    let client = Client::connect(server.addr()).unwrap();
    client
        .set("creator-calls", b"0", 0, larder::Expiry::Never)
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "memcached_lock_child", "--test-threads=1"])
                .env(CHILD_ENV, server.addr())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let calls = client.get("creator-calls").unwrap().unwrap().0;
    assert_eq!(
        String::from_utf8(calls).unwrap(),
        "1",
        "one creator call across 4 processes"
    );
    assert_eq!(client.get("value").unwrap().unwrap().0, b"made");
}
