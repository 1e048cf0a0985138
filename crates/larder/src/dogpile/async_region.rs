//! [`AsyncRegion`]: the region for tokio code, over any async backend.
//!
//! The rules are the region core's, as in [`Region`](super::Region); this face waits in
//! futures. Concurrent misses on one key inside a process are coalesced (single flight):
//! one task runs the creator while the others await a per-key tokio mutex, then read the
//! value it stored. The optional shared mutex (file or distributed) is taken after it, on
//! tokio's blocking pool, so only one process regenerates too. Background creators run as
//! tokio tasks.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex as TokioMutex, OwnedMutexGuard};

use crate::dogpile::backend::{AsyncEntryStore, AsyncRegionBackend, AsyncStore};
use crate::dogpile::cached_fn::AsyncCachedFn;
use crate::dogpile::core::{millis, Core, Holder, Invalidation, Step};
use crate::dogpile::multi::{MultiLock, MultiPlan};
use crate::dogpile::mutex::{KeyedMutex, LockGuard};
use crate::dogpile::settings::RegionBuilder;
use crate::{Error, Result};

/// Configures an [`AsyncRegion`]; see [`AsyncRegion::builder`] and [`RegionBuilder`].
pub type AsyncRegionBuilder<V> = RegionBuilder<V, AsyncStore<V>>;

/// A key's single-flight mutex and how many tasks hold or wait for it.
type Flight = (Arc<TokioMutex<()>>, usize);

/// The flights of a region, by key.
#[derive(Default)]
struct Flights(StdMutex<HashMap<String, Flight>>);

/// A task's interest in a key's flight; the map entry goes with the last one.
struct Interest {
    flights: Arc<Flights>,
    key: String,
    mutex: Arc<TokioMutex<()>>,
}

impl Flights {
    fn join(self: &Arc<Self>, key: &str) -> Interest {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(key.to_owned()).or_default();
        entry.1 += 1;
        Interest {
            flights: Arc::clone(self),
            key: key.to_owned(),
            mutex: Arc::clone(&entry.0),
        }
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&self.key) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// A held key: the flight, then (optionally) the shared mutex. Fields drop in order, so the
/// shared lock is released before the flight lets the next task in.
struct Held {
    shared: Option<LockGuard>,
    _flight: OwnedMutexGuard<()>,
    _interest: Interest,
}

impl Held {
    /// Releases the shared lock on the blocking pool (it may be a network call), then the
    /// flight.
    async fn release(mut self) {
        if let Some(shared) = self.shared.take() {
            let key = shared.key().to_owned();
            let released = match blocking(move || shared.release()) {
                Ok(task) => task.await.map_err(join_error).and_then(|r| r),
                Err(err) => Err(err),
            };
            if let Err(err) = released {
                log::warn!("releasing lock {key:?} failed: {err}");
            }
        }
    }
}

struct Inner<V: Send + 'static> {
    core: Core<V>,
    store: Box<dyn AsyncEntryStore<V>>,
    shared: Option<Arc<dyn KeyedMutex>>,
    flights: Arc<Flights>,
}

/// An async cache region with single-flight coalescing. Cloning is cheap (shared).
///
/// The same region as [`Region`](super::Region) (backends, stored form, settings,
/// invalidation, early expiration, background regeneration, cached functions) for async
/// code; creators are `FnOnce() -> impl Future`.
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
            .field("name", &self.inner.core.name)
            .field("expiration", &self.inner.core.expiration)
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> RegionBuilder<V, AsyncStore<V>> {
    /// Builds the region.
    pub fn build(self) -> AsyncRegion<V> {
        let (parts, shared, codec) = self.settings.split(self.store.owned());
        AsyncRegion {
            inner: Arc::new(Inner {
                core: Core::new(parts),
                store: self.store.finish(codec),
                shared,
                flights: Arc::default(),
            }),
        }
    }
}

fn join_error(err: tokio::task::JoinError) -> Error {
    Error::from_join("the cross-process lock task", err)
}

/// Runs `f` on the current tokio runtime's blocking pool; an error (not a panic) when the
/// region is polled outside a tokio runtime.
fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<tokio::task::JoinHandle<T>> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|err| {
        Error::Unavailable(format!(
            "AsyncRegion's shared mutex needs a tokio runtime: {err}"
        ))
    })?;
    Ok(runtime.spawn_blocking(f))
}

