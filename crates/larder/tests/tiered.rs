//! `Tiered`: the shared contract suite (L2 memory on a manual clock, L2 memcached, and L2
//! Redis), L1 lifetimes bounded by L2's remaining life and the cap (for `get` and
//! `get_multi`, over memory and over memcached), the cap-only fill of an L2 that cannot tell,
//! no stale fill racing a write, and cross-instance invalidation over Redis pub/sub between
//! two instances. The async face has the same checks in `tiered_async.rs`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use larder::clock::ManualClock;
use larder::memory::MemoryCache;
use larder::tiered::Tiered;
use larder::{Cache, Expiry, MultiWrite, Result};
use larder_testing::Fixture;

fn memory(clock: &ManualClock) -> MemoryCache<String> {
    MemoryCache::builder()
        .max_entries(10_000)
        .clock(Arc::new(clock.clone()))
        .build()
}

fn make_on_memory() -> Fixture {
    let clock = ManualClock::new();
    let l2: Arc<dyn Cache<String>> = Arc::new(memory(&clock));
    let tiered = Tiered::new(memory(&clock), l2, Duration::from_secs(30));
    let advance = clock.clone();
    Fixture {
        cache: Arc::new(tiered),
        advance: Box::new(move |d| advance.advance(d)),
        guard: Box::new(()),
    }
}

mod contract_on_memory {
    larder_testing::contract_tests!(super::make_on_memory);
}

#[test]
fn l1_never_outlives_l2_entry_nor_the_cap() {
    let clock = ManualClock::new();
    let l2 = Arc::new(memory(&clock));
    let tiered = Tiered::new(memory(&clock), l2.clone(), Duration::from_secs(5));

    l2.set("short", "v".into(), Expiry::secs(10)).unwrap();
    clock.advance(Duration::from_secs(8));
    assert_eq!(tiered.get("short").unwrap().as_deref(), Some("v"));
    assert_eq!(
        tiered.l1().get("short").unwrap().as_deref(),
        Some("v"),
        "L1 filled"
    );
    clock.advance(Duration::from_secs(3));
    assert_eq!(
        tiered.l1().get("short").unwrap(),
        None,
        "L1 copy died with the L2 entry"
    );
    assert_eq!(tiered.get("short").unwrap(), None);

    l2.set("forever", "v".into(), Expiry::Never).unwrap();
    assert_eq!(tiered.get("forever").unwrap().as_deref(), Some("v"));
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        tiered.l1().get("forever").unwrap(),
        None,
        "L1 copy capped at 5 s"
    );
    assert_eq!(tiered.get("forever").unwrap().as_deref(), Some("v"));
}

/// An L2 that, in the middle of a read, lets another caller write the same key; with
/// `tells_life` false it cannot report remaining life.
struct RacingL2 {
    inner: MemoryCache<String>,
    during_read: OnceLock<Box<dyn Fn() + Send + Sync>>,
    tells_life: bool,
}

impl Cache<String> for RacingL2 {
    fn get_with_ttl(&self, key: &str) -> Result<Option<(String, Expiry)>> {
        if !self.tells_life {
            return Err(larder::Error::Unsupported("no life".into()));
        }
        let read = self.inner.get_with_ttl(key);
        if let Some(hook) = self.during_read.get() {
            hook();
        }
        read
    }
    fn get(&self, key: &str) -> Result<Option<String>> {
        self.inner.get(key)
    }
    fn get_multi(&self, keys: &[&str]) -> Result<std::collections::HashMap<String, String>> {
        self.inner.get_multi(keys)
    }
    fn set(&self, key: &str, value: String, expiry: Expiry) -> Result<()> {
        self.inner.set(key, value, expiry)
    }
    fn set_multi(&self, items: Vec<(&str, String)>, expiry: Expiry) -> Result<MultiWrite> {
        self.inner.set_multi(items, expiry)
    }
    fn add(&self, key: &str, value: String, expiry: Expiry) -> Result<bool> {
        self.inner.add(key, value, expiry)
    }
    fn add_multi(&self, items: Vec<(&str, String)>, expiry: Expiry) -> Result<MultiWrite> {
        self.inner.add_multi(items, expiry)
    }
    fn replace(&self, key: &str, value: String, expiry: Expiry) -> Result<bool> {
        self.inner.replace(key, value, expiry)
    }
    fn replace_multi(&self, items: Vec<(&str, String)>, expiry: Expiry) -> Result<MultiWrite> {
        self.inner.replace_multi(items, expiry)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key)
    }
    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        self.inner.delete_multi(keys)
    }
    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.inner.incr(key, delta)
    }
    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.inner.decr(key, delta)
    }
    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.inner.touch(key, expiry)
    }
    fn clear(&self) -> Result<()> {
        self.inner.clear()
    }
}

