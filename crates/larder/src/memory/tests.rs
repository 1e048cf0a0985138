//! Unit tests of the memory cache's internals (shard layout, queues, keys sharing a hash).

use std::sync::Arc;
use std::time::Duration;

use super::shard::{Now, Shard, NEVER, UNBOUNDED};
use super::*;
use crate::clock::ManualClock;

/// Hashes every key to 7, so that only the key comparison tells entries apart.
#[derive(Default)]
struct Seven;

impl std::hash::Hasher for Seven {
    fn finish(&self) -> u64 {
        7
    }
    fn write(&mut self, _: &[u8]) {}
}

type SameHash = std::hash::BuildHasherDefault<Seven>;

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new())
}

#[test]
fn keys_sharing_a_full_hash_are_kept_apart() {
    let clock = clock();
    let base = clock.now();
    let mut now = Now::new(&clock, base);
    let mut shard: Shard<u32, SameHash> = Shard::new(10, UNBOUNDED, SameHash::default(), false);
    // Three keys on one hash: only the key comparison tells them apart.
    for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
        shard.set(7, key, i as u32, 1, NEVER, &mut now);
    }
    assert_eq!(shard.len(), 3);
    assert_eq!(shard.get(7, "a", &mut now), Some(0));
    assert_eq!(shard.get(7, "b", &mut now), Some(1));
    assert_eq!(shard.get(7, "c", &mut now), Some(2));
    assert!(shard.delete(7, "b", &mut now), "the second of three");
    assert_eq!(shard.get(7, "b", &mut now), None);
    assert_eq!(shard.get(7, "a", &mut now), Some(0));
    assert_eq!(shard.get(7, "c", &mut now), Some(2));
    assert!(shard.delete(7, "c", &mut now), "the last inserted");
    assert_eq!(shard.get(7, "a", &mut now), Some(0));
    assert!(shard.delete(7, "a", &mut now));
    assert_eq!(shard.len(), 0);
    assert_eq!(shard.get(7, "a", &mut now), None);
}

#[test]
fn deleting_without_evicting_does_not_grow_the_queues() {
    let clock = clock();
    let base = clock.now();
    let mut now = Now::new(&clock, base);
    let mut shard: Shard<u64> = Shard::new(1_000, UNBOUNDED, SeedableRandomState::random(), false);
    for i in 0..100_000u64 {
        let key = format!("k{i}");
        let hash = shard.hash_key(key.as_bytes());
        shard.set(hash, &key, i, 1, NEVER, &mut now);
        assert!(shard.delete(hash, &key, &mut now));
    }
    assert_eq!(shard.len(), 0);
    assert!(
        shard.policy.queued_slots() <= 200,
        "dead queue indices are recycled, found {}",
        shard.policy.queued_slots()
    );
    assert_eq!(shard.counters.evictions, 0);
}

#[test]
fn budget_is_split_exactly_across_shards() {
    let cache: MemoryCache<u64> = MemoryCache::builder().max_entries(1_003).shards(8).build();
    assert_eq!(cache.shard_count(), 8);
    let total: u64 = cache
        .inner
        .shards
        .iter()
        .map(|s| lock(&s.0).max_entries())
        .sum();
    assert_eq!(total, 1_003);
    let tiny: MemoryCache<u64> = MemoryCache::builder().max_entries(3).shards(64).build();
    assert_eq!(
        tiny.shard_count(),
        2,
        "every shard holds at least one entry"
    );
}

#[test]
fn expired_entries_are_swept_by_writes_in_bounded_steps() {
    let manual = ManualClock::new();
    let cache: MemoryCache<u64> = MemoryCache::builder()
        .max_entries(1_000)
        .shards(1)
        .clock(Arc::new(manual.clone()))
        .build();
    for i in 0..100 {
        cache
            .set(&format!("t{i}"), i, Expiry::After(Duration::from_secs(1)))
            .unwrap();
    }
    manual.advance(Duration::from_secs(2));
    cache.set("x", 0, Expiry::Never).unwrap();
    let after_one = cache.stats();
    assert!(after_one.expirations >= 1 && after_one.expirations < 100);
    for _ in 0..100 {
        cache.set("x", 0, Expiry::Never).unwrap();
    }
    let stats = cache.stats();
    assert_eq!(stats.expirations, 100);
    assert_eq!(stats.entries, 1);
}

#[test]
fn short_and_long_keys_are_told_apart() {
    let clock = clock();
    let base = clock.now();
    let mut now = Now::new(&clock, base);
    let mut shard: Shard<usize, SameHash> = Shard::new(100, UNBOUNDED, SameHash::default(), false);
    // Around the inline/boxed boundary, all on one hash so only the bytes tell them apart.
    let keys: Vec<String> = (0..40).map(|n| "k".repeat(n)).collect();
    for (i, key) in keys.iter().enumerate() {
        shard.set(7, key, i, 1, NEVER, &mut now);
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(shard.get(7, key, &mut now), Some(i), "key of {i} bytes");
    }
    assert_eq!(shard.get(7, &"k".repeat(40), &mut now), None);
    assert!(
        Shard::<u64>::slot_overhead() <= 56,
        "per-entry bookkeeping stays within a cache line with a u64 value"
    );
}

/// Replays `keys` as a look-aside cache (get; on a miss, set) and counts the hits.
fn look_aside(cache: &MemoryCache<u64>, keys: impl IntoIterator<Item = u64>) -> (u64, u64) {
    let (mut hits, mut requests) = (0, 0);
    for k in keys {
        let key = format!("k{k}");
        requests += 1;
        if cache.get(&key).unwrap().is_some() {
            hits += 1;
        } else {
            cache.set(&key, k, Expiry::Never).unwrap();
        }
    }
    (hits, requests)
}