impl<V: Clone + Send + Sync + 'static> AsyncRegion<V> {
    /// A builder for a region named `name` storing into `backend`: an async cache of
    /// [`CachedValue<V>`](super::CachedValue) or of bytes (see [`AsyncRegionBackend`]).
    pub fn builder<K>(
        name: impl Into<String>,
        backend: impl AsyncRegionBackend<V, K>,
    ) -> AsyncRegionBuilder<V> {
        RegionBuilder::new(name.into(), backend.into_async_store())
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.inner.core.name
    }

    /// The region's default expiration.
    pub fn expiration(&self) -> Option<Duration> {
        self.inner.core.expiration
    }

    /// The backend key for `key`.
    pub fn mangle(&self, key: &str) -> Result<String> {
        self.inner.core.mangle(key)
    }

    /// How many keys currently have tasks creating or waiting in this process.
    pub fn flights_in_progress(&self) -> usize {
        self.inner.flights.len()
    }

    /// Takes `key`'s locks if both are free right now.
    async fn try_lock(&self, key: &str) -> Result<Option<Held>> {
        let interest = self.inner.flights.join(key);
        let Ok(flight) = Arc::clone(&interest.mutex).try_lock_owned() else {
            return Ok(None);
        };
        let shared = match &self.inner.shared {
            None => None,
            Some(mutex) => {
                let (mutex, k) = (
                    Arc::clone(mutex),
                    self.inner.core.lock_key(key).into_owned(),
                );
                match blocking(move || mutex.try_acquire(&k))?
                    .await
                    .map_err(join_error)??
                {
                    Some(guard) => Some(guard),
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(Held {
            shared,
            _flight: flight,
            _interest: interest,
        }))
    }

    /// Waits for `key`'s locks, at most `lock_wait` for both.
    async fn lock(&self, key: &str) -> Result<Held> {
        let wait = self.inner.core.lock_wait;
        // The bound on waiting needs tokio's timer: outside a runtime, an error, not a panic.
        tokio::runtime::Handle::try_current().map_err(|err| {
            Error::Unavailable(format!("AsyncRegion waits on a tokio runtime: {err}"))
        })?;
        let started = tokio::time::Instant::now();
        let interest = self.inner.flights.join(key);
        let flight = tokio::time::timeout(wait, Arc::clone(&interest.mutex).lock_owned())
            .await
            .map_err(|_| Error::LockTimeout {
                key: key.to_owned(),
                waited: wait,
            })?;
        let shared = match &self.inner.shared {
            None => None,
            Some(mutex) => {
                let (mutex, k) = (
                    Arc::clone(mutex),
                    self.inner.core.lock_key(key).into_owned(),
                );
                let left = wait.saturating_sub(started.elapsed());
                Some(
                    blocking(move || mutex.acquire(&k, left))?
                        .await
                        .map_err(join_error)??,
                )
            }
        };
        Ok(Held {
            shared,
            _flight: flight,
            _interest: interest,
        })
    }

    /// Runs `creator` and stores its value (unless `should_cache` says no).
    async fn create<Fut>(&self, mangled: &str, creator: impl FnOnce() -> Fut) -> Result<V>
    where
        Fut: Future<Output = Result<V>>,
    {
        let core = &self.inner.core;
        let started = core.started();
        let value = creator().await?;
        if let Some(entry) = core.created(&value, started) {
            self.inner
                .store
                .set(mangled, entry, core.backend_expiry)
                .await?;
        }
        Ok(value)
    }

    /// The value under `key` if present, not invalidated and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<V>> {
        let mangled = self.mangle(key)?;
        Ok(self.inner.core.peek(self.inner.store.get(&mangled).await?))
    }

    /// The value under `key`, created by `creator` when missing or expired: one task (and,
    /// with a shared mutex, one process) creates; concurrent tasks on a missing key await
    /// it, on an expired key they get the stale value at once. With background
    /// regeneration on, the winner on a stale value also returns it at once while the
    /// creator runs as a tokio task (hence `Send + 'static`). A creator error reaches the
    /// task that ran it; waiting tasks then try in turn.
    pub async fn get_or_create<F, Fut>(&self, key: &str, creator: F) -> Result<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V>> + Send + 'static,
    {
        self.get_or_create_ms(key, self.inner.core.expiration_ms, creator)
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
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V>> + Send + 'static,
    {
        self.get_or_create_ms(key, expiration.map(millis), creator)
            .await
    }

    async fn get_or_create_ms<F, Fut>(
        &self,
        key: &str,
        expiration: Option<u64>,
        creator: F,
    ) -> Result<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V>> + Send + 'static,
    {
        let (core, store) = (&self.inner.core, &self.inner.store);
        let mangled = core.mangle(key)?;
        let held = match core.judge(store.get(&mangled).await?, expiration).step() {
            Step::Serve(value) => return Ok(value),
            Step::TryLock(stale) => match self.try_lock(&mangled).await? {
                Some(held) => held,
                None => return Ok(stale),
            },
            Step::WaitLock => self.lock(&mangled).await?,
        };
        let verdict = core.judge(store.get(&mangled).await?, expiration);
        match verdict.holder(core.spawn()) {
            Holder::Serve(value) => Ok(value),
            Holder::Create => {
                let created = self.create(&mangled, creator).await;
                held.release().await;
                created
            }
            Holder::CreateThenServe(stale) => {
                self.regenerate_then_serve(&mangled, creator, held, stale)
                    .await
            }
            Holder::Spawn(stale, permit) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let region = self.clone();
                    runtime.spawn(async move {
                        // Nobody awaits this task: a panicking creator is reported here (its
                        // own task catches the panic) or nowhere.
                        let key = mangled.clone();
                        let task = tokio::spawn(async move { region.create(&key, creator).await });
                        let created = task
                            .await
                            .unwrap_or_else(|err| Err(Error::from_join("the creator", err)));
                        if let Err(err) = created {
                            log::warn!("background regeneration of {mangled:?} failed: {err}");
                        }
                        held.release().await;
                        drop(permit);
                    });
                    Ok(stale)
                }
                // Polled outside a tokio runtime: nowhere to spawn, so regenerate here.
                Err(_) => {
                    drop(permit);
                    self.regenerate_then_serve(&mangled, creator, held, stale)
                        .await
                }
            },
        }
    }

    /// Regenerates inline, then serves the stale value (a creator error is only logged).
    async fn regenerate_then_serve<Fut>(
        &self,
        mangled: &str,
        creator: impl FnOnce() -> Fut,
        held: Held,
        stale: V,
    ) -> Result<V>
    where
        Fut: Future<Output = Result<V>>,
    {
        if let Err(err) = self.create(mangled, creator).await {
            log::warn!("regeneration of {mangled:?} failed: {err}");
        }
        held.release().await;
        Ok(stale)
    }

    /// Values for every key in `keys` (in order), calling `creator` once with all the keys
    /// that are missing or expired (and whose lock this task won); `creator` returns their
    /// values in the order of the keys it was given. Locking and serving as in
    /// [`Region::get_or_create_multi`](super::Region::get_or_create_multi).
    pub async fn get_or_create_multi<F, Fut>(&self, keys: &[&str], creator: F) -> Result<Vec<V>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<V>>>,
    {
        let (core, store) = (&self.inner.core, &self.inner.store);
        let mut plan = MultiPlan::new(core, keys)?;
        let found = store.get_multi(&plan.to_fetch()).await?;
        let mut held = Vec::new();
        for (i, how) in plan.first_look(core, found) {
            let got = match how {
                MultiLock::Try => self.try_lock(plan.key(i)).await?,
                MultiLock::Wait => Some(self.lock(plan.key(i)).await?),
            };
            match got {
                Some(h) => {
                    held.push(h);
                    plan.locked(i);
                }
                None => plan.busy(i),
            }
        }
        let created = self
            .create_multi(core, &mut plan, creator, !held.is_empty())
            .await;
        for h in held {
            h.release().await;
        }
        created?;
        plan.finish()
    }

    async fn create_multi<F, Fut>(
        &self,
        core: &Core<V>,
        plan: &mut MultiPlan<'_, V>,
        creator: F,
        any_locked: bool,
    ) -> Result<()>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<V>>>,
    {
        if !any_locked {
            return Ok(());
        }
        let found = self.inner.store.get_multi(&plan.to_recheck()).await?;
        let to_create = plan.recheck(core, found);
        if to_create.is_empty() {
            return Ok(());
        }
        let started = core.started();
        let values = creator(to_create.iter().map(|k| (*k).to_owned()).collect()).await?;
        for (i, entry) in plan.created(core, values, started)? {
            self.inner
                .store
                .set(plan.key(i), entry, core.backend_expiry)
                .await?;
        }
        Ok(())
    }

    /// Stores `value` under `key` as created now (subject to `should_cache`).
    pub async fn set(&self, key: &str, value: V) -> Result<()> {
        let mangled = self.mangle(key)?;
        match self.inner.core.written(value) {
            Some(entry) => {
                self.inner
                    .store
                    .set(&mangled, entry, self.inner.core.backend_expiry)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Removes `key`; `true` when it was present.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let mangled = self.mangle(key)?;
        self.inner.store.delete(&mangled).await
    }

    /// Invalidates every value created before now; see
    /// [`Region::invalidate`](crate::dogpile::Region::invalidate).
    pub fn invalidate(&self, how: Invalidation) {
        self.inner.core.invalidate(how);
    }

    /// Wraps `f` as a cached function whose results live in this region under keys
    /// `"<namespace>:<args as Debug>"` (hashed when that is not a valid key).
    pub fn cached_fn<A, F, Fut>(&self, namespace: impl Into<String>, f: F) -> AsyncCachedFn<A, V>
    where
        A: Debug + Clone + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V>> + Send + 'static,
    {
        AsyncCachedFn::new(self.clone(), namespace.into(), f)
    }
}
