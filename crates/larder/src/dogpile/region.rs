//! [`Region`]: dogpile.cache's cache region over any [`Cache`] backend.
//!
//! Values are stored as [`CachedValue`]: the value, its creation time (wall time from the
//! region's [`Clock`], so processes sharing a remote backend agree), how long its creation
//! took (for [early expiration](crate::dogpile::EarlyExpiration)) and a format version. It
//! derives serde, so remote backends store it through any serde [`Codec`](crate::Codec).
//!
//! Expiration is judged by the region from the creation time, not by the backend's TTL:
//! an expired value stays readable so it can be served while one caller regenerates it
//! (the backend TTL, [`RegionBuilder::backend_expiry`], is only a garbage-collection bound
//! and should be longer than the expiration).

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, SystemClock};
use crate::dogpile::early::EarlyExpiration;
use crate::dogpile::lock::{Lock, Retrieval, DEFAULT_LOCK_WAIT};
use crate::dogpile::mutex::{KeyedMutex, LocalMutex, LockGuard};
use crate::keys::{check_key, hex_digest, HashAlgorithm, KeyEncoder};
use crate::{Cache, Error, Expiry, Result};

/// The stored format version of [`CachedValue`]; entries with another version are treated
/// as missing (and overwritten).
pub const CACHED_VALUE_VERSION: u32 = 1;

/// A value as a region stores it in its backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedValue<V> {
    /// The cached value.
    pub value: V,
    /// When it was created: milliseconds since the Unix epoch ([`Clock::unix_time`]).
    ///
    /// [`Clock::unix_time`]: crate::clock::Clock::unix_time
    pub created_at_ms: u64,
    /// How long its creation took, in milliseconds (0 for values written with `set`).
    pub creation_ms: u64,
    /// [`CACHED_VALUE_VERSION`] when written.
    pub version: u32,
}

/// How [`Region::invalidate`] treats every value created before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// As if missing: the next callers wait for one creator.
    Hard,
    /// Stale: served to every caller while one regenerates.
    Soft,
}

type ShouldCache<V> = Arc<dyn Fn(&V) -> bool + Send + Sync>;

/// Bounded background regeneration: at most `max` creators running at once.
#[derive(Debug)]
struct Background {
    max: usize,
    running: Arc<AtomicUsize>,
}

/// A reserved background slot; freed on drop.
struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Background {
    fn reserve(&self) -> Option<Permit> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(Arc::clone(&self.running)))
    }
}

struct Inner<V> {
    name: String,
    backend: Arc<dyn Cache<CachedValue<V>>>,
    mutex: Arc<dyn KeyedMutex>,
    expiration: Option<Duration>,
    backend_expiry: Expiry,
    lock_wait: Duration,
    keys: KeyEncoder,
    clock: SharedClock,
    should_cache: Option<ShouldCache<V>>,
    background: Option<Background>,
    freshness: Freshness,
}