#[test]
fn a_fill_racing_a_write_does_not_resurrect_the_old_value() {
    let clock = ManualClock::new();
    let l2 = Arc::new(RacingL2 {
        inner: memory(&clock),
        during_read: OnceLock::new(),
        tells_life: true,
    });
    let tiered = Arc::new(Tiered::new(
        memory(&clock),
        l2.clone(),
        Duration::from_secs(60),
    ));
    tiered.set("k", "old".into(), Expiry::Never).unwrap();
    tiered.l1().delete("k").unwrap(); // force the next read to go to L2
    let writer = Arc::downgrade(&tiered);
    let _ = l2.during_read.set(Box::new(move || {
        if let Some(t) = writer.upgrade() {
            // Only once: the hook runs again on later reads.
            if t.l1().get("done").unwrap().is_none() {
                t.l1().set("done", "1".into(), Expiry::Never).unwrap();
                t.set("k", "new".into(), Expiry::Never).unwrap();
                t.l1().delete("k").unwrap();
            }
        }
    }));
    assert_eq!(
        tiered.get("k").unwrap().as_deref(),
        Some("old"),
        "the read saw the old value"
    );
    assert_eq!(
        tiered.l1().get("k").unwrap(),
        None,
        "but did not put it in L1"
    );
    assert_eq!(tiered.get("k").unwrap().as_deref(), Some("new"));
}

#[test]
fn get_multi_fills_l1_for_each_keys_remaining_life() {
    let clock = ManualClock::new();
    let l2 = Arc::new(memory(&clock));
    let tiered = Tiered::new(memory(&clock), l2.clone(), Duration::from_secs(30));
    l2.set("a", "1".into(), Expiry::secs(10)).unwrap();
    l2.set("b", "2".into(), Expiry::secs(20)).unwrap();
    l2.set("c", "3".into(), Expiry::Never).unwrap();
    tiered.set("d", "4".into(), Expiry::Never).unwrap(); // already in L1
    clock.advance(Duration::from_secs(4));

    let got = tiered.get_multi(&["a", "b", "c", "d", "x"]).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got["a"], "1");
    assert_eq!(got["d"], "4");
    assert_eq!(tiered.l1().get_multi(&["a", "b", "c"]).unwrap().len(), 3);

    // "a" had 6 s left in L2: L1 keeps it until then, not a moment longer.
    clock.advance(Duration::from_millis(5_999));
    assert!(tiered.l1().get("a").unwrap().is_some());
    clock.advance(Duration::from_millis(1));
    assert_eq!(l2.get("a").unwrap(), None, "L2 entry expired");
    assert_eq!(tiered.l1().get("a").unwrap(), None, "and L1's with it");
    // "b" had 16 s left, "c" none: L1 keeps "c" for the cap (30 s).
    clock.advance(Duration::from_secs(10));
    assert_eq!(tiered.l1().get("b").unwrap(), None);
    assert!(tiered.l1().get("c").unwrap().is_some());
    clock.advance(Duration::from_secs(20));
    assert_eq!(tiered.l1().get("c").unwrap(), None, "capped at 30 s");
    assert_eq!(tiered.get("c").unwrap().as_deref(), Some("3"));
}

#[test]
fn an_l2_that_cannot_tell_its_life_is_kept_for_the_cap() {
    let clock = ManualClock::new();
    let l2 = Arc::new(RacingL2 {
        inner: memory(&clock),
        during_read: OnceLock::new(),
        tells_life: false,
    });
    let tiered = Tiered::new(memory(&clock), l2.clone(), Duration::from_secs(30));
    l2.inner.set("a", "1".into(), Expiry::secs(10)).unwrap();
    l2.inner.set("b", "2".into(), Expiry::secs(10)).unwrap();
    assert_eq!(tiered.get("a").unwrap().as_deref(), Some("1"));
    assert_eq!(tiered.get_multi(&["b"]).unwrap().len(), 1);
    for key in ["a", "b"] {
        assert_eq!(
            tiered.l1().get_with_ttl(key).unwrap(),
            Some((l2.inner.get(key).unwrap().unwrap(), Expiry::secs(30))),
            "{key}: kept for the cap"
        );
    }
}

