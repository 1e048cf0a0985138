//! `AsyncTiered`, the async face of the two-level cache: the shared contract suite (driven
//! through a blocking adapter) over memory + memory and over memory + a real memcached, L1
//! lifetimes bounded by L2's remaining life for `get` and `get_multi` (checked on the
//! injected clock), no stale fill racing a write, and invalidation between two instances.
#![cfg(all(feature = "tokio", feature = "memcached"))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::clock::ManualClock;
use larder::codec::TextCodec;
use larder::invalidation::{InvalidationBus, Stale};
use larder::memcache::{AsyncClient, AsyncMemcachedCache};
use larder::memory::MemoryCache;
use larder::tiered::AsyncTiered;
use larder::{AsyncCache, Cache, Expiry, MultiWrite, Result};
use larder_testing::memcached::MemcachedServer;
use larder_testing::Fixture;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

fn memory(clock: &ManualClock) -> MemoryCache<String> {
    MemoryCache::builder()
        .max_entries(10_000)
        .clock(Arc::new(clock.clone()))
        .build()
}

fn runtime() -> Arc<Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// Drives an async cache from blocking code, so the blocking contract suite runs on it.
struct Blocking<A> {
    rt: Arc<Runtime>,
    inner: A,
}

impl<A: AsyncCache<String>> Cache<String> for Blocking<A> {
    fn get(&self, key: &str) -> Result<Option<String>> {
        self.rt.block_on(self.inner.get(key))
    }
    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, String>> {
        self.rt.block_on(self.inner.get_multi(keys))
    }
    fn get_with_ttl(&self, key: &str) -> Result<Option<(String, Expiry)>> {
        self.rt.block_on(self.inner.get_with_ttl(key))
    }
    fn set(&self, key: &str, value: String, expiry: Expiry) -> Result<()> {
        self.rt.block_on(self.inner.set(key, value, expiry))
    }
    fn set_multi(&self, items: Vec<(&str, String)>, expiry: Expiry) -> Result<MultiWrite> {
        self.rt.block_on(self.inner.set_multi(items, expiry))
    }
    fn add(&self, key: &str, value: String, expiry: Expiry) -> Result<bool> {
        self.rt.block_on(self.inner.add(key, value, expiry))
    }
    fn add_multi(&self, items: Vec<(&str, String)>, expiry: Expiry) -> Result<MultiWrite> {
        self.rt.block_on(self.inner.add_multi(items, expiry))
    }
    fn replace(&self, key: &str, value: String, expiry: Expiry) -> Result<bool> {
        self.rt.block_on(self.inner.replace(key, value, expiry))
    }
    fn replace_multi(&self, items: Vec<(&str, String)>, expiry: Expiry) -> Result<MultiWrite> {
        self.rt.block_on(self.inner.replace_multi(items, expiry))
    }
    fn delete(&self, key: &str) -> Result<bool> {
        self.rt.block_on(self.inner.delete(key))
    }
    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        self.rt.block_on(self.inner.delete_multi(keys))
    }
    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.rt.block_on(self.inner.incr(key, delta))
    }
    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.rt.block_on(self.inner.decr(key, delta))
    }
    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.rt.block_on(self.inner.touch(key, expiry))
    }
    fn clear(&self) -> Result<()> {
        self.rt.block_on(self.inner.clear())
    }
}

fn make_on_memory() -> Fixture {
    let clock = ManualClock::new();
    let l2: Arc<dyn AsyncCache<String>> = Arc::new(memory(&clock));
    let tiered = AsyncTiered::new(memory(&clock), l2, Duration::from_secs(30));
    let advance = clock.clone();
    Fixture {
        cache: Arc::new(Blocking {
            rt: runtime(),
            inner: tiered,
        }),
        advance: Box::new(move |d| advance.advance(d)),
        guard: Box::new(()),
    }
}

mod contract_on_memory {
    larder_testing::contract_tests!(super::make_on_memory);
}

fn make_on_memcached() -> Fixture {
    let server = MemcachedServer::start().unwrap();
    let rt = runtime();
    let l2: Arc<dyn AsyncCache<String>> = Arc::new(AsyncMemcachedCache::new(
        AsyncClient::connect(server.addr()).unwrap(),
        TextCodec,
    ));
    let l1 = MemoryCache::builder().max_entries(10_000).build();
    Fixture {
        cache: Arc::new(Blocking {
            rt,
            inner: AsyncTiered::new(l1, l2, Duration::from_secs(30)),
        }),
        advance: Box::new(std::thread::sleep),
        guard: Box::new(server),
    }
}