/// How a region judges stored entries: invalidation timestamps, early expiration and the
/// clock. Shared by [`Region`] and the async region.
#[derive(Debug)]
pub(crate) struct Freshness {
    clock: SharedClock,
    early: Option<EarlyExpiration>,
    /// Values created at or before these times (ms since the epoch) are invalid; 0: none.
    hard_invalidated_ms: AtomicU64,
    soft_invalidated_ms: AtomicU64,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Freshness {
    pub(crate) fn new(clock: SharedClock, early: Option<EarlyExpiration>) -> Self {
        Self {
            clock,
            early,
            hard_invalidated_ms: AtomicU64::new(0),
            soft_invalidated_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        millis(self.clock.unix_time())
    }

    /// A creation stamp: now, but always after the latest invalidation, so a value made
    /// after `invalidate` (even within the same millisecond) is valid.
    pub(crate) fn stamp(&self) -> u64 {
        let latest = self
            .hard_invalidated_ms
            .load(Ordering::Acquire)
            .max(self.soft_invalidated_ms.load(Ordering::Acquire));
        if latest == 0 {
            self.now_ms()
        } else {
            self.now_ms().max(latest.saturating_add(1))
        }
    }

    /// Records an invalidation of everything created until now.
    pub(crate) fn invalidate(&self, how: Invalidation) {
        let now = self.now_ms().max(1);
        let ts = match how {
            Invalidation::Hard => &self.hard_invalidated_ms,
            Invalidation::Soft => &self.soft_invalidated_ms,
        };
        ts.fetch_max(now, Ordering::AcqRel);
    }

    /// Judges a stored entry: missing / hard-invalidated / wrong version → regenerate;
    /// soft-invalidated or picked for early refresh → stale; otherwise its creation time.
    pub(crate) fn judge<V>(
        &self,
        entry: Option<CachedValue<V>>,
        expiration: Option<Duration>,
    ) -> Retrieval<V> {
        self.judge_with(entry, expiration, true)
    }

    /// The entry's value if it is valid and not expired, never drawing early expiration
    /// (for plain reads, which regenerate nothing).
    pub(crate) fn peek<V>(
        &self,
        entry: Option<CachedValue<V>>,
        expiration: Option<Duration>,
    ) -> Option<V> {
        match self.judge_with(entry, expiration, false) {
            Retrieval::Value { value, created_at } => {
                self.is_fresh(created_at, expiration).then_some(value)
            }
            Retrieval::Stale(_) | Retrieval::NeedRegeneration => None,
        }
    }

    fn judge_with<V>(
        &self,
        entry: Option<CachedValue<V>>,
        expiration: Option<Duration>,
        early_refresh: bool,
    ) -> Retrieval<V> {
        let Some(entry) = entry else {
            return Retrieval::NeedRegeneration;
        };
        if entry.version != CACHED_VALUE_VERSION
            || entry.created_at_ms <= self.hard_invalidated_ms.load(Ordering::Acquire)
        {
            return Retrieval::NeedRegeneration;
        }
        if entry.created_at_ms <= self.soft_invalidated_ms.load(Ordering::Acquire) {
            return Retrieval::Stale(entry.value);
        }
        if let (Some(early), Some(exp), true) = (&self.early, expiration, early_refresh) {
            let expires_at = entry.created_at_ms.saturating_add(millis(exp));
            if early.should_refresh(self.now_ms(), expires_at, entry.creation_ms) {
                return Retrieval::Stale(entry.value);
            }
        }
        Retrieval::Value {
            value: entry.value,
            created_at: Duration::from_millis(entry.created_at_ms),
        }
    }

    pub(crate) fn is_fresh(&self, created_at: Duration, expiration: Option<Duration>) -> bool {
        expiration.is_none_or(|exp| self.clock.unix_time().saturating_sub(created_at) < exp)
    }

    /// `Ok(value)` when fresh, `Err(Some(stale))` when it must be regenerated but can be
    /// served, `Err(None)` when there is nothing to serve.
    pub(crate) fn classify<V>(
        &self,
        entry: Option<CachedValue<V>>,
        expiration: Option<Duration>,
    ) -> std::result::Result<V, Option<V>> {
        match self.judge(entry, expiration) {
            Retrieval::Value { value, created_at } if self.is_fresh(created_at, expiration) => {
                Ok(value)
            }
            Retrieval::Value { value, .. } | Retrieval::Stale(value) => Err(Some(value)),
            Retrieval::NeedRegeneration => Err(None),
        }
    }

    /// Wraps a created value for storage.
    pub(crate) fn wrap<V>(value: V, created_at_ms: u64, creation_ms: u64) -> CachedValue<V> {
        CachedValue {
            value,
            created_at_ms,
            creation_ms,
            version: CACHED_VALUE_VERSION,
        }
    }
}

/// A cache region: `get_or_create` with dogpile protection over a [`Cache`] backend, plus
/// invalidation, cached functions and background regeneration. Cloning is cheap (shared).
///
/// Values are stored as [`CachedValue`] (value, wall-clock creation time, creation duration,
/// format version; serde, so remote backends store it through any serde codec). Expiration
/// is judged by the region from the creation time, not by the backend's TTL: an expired
/// value stays readable so it can be served while one caller regenerates it (the backend
/// TTL, [`RegionBuilder::backend_expiry`], is only a garbage-collection bound and should be
/// longer than the expiration).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use larder::dogpile::{CachedValue, Region};
/// use larder::memory::MemoryCache;
/// use larder::Cache;
///
/// let backend: Arc<dyn Cache<CachedValue<String>>> = Arc::new(MemoryCache::new(1000));
/// let region = Region::builder("reports", backend)
///     .expiration(Some(Duration::from_secs(60)))
///     .build();
/// let report = region.get_or_create("daily", || Ok("expensive".to_string()))?;
/// assert_eq!(report, "expensive");
/// # Ok::<(), larder::Error>(())
/// ```
pub struct Region<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Region<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> Debug for Region<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.inner.name)
            .field("expiration", &self.inner.expiration)
            .finish()
    }
}

