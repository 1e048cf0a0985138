//! [`AsyncRegion`]: the region for tokio code, over an [`AsyncCache`] backend.
//!
//! Concurrent misses on one key inside a process are coalesced (single flight): one task
//! runs the creator while the others await a per-key tokio mutex and then read the value it
//! stored. Expired values are served stale to every task but the one regenerating. An
//! optional cross-process [`KeyedMutex`] (file or distributed) is taken after the
//! in-process one, on tokio's blocking pool, so only one process regenerates too.
//!
//! Values, invalidation and early expiration work as in [`Region`](crate::dogpile::Region)
//! (the stored form is the same [`CachedValue`]).

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::sync::Mutex as TokioMutex;

use crate::clock::{SharedClock, SystemClock};
use crate::dogpile::early::EarlyExpiration;
use crate::dogpile::lock::DEFAULT_LOCK_WAIT;
use crate::dogpile::mutex::{KeyedMutex, LockGuard};
use crate::dogpile::region::{millis, CachedValue, Freshness, Invalidation};
use crate::keys::KeyEncoder;
use crate::{AsyncCache, Error, Expiry, Result};

type Flights = StdMutex<HashMap<String, Arc<TokioMutex<()>>>>;
type ShouldCache<V> = Arc<dyn Fn(&V) -> bool + Send + Sync>;

struct Inner<V: Send + 'static> {
    name: String,
    backend: Arc<dyn AsyncCache<CachedValue<V>>>,
    expiration: Option<Duration>,
    backend_expiry: Expiry,
    lock_wait: Duration,
    keys: KeyEncoder,
    clock: SharedClock,
    should_cache: Option<ShouldCache<V>>,
    cross_process: Option<Arc<dyn KeyedMutex>>,
    freshness: Freshness,
    flights: Flights,
}

/// An async cache region with single-flight coalescing. Cloning is cheap (shared).
pub struct AsyncRegion<V: Send + 'static> {
    inner: Arc<Inner<V>>,
}

impl<V: Send + 'static> Clone for AsyncRegion<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V: Send + 'static> Debug for AsyncRegion<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRegion")
            .field("name", &self.inner.name)
            .field("expiration", &self.inner.expiration)
            .finish()
    }
}

/// Configures an [`AsyncRegion`]; see [`AsyncRegion::builder`].
pub struct AsyncRegionBuilder<V: Send + 'static> {
    name: String,
    backend: Arc<dyn AsyncCache<CachedValue<V>>>,
    expiration: Option<Duration>,
    backend_expiry: Expiry,
    lock_wait: Duration,
    keys: Option<KeyEncoder>,
    clock: Option<SharedClock>,
    should_cache: Option<ShouldCache<V>>,
    cross_process: Option<Arc<dyn KeyedMutex>>,
    early: Option<EarlyExpiration>,
}

impl<V: Send + 'static> Debug for AsyncRegionBuilder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRegionBuilder")
            .field("name", &self.name)
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> AsyncRegionBuilder<V> {
    /// Values older than `expiration` are regenerated (`None`, the default: never by age).
    pub fn expiration(mut self, expiration: Option<Duration>) -> Self {
        self.expiration = expiration;
        self
    }

    /// The TTL given to the backend on every write (default [`Expiry::Never`]).
    pub fn backend_expiry(mut self, expiry: Expiry) -> Self {
        self.backend_expiry = expiry;
        self
    }

    /// The longest a task waits for another creator, in-process and cross-process
    /// together (default 30 s; [`Error::LockTimeout`] past it).
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The key mangler (default: UTF-8 keys prefixed with `"<region name>:"`).
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

    /// Also takes `mutex` (a [`FileMutex`](crate::dogpile::FileMutex) or
    /// [`DistributedMutex`](crate::dogpile::DistributedMutex)) before creating, so one
    /// process regenerates at a time. Its blocking calls run on tokio's blocking pool.
    pub fn cross_process_mutex(mut self, mutex: Arc<dyn KeyedMutex>) -> Self {
        self.cross_process = Some(mutex);
        self
    }

    /// Probabilistic early expiration (XFetch); see
    /// [`RegionBuilder::early_expiration`](crate::dogpile::RegionBuilder::early_expiration).
    pub fn early_expiration(mut self, beta: f64, seed: u64) -> Self {
        self.early = Some(EarlyExpiration::new(beta, seed));
        self
    }

    /// Builds the region.
    pub fn build(self) -> AsyncRegion<V> {
        let keys = self
            .keys
            .unwrap_or_else(|| super::default_key_encoder(&self.name));
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        AsyncRegion {
            inner: Arc::new(Inner {
                name: self.name,
                backend: self.backend,
                expiration: self.expiration,
                backend_expiry: self.backend_expiry,
                lock_wait: self.lock_wait,
                keys,
                clock: clock.clone(),
                should_cache: self.should_cache,
                cross_process: self.cross_process,
                freshness: Freshness::new(clock, self.early),
                flights: StdMutex::default(),
            }),
        }
    }
}

/// A task's interest in a key's single-flight mutex; the map entry goes when the last
/// interested task drops its `Flight`.
struct Flight<'a> {
    flights: &'a Flights,
    key: &'a str,
    mutex: Arc<TokioMutex<()>>,
}

