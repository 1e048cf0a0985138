//! The `Queue` strategy: a bounded set of exclusive objects behind one mutex, reused
//! last-in first-out so warm objects stay warm and cold ones expire.
//!
//! Capacity is one count (`total`: idle + checked out + being created) under the mutex, so
//! blocking and async callers share the same bound. Blocking waiters sleep on a `Condvar`,
//! async waiters on a `tokio::sync::Notify`; a returned object wakes one of each kind that
//! is waiting. A slot reserved for a creation is always given back if the creation fails
//! (or, under async, if the waiting future is dropped).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::hold::{HoldCell, Holds};
use super::{bump, Inner, Manager, QueueConfig, Strategy};
use crate::{Error, Result};

/// An exclusive object with its checkout count and, under leak detection, its hold cell.
pub(crate) struct ObjectState<T> {
    pub(crate) obj: T,
    pub(crate) uses: u64,
    pub(crate) hold: Option<Arc<HoldCell>>,
}

struct Idle<T> {
    state: ObjectState<T>,
    since: Option<Instant>,
}

struct Slots<T> {
    idle: Vec<Idle<T>>,
    /// Objects alive or being created.
    total: usize,
    in_use: usize,
    /// Checkouts served by an idle object (counted here, under the lock the checkout takes
    /// anyway, rather than with one more atomic operation).
    reused: u64,
    sync_waiters: usize,
    #[cfg(feature = "tokio")]
    async_waiters: usize,
}

pub(crate) struct QueueState<T> {
    slots: Mutex<Slots<T>>,
    freed: Condvar,
    #[cfg(feature = "tokio")]
    freed_async: tokio::sync::Notify,
}

impl<T> QueueState<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(Slots {
                idle: Vec::new(),
                total: 0,
                in_use: 0,
                reused: 0,
                sync_waiters: 0,
                #[cfg(feature = "tokio")]
                async_waiters: 0,
            }),
            freed: Condvar::new(),
            #[cfg(feature = "tokio")]
            freed_async: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        // No user code runs under this lock, so a poisoned lock holds consistent data.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// (idle, in use, reused)
    pub(crate) fn occupancy(&self) -> (u64, u64, u64) {
        let s = self.lock();
        (s.idle.len() as u64, s.in_use as u64, s.reused)
    }

    /// Takes every idle object out (used when the pool is dropped or closed).
    pub(crate) fn drain(&self) -> Vec<T> {
        let mut s = self.lock();
        let objs: Vec<T> = s.idle.drain(..).map(|i| i.state.obj).collect();
        s.total -= objs.len();
        objs
    }

    fn wake(&self, s: &Slots<T>, all: bool) {
        if s.sync_waiters > 0 {
            if all {
                self.freed.notify_all();
            } else {
                self.freed.notify_one();
            }
        }
        #[cfg(feature = "tokio")]
        if s.async_waiters > 0 {
            if all {
                self.freed_async.notify_waiters();
            } else {
                self.freed_async.notify_one();
            }
        }
    }
}

/// What one look at the slots found.
enum Step<T> {
    /// An idle object to check and hand out.
    Reuse(Idle<T>),
    /// A reserved slot to create an object in.
    Create,
    /// Nothing free: wait.
    Wait,
}

impl<M: Manager> Inner<M> {
    fn max_size(&self) -> usize {
        match self.config.strategy {
            Strategy::Queue(ref q) => q.max_size,
            _ => 1,
        }
    }

