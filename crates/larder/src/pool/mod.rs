//! Pools: one API whose strategy is configuration, and [`Proxy`].
//!
//! A [`Pool`] hands out objects made by a [`Manager`]. How it hands them out is a value in
//! its [`PoolConfig`] — [`Strategy::Shared`] (one thread-safe object for every caller),
//! [`Strategy::Queue`] (a bounded set of exclusive objects) or [`Strategy::PerThread`] (one
//! object per thread) — and the caller's code is the same for all three:
//!
//! ```
//! use larder::pool::{Manager, Pool, PoolConfig, Strategy};
//!
//! struct Counter;
//! impl Manager for Counter {
//!     type Object = Vec<u8>;
//!     type Error = std::io::Error;
//!     fn create(&self) -> Result<Vec<u8>, std::io::Error> { Ok(vec![1, 2, 3]) }
//! }
//!
//! for strategy in [Strategy::Shared, Strategy::queue(4), Strategy::PerThread] {
//!     let pool = Pool::new(Counter, PoolConfig::new("demo", strategy))?;
//!     let obj = pool.get()?;          // checkout
//!     assert_eq!(obj.len(), 3);       // the guard derefs to the object
//! }                                   // dropping the guard returns the object
//! # Ok::<(), larder::Error>(())
//! ```
//!
//! Mutation: `DerefMut` cannot exist under `Shared` (every caller holds the same object), so
//! the guard offers [`Pooled::get_mut`], which gives `&mut` under the exclusive strategies and
//! [`Error::Unsupported`] under `Shared`. Code that mutates therefore states it needs an
//! exclusive strategy, and shared objects use interior mutability as they must anyway.
//!
//! An object whose holder panics is dropped, not returned; [`Pooled::discard`] drops one on
//! purpose (a connection that saw an I/O error). A panic in the manager's `create` or
//! `recycle` or in the `on_create` / `on_checkout` hooks is caught: the object is dropped,
//! its slot freed, and the checkout fails with [`Error::Panicked`].
//!
//! Leaks — checkouts held longer than [`PoolConfig::max_hold`] — are reported once each,
//! with a `log::warn!` naming the pool (no background thread): `leaks` in [`PoolStats`]
//! counts the guards that came back late, `held_too_long` those found still out by
//! [`Pool::stats`] or by a later checkout (see `hold.rs`).
//!
//! Choosing a strategy (the seed's two Python variants, plus the thread-safe client):
//! - `Shared` when the object is itself thread-safe (a client with its own internal pool):
//!   a checkout is an `Arc` clone, nothing is ever exclusive.
//! - `Queue` for exclusive objects such as connections: bounded, LIFO (warm objects are
//!   reused, cold ones age out via `idle_timeout`), `max_uses` retirement, and a bounded
//!   wait that ends in [`Error::PoolTimeout`] — never a hang.
//! - `PerThread` for thread-per-request servers: no lock and no shared write on the hot
//!   path; the object dies with its thread.
//!
//! Async (feature `tokio`): [`Pool::get_async`] serves `Shared` and `Queue` without blocking
//! a runtime thread — waiters park on a `tokio::sync::Notify` and share the same capacity as
//! blocking callers. A blocking [`Manager`] serves both worlds (its `create` runs under
//! `spawn_blocking`); an [`AsyncManager`] creates on the runtime itself (a connection opened
//! with tokio's own connect), pooled as [`Async`]`<M>` with [`Pool::new_async`]. `PerThread`
//! answers [`Error::Unsupported`]: tasks hop between worker threads.
//!
//! The pool knows nothing about what it pools; the memcached client pools its connections
//! with it.

#[cfg(feature = "tokio")]
mod async_checkout;
mod config;
mod guard;
mod hold;
mod manager;
mod per_thread;
mod proxy;
mod queue;

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

pub use config::{Hook, Hooks, PoolConfig, QueueConfig, Strategy};

pub use guard::Pooled;
pub use manager::{Async, AsyncManager, BoxFuture, Manager};
pub use proxy::{Proxy, ProxyGuard};

