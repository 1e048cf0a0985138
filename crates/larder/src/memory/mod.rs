//! The embedded memory cache: [`MemoryCache`], bounded by entry count or total weight,
//! with per-entry TTLs, safe and fast from many threads, and no server or background thread.
//!
//! - **Eviction:** W-TinyLFU with an adaptive window, in CLOCK form (see the `policy`
//!   module for how and why): new keys enter a small recency window, and leave it for the
//!   main area only when a frequency sketch says they are requested more than what they
//!   would displace; the window opens when the popular keys move and closes while they
//!   stay. A read only bumps two small counters under the shard lock it already holds.
//! - **Expiry:** an expired entry is never returned (checked on every read); expired entries
//!   are reclaimed a few at a time by writes to their shard, so memory does not hold dead
//!   entries for long on a cache that is written to.
//! - **Concurrency:** keys are hashed once to pick one of several shards, each behind its
//!   own mutex; every operation on a key (including `add`, `replace`, `incr`, `decr`,
//!   `touch`) runs under that one lock, so it is atomic. The entry/weight budget is split
//!   exactly across shards, so the total never exceeds it. [`MemoryCache::get_with`] runs
//!   one loader per key at a time (dogpile's [`LocalMutex`]).
//! - **Eviction listener:** [`MemoryCacheBuilder::on_evict`] sees every entry that leaves,
//!   with its [`EvictionCause`], after the shard's lock is released.
//! - **Hashing:** `foldhash`'s fast hasher with a per-cache random seed (or a fixed one,
//!   [`MemoryCacheBuilder::hash_seed`], for runs that must repeat exactly). It is not
//!   cryptographic: keys crafted to collide could slow their shard down, but every lookup
//!   compares the key itself, so a collision never returns a wrong value.
//! - Keys up to 22 bytes are stored inside their entry (no allocation); longer ones once,
//!   in a boxed slice. Per entry: one 64-byte cache line holding the key, a small value
//!   and the bookkeeping (larger values take more lines), a 4-byte slot in the shard's hash
//!   index, 4 bytes in a queue and 8 of frequency sketch.
//! - Values are stored as they are (no serialization); a read clones the value, so large
//!   values are best stored as `Arc<T>` or `bytes::Bytes`-like cheap clones.

mod policy;
mod shard;
mod sketch;

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::clock::{Clock, SystemClock};
use crate::dogpile::{KeyedMutex, LocalMutex, DEFAULT_LOCK_WAIT};
use crate::{Cache, Error, Expiry, KeyPolicy, MultiWrite, Result};

use shard::{Now, Shard, UNBOUNDED};

/// The entry bound of a builder given neither `max_entries` nor `max_weight`.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// Entries per shard below which the default shard count is reduced: a shard of a few
/// hundred entries makes eviction decisions on too little history (the hit-ratio suite
/// measures the cost; see the README).
const MIN_DEFAULT_SHARD_ENTRIES: u64 = 1024;

/// Weight per shard below which the default shard count is reduced, sized for weights in
/// bytes: a shard refuses an entry heavier than its share, and sharing a few hundred
/// kilobytes eight ways refused the hottest large objects of the suite's heavy-tailed
/// traces.
const MIN_DEFAULT_SHARD_WEIGHT: u64 = 1 << 20;

type Weigher<V> = Arc<dyn Fn(&str, &V) -> u64 + Send + Sync + 'static>;
type Listener<V> = Arc<dyn Fn(&str, V, EvictionCause) + Send + Sync + 'static>;

/// Why an entry left a [`MemoryCache`] (see [`MemoryCacheBuilder::on_evict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvictionCause {
    /// Removed by the eviction policy to stay within the bounds.
    Evicted,
    /// Its time to live had passed (found by a read or reclaimed by a write).
    Expired,
    /// Overwritten by `set`, `replace`, `incr` or `decr` (the old value is reported).
    Replaced,
    /// Removed by `delete`, `clear`, or a write whose new value was too heavy to store.
    Removed,
}