    /// Under the lock: take an idle object, or reserve a slot, or say to wait.
    fn step(&self, s: &mut Slots<M::Object>) -> Result<Step<M::Object>> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(self.closed_error());
        }
        if let Some(idle) = s.idle.pop() {
            s.in_use += 1;
            s.reused += 1;
            return Ok(Step::Reuse(idle));
        }
        if s.total < self.max_size() {
            s.total += 1;
            s.in_use += 1;
            return Ok(Step::Create);
        }
        Ok(Step::Wait)
    }

    /// Outside the lock: check an idle object (expiry, recycle). `Ok(None)` means it was
    /// dropped and its slot freed; so does an error (a panicking `recycle` or hook).
    fn revive(
        &self,
        q: &QueueState<M::Object>,
        idle: Idle<M::Object>,
    ) -> Result<Option<ObjectState<M::Object>>> {
        // The slot is freed on every way out but success, unwinding included (and the
        // checkout was no reuse after all).
        let mut reservation = Reservation {
            inner: self,
            q,
            armed: true,
            reused: true,
        };
        // Measured once, for the expiry and for the manager's recycle.
        let idle_for = idle
            .since
            .map(|since| self.config.clock.now().saturating_duration_since(since));
        let expired = match (&self.config.strategy, idle_for) {
            (
                Strategy::Queue(QueueConfig {
                    idle_timeout: Some(limit),
                    ..
                }),
                Some(idle_for),
            ) => idle_for > *limit,
            _ => false,
        };
        if expired {
            self.close_object(idle.state.obj);
            return Ok(None);
        }
        let Some(mut state) = self.recycle_object(idle.state, idle_for)? else {
            return Ok(None);
        };
        if let Err(e) = self.on_checkout(&mut state) {
            self.checkout_failed(state);
            return Err(e);
        }
        reservation.armed = false;
        Ok(Some(state))
    }

    /// Frees a slot whose object is gone (dropped, or never created); `reused` when it was
    /// counted as a reuse that did not happen.
    fn release_slot(&self, q: &QueueState<M::Object>, reused: bool) {
        let mut s = q.lock();
        s.total -= 1;
        s.in_use -= 1;
        if reused {
            s.reused -= 1;
        }
        q.wake(&s, false);
    }

    /// Creates an object in a slot reserved by `step`; frees the slot on failure, and when
    /// the manager or a hook panics.
    fn create_in_slot(&self, q: &QueueState<M::Object>) -> Result<ObjectState<M::Object>> {
        let mut reservation = Reservation {
            inner: self,
            q,
            armed: true,
            reused: false,
        };
        let state = self.fresh(self.create_object()?)?;
        reservation.armed = false;
        Ok(state)
    }

    /// A new object's state, with its hold cell when leak detection is on.
    pub(crate) fn new_state(&self, obj: M::Object) -> ObjectState<M::Object> {
        ObjectState {
            obj,
            uses: 0,
            hold: self.holds.as_ref().map(Holds::register),
        }
    }

    /// A new object handed to a caller (or dropped, when `on_checkout` panics).
    pub(crate) fn fresh(&self, obj: M::Object) -> Result<ObjectState<M::Object>> {
        let mut state = self.new_state(obj);
        match self.on_checkout(&mut state) {
            Ok(()) => Ok(state),
            Err(e) => {
                self.checkout_failed(state);
                Err(e)
            }
        }
    }

    /// Adds an eagerly created object to the idle list.
    pub(crate) fn park_new(&self, q: &QueueState<M::Object>, obj: M::Object) {
        let since = self.idle_since();
        let state = self.new_state(obj);
        let mut s = q.lock();
        s.total += 1;
        s.idle.push(Idle { state, since });
    }

    fn idle_since(&self) -> Option<Instant> {
        match self.config.strategy {
            Strategy::Queue(QueueConfig {
                idle_timeout: Some(_),
                ..
            }) => Some(self.config.clock.now()),
            _ => None,
        }
    }

    pub(crate) fn checkout_queue(
        &self,
        q: &QueueState<M::Object>,
    ) -> Result<ObjectState<M::Object>> {
        // The wait's clock starts at the first wait: a checkout that finds an object reads
        // no clock.
        let mut waiting_since: Option<(Instant, Option<Instant>)> = None;
        let mut scanned = self.holds.is_none();
        let mut s = q.lock();
        loop {
            match self.step(&mut s)? {
                Step::Reuse(idle) => {
                    drop(s);
                    if let Some(state) = self.revive(q, idle)? {
                        return Ok(state);
                    }
                    s = q.lock();
                }
                Step::Create => {
                    drop(s);
                    return self.create_in_slot(q);
                }
                Step::Wait if !scanned => {
                    // An exhausted pool is where a guard never returned hurts: look for one
                    // (outside the lock) before the first wait, then look at the slots again.
                    scanned = true;
                    drop(s);
                    self.scan_holds();
                    s = q.lock();
                }
                Step::Wait => {
                    let now = Instant::now();
                    let (start, deadline) =
                        *waiting_since.get_or_insert_with(|| self.start_waiting());
                    let left = match deadline {
                        Some(deadline) if now >= deadline => {
                            drop(s);
                            return Err(self.timed_out(now - start));
                        }
                        Some(deadline) => deadline - now,
                        None => std::time::Duration::from_secs(3600),
                    };
                    s.sync_waiters += 1;
                    let (guard, _) = q
                        .freed
                        .wait_timeout(s, left)
                        .unwrap_or_else(PoisonError::into_inner);
                    s = guard;
                    s.sync_waiters -= 1;
                }
            }
        }
    }

    /// A blocking checkout's first wait: counted; (start, deadline).
    fn start_waiting(&self) -> (Instant, Option<Instant>) {
        bump(&self.counters.waits);
        let now = Instant::now();
        (now, now.checked_add(self.wait_timeout()))
    }

    fn timed_out(&self, waited: std::time::Duration) -> Error {
        bump(&self.counters.timeouts);
        Error::PoolTimeout {
            pool: self.config.name.clone(),
            waited,
        }
    }

    /// Takes back a guard's object after use: parks it (`keep`) or drops it and frees its
    /// slot. It is taken from the guard's own field, under the lock, so that it moves once.
    pub(crate) fn return_queue(
        &self,
        q: &QueueState<M::Object>,
        held: &mut Option<ObjectState<M::Object>>,
        keep: bool,
    ) {
        if !keep {
            let Some(state) = held.take() else {
                return;
            };
            // Freed after the object is dropped (so the bound holds), even if `on_close`
            // panics.
            let _slot = Reservation {
                inner: self,
                q,
                armed: true,
                reused: false,
            };
            self.close_object(state.obj);
            return;
        }
        let since = self.idle_since();
        let mut s = q.lock();
        if let Some(state) = held.take() {
            s.in_use -= 1;
            s.idle.push(Idle { state, since });
            q.wake(&s, false);
        }
    }

    /// Drops idle objects and wakes every waiter (they then see the pool closed).
    pub(crate) fn close_queue(&self, q: &QueueState<M::Object>) {
        let objs = q.drain();
        {
            let s = q.lock();
            q.wake(&s, true);
        }
        for obj in objs {
            self.close_object(obj);
        }
    }
}