use crate::{BoxError, Error, Result};
use hold::Holds;
use per_thread::PerThreadState;
use queue::{ObjectState, QueueState};

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Objects created (including replacements).
    pub created: u64,
    /// Checkouts served by an existing object (not counted under `Shared`, whose checkout
    /// is a bare `Arc` clone).
    pub reused: u64,
    /// Objects whose `recycle` failed (each was dropped and replaced).
    pub recycle_failures: u64,
    /// Checkouts that gave up with [`Error::PoolTimeout`].
    pub timeouts: u64,
    /// Checkouts that had to wait for an object.
    pub waits: u64,
    /// Objects alive and not checked out now.
    pub idle: u64,
    /// Objects (or, under `Shared`, guards) checked out now.
    pub in_use: u64,
    /// Checkouts returned after being held longer than `max_hold` (and not already
    /// counted in `held_too_long`).
    pub leaks: u64,
    /// Checkouts found still out after `max_hold` (by `stats` or a later checkout), each
    /// counted once; such a guard is not counted again in `leaks` when it comes back.
    /// `Shared` guards are checked on return only.
    pub held_too_long: u64,
    /// Objects the pool dropped (retired, broken, expired, discarded, panicked, closed).
    pub closed: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) created: AtomicU64,
    pub(crate) recycle_failures: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) leaks: AtomicU64,
    pub(crate) held_too_long: AtomicU64,
    pub(crate) closed: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The shared object behind a type-erased, always `Send + Sync` handle. Only a
/// `T: Send + Sync` can be put behind it, which is how `Pool<M>` stays `Sync` for objects
/// that are not (those pools simply cannot use `Strategy::Shared`).
pub(crate) trait SharedSlot<T>: Send + Sync {
    fn object(&self) -> &T;
    fn object_mut(&mut self) -> &mut T;
}

struct SyncObject<T>(T);

impl<T: Send + Sync> SharedSlot<T> for SyncObject<T> {
    fn object(&self) -> &T {
        &self.0
    }
    fn object_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

fn wrap_shared<T: Send + Sync + 'static>(obj: T) -> Arc<dyn SharedSlot<T>> {
    Arc::new(SyncObject(obj))
}

/// Puts an object behind a [`SharedSlot`]; exists only where `T: Sync` was proven.
type WrapShared<T> = fn(T) -> Arc<dyn SharedSlot<T>>;

pub(crate) struct SharedState<T> {
    slot: OnceLock<Arc<dyn SharedSlot<T>>>,
    init: Mutex<()>,
    wrap: WrapShared<T>,
}

pub(crate) enum Backend<T> {
    Shared(SharedState<T>),
    Queue(QueueState<T>),
    PerThread(PerThreadState),
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Inner<M: Manager> {
    pub(crate) id: u64,
    pub(crate) me: Weak<Inner<M>>,
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    pub(crate) hooks: Hooks<M::Object>,
    pub(crate) closed: AtomicBool,
    pub(crate) counters: Counters,
    /// Leak detection, when `max_hold` is set.
    pub(crate) holds: Option<Holds>,
    /// `Queue`'s `max_uses`: checkouts are counted only when it is set.
    max_uses: Option<u64>,
    pub(crate) backend: Backend<M::Object>,
}

/// A pool of objects made by a [`Manager`]; cheap to clone (clones share the pool).
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.config.name)
            .field("strategy", &self.inner.config.strategy)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Builds a [`Pool`] with hooks.
pub struct PoolBuilder<M: Manager> {
    manager: M,
    config: PoolConfig,
    hooks: Hooks<M::Object>,
}