#[cfg(feature = "memcached")]
mod on_memcached {
    use super::*;
    use larder::codec::TextCodec;
    use larder::memcache::{Client, MemcachedCache};
    use larder_testing::memcached::MemcachedServer;

    fn make_on_memcached() -> Fixture {
        let server = MemcachedServer::start().unwrap();
        let l2: Arc<dyn Cache<String>> = Arc::new(MemcachedCache::new(
            Client::connect(server.addr()).unwrap(),
            TextCodec,
        ));
        let l1 = MemoryCache::builder().max_entries(10_000).build();
        Fixture {
            cache: Arc::new(Tiered::new(l1, l2, Duration::from_secs(30))),
            advance: Box::new(std::thread::sleep),
            guard: Box::new(server),
        }
    }

    mod contract_on_memcached {
        larder_testing::contract_tests!(super::make_on_memcached);
    }

    #[test]
    fn l1_expires_no_later_than_the_item() {
        let server = MemcachedServer::start().unwrap();
        let l2 = MemcachedCache::new(Client::connect(server.addr()).unwrap(), TextCodec);
        l2.set("a", "1".into(), Expiry::secs(10)).unwrap();
        l2.set("b", "2".into(), Expiry::secs(10)).unwrap();
        l2.set("forever", "f".into(), Expiry::Never).unwrap();
        let clock = ManualClock::new();
        let cap = Duration::from_secs(600);
        let tiered = Tiered::new(memory(&clock), Arc::new(l2), cap);

        assert_eq!(tiered.get("a").unwrap().as_deref(), Some("1"));
        assert_eq!(tiered.get_multi(&["b", "forever"]).unwrap().len(), 2);
        for key in ["a", "b"] {
            match tiered.l1().get_with_ttl(key).unwrap() {
                Some((_, Expiry::After(left))) => assert!(
                    left < Duration::from_secs(10) && left >= Duration::from_secs(7),
                    "{key}: L1 keeps its copy {left:?}, within the item's 10 s"
                ),
                other => panic!("{key}: L1 holds {other:?}"),
            }
        }
        assert_eq!(
            tiered.l1().get_with_ttl("forever").unwrap(),
            Some(("f".into(), Expiry::After(cap)))
        );
        clock.advance(Duration::from_secs(9));
        assert_eq!(tiered.l1().get_multi(&["a", "b"]).unwrap().len(), 0);
        assert!(tiered.l1().get("forever").unwrap().is_some());
    }
}

#[cfg(feature = "redis")]
mod on_redis {
    use super::*;
    use larder::codec::TextCodec;
    use larder::dogpile::{DistributedMutex, KeyedMutex, LockStore, Region};
    use larder::redis::{RedisCache, RedisConfig, RedisInvalidation, RedisLockStore};
    use larder_testing::redis::RedisServer;
    use std::time::Instant;

    fn config(server: &RedisServer, prefix: &str) -> RedisConfig {
        RedisConfig::new(server.url())
            .prefix(prefix)
            .timeouts(Duration::from_millis(500), Duration::from_millis(500))
    }

    fn make_on_redis() -> Fixture {
        let server = RedisServer::start().unwrap();
        let l2: Arc<dyn Cache<String>> =
            Arc::new(RedisCache::new(config(&server, "tiered:"), TextCodec).unwrap());
        let l1 = MemoryCache::builder().max_entries(10_000).build();
        Fixture {
            cache: Arc::new(Tiered::new(l1, l2, Duration::from_secs(30))),
            advance: Box::new(std::thread::sleep),
            guard: Box::new(server),
        }
    }

    mod contract_on_redis {
        larder_testing::contract_tests!(super::make_on_redis);
    }

