//! `MemoryCache` runs the shared contract suite on a manual clock, plus checks of its own:
//! counters, bounds (entries and weight, across shards), TTL reclamation on writes, and a
//! hit-ratio comparison against LRU on Zipf traces.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use larder::clock::ManualClock;
use larder::memory::{MemoryCache, MemoryStats};
use larder::{Error, Expiry};
use larder_testing::Fixture;

fn make() -> Fixture {
    let clock = ManualClock::new();
    let cache: MemoryCache<String> = MemoryCache::builder()
        .max_entries(10_000)
        .clock(Arc::new(clock.clone()))
        .build();
    Fixture {
        cache: Arc::new(cache),
        advance: Box::new(move |by| clock.advance(by)),
        guard: Box::new(()),
    }
}

larder_testing::contract_tests!(make);

fn manual(max_entries: usize, shards: usize) -> (MemoryCache<String>, ManualClock) {
    let clock = ManualClock::new();
    let cache = MemoryCache::builder()
        .max_entries(max_entries)
        .shards(shards)
        .clock(Arc::new(clock.clone()))
        .build();
    (cache, clock)
}

fn s(v: &str) -> String {
    v.to_owned()
}

#[test]
fn stats_count_hits_misses_inserts_and_entries() {
    let (c, _) = manual(100, 4);
    assert_eq!(c.stats(), MemoryStats::default());
    c.set("a", s("1"), Expiry::Never).unwrap();
    c.set("a", s("2"), Expiry::Never).unwrap();
    assert!(c.add("b", s("1"), Expiry::Never).unwrap());
    assert!(!c.add("b", s("x"), Expiry::Never).unwrap());
    assert!(c.replace("b", s("3"), Expiry::Never).unwrap());
    assert_eq!(c.get("a").unwrap(), Some(s("2")));
    assert_eq!(c.get("zz").unwrap(), None);
    let got = c.get_multi(&["a", "b", "nope"]).unwrap();
    assert_eq!(got.len(), 2);
    let st = c.stats();
    assert_eq!(st.hits, 3);
    assert_eq!(st.misses, 2);
    assert_eq!(st.inserts, 4, "two sets, one add, one replace");
    assert_eq!(st.entries, 2);
    assert_eq!(st.weight, 2, "no weigher: each entry weighs 1");
    assert_eq!(st.evictions, 0);
    assert!(c.delete("a").unwrap());
    assert_eq!(c.stats().entries, 1);
    c.clear().unwrap();
    assert_eq!(c.stats().entries, 0);
    assert_eq!(c.stats().hits, 3, "clear keeps the counters");
}

#[test]
fn entry_bound_holds_across_shards() {
    for shards in [1, 3, 8] {
        let (c, _) = manual(100, shards);
        for i in 0..5_000 {
            c.set(&format!("k{i}"), i.to_string(), Expiry::Never)
                .unwrap();
            let st = c.stats();
            assert!(
                st.entries <= 100,
                "{} entries with {shards} shards",
                st.entries
            );
        }
        let st = c.stats();
        assert_eq!(st.evictions + st.entries, 5_000);
        assert!(st.entries >= 90, "budget is used: {} entries", st.entries);
    }
}