impl<M: Manager> PoolBuilder<M> {
    /// Sets the configuration (default: a `Queue` of 8 named `"pool"`).
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the hooks.
    pub fn hooks(mut self, hooks: Hooks<M::Object>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Builds a pool usable with every strategy.
    pub fn build(self) -> Result<Pool<M>>
    where
        M::Object: Sync,
    {
        Pool::assemble(self, Some(wrap_shared::<M::Object>))
    }

    /// Builds a pool of objects that are not `Sync`; [`Strategy::Shared`] is refused with
    /// [`Error::Config`] since such an object cannot be used by two threads at once.
    pub fn build_unsync(self) -> Result<Pool<M>> {
        Pool::assemble(self, None)
    }
}

impl<M: Manager> Pool<M> {
    /// A pool of `manager`'s objects configured by `config`, with every strategy available.
    ///
    /// `Strategy::Shared` hands one object to many threads, which needs `M::Object: Sync`;
    /// that proof is asked for here, once, so the guard and `get` stay the same for every
    /// strategy. Objects that are not `Sync` use [`Pool::new_unsync`].
    pub fn new(manager: M, config: PoolConfig) -> Result<Self>
    where
        M::Object: Sync,
    {
        Self::builder(manager).config(config).build()
    }

    /// A pool of objects that are not `Sync` (`Queue` and `PerThread` only).
    pub fn new_unsync(manager: M, config: PoolConfig) -> Result<Self> {
        Self::builder(manager).config(config).build_unsync()
    }

    /// Drops every idle object now; checked-out objects are unaffected and the pool stays
    /// open, creating new objects as they are needed. (`Shared` keeps its one object; under
    /// `PerThread` only the calling thread's object is dropped.)
    pub fn close_idle(&self) {
        match &self.inner.backend {
            Backend::Shared(_) => {}
            Backend::Queue(q) => {
                for obj in q.drain() {
                    self.inner.close_object(obj);
                }
            }
            Backend::PerThread(_) => self.inner.drop_local_object(),
        }
    }

    /// A builder, for pools with [`Hooks`].
    pub fn builder(manager: M) -> PoolBuilder<M> {
        PoolBuilder {
            manager,
            config: PoolConfig::new("pool", Strategy::queue(8)),
            hooks: Hooks::new(),
        }
    }

    fn assemble(builder: PoolBuilder<M>, wrap: Option<WrapShared<M::Object>>) -> Result<Self> {
        let PoolBuilder {
            manager,
            config,
            hooks,
        } = builder;
        config.validate()?;
        let backend = match &config.strategy {
            Strategy::Shared => match wrap {
                Some(wrap) => Backend::Shared(SharedState {
                    slot: OnceLock::new(),
                    init: Mutex::new(()),
                    wrap,
                }),
                None => {
                    return Err(Error::Config(format!(
                        "pool {:?}: Strategy::Shared needs a Sync object; build it with \
                         Pool::new, or pick Queue or PerThread",
                        config.name
                    )))
                }
            },
            Strategy::Queue(_) => Backend::Queue(QueueState::new()),
            Strategy::PerThread => Backend::PerThread(PerThreadState::new()),
        };
        let holds = config
            .max_hold
            .map(|max| Holds::new(config.clock.now(), max));
        let max_uses = match config.strategy {
            Strategy::Queue(ref q) => q.max_uses,
            _ => None,
        };
        let inner = Arc::new_cyclic(|me| Inner {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            me: me.clone(),
            manager,
            config,
            hooks,
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            holds,
            max_uses,
            backend,
        });
        inner.fill_eagerly()?;
        Ok(Self { inner })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The pool's strategy.
    pub fn strategy(&self) -> &Strategy {
        &self.inner.config.strategy
    }

    /// The manager that makes the pool's objects.
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// Checks out an object; dropping the guard returns it.
    ///
    /// Errors: [`Error::PoolTimeout`] when a `Queue` stays exhausted for `wait_timeout`,
    /// [`Error::PoolCreate`] when the manager fails to create an object (the slot it would
    /// have filled is freed), [`Error::Unavailable`] after [`close`](Pool::close).
    #[inline]
    pub fn get(&self) -> Result<Pooled<'_, M>> {
        let inner = &*self.inner;
        match &inner.backend {
            // `Shared` after its first checkout: the whole checkout is an `Arc` clone.
            Backend::Shared(s) => {
                if let (Some(slot), false) = (s.slot.get(), self.is_closed()) {
                    let slot = Arc::clone(slot);
                    return Ok(Pooled::shared(guard::PoolRef::Borrowed(inner), slot));
                }
            }
            // Straight to the thread's slot, the guard built in place.
            Backend::PerThread(_) if !self.is_closed() => {
                return match inner.checkout_local() {
                    Ok(state) => Ok(Pooled::exclusive(guard::PoolRef::Borrowed(inner), state)),
                    Err(e) => Err(e),
                };
            }
            _ => {}
        }
        inner
            .checkout()
            .map(|held| Pooled::new(guard::PoolRef::Borrowed(inner), held))
    }

