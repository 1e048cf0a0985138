//! Time as a dependency: a [`Clock`] trait with the real [`SystemClock`] and a
//! [`ManualClock`] that tests advance by hand, so no test sleeps to see an entry expire.
//!
//! A clock gives both a monotonic instant (for in-process expiry and timeouts) and wall
//! time since the Unix epoch (for values shared between processes, such as a region's
//! creation time or memcached's absolute expiry).
//!
//! [`CoarseClock`] reads the system clocks through a process-wide ticker, to about a
//! millisecond, for hot paths that ask for the time on every call (a region's fresh hit).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// A monotonic instant.
    fn now(&self) -> Instant;
    /// Wall time since the Unix epoch.
    fn unix_time(&self) -> Duration;
    /// Wall time since the Unix epoch in whole milliseconds (saturating).
    fn unix_ms(&self) -> u64 {
        u64::try_from(self.unix_time().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The real clocks of the operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn unix_time(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// The system clocks read to about a millisecond: a read is an atomic load of the time a
/// ticker thread published, instead of asking the operating system.
///
/// The ticker (one per process, `larder-clock`) starts at the first read, publishes every
/// millisecond, and parks after a second without reads; while it is parked, or when it
/// could not be started, reads go to [`SystemClock`]. A reading lags the system clock by up
/// to one tick, more when the machine is so busy that the ticker is not scheduled. Wall
/// time has millisecond resolution.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoarseClock;

/// How often the ticker publishes, and how many ticks without a read park it.
const TICK: Duration = Duration::from_millis(1);
const IDLE_TICKS: u32 = 1000;

/// What the ticker publishes: nanoseconds since [`base`] and milliseconds since the Unix
/// epoch at the last tick; 0 while it is not publishing.
static MONO_NS: AtomicU64 = AtomicU64::new(0);
static UNIX_MS: AtomicU64 = AtomicU64::new(0);
/// Set by reads, cleared by the ticker when it checks for idleness.
static READ: AtomicBool = AtomicBool::new(false);
static RUNNING: AtomicBool = AtomicBool::new(false);
static TICKER: OnceLock<std::thread::Thread> = OnceLock::new();

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The published value of `slot`, or `None` (and the ticker woken) when there is none.
#[inline]
fn published(slot: &AtomicU64) -> Option<u64> {
    match slot.load(Ordering::Acquire) {
        0 => {
            wake();
            None
        }
        value => {
            // A store only when the flag changes keeps the line shared between readers.
            if !READ.load(Ordering::Relaxed) {
                READ.store(true, Ordering::Relaxed);
            }
            Some(value)
        }
    }
}

fn wake() {
    if RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    match TICKER.get() {
        Some(thread) => thread.unpark(),
        None => {
            let spawned = std::thread::Builder::new()
                .name("larder-clock".into())
                .spawn(tick);
            match spawned {
                Ok(handle) => {
                    let _ = TICKER.set(handle.thread().clone());
                }
                Err(err) => {
                    log::warn!("coarse clock: no ticker thread ({err}); reading the system clock");
                }
            }
        }
    }
}

fn publish() {
    let mono = u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX);
    MONO_NS.store(mono.max(1), Ordering::Release);
    UNIX_MS.store(SystemClock.unix_ms().max(1), Ordering::Release);
}

fn tick() {
    let mut ticks = 0;
    loop {
        publish();
        std::thread::sleep(TICK);
        ticks += 1;
        if ticks < IDLE_TICKS {
            continue;
        }
        ticks = 0;
        if READ.swap(false, Ordering::AcqRel) {
            continue;
        }
        // Idle: stop publishing so no reading goes stale, then wait for a reader.
        MONO_NS.store(0, Ordering::Release);
        UNIX_MS.store(0, Ordering::Release);
        RUNNING.store(false, Ordering::Release);
        while !RUNNING.load(Ordering::Acquire) {
            std::thread::park();
        }
    }
}

impl Clock for CoarseClock {
    fn now(&self) -> Instant {
        match published(&MONO_NS) {
            Some(ns) => base() + Duration::from_nanos(ns),
            None => Instant::now(),
        }
    }
    fn unix_time(&self) -> Duration {
        Duration::from_millis(self.unix_ms())
    }
    fn unix_ms(&self) -> u64 {
        published(&UNIX_MS).unwrap_or_else(|| SystemClock.unix_ms())
    }
}

/// A clock that moves only when [`advance`](ManualClock::advance) is called. Clones share
/// the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<(Instant, Duration)>>,
}

impl ManualClock {
    /// A manual clock starting at the current real time.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new((Instant::now(), SystemClock.unix_time()))),
        }
    }

    /// Moves both the monotonic and the wall time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        t.0 += by;
        t.1 += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).0
    }
    fn unix_time(&self) -> Duration {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).1
    }
}

/// A shared clock handle, as backends hold it.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_follows_the_system_clock() {
        for _ in 0..1000 {
            let coarse = CoarseClock.unix_time();
            let system = SystemClock.unix_time();
            // Behind by a tick, or by how long a busy machine left the ticker unscheduled.
            assert!(coarse <= system, "{coarse:?} vs {system:?}");
            assert!(
                system - coarse < Duration::from_secs(2),
                "{coarse:?} vs {system:?}"
            );
        }
        let (before, at, after) = (Instant::now(), CoarseClock.now(), Instant::now());
        assert!(at <= after && before.duration_since(at) < Duration::from_secs(2));
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new();
        let (t0, w0) = (c.now(), c.unix_time());
        let shared = c.clone();
        shared.advance(Duration::from_secs(90));
        assert_eq!(c.now() - t0, Duration::from_secs(90));
        assert_eq!(c.unix_time() - w0, Duration::from_secs(90));
    }
}