#[cfg(feature = "tokio")]
impl<M: Manager> Inner<M> {
    pub(crate) async fn checkout_queue_async(
        &self,
        q: &QueueState<M::Object>,
    ) -> Result<ObjectState<M::Object>> {
        // Most checkouts find an idle object or a free slot: they need no waiter's
        // registration and no clock.
        let step = self.step(&mut q.lock())?;
        match step {
            Step::Reuse(idle) => {
                if let Some(state) = self.revive(q, idle)? {
                    return Ok(state);
                }
            }
            Step::Create => return self.create_in_slot_async(q).await,
            Step::Wait => {}
        }
        self.wait_queue_async(q).await
    }

    /// The checkout of a pool found full (or whose idle object was discarded): waits for a
    /// returned object or a freed slot, up to the wait timeout.
    async fn wait_queue_async(&self, q: &QueueState<M::Object>) -> Result<ObjectState<M::Object>> {
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(self.wait_timeout());
        let mut waited = false;
        loop {
            // Register interest before looking, so a return between the look and the
            // wait still wakes this task.
            let notified = q.freed_async.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let step = {
                let mut s = q.lock();
                let step = self.step(&mut s)?;
                if matches!(step, Step::Wait) {
                    s.async_waiters += 1;
                }
                step
            };
            match step {
                Step::Reuse(idle) => {
                    if let Some(state) = self.revive(q, idle)? {
                        return Ok(state);
                    }
                }
                Step::Create => return self.create_in_slot_async(q).await,
                Step::Wait => {
                    let _waiting = AsyncWaiter { q };
                    if !waited {
                        waited = true;
                        bump(&self.counters.waits);
                        self.scan_holds();
                    }
                    match deadline {
                        Some(deadline) if tokio::time::Instant::now() >= deadline => {
                            return Err(self.timed_out(start.elapsed()));
                        }
                        // Woken or timed out, look at the slots once more before deciding:
                        // an object returned just as the wait ended is still taken.
                        Some(deadline) => {
                            let _ = tokio::time::timeout_at(deadline, notified).await;
                        }
                        None => notified.await,
                    }
                }
            }
        }
    }

    async fn create_in_slot_async(
        &self,
        q: &QueueState<M::Object>,
    ) -> Result<ObjectState<M::Object>> {
        let mut reservation = Reservation {
            inner: self,
            q,
            armed: true,
            reused: false,
        };
        if let Some(create) = self.manager.create_async() {
            let made = self.guarded_async("AsyncManager::create", create).await?;
            let state = self.fresh(self.created(made)?)?;
            reservation.armed = false;
            return Ok(state);
        }
        let Some(owner) = self.me.upgrade() else {
            return Err(self.closed_error());
        };
        let created = tokio::task::spawn_blocking(move || owner.create_object()).await;
        let state = match created {
            Ok(made) => self.fresh(made?)?,
            Err(join) => return Err(self.join_error(join)),
        };
        reservation.armed = false;
        Ok(state)
    }
}

/// Counts an async waiter for as long as it waits (including when its future is dropped).
#[cfg(feature = "tokio")]
struct AsyncWaiter<'a, T> {
    q: &'a QueueState<T>,
}

#[cfg(feature = "tokio")]
impl<T> Drop for AsyncWaiter<'_, T> {
    fn drop(&mut self) {
        self.q.lock().async_waiters -= 1;
    }
}

/// A reserved slot (a creation, or an idle object being checked): freed unless disarmed,
/// whether the work failed, panicked or (under async) was cancelled.
struct Reservation<'a, M: Manager> {
    inner: &'a Inner<M>,
    q: &'a QueueState<M::Object>,
    armed: bool,
    /// The slot's checkout was counted as a reuse.
    reused: bool,
}

impl<M: Manager> Drop for Reservation<'_, M> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.release_slot(self.q, self.reused);
        }
    }
}