impl<'a> Flight<'a> {
    fn join(flights: &'a Flights, key: &'a str) -> Self {
        let mut map = flights.lock().unwrap_or_else(PoisonError::into_inner);
        let mutex = Arc::clone(map.entry(key.to_owned()).or_default());
        Self {
            flights,
            key,
            mutex,
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map and this flight still refer to it: nobody else holds or waits.
        if Arc::strong_count(&self.mutex) == 2 {
            map.remove(self.key);
        }
    }
}

fn join_error(err: tokio::task::JoinError) -> Error {
    Error::from_join("the cross-process lock task", err)
}

impl<V: Clone + Send + Sync + 'static> AsyncRegion<V> {
    /// A builder for a region named `name` storing into `backend`.
    pub fn builder(
        name: impl Into<String>,
        backend: Arc<dyn AsyncCache<CachedValue<V>>>,
    ) -> AsyncRegionBuilder<V> {
        AsyncRegionBuilder {
            name: name.into(),
            backend,
            expiration: None,
            backend_expiry: Expiry::Never,
            lock_wait: DEFAULT_LOCK_WAIT,
            keys: None,
            clock: None,
            should_cache: None,
            cross_process: None,
            early: None,
        }
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The backend key for `key`.
    pub fn mangle(&self, key: &str) -> Result<String> {
        self.inner.keys.encode(key)
    }

    /// How many keys currently have tasks creating or waiting in this process.
    pub fn flights_in_progress(&self) -> usize {
        self.inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The value under `key` if present, not invalidated and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<V>> {
        let mangled = self.mangle(key)?;
        let entry = self.inner.backend.get(&mangled).await?;
        Ok(self.inner.freshness.peek(entry, self.inner.expiration))
    }

    /// The value under `key`, created by `creator` when missing or expired: one task (and,
    /// with a cross-process mutex, one process) creates; concurrent tasks on a missing key
    /// await it, on an expired key they get the stale value at once. A creator error
    /// reaches the task that ran it; waiting tasks then try in turn.
    pub async fn get_or_create<F, Fut>(&self, key: &str, creator: F) -> Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        self.get_or_create_expiring(key, self.inner.expiration, creator)
            .await
    }

    /// [`get_or_create`](Self::get_or_create) with this call's own expiration.
    pub async fn get_or_create_expiring<F, Fut>(
        &self,
        key: &str,
        expiration: Option<Duration>,
        creator: F,
    ) -> Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        let inner = &*self.inner;
        let mangled = self.mangle(key)?;
        let stale = match inner
            .freshness
            .classify(inner.backend.get(&mangled).await?, expiration)
        {
            Ok(fresh) => return Ok(fresh),
            Err(stale) => stale,
        };
        let started_waiting = tokio::time::Instant::now();
        let flight = Flight::join(&inner.flights, &mangled);
        let _local = match &stale {
            Some(stale) => match flight.mutex.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(stale.clone()),
            },
            None => tokio::time::timeout(inner.lock_wait, flight.mutex.lock())
                .await
                .map_err(|_| Error::LockTimeout {
                    key: mangled.clone(),
                    waited: inner.lock_wait,
                })?,
        };
        let _cross: Option<LockGuard> = match &inner.cross_process {
            None => None,
            Some(mutex) => {
                let (mutex, k) = (Arc::clone(mutex), mangled.clone());
                match &stale {
                    Some(stale) => {
                        let got = tokio::task::spawn_blocking(move || mutex.try_acquire(&k))
                            .await
                            .map_err(join_error)??;
                        match got {
                            Some(guard) => Some(guard),
                            None => return Ok(stale.clone()),
                        }
                    }
                    None => {
                        let left = inner.lock_wait.saturating_sub(started_waiting.elapsed());
                        Some(
                            tokio::task::spawn_blocking(move || mutex.acquire(&k, left))
                                .await
                                .map_err(join_error)??,
                        )
                    }
                }
            }
        };
        // Re-check under the locks: the value may have just been made.
        if let Ok(fresh) = inner
            .freshness
            .classify(inner.backend.get(&mangled).await?, expiration)
        {
            return Ok(fresh);
        }
        let started = inner.clock.now();
        let value = creator().await?;
        let creation_ms = millis(inner.clock.now().saturating_duration_since(started));
        self.store(
            &mangled,
            value.clone(),
            inner.freshness.stamp(),
            creation_ms,
        )
        .await?;
        Ok(value)
    }

    async fn store(
        &self,
        mangled: &str,
        value: V,
        created_at_ms: u64,
        creation_ms: u64,
    ) -> Result<()> {
        if let Some(should_cache) = &self.inner.should_cache {
            if !should_cache(&value) {
                return Ok(());
            }
        }
        let entry = Freshness::wrap(value, created_at_ms, creation_ms);
        self.inner
            .backend
            .set(mangled, entry, self.inner.backend_expiry)
            .await
    }

    /// Stores `value` under `key` as created now (subject to `should_cache`).
    pub async fn set(&self, key: &str, value: V) -> Result<()> {
        let mangled = self.mangle(key)?;
        self.store(&mangled, value, self.inner.freshness.stamp(), 0)
            .await
    }

    /// Removes `key`; `true` when it was present.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let mangled = self.mangle(key)?;
        self.inner.backend.delete(&mangled).await
    }

    /// Invalidates every value created before now; see
    /// [`Region::invalidate`](crate::dogpile::Region::invalidate).
    pub fn invalidate(&self, how: Invalidation) {
        self.inner.freshness.invalidate(how);
    }
}