/// A snapshot of a [`MemoryCache`]'s counters (non-exhaustive: more may be counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Reads (`get`, and each key of `get_multi`) that found a live entry.
    pub hits: u64,
    /// Reads that found nothing or an expired entry.
    pub misses: u64,
    /// Values stored by `set`, `add` or `replace` (overwrites included).
    pub inserts: u64,
    /// Entries removed to stay within the bounds.
    pub evictions: u64,
    /// Expired entries removed (on a read of the key or by the sweep that writes run).
    pub expirations: u64,
    /// Entries held now (expired ones not yet reclaimed included).
    pub entries: u64,
    /// Total weight of the entries held now (their count when there is no weigher).
    pub weight: u64,
}

/// Configures a [`MemoryCache`]; from [`MemoryCache::builder`].
pub struct MemoryCacheBuilder<V> {
    max_entries: Option<usize>,
    max_weight: Option<u64>,
    weigher: Option<Weigher<V>>,
    clock: Arc<dyn Clock>,
    shards: Option<usize>,
    key_policy: KeyPolicy,
    listener: Option<Listener<V>>,
    hash_seed: Option<u64>,
}

impl<V> std::fmt::Debug for MemoryCacheBuilder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCacheBuilder")
            .field("max_entries", &self.max_entries)
            .field("max_weight", &self.max_weight)
            .field("weigher", &self.weigher.as_ref().map(|_| "<fn>"))
            .field("clock", &self.clock)
            .field("shards", &self.shards)
            .field("key_policy", &self.key_policy)
            .field("on_evict", &self.listener.as_ref().map(|_| "<fn>"))
            .field("hash_seed", &self.hash_seed.map(|_| "<fixed>"))
            .finish()
    }
}

impl<V> MemoryCacheBuilder<V> {
    fn new() -> Self {
        Self {
            max_entries: None,
            max_weight: None,
            weigher: None,
            clock: Arc::new(SystemClock),
            shards: None,
            key_policy: KeyPolicy::default(),
            listener: None,
            hash_seed: None,
        }
    }