    /// Like [`get`](Pool::get), but the guard owns a handle to the pool, so it can outlive
    /// this `Pool` value (moved into a spawned thread or task, kept in a struct).
    pub fn get_owned(&self) -> Result<Pooled<'static, M>> {
        self.inner
            .checkout()
            .map(|held| Pooled::new(guard::PoolRef::Owned(Arc::clone(&self.inner)), held))
    }

    /// Closes the pool: later checkouts fail with [`Error::Unavailable`], waiters wake up
    /// and fail, idle objects are dropped now and checked-out ones when they come back.
    /// A `Shared` object is dropped with the last clone of the pool; per-thread objects of
    /// other threads at those threads' next checkout or exit.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        match &self.inner.backend {
            Backend::Shared(_) => {}
            Backend::Queue(q) => self.inner.close_queue(q),
            Backend::PerThread(_) => self.inner.drop_local_object(),
        }
    }

    /// Whether [`close`](Pool::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }

    /// A snapshot of the pool's counters. With `max_hold` set, first reports the
    /// checkouts out longer than that (see [`PoolStats::held_too_long`]).
    pub fn stats(&self) -> PoolStats {
        let inner = &self.inner;
        inner.scan_holds();
        let c = &inner.counters;
        let mut stats = PoolStats {
            created: c.created.load(Ordering::Relaxed),
            reused: 0,
            recycle_failures: c.recycle_failures.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
            idle: 0,
            in_use: 0,
            leaks: c.leaks.load(Ordering::Relaxed),
            held_too_long: c.held_too_long.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
        };
        match &inner.backend {
            Backend::Shared(s) => {
                if let Some(slot) = s.slot.get() {
                    // The pool holds one reference; every other one is a guard.
                    stats.in_use = (Arc::strong_count(slot) as u64).saturating_sub(1);
                }
            }
            Backend::Queue(q) => {
                let (idle, in_use, reused) = q.occupancy();
                stats.idle = idle;
                stats.in_use = in_use;
                stats.reused = reused;
            }
            Backend::PerThread(p) => {
                let (reused, idle) = p.totals();
                stats.reused = reused;
                stats.idle = idle;
                let alive = stats.created.saturating_sub(stats.closed);
                stats.in_use = alive.saturating_sub(idle);
            }
        }
        stats
    }

    #[cfg(test)]
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }
}

impl<A: AsyncManager> Pool<Async<A>> {
    /// A pool of `manager`'s objects, created on the runtime by
    /// [`get_async`](Pool::get_async) (`Queue`; the objects need not be `Sync`, so `Shared`
    /// is refused as by [`Pool::new_unsync`]).
    pub fn new_async(manager: A, config: PoolConfig) -> Result<Self> {
        Self::new_unsync(Async(manager), config)
    }
}

/// Runs `hook` on `obj`; the payload of its panic, if it panicked.
#[inline(never)]
fn run_hook_catching<T>(hook: &Hook<T>, obj: &mut T) -> Option<Box<dyn Any + Send>> {
    catch_unwind(AssertUnwindSafe(|| hook(obj))).err()
}

/// What a checkout holds: the shared object or an exclusive one.
pub(crate) enum Held<T> {
    Shared(Arc<dyn SharedSlot<T>>),
    Exclusive(ObjectState<T>),
}

impl<M: Manager> Inner<M> {
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn closed_error(&self) -> Error {
        Error::Unavailable(format!("pool {:?} is closed", self.config.name))
    }

    #[inline]
    fn checkout(&self) -> Result<Held<M::Object>> {
        if self.closed.load(Ordering::Relaxed) {
            if let Backend::PerThread(_) = self.backend {
                self.drop_local_object();
            }
            return Err(self.closed_error());
        }
        match &self.backend {
            Backend::Shared(s) => self.checkout_shared(s).map(Held::Shared),
            Backend::Queue(q) => self.checkout_queue(q).map(Held::Exclusive),
            Backend::PerThread(_) => self.checkout_local().map(Held::Exclusive),
        }
    }