/// Configures a [`Region`]; see [`Region::builder`].
pub struct RegionBuilder<V> {
    name: String,
    backend: Arc<dyn Cache<CachedValue<V>>>,
    mutex: Option<Arc<dyn KeyedMutex>>,
    expiration: Option<Duration>,
    backend_expiry: Expiry,
    lock_wait: Duration,
    keys: Option<KeyEncoder>,
    clock: Option<SharedClock>,
    should_cache: Option<ShouldCache<V>>,
    background_threads: usize,
    early: Option<EarlyExpiration>,
}

impl<V> Debug for RegionBuilder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionBuilder")
            .field("name", &self.name)
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> RegionBuilder<V> {
    /// Values older than `expiration` are regenerated (`None`, the default: never by age).
    pub fn expiration(mut self, expiration: Option<Duration>) -> Self {
        self.expiration = expiration;
        self
    }

    /// The TTL given to the backend on every write (default [`Expiry::Never`]); keep it
    /// longer than the expiration so stale values remain to be served.
    pub fn backend_expiry(mut self, expiry: Expiry) -> Self {
        self.backend_expiry = expiry;
        self
    }

    /// The mutex guarding creation (default: an in-process [`LocalMutex`]; use a
    /// [`FileMutex`](crate::dogpile::FileMutex) or
    /// [`DistributedMutex`](crate::dogpile::DistributedMutex) to span processes). Locks are
    /// taken on the mangled key.
    pub fn mutex(mut self, mutex: Arc<dyn KeyedMutex>) -> Self {
        self.mutex = Some(mutex);
        self
    }

    /// The longest a caller waits for another caller's creator (default 30 s).
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The key mangler (default: UTF-8 keys prefixed with `"<region name>:"`). Use
    /// `KeyEncoder::new(KeyEncoding::Hash(..))` to make any key valid.
    pub fn key_encoder(mut self, keys: KeyEncoder) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The clock for creation times and invalidation (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Only values for which `predicate` is true are stored (others are still returned).
    pub fn should_cache(mut self, predicate: impl Fn(&V) -> bool + Send + Sync + 'static) -> Self {
        self.should_cache = Some(Arc::new(predicate));
        self
    }

    /// Background regeneration: the caller that wins the lock on an expired value returns
    /// the stale value at once and the creator runs on a new thread, at most `max_threads`
    /// at a time (when all are busy the winner regenerates inline, then returns the stale
    /// value; a creator error is then only logged). The lock is held until
    /// the background creator finishes. 0 turns it off (the default).
    pub fn background_regeneration(mut self, max_threads: usize) -> Self {
        self.background_threads = max_threads;
        self
    }

    /// Probabilistic early expiration (XFetch) with eagerness `beta` and a generator seeded
    /// with `seed`; needs an expiration.
    pub fn early_expiration(mut self, beta: f64, seed: u64) -> Self {
        self.early = Some(EarlyExpiration::new(beta, seed));
        self
    }

    /// Builds the region.
    pub fn build(self) -> Region<V> {
        let keys = self
            .keys
            .unwrap_or_else(|| super::default_key_encoder(&self.name));
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        Region {
            inner: Arc::new(Inner {
                name: self.name,
                backend: self.backend,
                mutex: self.mutex.unwrap_or_else(|| Arc::new(LocalMutex::new())),
                expiration: self.expiration,
                backend_expiry: self.backend_expiry,
                lock_wait: self.lock_wait,
                keys,
                clock: clock.clone(),
                should_cache: self.should_cache,
                background: (self.background_threads > 0).then(|| Background {
                    max: self.background_threads,
                    running: Arc::default(),
                }),
                freshness: Freshness::new(clock, self.early),
            }),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Region<V> {
    /// A builder for a region named `name` storing into `backend`.
    pub fn builder(
        name: impl Into<String>,
        backend: Arc<dyn Cache<CachedValue<V>>>,
    ) -> RegionBuilder<V> {
        RegionBuilder {
            name: name.into(),
            backend,
            mutex: None,
            expiration: None,
            backend_expiry: Expiry::Never,
            lock_wait: DEFAULT_LOCK_WAIT,
            keys: None,
            clock: None,
            should_cache: None,
            background_threads: 0,
            early: None,
        }
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The region's default expiration.
    pub fn expiration(&self) -> Option<Duration> {
        self.inner.expiration
    }

    /// The backend key for `key` (the key mangler's output).
    pub fn mangle(&self, key: &str) -> Result<String> {
        self.inner.keys.encode(key)
    }

    /// Runs `creator`, stores its value (unless `should_cache` says no) and returns it with
    /// its creation time.
    fn create(&self, mangled: &str, creator: impl FnOnce() -> Result<V>) -> Result<(V, Duration)> {
        let started = self.inner.clock.now();
        let value = creator()?;
        let creation_ms = millis(self.inner.clock.now().saturating_duration_since(started));
        let created_at_ms = self.inner.freshness.stamp();
        self.store(mangled, value.clone(), created_at_ms, creation_ms)?;
        Ok((value, Duration::from_millis(created_at_ms)))
    }

    fn store(&self, mangled: &str, value: V, created_at_ms: u64, creation_ms: u64) -> Result<()> {
        if let Some(should_cache) = &self.inner.should_cache {
            if !should_cache(&value) {
                return Ok(());
            }
        }
        let entry = Freshness::wrap(value, created_at_ms, creation_ms);
        self.inner
            .backend
            .set(mangled, entry, self.inner.backend_expiry)
    }

    /// The value under `key` if present, not invalidated and not expired; `None` otherwise.
    pub fn get(&self, key: &str) -> Result<Option<V>> {
        let mangled = self.mangle(key)?;
        let entry = self.inner.backend.get(&mangled)?;
        Ok(self.inner.freshness.peek(entry, self.inner.expiration))
    }

    /// The value under `key`, created by `creator` when missing or expired, with dogpile
    /// protection (see [`Lock`]): one caller creates, others wait (no value) or get the
    /// stale value (expired). With background regeneration on, the winner on a stale value
    /// also returns it at once while `creator` runs on a worker thread.
    ///
    /// A creator error reaches the caller that ran it; the next call tries again.
    pub fn get_or_create<F>(&self, key: &str, creator: F) -> Result<V>
    where
        F: FnOnce() -> Result<V> + Send + 'static,
    {
        self.get_or_create_expiring(key, self.inner.expiration, creator)
    }

    /// [`get_or_create`](Self::get_or_create) with this call's own expiration instead of the
    /// region's (`None`: never expires by age).
    pub fn get_or_create_expiring<F>(
        &self,
        key: &str,
        expiration: Option<Duration>,
        creator: F,
    ) -> Result<V>
    where
        F: FnOnce() -> Result<V> + Send + 'static,
    {
        let mangled = self.mangle(key)?;
        let lock = Lock::new(&*self.inner.mutex)
            .expiration(expiration)
            .wait(self.inner.lock_wait)
            .clock(Arc::clone(&self.inner.clock));
        let retriever = || {
            Ok(self
                .inner
                .freshness
                .judge(self.inner.backend.get(&mangled)?, expiration))
        };
        let Some(background) = &self.inner.background else {
            return lock.get(&mangled, || self.create(&mangled, creator), retriever);
        };
        // The creator moves into exactly one of the inline path or the background job.
        let slot = std::cell::RefCell::new(Some(creator));
        let take = || slot.borrow_mut().take();
        lock.get_or_spawn(
            &mangled,
            || match take() {
                Some(creator) => self.create(&mangled, creator),
                None => Err(Error::Unavailable("creator already used".into())),
            },
            retriever,
            |guard| {
                let Some(creator) = take() else { return };
                match background.reserve() {
                    Some(permit) => {
                        self.spawn_regeneration(mangled.clone(), creator, guard, permit)
                    }
                    // Every worker is busy: regenerate inline, still serving the stale value.
                    None => {
                        if let Err(err) = self.create(&mangled, creator) {
                            log::warn!("regeneration of {mangled:?} failed: {err}");
                        }
                        drop(guard);
                    }
                }
            },
        )
    }

    fn spawn_regeneration<F>(&self, mangled: String, creator: F, guard: LockGuard, permit: Permit)
    where
        F: FnOnce() -> Result<V> + Send + 'static,
    {
        let region = self.clone();
        let spawned = std::thread::Builder::new()
            .name("larder-regenerate".into())
            .spawn(move || {
                if let Err(err) = region.create(&mangled, creator) {
                    log::warn!("background regeneration of {mangled:?} failed: {err}");
                }
                drop(guard);
                drop(permit);
            });
        if let Err(err) = spawned {
            log::warn!("could not start a background regeneration thread: {err}");
        }
    }

    /// Values for every key in `keys` (in order), calling `creator` once with all the keys
    /// that are missing or expired (and whose lock this caller won); `creator` returns their
    /// values in the order of the keys it was given.
    ///
    /// Expired keys locked by another caller are served stale; missing keys wait for their
    /// lock (locks are taken in sorted key order, so concurrent multi-calls cannot deadlock).
    /// Regeneration here is always inline.
    pub fn get_or_create_multi<F>(&self, keys: &[&str], creator: F) -> Result<Vec<V>>
    where
        F: FnOnce(&[&str]) -> Result<Vec<V>>,
    {
        let expiration = self.inner.expiration;
        let mangled: Vec<String> = keys.iter().map(|k| self.mangle(k)).collect::<Result<_>>()?;
        let mut found = self.fetch(&mangled)?;
        let mut out: Vec<Option<V>> = vec![None; keys.len()];
        // (index, has a stale value to serve)
        let mut wanted: Vec<(usize, Option<V>)> = Vec::new();
        for (i, entry) in found.iter_mut().enumerate() {
            match self.inner.freshness.classify(entry.take(), expiration) {
                Ok(value) => out[i] = Some(value),
                Err(stale) => wanted.push((i, stale)),
            }
        }
        wanted.sort_by(|a, b| mangled[a.0].cmp(&mangled[b.0]));
        wanted.dedup_by(|a, b| mangled[a.0] == mangled[b.0]);
        let mut guards = Vec::new();
        let mut locked = Vec::new();
        for (i, stale) in wanted {
            match stale {
                Some(stale) => match self.inner.mutex.try_acquire(&mangled[i])? {
                    Some(guard) => {
                        guards.push(guard);
                        locked.push(i);
                    }
                    None => out[i] = Some(stale),
                },
                None => {
                    guards.push(
                        self.inner
                            .mutex
                            .acquire(&mangled[i], self.inner.lock_wait)?,
                    );
                    locked.push(i);
                }
            }
        }
        // Re-check under the locks.
        let relocked: Vec<String> = locked.iter().map(|&i| mangled[i].clone()).collect();
        let rechecked = self.fetch(&relocked)?;
        let mut to_create = Vec::new();
        for (&i, entry) in locked.iter().zip(rechecked) {
            match self.inner.freshness.classify(entry, expiration) {
                Ok(value) => out[i] = Some(value),
                Err(_) => to_create.push(i),
            }
        }
        if !to_create.is_empty() {
            let create_keys: Vec<&str> = to_create.iter().map(|&i| keys[i]).collect();
            let started = self.inner.clock.now();
            let values = creator(&create_keys)?;
            if values.len() != create_keys.len() {
                return Err(Error::user(format!(
                    "region {:?}: multi creator returned {} values for {} keys",
                    self.inner.name,
                    values.len(),
                    create_keys.len()
                )));
            }
            let creation_ms = millis(self.inner.clock.now().saturating_duration_since(started));
            let created_at_ms = self.inner.freshness.stamp();
            for (&i, value) in to_create.iter().zip(values) {
                self.store(&mangled[i], value.clone(), created_at_ms, creation_ms)?;
                out[i] = Some(value);
            }
        }
        drop(guards);
        // Duplicated keys share the first occurrence's value.
        for i in 0..out.len() {
            if out[i].is_none() {
                if let Some(j) = (0..i).find(|&j| mangled[j] == mangled[i]) {
                    out[i] = out[j].clone();
                }
            }
        }
        out.into_iter()
            .zip(keys)
            .map(|(v, k)| {
                v.ok_or_else(|| Error::Unavailable(format!("no value produced for key {k:?}")))
            })
            .collect()
    }

    fn fetch(&self, mangled: &[String]) -> Result<Vec<Option<CachedValue<V>>>> {
        let refs: Vec<&str> = mangled.iter().map(String::as_str).collect();
        let mut hits = self.inner.backend.get_multi(&refs)?;
        Ok(mangled.iter().map(|k| hits.remove(k)).collect())
    }

    /// Stores `value` under `key` as created now (subject to `should_cache`).
    pub fn set(&self, key: &str, value: V) -> Result<()> {
        let mangled = self.mangle(key)?;
        self.store(&mangled, value, self.inner.freshness.stamp(), 0)
    }

    /// Removes `key`; `true` when it was present.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let mangled = self.mangle(key)?;
        self.inner.backend.delete(&mangled)
    }

    /// Invalidates every value created before now, in this region object (and its clones):
    /// [`Invalidation::Hard`] makes them missing, [`Invalidation::Soft`] makes them stale
    /// (served while one caller regenerates). Other processes keep their own timestamp, as
    /// in dogpile.cache.
    pub fn invalidate(&self, how: Invalidation) {
        self.inner.freshness.invalidate(how);
    }

    /// Wraps `f` as a cached function whose results live in this region under keys
    /// `"<namespace>:<args as Debug>"` (hashed when that is not a valid key).
    pub fn cached_fn<A, F>(&self, namespace: impl Into<String>, f: F) -> CachedFn<A, V>
    where
        A: Debug + Clone + Send + 'static,
        F: Fn(&A) -> Result<V> + Send + Sync + 'static,
    {
        CachedFn {
            region: self.clone(),
            namespace: namespace.into(),
            f: Arc::new(f),
        }
    }
}

type CachedBody<A, V> = Arc<dyn Fn(&A) -> Result<V> + Send + Sync>;

/// A function whose results are cached in a [`Region`] per argument value (dogpile.cache's
/// `cache_on_arguments`). Made by [`Region::cached_fn`].
pub struct CachedFn<A, V> {
    region: Region<V>,
    namespace: String,
    f: CachedBody<A, V>,
}

impl<A, V> Debug for CachedFn<A, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFn")
            .field("region", &self.region.inner.name)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl<A, V> CachedFn<A, V>
where
    A: Debug + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The region key for `args`.
    pub fn key(&self, args: &A) -> String {
        let shown = format!("{args:?}");
        if shown.len() <= 200 && check_key(shown.as_bytes()).is_ok() {
            format!("{}:{shown}", self.namespace)
        } else {
            format!(
                "{}:#{}",
                self.namespace,
                hex_digest(HashAlgorithm::Sha1, shown.as_bytes())
            )
        }
    }

    /// The cached result for `args`, computing it (once, under the region's lock) when
    /// missing or expired.
    pub fn call(&self, args: &A) -> Result<V> {
        let f = Arc::clone(&self.f);
        let owned = args.clone();
        self.region
            .get_or_create(&self.key(args), move || f(&owned))
    }

    /// The cached result for `args` if present and fresh; never computes.
    pub fn get(&self, args: &A) -> Result<Option<V>> {
        self.region.get(&self.key(args))
    }

    /// Forgets the cached result for `args`; `true` when one was there.
    pub fn invalidate(&self, args: &A) -> Result<bool> {
        self.region.delete(&self.key(args))
    }

    /// Computes the result for `args` now, stores and returns it.
    pub fn refresh(&self, args: &A) -> Result<V> {
        let value = (self.f)(args)?;
        self.region.set(&self.key(args), value.clone())?;
        Ok(value)
    }

    /// Stores `value` as the result for `args` without calling the function.
    pub fn set(&self, args: &A, value: V) -> Result<()> {
        self.region.set(&self.key(args), value)
    }
}