mod contract_on_memcached {
    larder_testing::contract_tests!(super::make_on_memcached);
}

#[tokio::test]
async fn l1_never_outlives_l2_entry_nor_the_cap() {
    let clock = ManualClock::new();
    let l2 = memory(&clock);
    let tiered = AsyncTiered::new(memory(&clock), Arc::new(l2.clone()), Duration::from_secs(5));

    l2.set("short", "v".into(), Expiry::secs(10)).unwrap();
    clock.advance(Duration::from_secs(8));
    assert_eq!(tiered.get("short").await.unwrap().as_deref(), Some("v"));
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
    assert_eq!(tiered.get("short").await.unwrap(), None);

    l2.set("forever", "v".into(), Expiry::Never).unwrap();
    assert_eq!(tiered.get("forever").await.unwrap().as_deref(), Some("v"));
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        tiered.l1().get("forever").unwrap(),
        None,
        "L1 copy capped at 5 s"
    );
    assert_eq!(tiered.get("forever").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn get_multi_fills_l1_for_each_keys_remaining_life() {
    let clock = ManualClock::new();
    let l2 = memory(&clock);
    let tiered = AsyncTiered::new(
        memory(&clock),
        Arc::new(l2.clone()),
        Duration::from_secs(30),
    );
    l2.set("a", "1".into(), Expiry::secs(10)).unwrap();
    l2.set("b", "2".into(), Expiry::secs(20)).unwrap();
    l2.set("c", "3".into(), Expiry::Never).unwrap();
    tiered.set("d", "4".into(), Expiry::Never).await.unwrap(); // already in L1
    clock.advance(Duration::from_secs(4));

    let got = tiered.get_multi(&["a", "b", "c", "d", "x"]).await.unwrap();
    let want: HashMap<String, String> = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    assert_eq!(got, want);
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
    assert_eq!(tiered.get("c").await.unwrap().as_deref(), Some("3"));
}

/// An async L2 whose `get_with_ttl` stops after reading, until the test lets it go.
struct PausingL2 {
    inner: MemoryCache<String>,
    read_done: Notify,
    go_on: Notify,
}

#[async_trait::async_trait]
impl AsyncCache<String> for PausingL2 {
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(String, Expiry)>> {
        let read = self.inner.get_with_ttl(key);
        self.read_done.notify_one();
        self.go_on.notified().await;
        read
    }
    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.inner.get(key)
    }
    async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, String>> {
        self.inner.get_multi(keys)
    }
    async fn set(&self, key: &str, value: String, expiry: Expiry) -> Result<()> {
        self.inner.set(key, value, expiry)
    }
    async fn set_multi(&self, items: Vec<(&str, String)>, expiry: Expiry) -> Result<MultiWrite> {
        self.inner.set_multi(items, expiry)
    }
    async fn add(&self, key: &str, value: String, expiry: Expiry) -> Result<bool> {
        self.inner.add(key, value, expiry)
    }
    async fn add_multi(&self, items: Vec<(&str, String)>, expiry: Expiry) -> Result<MultiWrite> {
        self.inner.add_multi(items, expiry)
    }
    async fn replace(&self, key: &str, value: String, expiry: Expiry) -> Result<bool> {
        self.inner.replace(key, value, expiry)
    }
    async fn replace_multi(
        &self,
        items: Vec<(&str, String)>,
        expiry: Expiry,
    ) -> Result<MultiWrite> {
        self.inner.replace_multi(items, expiry)
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key)
    }
    async fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        self.inner.delete_multi(keys)
    }
    async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.inner.incr(key, delta)
    }
    async fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.inner.decr(key, delta)
    }
    async fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.inner.touch(key, expiry)
    }
    async fn clear(&self) -> Result<()> {
        self.inner.clear()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_racing_a_write_does_not_resurrect_the_old_value() {
    let clock = ManualClock::new();
    let l2 = Arc::new(PausingL2 {
        inner: memory(&clock),
        read_done: Notify::new(),
        go_on: Notify::new(),
    });
    let tiered = Arc::new(AsyncTiered::new(
        memory(&clock),
        l2.clone(),
        Duration::from_secs(60),
    ));
    l2.inner.set("k", "old".into(), Expiry::Never).unwrap();
    for (label, multi) in [("get", false), ("get_multi", true)] {
        let reader = Arc::clone(&tiered);
        let read = tokio::spawn(async move {
            if multi {
                reader.get_multi(&["k"]).await.unwrap().remove("k")
            } else {
                reader.get("k").await.unwrap()
            }
        });
        l2.read_done.notified().await;
        tiered.set("k", "new".into(), Expiry::Never).await.unwrap();
        tiered.l1().delete("k").unwrap(); // so only a stale fill could put "k" back
        l2.go_on.notify_one();
        assert_eq!(
            read.await.unwrap().as_deref(),
            Some("old"),
            "{label} read L2 before the write"
        );
        assert_eq!(
            tiered.l1().get("k").unwrap(),
            None,
            "{label} did not put the old value in L1"
        );
        l2.inner.set("k", "old".into(), Expiry::Never).unwrap();
    }
}

/// An in-process bus between the instances of one test: each publish reaches every other
/// subscriber before it returns.
#[derive(Default)]
struct LocalBus {
    subscribers: Mutex<Vec<(usize, OnRemote)>>,
}

type OnRemote = Box<dyn Fn(Stale) + Send + Sync>;

struct BusEnd {
    bus: Arc<LocalBus>,
    id: usize,
}

impl InvalidationBus for BusEnd {
    fn publish(&self, what: &Stale) -> Result<()> {
        for (id, deliver) in self.bus.subscribers.lock().unwrap().iter() {
            if *id != self.id {
                deliver(what.clone());
            }
        }
        Ok(())
    }
    fn subscribe(&self, on_remote: OnRemote) -> Result<()> {
        self.bus
            .subscribers
            .lock()
            .unwrap()
            .push((self.id, on_remote));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_evicts_the_others_l1() {
    let clock = ManualClock::new();
    let l2: Arc<dyn AsyncCache<String>> = Arc::new(memory(&clock));
    let bus = Arc::new(LocalBus::default());
    let instance = |id| {
        let end = BusEnd {
            bus: Arc::clone(&bus),
            id,
        };
        AsyncTiered::new(memory(&clock), Arc::clone(&l2), Duration::from_secs(600))
            .with_invalidation(Arc::new(end))
            .unwrap()
    };
    let (a, b) = (instance(1), instance(2));

    b.set("user:1", "ada".into(), Expiry::Never).await.unwrap();
    assert_eq!(a.get("user:1").await.unwrap().as_deref(), Some("ada"));
    assert!(a.l1().get("user:1").unwrap().is_some(), "a holds a copy");
    b.set("user:1", "grace".into(), Expiry::Never)
        .await
        .unwrap();
    assert_eq!(a.l1().get("user:1").unwrap(), None, "evicted by b's set");
    assert!(b.l1().get("user:1").unwrap().is_some(), "b keeps its own");
    assert_eq!(a.get("user:1").await.unwrap().as_deref(), Some("grace"));

    b.delete_multi(&["user:1"]).await.unwrap();
    assert_eq!(a.l1().get("user:1").unwrap(), None, "evicted by b's delete");
    a.set("own", "x".into(), Expiry::Never).await.unwrap();
    b.clear().await.unwrap();
    assert_eq!(a.l1().get("own").unwrap(), None, "cleared by b's clear");
}

#[tokio::test]
async fn over_memcached_l1_expires_no_later_than_the_item() {
    let server = MemcachedServer::start().unwrap();
    let l2 = AsyncMemcachedCache::new(AsyncClient::connect(server.addr()).unwrap(), TextCodec);
    l2.set("a", "1".into(), Expiry::secs(10)).await.unwrap();
    l2.set("b", "2".into(), Expiry::secs(10)).await.unwrap();
    l2.set("forever", "f".into(), Expiry::Never).await.unwrap();
    let clock = ManualClock::new();
    let cap = Duration::from_secs(600);
    let tiered = AsyncTiered::new(memory(&clock), Arc::new(l2), cap);

    assert_eq!(tiered.get("a").await.unwrap().as_deref(), Some("1"));
    assert_eq!(tiered.get_multi(&["b", "forever"]).await.unwrap().len(), 2);
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