    #[inline]
    fn checkout_shared(
        &self,
        s: &SharedState<M::Object>,
    ) -> Result<Arc<dyn SharedSlot<M::Object>>> {
        match s.slot.get() {
            Some(slot) => Ok(Arc::clone(slot)),
            None => self.create_shared(s),
        }
    }

    /// First checkout of a `Shared` pool: creates the object (once, under a lock).
    #[cold]
    fn create_shared(&self, s: &SharedState<M::Object>) -> Result<Arc<dyn SharedSlot<M::Object>>> {
        let _init = s.init.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = s.slot.get() {
            return Ok(Arc::clone(slot));
        }
        let obj = self.create_object()?;
        let slot = s.slot.get_or_init(|| (s.wrap)(obj));
        Ok(Arc::clone(slot))
    }

    /// Runs code of the pool's user (the manager, a hook); a panic becomes
    /// [`Error::Panicked`] naming the pool and `what`.
    #[inline]
    pub(crate) fn guarded<R>(&self, what: &str, f: impl FnOnce() -> R) -> Result<R> {
        catch_unwind(AssertUnwindSafe(f)).map_err(|payload| self.panicked(what, payload))
    }

    #[cold]
    pub(crate) fn panicked(&self, what: &str, payload: Box<dyn Any + Send>) -> Error {
        Error::panicked(format!("pool {:?}: {what}", self.name()), &*payload)
    }

    /// Calls the manager and `on_create`; counts the object.
    pub(crate) fn create_object(&self) -> Result<M::Object> {
        self.created(self.guarded("Manager::create", || self.manager.create())?)
    }

    /// Counts a new object and runs `on_create` on it (or wraps the manager's failure).
    pub(crate) fn created(&self, made: Result<M::Object, M::Error>) -> Result<M::Object> {
        let mut obj = made.map_err(|e| Error::PoolCreate {
            pool: self.config.name.clone(),
            source: e.into(),
        })?;
        bump(&self.counters.created);
        if let Some(hook) = &self.hooks.on_create {
            if let Err(e) = self.run_hook("the on_create hook", hook, &mut obj) {
                self.close_object(obj);
                return Err(e);
            }
        }
        Ok(obj)
    }

    /// Drops an object the pool will not keep, running `on_close` unless a panic is
    /// unwinding.
    pub(crate) fn close_object(&self, mut obj: M::Object) {
        bump(&self.counters.closed);
        if !std::thread::panicking() {
            if let Some(hook) = &self.hooks.on_close {
                hook(&mut obj);
            }
        }
        drop(obj);
    }

    /// Runs `recycle` on an object about to be reused, idle for `idle` when known.
    /// `Ok(None)`: it failed, and the object was dropped and counted (the caller makes a new
    /// one). A panic drops the object too, and is the caller's error.
    #[inline]
    pub(crate) fn recycle_object(
        &self,
        mut state: ObjectState<M::Object>,
        idle: Option<Duration>,
    ) -> Result<Option<ObjectState<M::Object>>> {
        match self.guarded("Manager::recycle", || {
            self.manager.recycle_after(&mut state.obj, idle)
        }) {
            Ok(Ok(())) => Ok(Some(state)),
            Ok(Err(e)) => {
                self.recycle_failed(state, e.into());
                Ok(None)
            }
            Err(panicked) => {
                bump(&self.counters.recycle_failures);
                self.close_object(state.obj);
                Err(panicked)
            }
        }
    }

    #[cold]
    fn recycle_failed(&self, state: ObjectState<M::Object>, e: BoxError) {
        bump(&self.counters.recycle_failures);
        log::debug!(
            "pool {:?}: recycle failed, replacing the object: {e}",
            self.name()
        );
        self.close_object(state.obj);
    }