#[test]
fn a_loop_just_over_the_capacity_keeps_most_of_it() {
    // LRU, ARC and Sieve hit nothing here: each key is evicted just before its turn.
    let cache: MemoryCache<u64> = MemoryCache::builder().max_entries(100).shards(1).build();
    look_aside(&cache, (0..20 * 110).map(|i| i % 110));
    let (hits, requests) = look_aside(&cache, (0..10 * 110).map(|i| i % 110));
    assert!(hits * 100 >= 85 * requests, "{hits} hits of {requests}");
}

#[test]
fn a_weighted_loop_just_over_the_capacity_keeps_most_of_its_bytes() {
    // Weights from 1 to 381, spread unevenly; the bound is the loop's weight over 1.1.
    let weight = |k: u64| 1 + (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 20 * (k % 20 + 1);
    let total: u64 = (0..1_100).map(weight).sum();
    let cache: MemoryCache<u64> = MemoryCache::builder()
        .max_weight(total * 10 / 11)
        .weigher(move |_, &k| weight(k))
        .shards(1)
        .build();
    look_aside(&cache, (0..20 * 1_100).map(|i| i % 1_100));
    let (mut hit, mut requested) = (0, 0);
    for k in (0..20 * 1_100).map(|i| i % 1_100) {
        requested += weight(k);
        if cache.get(&format!("k{k}")).unwrap().is_some() {
            hit += weight(k);
        } else {
            cache.set(&format!("k{k}"), k, Expiry::Never).unwrap();
        }
    }
    // The optimum keeps 10/11 of the bytes (90.9 %); evicting main's victims outright
    // whenever a heavy key filled the window back up kept 89.6 %.
    assert!(
        hit * 1000 >= 900 * requested,
        "{hit} bytes hit of {requested}"
    );
}

#[test]
fn a_hot_set_that_moves_is_picked_up_within_a_few_rounds() {
    let cache: MemoryCache<u64> = MemoryCache::builder().max_entries(200).shards(1).build();
    // The old hot set: 150 keys read 30 times each, so their counts are saturated, with
    // a trickle of one-off keys so that the cache is full and writes now and then.
    look_aside(
        &cache,
        (0..30 * 150).map(|i| if i % 10 == 0 { 100_000 + i } else { i % 150 }),
    );
    // The new one: 150 other keys; after a few rounds nearly all of them must hit.
    look_aside(&cache, (0..4 * 150).map(|i| 1_000 + i % 150));
    let (hits, requests) = look_aside(&cache, (0..150).map(|i| 1_000 + i));
    assert!(hits * 100 >= 90 * requests, "{hits} hits of {requests}");
    assert!(
        cache.inner.shards[0]
            .0
            .lock()
            .unwrap()
            .policy
            .window_share()
            > 0.5
    );
}

/// The keys still cached after a skewed look-aside stream through eight shards.
fn survivors(cache: &MemoryCache<u64>) -> Vec<u64> {
    let mut x = 1u64;
    let stream = (0..20_000).map(move |_| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Squaring a uniform draw skews it towards the small keys.
        let u = (x >> 33) % 4_000;
        u * u / 4_000
    });
    look_aside(cache, stream);
    (0..4_000)
        .filter(|k| {
            let key = format!("k{k}");
            let hash = cache.hash(&key);
            cache
                .with_shard(hash, |shard, now| shard.peek(hash, &key, now))
                .is_some()
        })
        .collect()
}

#[test]
fn a_fixed_hash_seed_repeats_every_decision() {
    let build = |seed| {
        MemoryCache::builder()
            .max_entries(500)
            .shards(8)
            .hash_seed(seed)
            .build()
    };
    let first = survivors(&build(1));
    assert_eq!(first.len(), 500);
    assert_eq!(first, survivors(&build(1)), "same seed, same cache");
    assert_ne!(first, survivors(&build(2)), "the seed decides the shards");
}

/// `count` look-aside keys from a hot set of `keys` keys starting at `base`, skewed towards
/// its first keys (the square of a uniform draw), from a fixed-seed generator.
fn hot_set(base: u64, keys: u64, count: usize, seed: u64) -> impl Iterator<Item = u64> {
    let mut x = seed;
    (0..count).map(move |_| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (x >> 33) % keys;
        base + u * u / keys
    })
}

#[test]
fn a_hot_set_that_moves_again_while_the_window_is_wide_is_picked_up() {
    let cache: MemoryCache<u64> = MemoryCache::builder()
        .max_entries(1_000)
        .shards(1)
        .hash_seed(7)
        .build();
    let share = |cache: &MemoryCache<u64>| lock(&cache.inner.shards[0].0).policy.window_share();
    look_aside(&cache, hot_set(0, 2_000, 30_000, 1));
    look_aside(&cache, hot_set(100_000, 2_000, 20_000, 2));
    let wide = share(&cache);
    assert!(wide >= 0.5, "the first move opened the window: {wide}");
    // The next move finds the window wide: the new keys hit in the window before they
    // could be turned away, so only the reads in the window tell a shift from a scan.
    look_aside(&cache, hot_set(200_000, 2_000, 3_000, 3));
    assert!(
        share(&cache) > wide,
        "the window opened again: {}",
        share(&cache)
    );
    // The policy before the reread signal hit 66 %: its main stayed full of the old keys.
    let (hits, requests) = look_aside(&cache, hot_set(200_000, 2_000, 10_000, 4));
    assert!(hits * 100 >= 72 * requests, "{hits} hits of {requests}");
}
