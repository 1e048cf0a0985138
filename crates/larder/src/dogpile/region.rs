//! [`Region`]: dogpile.cache's cache region for blocking code, over any backend.
//!
//! The rules (fresh, stale or missing; invalidation; background or inline regeneration)
//! are the region core's; this face waits on threads: an in-process [`LocalMutex`] per key,
//! then the optional shared mutex, and background creators run on their own threads.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dogpile::backend::{BlockingStore, RegionBackend, Store};
use crate::dogpile::cached_fn::CachedFn;
use crate::dogpile::core::{lock_key, millis, Core, Invalidation, Permit, Verdict};
use crate::dogpile::lock;
use crate::dogpile::multi::{MultiLock, MultiPlan};
use crate::dogpile::mutex::{KeyedMutex, LocalMutex, LockGuard};
use crate::dogpile::settings::RegionBuilder;
use crate::{Error, Result};

/// The blocking face's lock on a key: the in-process mutex, then the shared one (on the
/// key as `lock_prefix` + key).
struct Layered {
    local: LocalMutex,
    shared: Option<Arc<dyn KeyedMutex>>,
    lock_prefix: Option<String>,
}

impl Layered {
    fn shared_key<'k>(&self, key: &'k str) -> std::borrow::Cow<'k, str> {
        lock_key(self.lock_prefix.as_deref(), key)
    }

    fn join(local: LockGuard, shared: Option<LockGuard>) -> LockGuard {
        let key = local.key().to_owned();
        // The shared lock goes first, so a local waiter that wakes finds it free.
        LockGuard::new(key, move || {
            let shared = shared.map_or(Ok(()), LockGuard::release);
            local.release().and(shared)
        })
    }
}

impl KeyedMutex for Layered {
    fn acquire(&self, key: &str, wait: Duration) -> Result<LockGuard> {
        let started = Instant::now();
        let local = self.local.acquire(key, wait)?;
        let shared = match &self.shared {
            Some(shared) => {
                let left = wait.saturating_sub(started.elapsed());
                Some(shared.acquire(&self.shared_key(key), left)?)
            }
            None => None,
        };
        Ok(Self::join(local, shared))
    }

