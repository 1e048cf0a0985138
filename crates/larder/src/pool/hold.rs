//! Leak detection: checkouts held longer than [`PoolConfig::max_hold`].
//!
//! A guard that comes back late is counted when it is dropped (`leaks`). A guard that never
//! comes back is found by a scan of the checkouts still out (`held_too_long`), run by
//! [`Pool::stats`], by a checkout that has to wait, and by any checkout once a quarter of
//! `max_hold` has passed since the last scan; no background thread. Each exclusive object
//! carries a [`HoldCell`] (one atomic word, registered with the pool when the object is
//! made) in which a checkout stores its start time, so a checkout costs one clock read and
//! one store. Each checkout is reported at most once, by whichever of the scan and the
//! return sees it first.
//!
//! `Shared` guards carry no cell (a checkout there is an `Arc` clone and excludes nobody):
//! they are reported on return only.
//!
//! [`PoolConfig::max_hold`]: super::PoolConfig::max_hold
//! [`Pool::stats`]: super::Pool::stats

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{bump, Inner, Manager};

/// Set in a cell's word once its checkout was reported while still out.
const REPORTED: u64 = 1 << 63;

/// When an exclusive object's current checkout started: 0 while the object is in the pool,
/// else 1 + nanoseconds since the pool's epoch, with [`REPORTED`] added once reported.
#[derive(Debug, Default)]
pub(crate) struct HoldCell(AtomicU64);

impl HoldCell {
    /// Marks the object back without a report (its checkout failed).
    pub(crate) fn clear(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// The pool's side: the cells of its live objects and when the next scan is due.
pub(crate) struct Holds {
    epoch: Instant,
    max: Duration,
    /// One clone per live exclusive object; a cell whose object is gone is the only
    /// holder left and is pruned by the next scan or registration.
    cells: Mutex<Vec<Arc<HoldCell>>>,
    /// Ticks at which a checkout next scans.
    next_scan: AtomicU64,
}

impl Holds {
    pub(crate) fn new(epoch: Instant, max: Duration) -> Self {
        Self {
            epoch,
            max,
            cells: Mutex::new(Vec::new()),
            next_scan: AtomicU64::new(0),
        }
    }

    fn ticks(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX).min(REPORTED - 2)
    }

    fn elapsed(start: u64, now: u64) -> Duration {
        Duration::from_nanos(now.saturating_sub(start))
    }

    /// A cell for a new exclusive object.
    pub(crate) fn register(&self) -> Arc<HoldCell> {
        let cell = Arc::new(HoldCell::default());
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        if cells.len() >= 16 && cells.len().is_power_of_two() {
            cells.retain(|c| Arc::strong_count(c) > 1);
        }
        cells.push(Arc::clone(&cell));
        cell
    }
}

impl<M: Manager> Inner<M> {
    /// The instant a `Shared` checkout starts, when leak detection is on.
    #[inline]
    pub(crate) fn hold_start(&self) -> Option<Instant> {
        self.holds.as_ref().map(|_| self.config.clock.now())
    }

    /// Counts and logs a `Shared` checkout that came back after more than `max_hold`.
    #[inline]
    pub(crate) fn check_hold(&self, since: Option<Instant>) {
        if let (Some(since), Some(holds)) = (since, &self.holds) {
            let held = self.config.clock.now().saturating_duration_since(since);
            if held > holds.max {
                self.returned_late(held, holds.max);
            }
        }
    }

    /// Marks an exclusive object checked out now; scans the other checkouts when a scan is
    /// due.
    #[inline]
    pub(crate) fn hold_out(&self, cell: &HoldCell) {
        if let Some(holds) = &self.holds {
            let now = holds.ticks(self.config.clock.now());
            cell.0.store(now + 1, Ordering::Relaxed);
            if now >= holds.next_scan.load(Ordering::Relaxed) {
                self.scan_holds_at(holds, now);
            }
        }
    }

    /// Marks an exclusive object back; counts it when it was out too long and no scan has
    /// reported it yet.
    #[inline]
    pub(crate) fn hold_back(&self, cell: &HoldCell) {
        if let Some(holds) = &self.holds {
            let word = cell.0.swap(0, Ordering::Relaxed);
            if word != 0 && word & REPORTED == 0 {
                let held = Holds::elapsed(word - 1, holds.ticks(self.config.clock.now()));
                if held > holds.max {
                    self.returned_late(held, holds.max);
                }
            }
        }
    }

    #[cold]
    fn returned_late(&self, held: Duration, max: Duration) {
        bump(&self.counters.leaks);
        log::warn!(
            "pool {:?}: an object was held for {held:?}, longer than max_hold {max:?} (leak?)",
            self.name()
        );
    }

    /// Reports every checkout out longer than `max_hold` and not reported yet.
    pub(crate) fn scan_holds(&self) {
        if let Some(holds) = &self.holds {
            self.scan_holds_at(holds, holds.ticks(self.config.clock.now()));
        }
    }

    #[cold]
    fn scan_holds_at(&self, holds: &Holds, now: u64) {
        let quarter = u64::try_from(holds.max.as_nanos() / 4).unwrap_or(u64::MAX);
        holds
            .next_scan
            .store(now.saturating_add(quarter.max(1)), Ordering::Relaxed);
        let mut found = Vec::new();
        {
            let mut cells = holds.cells.lock().unwrap_or_else(PoisonError::into_inner);
            cells.retain(|c| Arc::strong_count(c) > 1);
            for cell in cells.iter() {
                let word = cell.0.load(Ordering::Relaxed);
                if word == 0 || word & REPORTED != 0 {
                    continue;
                }
                let held = Holds::elapsed(word - 1, now);
                // Exactly one of this exchange and the owner's `hold_back` sees the checkout.
                if held > holds.max
                    && cell
                        .0
                        .compare_exchange(
                            word,
                            word | REPORTED,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    found.push(held);
                }
            }
        }
        // Counted and logged outside the lock (a logger may be slow).
        for held in found {
            bump(&self.counters.held_too_long);
            log::warn!(
                "pool {:?}: an object has been checked out for {held:?}, longer than max_hold \
                 {:?}, and is not back (a guard kept or forgotten?)",
                self.name(),
                holds.max
            );
        }
    }
}