#[test]
fn weight_bound_holds_and_too_heavy_values_are_refused() {
    let cache: MemoryCache<String> = MemoryCache::builder()
        .max_weight(1_000)
        .shards(4)
        .weigher(|key, value: &String| (key.len() + value.len()) as u64)
        .build();
    assert_eq!(cache.shard_count(), 4);
    for i in 0..2_000 {
        let value = "x".repeat(i % 50);
        cache.set(&format!("w{i}"), value, Expiry::Never).unwrap();
        let st = cache.stats();
        assert!(st.weight <= 1_000, "weight {}", st.weight);
    }
    assert!(cache.stats().evictions > 0);
    // Each shard holds a quarter of the budget; a heavier value is an error, and the old
    // value of its key is not left behind to be read stale.
    cache.set("big", s("small"), Expiry::Never).unwrap();
    match cache.set("big", "y".repeat(400), Expiry::Never) {
        Err(Error::ValueTooLarge { size, limit }) => {
            assert_eq!(size, 403);
            assert_eq!(limit, Some(250));
        }
        other => panic!("want ValueTooLarge, got {other:?}"),
    }
    assert_eq!(cache.get("big").unwrap(), None);
    let batch = vec![("m1", s("ok")), ("m2", "z".repeat(400))];
    assert!(cache.set_multi(batch, Expiry::Never).is_err());
    assert_eq!(
        cache.get("m1").unwrap(),
        None,
        "a refused batch stores nothing"
    );
}

#[test]
fn zero_entries_stores_nothing() {
    let (c, _) = manual(0, 4);
    c.set("a", s("1"), Expiry::Never).unwrap();
    assert_eq!(c.get("a").unwrap(), None);
    assert_eq!(c.stats().entries, 0);
}

#[test]
fn expired_entries_are_reclaimed_by_writes_without_reads() {
    let (c, clock) = manual(10_000, 1);
    for i in 0..50 {
        c.set(
            &format!("e{i}"),
            s("v"),
            Expiry::After(Duration::from_secs(5)),
        )
        .unwrap();
    }
    c.set("keep", s("v"), Expiry::Never).unwrap();
    assert_eq!(c.stats().entries, 51);
    clock.advance(Duration::from_secs(6));
    // Writes to unrelated keys only; nothing reads the expired keys.
    for i in 0..20 {
        c.set(&format!("w{i}"), s("v"), Expiry::Never).unwrap();
    }
    let st = c.stats();
    assert_eq!(st.expirations, 50);
    assert_eq!(st.entries, 21);
    assert_eq!(st.misses, 0, "reclaimed without a read");
}

#[test]
fn expired_entry_is_never_returned_and_counted_once() {
    let (c, clock) = manual(100, 2);
    c.set("k", s("v"), Expiry::After(Duration::from_millis(1500)))
        .unwrap();
    clock.advance(Duration::from_millis(1499));
    assert_eq!(c.get("k").unwrap(), Some(s("v")));
    clock.advance(Duration::from_millis(1));
    assert_eq!(c.get("k").unwrap(), None);
    assert_eq!(c.get("k").unwrap(), None);
    let st = c.stats();
    assert_eq!((st.expirations, st.entries, st.misses), (1, 0, 2));
    assert!(!c.touch("k", Expiry::Never).unwrap());
    assert_eq!(c.incr("k", 1).unwrap(), None);
}

#[test]
fn multi_writes_report_keys_in_input_order() {
    let (c, _) = manual(1_000, 8);
    let keys = ["zeta", "alpha", "mid", "beta", "omega"];
    let w = c
        .set_multi(keys.iter().map(|k| (*k, s("v"))).collect(), Expiry::Never)
        .unwrap();
    assert_eq!(w.applied, keys.to_vec());
    c.delete("mid").unwrap();
    let w = c
        .replace_multi(keys.iter().map(|k| (*k, s("r"))).collect(), Expiry::Never)
        .unwrap();
    assert_eq!(w.applied, vec!["zeta", "alpha", "beta", "omega"]);
    assert_eq!(w.not_applied, vec!["mid"]);
    let w = c.delete_multi(&["omega", "mid", "zeta"]).unwrap();
    assert_eq!(w.applied, vec!["omega", "zeta"]);
    assert_eq!(w.not_applied, vec!["mid"]);
}

#[test]
fn zero_ttl_is_never_returned() {
    let (c, _) = manual(100, 1);
    c.set("z", s("v"), Expiry::After(Duration::ZERO)).unwrap();
    assert_eq!(c.get("z").unwrap(), None);
    assert!(c.add("z", s("w"), Expiry::Never).unwrap());
    assert_eq!(c.get("z").unwrap(), Some(s("w")));
}

