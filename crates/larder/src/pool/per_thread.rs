//! The `PerThread` strategy: one object per thread, kept in a thread-local table keyed by
//! the pool's unique id (so two pools of the same type never see each other's objects).
//!
//! A thread's object is created at its first checkout and parked in the table when the
//! guard drops; it is dropped when the thread ends (the table's destructor), when the pool
//! is closed and the thread checks out again, or when the pool is gone and the thread
//! registers an object of another pool. A nested checkout on a thread whose object is
//! already out gets a fresh object, which is dropped on return if the thread's slot is
//! full again. Stats are kept per thread (no shared counter is touched on the fast path)
//! and summed by `Pool::stats`.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::queue::ObjectState;
use super::{Inner, Manager};
use crate::Result;

/// One thread's slot of one pool (a `ThreadSlot<M>`), type-erased for the thread-local
/// table, with a function telling whether its pool still exists.
struct LocalEntry {
    pool_id: u64,
    slot: Box<dyn Any>,
    pool_alive: fn(&dyn Any) -> bool,
}

fn pool_alive<M: Manager>(slot: &dyn Any) -> bool {
    slot.downcast_ref::<ThreadSlot<M>>()
        .is_some_and(|slot| slot.pool.strong_count() > 0)
}

thread_local! {
    static LOCAL: RefCell<Vec<LocalEntry>> = const { RefCell::new(Vec::new()) };
}

/// Written only by the thread that owns the slot (plain load + store, no locked
/// read-modify-write on the fast path); read by `Pool::stats` from any thread. Aligned to
/// its own cache lines, so that two threads' counters never share one.
#[derive(Default)]
#[repr(align(128))]
struct ThreadCounters {
    reused: AtomicU64,
    /// 1 while the thread's slot holds an object.
    idle: AtomicU64,
}

impl ThreadCounters {
    #[inline]
    fn checked_out(&self) {
        self.idle.store(0, Ordering::Relaxed);
        let reused = self.reused.load(Ordering::Relaxed);
        self.reused.store(reused + 1, Ordering::Relaxed);
    }

    #[inline]
    fn parked(&self) {
        self.idle.store(1, Ordering::Relaxed);
    }
}

struct ThreadSlot<M: Manager> {
    pool: Weak<Inner<M>>,
    obj: Option<ObjectState<M::Object>>,
    counters: Arc<ThreadCounters>,
}

impl<M: Manager> Drop for ThreadSlot<M> {
    fn drop(&mut self) {
        if let Some(state) = self.obj.take() {
            self.counters.idle.store(0, Ordering::Relaxed);
            if let Some(pool) = self.pool.upgrade() {
                pool.close_object(state.obj);
            }
        }
    }
}

/// The pool-side part: every thread's counters, for `stats`.
pub(crate) struct PerThreadState {
    threads: Mutex<Vec<Arc<ThreadCounters>>>,
    /// `reused` of threads that have ended.
    retired_reused: AtomicU64,
}

impl PerThreadState {
    pub(crate) fn new() -> Self {
        Self {
            threads: Mutex::new(Vec::new()),
            retired_reused: AtomicU64::new(0),
        }
    }