    /// Hands an exclusive object to a caller: counts the use, marks the checkout's start
    /// for leak detection, runs `on_checkout`. On a panicking hook the caller drops the
    /// object with [`checkout_failed`](Self::checkout_failed).
    #[inline]
    pub(crate) fn on_checkout(&self, state: &mut ObjectState<M::Object>) -> Result<()> {
        // Counted only where it retires objects: an increment of the moving state costs a
        // stall on each checkout.
        if self.max_uses.is_some() {
            state.uses += 1;
        }
        if let Some(cell) = &state.hold {
            self.hold_out(cell);
        }
        match &self.hooks.on_checkout {
            None => Ok(()),
            Some(hook) => self.run_hook("the on_checkout hook", hook, &mut state.obj),
        }
    }

    /// Drops an object whose checkout failed after `on_checkout` marked it out.
    #[cold]
    pub(crate) fn checkout_failed(&self, state: ObjectState<M::Object>) {
        if let Some(cell) = &state.hold {
            cell.clear();
        }
        self.close_object(state.obj);
    }

    /// Gives a guard's exclusive object back after use (or drops it when broken, retired,
    /// closed). It is taken from the guard's own field, so that a parked object moves once.
    #[inline]
    pub(crate) fn give_back(&self, held: &mut Option<ObjectState<M::Object>>, discard: bool) {
        let Some(state) = held.as_mut() else {
            return;
        };
        let panicking = std::thread::panicking();
        // A panicking `on_return` drops the object and frees its slot; then the panic goes
        // on to the guard's owner, as any panic in a `Drop` would.
        let mut hook_panic = None;
        if !discard && !panicking {
            if let Some(hook) = &self.hooks.on_return {
                hook_panic = run_hook_catching(hook, &mut state.obj);
            }
        }
        let keep = !discard
            && hook_panic.is_none()
            && !panicking
            && !self.closed.load(Ordering::Relaxed)
            && !self.retired(state)
            && !self.manager.is_broken(&mut state.obj);
        match &self.backend {
            Backend::Queue(q) => self.return_queue(q, held, keep),
            Backend::PerThread(_) if keep => self.return_local(held),
            // A Shared pool never holds exclusive objects.
            Backend::PerThread(_) | Backend::Shared(_) => {
                if let Some(state) = held.take() {
                    self.close_object(state.obj);
                }
            }
        }
        if let Some(payload) = hook_panic {
            std::panic::resume_unwind(payload);
        }
    }

    /// Runs a checkout-time hook; a panic becomes [`Error::Panicked`] naming it.
    #[inline(never)]
    fn run_hook(&self, what: &str, hook: &Hook<M::Object>, obj: &mut M::Object) -> Result<()> {
        match run_hook_catching(hook, obj) {
            None => Ok(()),
            Some(payload) => Err(self.panicked(what, payload)),
        }
    }

    fn retired(&self, state: &ObjectState<M::Object>) -> bool {
        self.max_uses.is_some_and(|max| state.uses >= max)
    }

    fn fill_eagerly(&self) -> Result<()> {
        if let (
            Backend::Queue(q),
            Strategy::Queue(QueueConfig {
                min_size,
                eager: true,
                ..
            }),
        ) = (&self.backend, &self.config.strategy)
        {
            for _ in 0..*min_size {
                let obj = self.create_object()?;
                self.park_new(q, obj);
            }
        }
        Ok(())
    }

    pub(crate) fn wait_timeout(&self) -> Duration {
        match self.config.strategy {
            Strategy::Queue(ref q) => q.wait_timeout,
            _ => Duration::ZERO,
        }
    }
}

impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        match &mut self.backend {
            Backend::Shared(s) => {
                if let Some(mut slot) = s.slot.take() {
                    bump(&self.counters.closed);
                    if let (Some(hook), Some(slot)) =
                        (&self.hooks.on_close, Arc::get_mut(&mut slot))
                    {
                        hook(slot.object_mut());
                    }
                }
            }
            Backend::Queue(q) => {
                for obj in q.drain() {
                    bump(&self.counters.closed);
                    if let Some(hook) = &self.hooks.on_close {
                        let mut obj = obj;
                        hook(&mut obj);
                    }
                }
            }
            Backend::PerThread(_) => {}
        }
    }
}