#[test]
fn counters_keep_remaining_ttl_wrap_and_type() {
    let (c, clock) = manual(100, 1);
    c.set("n", s("5"), Expiry::After(Duration::from_secs(10)))
        .unwrap();
    clock.advance(Duration::from_secs(6));
    assert_eq!(c.incr("n", 1).unwrap(), Some(6));
    clock.advance(Duration::from_secs(3));
    assert_eq!(c.get("n").unwrap(), Some(s("6")));
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.get("n").unwrap(), None, "incr kept the original deadline");

    c.set("max", u64::MAX.to_string(), Expiry::Never).unwrap();
    assert_eq!(c.incr("max", 2).unwrap(), Some(1), "incr wraps");

    let typed: MemoryCache<u32> = MemoryCache::new(10);
    typed.set("t", u32::MAX - 1, Expiry::Never).unwrap();
    assert_eq!(typed.incr("t", 1).unwrap(), Some(u64::from(u32::MAX)));
    assert!(matches!(
        typed.incr("t", 1),
        Err(Error::NotANumber { ref key }) if key == "t"
    ));
    assert_eq!(
        typed.get("t").unwrap(),
        Some(u32::MAX),
        "unchanged on error"
    );
    assert_eq!(typed.decr("t", 10).unwrap(), Some(u64::from(u32::MAX) - 10));
}

#[cfg(feature = "tokio")]
#[test]
fn clones_share_entries_and_async_api_matches() {
    let c: MemoryCache<String> = MemoryCache::new(100);
    let other = c.clone();
    other.set("k", s("v"), Expiry::Never).unwrap();
    assert_eq!(c.get("k").unwrap(), Some(s("v")));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let a: &dyn larder::AsyncCache<String> = &c;
        assert_eq!(a.get("k").await.unwrap(), Some(s("v")));
        assert!(a.add("k2", s("w"), Expiry::Never).await.unwrap());
    });
    assert_eq!(other.get("k2").unwrap(), Some(s("w")));
}

#[test]
fn concurrent_mixed_operations_keep_bounds() {
    let (c, _) = manual(500, 8);
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let c = &c;
            scope.spawn(move || {
                let mut rng = SplitMix64(t);
                for _ in 0..20_000 {
                    let key = format!("k{}", rng.next() % 2_000);
                    match rng.next() % 4 {
                        0 => c.set(&key, s("1"), Expiry::Never).map(|_| ()).unwrap(),
                        1 => {
                            c.add(&key, s("1"), Expiry::Never).unwrap();
                        }
                        2 => {
                            let _ = c.incr(&key, 1).unwrap();
                        }
                        _ => {
                            c.get(&key).unwrap();
                        }
                    }
                }
            });
        }
    });
    let st = c.stats();
    assert!(st.entries <= 500, "{} entries", st.entries);
    assert!(st.evictions > 0);
}

#[test]
fn a_scan_of_new_keys_does_not_flush_frequently_read_ones() {
    let (c, _) = manual(1_000, 1);
    for i in 0..500 {
        c.set(&format!("hot{i}"), s("v"), Expiry::Never).unwrap();
    }
    for _ in 0..2 {
        for i in 0..500 {
            assert!(c.get(&format!("hot{i}")).unwrap().is_some());
        }
    }
    // Ten cache sizes of keys written once and never read again (LRU would keep none of
    // the hot keys after this).
    for i in 0..10_000 {
        c.set(&format!("scan{i}"), s("v"), Expiry::Never).unwrap();
    }
    let kept = (0..500)
        .filter(|i| c.get(&format!("hot{i}")).unwrap().is_some())
        .count();
    assert!(kept >= 450, "only {kept} of 500 hot keys survived the scan");
}

// ---- hit ratio against LRU on Zipf traces -------------------------------------------