    /// (reused, idle) summed over threads.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reused = self.retired_reused.load(Ordering::Relaxed);
        let mut idle = 0;
        for t in threads.iter() {
            reused += t.reused.load(Ordering::Relaxed);
            idle += t.idle.load(Ordering::Relaxed);
        }
        (reused, idle)
    }

    /// Counters for a thread's new slot; forgets (and folds in) those of ended threads.
    fn register(&self) -> Arc<ThreadCounters> {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.retain(|t| {
            let alive = Arc::strong_count(t) > 1;
            if !alive {
                self.retired_reused
                    .fetch_add(t.reused.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            alive
        });
        let counters = Arc::new(ThreadCounters::default());
        threads.push(Arc::clone(&counters));
        counters
    }
}

impl<M: Manager> Inner<M> {
    fn per_thread(&self) -> Option<&PerThreadState> {
        match &self.backend {
            super::Backend::PerThread(p) => Some(p),
            _ => None,
        }
    }

    /// Runs `f` on this thread's slot of this pool, if there is one and the table is
    /// reachable (not being destroyed, not borrowed by an outer call).
    #[inline]
    fn with_local_slot<R>(&self, f: impl FnOnce(&mut ThreadSlot<M>) -> R) -> Option<R> {
        LOCAL
            .try_with(|local| {
                let mut local = local.try_borrow_mut().ok()?;
                let entry = local.iter_mut().find(|e| e.pool_id == self.id)?;
                let slot = entry.slot.downcast_mut::<ThreadSlot<M>>()?;
                Some(f(slot))
            })
            .ok()
            .flatten()
    }

    /// Checks out this thread's object (or a new one). The common case — a parked object,
    /// default `recycle`, no hook — is inlined into `Pool::get` (forced: out of line, the
    /// object makes one more trip through memory); the rest is out of line.
    #[inline(always)]
    pub(crate) fn checkout_local(&self) -> Result<ObjectState<M::Object>> {
        let parked = self.with_local_slot(|slot| {
            let state = slot.obj.take()?;
            slot.counters.checked_out();
            Some(state)
        });
        let Some(state) = parked.flatten() else {
            return self.create_local();
        };
        match self.recycle_object(state, None) {
            Ok(Some(mut state)) => match self.on_checkout(&mut state) {
                Ok(()) => Ok(state),
                Err(e) => {
                    self.checkout_failed(state);
                    Err(e)
                }
            },
            Ok(None) => {
                self.unreuse_local();
                self.create_local()
            }
            Err(e) => {
                self.unreuse_local();
                Err(e)
            }
        }
    }

    /// The parked object was dropped (failed `recycle`): this checkout did not reuse one.
    #[cold]
    fn unreuse_local(&self) {
        self.with_local_slot(|slot| {
            let reused = slot.counters.reused.load(Ordering::Relaxed);
            slot.counters
                .reused
                .store(reused.saturating_sub(1), Ordering::Relaxed);
        });
    }

    #[cold]
    #[inline(never)]
    fn create_local(&self) -> Result<ObjectState<M::Object>> {
        let obj = self.create_object()?;
        self.fresh(obj)
    }

    /// Parks a guard's object in this thread's slot (creating the slot on first return);
    /// drops it when the slot is already full or the table is unreachable. The object moves
    /// straight from the guard's field into the slot.
    #[inline(always)]
    pub(crate) fn return_local(&self, held: &mut Option<ObjectState<M::Object>>) {
        let parked = self.with_local_slot(|slot| {
            if slot.obj.is_none() {
                slot.obj = held.take();
                slot.counters.parked();
            }
        });
        let Some(state) = held.take() else {
            return;
        };
        match parked {
            // The slot was full (a nested checkout): this one goes.
            Some(()) => self.close_object(state.obj),
            None => self.return_local_slow(state),
        }
    }

    /// A return on a thread that has no slot of this pool yet: registers one.
    #[cold]
    #[inline(never)]
    fn return_local_slow(&self, state: ObjectState<M::Object>) {
        let mut state = Some(state);
        let mut pruned = Vec::new();
        let _ = LOCAL.try_with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return;
            };
            let Some(per_thread) = self.per_thread() else {
                return;
            };
            if local.iter().any(|e| e.pool_id == self.id) {
                return;
            }
            // Slots of pools that are gone are dropped outside the borrow.
            let mut i = 0;
            while i < local.len() {
                if (local[i].pool_alive)(&*local[i].slot) {
                    i += 1;
                } else {
                    pruned.push(local.swap_remove(i));
                }
            }
            let counters = per_thread.register();
            counters.parked();
            local.push(LocalEntry {
                pool_id: self.id,
                slot: Box::new(ThreadSlot::<M> {
                    pool: self.me.clone(),
                    obj: state.take(),
                    counters,
                }),
                pool_alive: pool_alive::<M>,
            });
        });
        drop(pruned);
        if let Some(state) = state {
            self.close_object(state.obj);
        }
    }

    /// Drops this thread's object of this pool (on close).
    pub(crate) fn drop_local_object(&self) {
        let removed = LOCAL
            .try_with(|local| {
                let mut local = local.try_borrow_mut().ok()?;
                let at = local.iter().position(|e| e.pool_id == self.id)?;
                Some(local.swap_remove(at))
            })
            .ok()
            .flatten();
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use crate::pool::{Manager, Pool, PoolConfig, Strategy};

    struct Numbers;
    impl Manager for Numbers {
        type Object = u32;
        type Error = std::io::Error;
        fn create(&self) -> Result<u32, std::io::Error> {
            Ok(7)
        }
    }

    #[test]
    fn pools_of_one_type_do_not_share_thread_slots() {
        let a = Pool::new(Numbers, PoolConfig::new("a", Strategy::PerThread)).unwrap();
        let b = Pool::new(Numbers, PoolConfig::new("b", Strategy::PerThread)).unwrap();
        assert_ne!(a.id(), b.id());
        drop(a.get().unwrap());
        drop(b.get().unwrap());
        drop(a.get().unwrap());
        assert_eq!(a.stats().created, 1);
        assert_eq!(b.stats().created, 1);
        assert_eq!(a.stats().reused, 1);
        assert_eq!(b.stats().reused, 0);
    }

    #[test]
    fn nested_checkout_on_one_thread_gets_a_second_object() {
        let pool = Pool::new(Numbers, PoolConfig::new("nest", Strategy::PerThread)).unwrap();
        let outer = pool.get().unwrap();
        let inner = pool.get().unwrap();
        assert_eq!(pool.stats().created, 2);
        drop(inner);
        drop(outer); // the slot is full: this one is dropped
        let s = pool.stats();
        assert_eq!((s.idle, s.in_use, s.closed), (1, 0, 1));
    }

    #[test]
    fn dropped_pool_slots_are_pruned_when_another_pool_registers() {
        let counter = std::sync::Arc::new(());
        struct Tracked(std::sync::Arc<()>);
        impl Manager for Tracked {
            type Object = std::sync::Arc<()>;
            type Error = std::io::Error;
            fn create(&self) -> Result<std::sync::Arc<()>, std::io::Error> {
                Ok(self.0.clone())
            }
        }
        let first = Pool::new(
            Tracked(counter.clone()),
            PoolConfig::new("first", Strategy::PerThread),
        )
        .unwrap();
        drop(first.get().unwrap());
        drop(first);
        assert_eq!(std::sync::Arc::strong_count(&counter), 2); // parked in this thread
        let second = Pool::new(Numbers, PoolConfig::new("second", Strategy::PerThread)).unwrap();
        drop(second.get().unwrap());
        assert_eq!(std::sync::Arc::strong_count(&counter), 1);
    }
}