    fn instance(server: &RedisServer) -> Tiered<String> {
        let l2: Arc<dyn Cache<String>> =
            Arc::new(RedisCache::new(config(server, "shared:"), TextCodec).unwrap());
        let bus = RedisInvalidation::new(config(server, ""), "larder-test-invalidation").unwrap();
        Tiered::new(MemoryCache::new(1000), l2, Duration::from_secs(600))
            .with_invalidation(Arc::new(bus))
            .unwrap()
    }

    fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !check() {
            assert!(Instant::now() < deadline, "{what}: not within 3 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_write_on_one_instance_evicts_the_others_l1() {
        let server = RedisServer::start().unwrap();
        let (a, b) = (instance(&server), instance(&server));
        b.set("user:1", "ada".into(), Expiry::Never).unwrap();
        // b's own invalidation message may reach a during a's first read, and a read that
        // overlaps an invalidation rightly does not fill L1; once quiet, a read fills it.
        eventually("a holds an L1 copy", || {
            assert_eq!(a.get("user:1").unwrap().as_deref(), Some("ada"));
            a.l1().get("user:1").unwrap().is_some()
        });

        b.set("user:1", "grace".into(), Expiry::Never).unwrap();
        eventually("a's L1 copy evicted after b's set", || {
            a.l1().get("user:1").unwrap().is_none()
        });
        assert_eq!(a.get("user:1").unwrap().as_deref(), Some("grace"));

        b.delete("user:1").unwrap();
        eventually("a misses after b's delete", || {
            a.get("user:1").unwrap().is_none()
        });

        b.set("probe", "p".into(), Expiry::Never).unwrap();
        eventually("a caches the probe", || {
            a.get("probe").unwrap();
            a.l1().get("probe").unwrap().is_some()
        });
        a.set("own", "x".into(), Expiry::Never).unwrap();
        // Published after a's own message, so once a has evicted the probe it has also
        // received (and ignored) its own message about "own".
        b.set("probe", "q".into(), Expiry::Never).unwrap();
        eventually("a evicts the probe", || {
            a.l1().get("probe").unwrap().is_none()
        });
        assert!(
            a.l1().get("own").unwrap().is_some(),
            "own writes do not evict own L1"
        );

        a.get("user:2").unwrap();
        b.set("user:2", "x".into(), Expiry::Never).unwrap();
        assert_eq!(a.get("user:2").unwrap().as_deref(), Some("x"));
        b.clear().unwrap();
        eventually("a's L1 cleared after b's clear", || {
            a.l1().get("own").unwrap().is_none()
        });
    }

    #[test]
    fn redis_lock_store_owner_token_and_ttl() {
        let server = RedisServer::start().unwrap();
        let store = RedisLockStore::new(config(&server, "locks:")).unwrap();
        assert!(store
            .try_acquire("k", "me", Duration::from_millis(300))
            .unwrap());
        assert!(!store
            .try_acquire("k", "you", Duration::from_secs(5))
            .unwrap());
        assert!(
            !store.release("k", "you").unwrap(),
            "only the owner releases"
        );
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            store
                .try_acquire("k", "you", Duration::from_secs(5))
                .unwrap(),
            "TTL lapsed"
        );
        assert!(
            !store.release("k", "me").unwrap(),
            "a late holder cannot free the new lock"
        );
        assert!(store.release("k", "you").unwrap());

        let mutex = DistributedMutex::new(store, Duration::from_secs(5));
        let guard = mutex.acquire("job", Duration::from_millis(100)).unwrap();
        assert!(mutex.try_acquire("job").unwrap().is_none());
        guard.release().unwrap();
        assert!(mutex.try_acquire("job").unwrap().is_some());
    }

    #[test]
    fn region_with_redis_mutex_runs_one_creator_for_many_threads() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let server = RedisServer::start().unwrap();
        let backend = Arc::new(MemoryCache::<larder::dogpile::CachedValue<String>>::new(
            100,
        ));
        let mutex = DistributedMutex::new(
            RedisLockStore::new(config(&server, "locks:")).unwrap(),
            Duration::from_secs(5),
        );
        let region = Arc::new(
            Region::<String>::builder("users", backend)
                .mutex(Arc::new(mutex))
                .build(),
        );
        let calls = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..16 {
                let (region, calls) = (region.clone(), calls.clone());
                s.spawn(move || {
                    let value = region
                        .get_or_create("hot", move || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            Ok("made".to_string())
                        })
                        .unwrap();
                    assert_eq!(value, "made");
                });
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