/// A seeded PRNG (SplitMix64), enough to generate reproducible traces.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `len` key numbers drawn from Zipf(`exponent`) over `universe` keys (inverse CDF).
fn zipf_trace(exponent: f64, universe: usize, len: usize, seed: u64) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(universe);
    let mut total = 0.0;
    for rank in 1..=universe {
        total += 1.0 / (rank as f64).powf(exponent);
        cdf.push(total);
    }
    let mut rng = SplitMix64(seed);
    (0..len)
        .map(|_| {
            let u = rng.unit() * total;
            cdf.partition_point(|&c| c < u).min(universe - 1)
        })
        .collect()
}

/// A textbook LRU: recency stamps in a `BTreeMap`.
struct Lru {
    capacity: usize,
    stamp_of: HashMap<usize, u64>,
    by_stamp: BTreeMap<u64, usize>,
    clock: u64,
}

impl Lru {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            stamp_of: HashMap::new(),
            by_stamp: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Reads `key`, inserting it on a miss; true on a hit.
    fn access(&mut self, key: usize) -> bool {
        self.clock += 1;
        let hit = if let Some(old) = self.stamp_of.insert(key, self.clock) {
            self.by_stamp.remove(&old);
            true
        } else {
            false
        };
        self.by_stamp.insert(self.clock, key);
        if self.stamp_of.len() > self.capacity {
            if let Some((_, victim)) = self.by_stamp.pop_first() {
                self.stamp_of.remove(&victim);
            }
        }
        hit
    }
}

fn hit_ratios(exponent: f64, capacity: usize) -> (f64, f64) {
    const UNIVERSE: usize = 50_000;
    const REQUESTS: usize = 200_000;
    let trace = zipf_trace(exponent, UNIVERSE, REQUESTS, 0x5eed ^ capacity as u64);
    let keys: Vec<String> = (0..UNIVERSE).map(|i| format!("key:{i}")).collect();
    let cache: MemoryCache<u32> = MemoryCache::builder()
        .max_entries(capacity)
        .shards(1)
        .build();
    let mut lru = Lru::new(capacity);
    let (mut ours, mut theirs) = (0usize, 0usize);
    for &k in &trace {
        let key = &keys[k];
        if cache.get(key).unwrap().is_some() {
            ours += 1;
        } else {
            cache.set(key, 1, Expiry::Never).unwrap();
        }
        theirs += usize::from(lru.access(k));
    }
    assert!(cache.stats().entries <= capacity as u64);
    (
        ours as f64 / REQUESTS as f64,
        theirs as f64 / REQUESTS as f64,
    )
}

#[test]
fn zipf_hit_ratio_is_at_least_lrus() {
    for exponent in [0.9, 1.0] {
        for capacity in [100, 1_000, 5_000] {
            let (ours, lru) = hit_ratios(exponent, capacity);
            eprintln!("zipf {exponent} capacity {capacity}: larder {ours:.4} lru {lru:.4}");
            assert!(
                ours >= lru,
                "zipf {exponent}, capacity {capacity}: larder {ours:.4} < lru {lru:.4}"
            );
        }
    }
}

#[test]
fn native_key_policy_takes_any_string() {
    let cache: MemoryCache<String> = MemoryCache::builder()
        .key_policy(larder::KeyPolicy::Native)
        .build();
    let long = "k".repeat(251);
    for key in ["", &*long, "a b", "a\nb", "\0"] {
        cache.set(key, key.to_owned(), Expiry::Never).unwrap();
        assert_eq!(cache.get(key).unwrap().as_deref(), Some(key), "{key:?}");
        assert!(cache.delete(key).unwrap(), "{key:?}");
    }
    let portable: MemoryCache<String> = MemoryCache::new(10);
    assert!(matches!(
        portable.set(&long, s("v"), Expiry::Never),
        Err(Error::KeyInvalid { .. })
    ));
}