    fn try_acquire(&self, key: &str) -> Result<Option<LockGuard>> {
        let Some(local) = self.local.try_acquire(key)? else {
            return Ok(None);
        };
        let shared = match &self.shared {
            Some(shared) => match shared.try_acquire(&self.shared_key(key))? {
                Some(guard) => Some(guard),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(Self::join(local, shared)))
    }
}

struct Inner<V> {
    core: Core<V>,
    store: Store<V>,
    mutex: Layered,
}

/// A cache region: `get_or_create` with dogpile protection over any backend, plus
/// invalidation, cached functions and background regeneration. Cloning is cheap (shared).
///
/// The backend is a memory cache the region builds (from a `MemoryCacheBuilder`), any
/// cache of [`CachedValue`](super::CachedValue)s (stored as they are) or any cache of bytes
/// (memcached, Redis, tiered, …; the region encodes its entries with a serde codec): see
/// [`RegionBackend`]. Expiration is judged by
/// the region from the creation time, not by the backend's TTL: an expired value stays
/// readable so it can be served while one caller regenerates it (the backend TTL,
/// [`RegionBuilder::backend_expiry`], is only a garbage-collection bound and should be
/// longer than the expiration).
///
/// ```
/// use std::time::Duration;
/// use larder::dogpile::Region;
/// use larder::memory::MemoryCache;
///
/// // In process: the region builds its own memory cache and stores its entries as they are.
/// let region = Region::builder("reports", MemoryCache::builder().max_entries(1000))
///     .expiration(Some(Duration::from_secs(60)))
///     .build();
/// let report = region.get_or_create("daily", || Ok("expensive".to_string()))?;
/// assert_eq!(report, "expensive");
///
/// // Any cache of bytes works the same way (here a memory one; memcached's is
/// // `MemcachedCache::new(client, BytesCodec)`): the region encodes its entries as JSON.
/// let bytes = MemoryCache::<Vec<u8>>::new(1000);
/// let region: Region<Vec<u32>> = Region::builder("lists", bytes).build();
/// assert_eq!(region.get_or_create("primes", || Ok(vec![2, 3, 5]))?, [2, 3, 5]);
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
            .field("name", &self.inner.core.name)
            .field("expiration", &self.inner.core.expiration)
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> RegionBuilder<V, BlockingStore<V>> {
    /// Builds the region.
    pub fn build(self) -> Region<V> {
        let (parts, shared, codec) = self.settings.split(self.store.owned());
        let lock_prefix = parts.lock_prefix.clone();
        Region {
            inner: Arc::new(Inner {
                core: Core::new(parts),
                store: self.store.finish(codec),
                mutex: Layered {
                    local: LocalMutex::new(),
                    shared,
                    lock_prefix,
                },
            }),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Region<V> {
    /// A builder for a region named `name` storing into `backend`: a cache of
    /// [`CachedValue<V>`](super::CachedValue) or a cache of bytes (see [`RegionBackend`]).
    pub fn builder<K>(
        name: impl Into<String>,
        backend: impl RegionBackend<V, K>,
    ) -> RegionBuilder<V> {
        RegionBuilder::new(name.into(), backend.into_store())
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.inner.core.name
    }

    /// The region's default expiration.
    pub fn expiration(&self) -> Option<Duration> {
        self.inner.core.expiration
    }

    /// The backend key for `key` (the key mangler's output).
    pub fn mangle(&self, key: &str) -> Result<String> {
        self.inner.core.mangle(key)
    }

    /// Runs `creator` and stores its value (unless `should_cache` says no).
    fn create(&self, mangled: &str, creator: impl FnOnce() -> Result<V>) -> Result<V> {
        let core = &self.inner.core;
        let started = core.started();
        let value = creator()?;
        if let Some(entry) = core.created(&value, started) {
            self.inner.store.set(mangled, entry, core.backend_expiry)?;
        }
        Ok(value)
    }

    /// The value under `key` if present, not invalidated and not expired; `None` otherwise.
    pub fn get(&self, key: &str) -> Result<Option<V>> {
        let inner = &*self.inner;
        inner
            .core
            .with_mangled(key, |mangled| inner.store.peek(&inner.core, mangled))
    }

    /// The value under `key`, created by `creator` when missing or expired, with dogpile
    /// protection (see [`Lock`](super::Lock)): one caller creates, others wait (no value) or
    /// get the stale value (expired). With background regeneration on, the winner on a
    /// stale value also returns it at once while `creator` runs on a worker thread.
    ///
    /// A creator error reaches the caller that ran it; the next call tries again.
    pub fn get_or_create<F>(&self, key: &str, creator: F) -> Result<V>
    where
        F: FnOnce() -> Result<V> + Send + 'static,
    {
        self.get_or_create_ms(key, self.inner.core.expiration_ms, creator)
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
        self.get_or_create_ms(key, expiration.map(millis), creator)
    }

    fn get_or_create_ms<F>(&self, key: &str, expiration_ms: Option<u64>, creator: F) -> Result<V>
    where
        F: FnOnce() -> Result<V> + Send + 'static,
    {
        let inner = &*self.inner;
        inner.core.with_mangled(key, |mangled| {
            match inner.store.judge(&inner.core, mangled, expiration_ms)? {
                Verdict::Fresh(value) => Ok(value),
                first => self.contend(mangled, expiration_ms, first, creator),
            }
        })
    }

    /// Everything after a first read that found no fresh value: the lock, the second read,
    /// the creator. Kept out of line so the fresh-hit path stays small.
    #[inline(never)]
    fn contend<F>(
        &self,
        mangled: &str,
        expiration_ms: Option<u64>,
        first: Verdict<V>,
        creator: F,
    ) -> Result<V>
    where
        F: FnOnce() -> Result<V> + Send + 'static,
    {
        let inner = &*self.inner;
        lock::run(
            &inner.mutex,
            mangled,
            inner.core.lock_wait,
            first,
            || inner.store.judge(&inner.core, mangled, expiration_ms),
            inner.core.spawn(),
            creator,
            |creator| self.create(mangled, creator),
            |creator, guard, permit| self.spawn_regeneration(mangled, creator, guard, permit),
        )
    }

    fn spawn_regeneration<F>(
        &self,
        mangled: &str,
        creator: F,
        guard: LockGuard,
        permit: Option<Permit>,
    ) where
        F: FnOnce() -> Result<V> + Send + 'static,
    {
        let (region, mangled) = (self.clone(), mangled.to_owned());
        let spawned = std::thread::Builder::new()
            .name("larder-regenerate".into())
            .spawn(move || {
                // Nobody awaits this thread: a panicking creator is reported here or nowhere.
                let created = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    region.create(&mangled, creator)
                }))
                .unwrap_or_else(|panic| Err(Error::panicked("the creator", &*panic)));
                if let Err(err) = created {
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
        let (core, store) = (&self.inner.core, &self.inner.store);
        let mut plan = MultiPlan::new(core, keys)?;
        let found = store.get_multi(&plan.to_fetch())?;
        let mut guards = Vec::new();
        for (i, how) in plan.first_look(core, found) {
            let guard = match how {
                MultiLock::Try => self.inner.mutex.try_acquire(plan.key(i))?,
                MultiLock::Wait => Some(self.inner.mutex.acquire(plan.key(i), core.lock_wait)?),
            };
            match guard {
                Some(guard) => {
                    guards.push(guard);
                    plan.locked(i);
                }
                None => plan.busy(i),
            }
        }
        if !guards.is_empty() {
            let found = store.get_multi(&plan.to_recheck())?;
            let to_create = plan.recheck(core, found);
            if !to_create.is_empty() {
                let started = core.started();
                let values = creator(&to_create)?;
                for (i, entry) in plan.created(core, values, started)? {
                    store.set(plan.key(i), entry, core.backend_expiry)?;
                }
            }
        }
        drop(guards);
        plan.finish()
    }

    /// Stores `value` under `key` as created now (subject to `should_cache`).
    pub fn set(&self, key: &str, value: V) -> Result<()> {
        let mangled = self.mangle(key)?;
        match self.inner.core.written(value) {
            Some(entry) => self
                .inner
                .store
                .set(&mangled, entry, self.inner.core.backend_expiry),
            None => Ok(()),
        }
    }

    /// Removes `key`; `true` when it was present.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let mangled = self.mangle(key)?;
        self.inner.store.delete(&mangled)
    }

    /// Invalidates every value created before now, in this region object (and its clones):
    /// [`Invalidation::Hard`] makes them missing, [`Invalidation::Soft`] makes them stale
    /// (served while one caller regenerates). Other processes keep their own timestamp, as
    /// in dogpile.cache.
    pub fn invalidate(&self, how: Invalidation) {
        self.inner.core.invalidate(how);
    }

    /// Wraps `f` as a cached function whose results live in this region under keys
    /// `"<namespace>:<args as Debug>"` (hashed when that is not a valid key).
    pub fn cached_fn<A, F>(&self, namespace: impl Into<String>, f: F) -> CachedFn<A, V>
    where
        A: Debug + Clone + Send + 'static,
        F: Fn(&A) -> Result<V> + Send + Sync + 'static,
    {
        CachedFn::new(self.clone(), namespace.into(), Arc::new(f))
    }
}