    /// Holds at most this many entries. Without this nor [`max_weight`](Self::max_weight)
    /// the bound is [`DEFAULT_MAX_ENTRIES`]. `0` makes a cache that stores nothing.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = Some(max_entries);
        self
    }

    /// Holds entries of at most this total weight (see [`weigher`](Self::weigher); without
    /// a weigher every entry weighs 1). Combined with `max_entries`, both bounds hold.
    ///
    /// The budget is split across shards, so one entry may weigh at most
    /// `max_weight / shards`; a heavier value is refused with [`Error::ValueTooLarge`].
    pub fn max_weight(mut self, max_weight: u64) -> Self {
        self.max_weight = Some(max_weight);
        self
    }

    /// How much an entry weighs (for example its size in bytes). Called on every write,
    /// outside the shard lock except for `incr`/`decr`; it must not use this cache.
    pub fn weigher(mut self, weigher: impl Fn(&str, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// The clock that decides expiry (default [`SystemClock`]; tests use
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Calls `listener(key, value, cause)` for every entry that leaves the cache, with the
    /// reason (see [`EvictionCause`]); an overwrite reports the old value as
    /// [`Replaced`](EvictionCause::Replaced).
    ///
    /// The listener runs on the thread whose operation removed the entry, after that
    /// operation has released the shard's lock: it may use the cache (even the same key)
    /// without deadlocking. Entries removed by one operation are reported in order before
    /// the operation returns. A panic in the listener reaches that operation's caller; the
    /// cache stays consistent.
    pub fn on_evict(
        mut self,
        listener: impl Fn(&str, V, EvictionCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// The number of independently locked shards, rounded up to a power of two and reduced
    /// so that every shard can hold at least one entry. Default: 4 per available CPU,
    /// reduced so that a shard holds at least 1,024 entries and, under a weight bound, at
    /// least 2^20 of weight (a MiB when weights are bytes) where the bounds allow. Use 1
    /// for exact global eviction order.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Which keys the cache accepts: by default the contract's rule
    /// ([`KeyPolicy::Portable`]: 1 to 250 bytes, no space or control bytes), so code tested
    /// on the memory cache keeps working on memcached; [`KeyPolicy::Native`] takes any
    /// string.
    pub fn key_policy(mut self, policy: KeyPolicy) -> Self {
        self.key_policy = policy;
        self
    }

    /// Hashes keys with this seed instead of a random one, so that which shard a key lands
    /// in and every eviction decision repeat exactly from run to run: for benchmarks (the
    /// hit-ratio suite's replayer uses it) and tests. Leave it unset for caches fed keys
    /// from outside: whoever knows the seed can craft keys that collide.
    pub fn hash_seed(mut self, seed: u64) -> Self {
        self.hash_seed = Some(seed);
        self
    }

    /// Builds the cache.
    pub fn build(self) -> MemoryCache<V> {
        let max_entries = match (self.max_entries, self.max_weight) {
            (None, None) => DEFAULT_MAX_ENTRIES as u64,
            (Some(n), _) => u64::try_from(n).unwrap_or(UNBOUNDED),
            (None, Some(_)) => UNBOUNDED,
        };
        let max_weight = self.max_weight.unwrap_or(UNBOUNDED);
        // The smallest of the bounds that are set: a shard must be able to hold one entry.
        let capacity = max_entries.min(max_weight).max(1);
        let requested = match self.shards {
            Some(n) => n.max(1),
            None => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                // Bounds not set are `UNBOUNDED` and never decide.
                let by_size = (max_entries / MIN_DEFAULT_SHARD_ENTRIES)
                    .min(max_weight / MIN_DEFAULT_SHARD_WEIGHT);
                cpus.saturating_mul(4)
                    .min(usize::try_from(by_size).unwrap_or(usize::MAX))
                    .max(1)
            }
        };
        let mut shard_count = requested.checked_next_power_of_two().unwrap_or(1 << 16);
        shard_count = shard_count.min(1 << 16);
        while shard_count > 1 && shard_count as u64 > capacity {
            shard_count /= 2;
        }
        let hasher = match self.hash_seed {
            Some(seed) => SeedableRandomState::with_seed(seed, SharedSeed::global_fixed()),
            None => SeedableRandomState::random(),
        };
        let shifts = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let shards: Vec<_> = (0..shard_count as u64)
            .map(|i| {
                let n = shard_count as u64;
                let share = |total: u64| {
                    if total == UNBOUNDED {
                        UNBOUNDED
                    } else {
                        total / n + u64::from(i < total % n)
                    }
                };
                let mut shard = Shard::new(
                    share(max_entries),
                    share(max_weight),
                    hasher,
                    self.listener.is_some(),
                );
                shard.share_shifts(Arc::clone(&shifts));
                CachePadded(Mutex::new(shard))
            })
            .collect();
        let shard_max_weight = shards.iter().map(|s| lock(&s.0).max_weight()).collect();
        let base = self.clock.now();
        MemoryCache {
            inner: Arc::new(Inner {
                shards: shards.into_boxed_slice(),
                shard_mask: shard_count - 1,
                shard_max_weight,
                hasher,
                weigher: self.weigher,
                listener: self.listener,
                loaders: LocalMutex::new(),
                clock: self.clock,
                base,
                key_policy: self.key_policy,
            }),
        }
    }
}

/// Keeps each shard's lock on its own cache lines, so threads working on different shards
/// do not slow each other down.
#[repr(align(128))]
struct CachePadded<T>(T);

struct Inner<V> {
    shards: Box<[CachePadded<Mutex<Shard<V>>>]>,
    shard_mask: usize,
    /// Each shard's weight budget (the heaviest entry it accepts), readable without a lock.
    shard_max_weight: Box<[u64]>,
    hasher: SeedableRandomState,
    weigher: Option<Weigher<V>>,
    listener: Option<Listener<V>>,
    /// One loader per key in [`MemoryCache::get_with`].
    loaders: LocalMutex,
    clock: Arc<dyn Clock>,
    base: Instant,
    key_policy: KeyPolicy,
}

/// The embedded cache: bounded, per-entry TTL, adaptive W-TinyLFU eviction, sharded for
/// many threads.
///
/// `MemoryCache` is a handle: [`Clone`] is cheap (an `Arc` inside) and every clone uses the
/// same entries, so share it between threads by cloning it (or by putting it in an `Arc`).
/// See the [module docs](self) for how it works.
///
/// Keys follow the contract's rule unless the builder's
/// [`key_policy`](MemoryCacheBuilder::key_policy) says otherwise: a key memcached would
/// refuse is refused here too ([`Error::KeyInvalid`]), before anything is stored.
///
/// ```
/// use larder::memory::MemoryCache;
/// use larder::{Cache, Expiry};
///
/// // At most 1 MiB of text, weighed by length.
/// let cache: MemoryCache<String> = MemoryCache::builder()
///     .max_weight(1 << 20)
///     .weigher(|key, value: &String| (key.len() + value.len()) as u64)
///     .build();
/// let handle = cache.clone(); // same entries
/// std::thread::spawn(move || handle.set("k", "v".into(), Expiry::secs(60)))
///     .join()
///     .unwrap()?;
/// assert_eq!(cache.get("k")?, Some("v".to_string()));
/// assert_eq!(cache.stats().weight, 2);
/// # Ok::<(), larder::Error>(())
/// ```
pub struct MemoryCache<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for MemoryCache<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> std::fmt::Debug for MemoryCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("shards", &self.inner.shards.len())
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl<V> MemoryCache<V> {
    /// A builder with the defaults: [`DEFAULT_MAX_ENTRIES`] entries, no weigher, the system
    /// clock, shards by CPU count.
    pub fn builder() -> MemoryCacheBuilder<V> {
        MemoryCacheBuilder::new()
    }

    /// A cache of at most `max_entries` entries with the other defaults.
    pub fn new(max_entries: usize) -> Self {
        Self::builder().max_entries(max_entries).build()
    }

    /// A snapshot of the counters, summed over the shards.
    pub fn stats(&self) -> MemoryStats {
        let mut stats = MemoryStats::default();
        for shard in self.inner.shards.iter() {
            let shard = lock(&shard.0);
            let c = shard.counters;
            stats.hits += c.hits;
            stats.misses += c.misses;
            stats.inserts += c.inserts;
            stats.evictions += c.evictions;
            stats.expirations += c.expirations;
            stats.entries += shard.len();
            stats.weight = stats.weight.saturating_add(shard.weight());
        }
        stats
    }

    /// The number of shards (after the adjustments described on
    /// [`MemoryCacheBuilder::shards`]).
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    // Forced inline: then the passing path is one branch in each operation, with no
    // `Result` built or copied.
    #[inline(always)]
    fn check(&self, key: &str) -> Result<()> {
        self.inner.key_policy.check(key)
    }

    fn hash(&self, key: &str) -> u64 {
        // The bytes, as the shard rehashes stored keys.
        self.inner.hasher.hash_one(key.as_bytes())
    }

    fn shard_index(&self, hash: u64) -> usize {
        // Bits 32.. pick the shard: the shard's own table uses the low bits for buckets
        // and the top 7 bits as tags, which stay independent of the shard choice.
        ((hash >> 32) as usize) & self.inner.shard_mask
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard<V>> {
        lock(&self.inner.shards[self.shard_index(hash)].0)
    }

    /// Runs `op` on the shard of `hash` under its lock, then, with the lock released,
    /// hands the entries the operation removed to the eviction listener.
    fn with_shard<T>(&self, hash: u64, op: impl FnOnce(&mut Shard<V>, &mut Now<'_>) -> T) -> T {
        let mut shard = self.shard(hash);
        let mut now = self.now();
        let out = op(&mut shard, &mut now);
        if shard.has_removed() {
            let removed = shard.take_removed();
            drop(shard);
            self.notify(removed);
        }
        out
    }

    fn notify(&self, removed: Vec<shard::Removed<V>>) {
        if let Some(listener) = &self.inner.listener {
            for (key, value, cause) in removed {
                listener(&key, value, cause);
            }
        }
    }

    /// The value under `key`; on a miss, `init()`'s value, stored with `expiry`.
    ///
    /// Concurrent callers that miss the same key run one `init` at a time: the first
    /// loads, the others wait for it (at most [`DEFAULT_LOCK_WAIT`], then
    /// [`Error::LockTimeout`]) and get the value it stored. A value too heavy to store is
    /// returned without being cached.
    pub fn get_with(&self, key: &str, expiry: Expiry, init: impl FnOnce() -> V) -> Result<V>
    where
        V: Clone + Send + Sync + 'static,
    {
        self.try_get_with(key, expiry, || Ok(init()))
    }

    /// [`get_with`](Self::get_with) with a loader that can fail: its error is returned to
    /// the caller that ran it and nothing is stored; a caller that was waiting then runs
    /// its own loader (one at a time), as dogpile's [`Lock`](crate::dogpile::Lock) does.
    pub fn try_get_with(
        &self,
        key: &str,
        expiry: Expiry,
        init: impl FnOnce() -> Result<V>,
    ) -> Result<V>
    where
        V: Clone + Send + Sync + 'static,
    {
        if let Some(value) = Cache::get(self, key)? {
            return Ok(value);
        }
        let _loading = self.inner.loaders.acquire(key, DEFAULT_LOCK_WAIT)?;
        // Another caller may have loaded it while this one waited.
        let hash = self.hash(key);
        if let Some(value) = self.with_shard(hash, |shard, now| shard.peek(hash, key, now)) {
            return Ok(value);
        }
        let value = init()?;
        match Cache::set(self, key, value.clone(), expiry) {
            Ok(()) | Err(Error::ValueTooLarge { .. }) => Ok(value),
            Err(err) => Err(err),
        }
    }

    fn now(&self) -> Now<'_> {
        Now::new(&self.inner.clock, self.inner.base)
    }

    fn weigh(&self, key: &str, value: &V) -> u64 {
        self.inner.weigher.as_ref().map_or(1, |w| w(key, value))
    }

    /// Runs one write: hashes the key, weighs the value, refuses a value heavier than a
    /// shard's budget (removing the key's old value so it cannot be read stale), then runs
    /// `op` under the shard lock after reclaiming some expired entries.
    fn write<T>(
        &self,
        key: &str,
        value: V,
        expiry: Expiry,
        op: impl FnOnce(&mut Shard<V>, u64, V, u64, u64, &mut Now<'_>) -> T,
    ) -> Result<T> {
        self.check(key)?;
        let weight = self.weigh(key, &value);
        let hash = self.hash(key);
        let limit = self.inner.shard_max_weight[self.shard_index(hash)];
        self.with_shard(hash, |shard, now| {
            if weight > limit {
                shard.delete(hash, key, now);
                return Err(Error::ValueTooLarge {
                    size: usize::try_from(weight).unwrap_or(usize::MAX),
                    limit: Some(usize::try_from(limit).unwrap_or(usize::MAX)),
                });
            }
            shard.sweep_expired(now);
            let deadline = now.deadline(expiry);
            Ok(op(shard, hash, value, weight, deadline, now))
        })
    }

    /// Runs a multi-key write, refusing the whole batch before anything is stored when one
    /// value is too heavy.
    fn write_multi(
        &self,
        items: Vec<(&str, V)>,
        expiry: Expiry,
        op: impl Fn(&mut Shard<V>, u64, &str, V, u64, u64, &mut Now<'_>) -> bool,
    ) -> Result<MultiWrite> {
        self.inner
            .key_policy
            .check_all(items.iter().map(|(key, _)| *key))?;
        let mut prepared = Vec::with_capacity(items.len());
        for (key, value) in items {
            let weight = self.weigh(key, &value);
            let hash = self.hash(key);
            let limit = self.inner.shard_max_weight[self.shard_index(hash)];
            if weight > limit {
                return Err(Error::ValueTooLarge {
                    size: usize::try_from(weight).unwrap_or(usize::MAX),
                    limit: Some(usize::try_from(limit).unwrap_or(usize::MAX)),
                });
            }
            prepared.push((key, value, weight, hash));
        }
        let mut out = MultiWrite::default();
        for (key, value, weight, hash) in prepared {
            let applied = self.with_shard(hash, |shard, now| {
                shard.sweep_expired(now);
                let deadline = now.deadline(expiry);
                op(shard, hash, key, value, weight, deadline, now)
            });
            out.record(key, applied);
        }
        Ok(out)
    }

    fn update_counter(&self, key: &str, op: impl FnOnce(u64) -> u64) -> Result<Option<u64>>
    where
        V: 'static,
    {
        self.check(key)?;
        let hash = self.hash(key);
        self.with_shard(hash, |shard, now| {
            shard.sweep_expired(now);
            shard.update_counter(hash, key, now, op, |value| self.weigh(key, value))
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under the lock (a value's `Clone` or `Drop`) leaves the shard consistent:
    // every mutation completes before user code runs or does not start.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<V: Clone + Send + Sync + 'static> MemoryCache<V> {
    /// `f` of the live value under `key`, read in place (under the shard's lock) and
    /// counted as a read, for a key its caller has already checked by the portable rule,
    /// which every key policy accepts: a dogpile region's read of the cache it owns (its
    /// key encoder checks every key it makes), which judges its entry without cloning it.
    #[inline]
    pub(crate) fn read_prechecked<R>(&self, key: &str, f: impl FnOnce(&V) -> R) -> Option<R> {
        let hash = self.hash(key);
        self.with_shard(hash, |shard, now| shard.read(hash, key, now, f))
    }
}

impl<V: Clone + Send + Sync + 'static> Cache<V> for MemoryCache<V> {
    fn get(&self, key: &str) -> Result<Option<V>> {
        self.check(key)?;
        let hash = self.hash(key);
        Ok(self.with_shard(hash, |shard, now| shard.get(hash, key, now)))
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        self.check(key)?;
        let hash = self.hash(key);
        Ok(self.with_shard(hash, |shard, now| {
            let found = shard.get_with_deadline(hash, key, now);
            found.map(|(value, deadline)| (value, now.remaining(deadline)))
        }))
    }

    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        self.inner.key_policy.check_all(keys.iter().copied())?;
        let mut out = HashMap::with_capacity(keys.len());
        for &key in keys {
            let hash = self.hash(key);
            if let Some(value) = self.with_shard(hash, |shard, now| shard.get(hash, key, now)) {
                out.insert(key.to_owned(), value);
            }
        }
        Ok(out)
    }

    fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        self.write(
            key,
            value,
            expiry,
            |shard, hash, value, weight, deadline, now| {
                shard.set(hash, key, value, weight, deadline, now)
            },
        )
    }

    fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(
            items,
            expiry,
            |shard, hash, key, value, weight, deadline, now| {
                shard.set(hash, key, value, weight, deadline, now);
                true
            },
        )
    }

    fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.write(
            key,
            value,
            expiry,
            |shard, hash, value, weight, deadline, now| {
                shard.add(hash, key, value, weight, deadline, now)
            },
        )
    }

    fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(
            items,
            expiry,
            |shard, hash, key, value, weight, deadline, now| {
                shard.add(hash, key, value, weight, deadline, now)
            },
        )
    }

    fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.write(
            key,
            value,
            expiry,
            |shard, hash, value, weight, deadline, now| {
                shard.replace(hash, key, value, weight, deadline, now)
            },
        )
    }

    fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(
            items,
            expiry,
            |shard, hash, key, value, weight, deadline, now| {
                shard.replace(hash, key, value, weight, deadline, now)
            },
        )
    }

    fn delete(&self, key: &str) -> Result<bool> {
        self.check(key)?;
        let hash = self.hash(key);
        Ok(self.with_shard(hash, |shard, now| {
            shard.sweep_expired(now);
            shard.delete(hash, key, now)
        }))
    }

    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        self.inner.key_policy.check_all(keys.iter().copied())?;
        let mut out = MultiWrite::default();
        for &key in keys {
            let deleted = Cache::delete(self, key)?;
            out.record(key, deleted);
        }
        Ok(out)
    }

    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.update_counter(key, |n| n.wrapping_add(delta))
    }

    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.update_counter(key, |n| n.saturating_sub(delta))
    }

    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.check(key)?;
        let hash = self.hash(key);
        Ok(self.with_shard(hash, |shard, now| {
            shard.sweep_expired(now);
            let deadline = now.deadline(expiry);
            shard.touch(hash, key, deadline, now)
        }))
    }

    fn clear(&self) -> Result<()> {
        for shard in self.inner.shards.iter() {
            let mut shard = lock(&shard.0);
            shard.clear();
            let removed = shard.take_removed();
            drop(shard);
            self.notify(removed);
        }
        Ok(())
    }
}

#[cfg(feature = "tokio")]
crate::async_cache_via_blocking!(impl<V> for MemoryCache<V> where V: Clone + Send + Sync + 'static);
crate::cache::inherent_cache_ops!(impl<V> for MemoryCache<V> where V: Clone + Send + Sync + 'static);

#[cfg(test)]
mod tests;
