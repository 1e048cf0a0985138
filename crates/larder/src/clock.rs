//! Time as a dependency: a [`Clock`] trait with the real [`SystemClock`] and a
//! [`ManualClock`] that tests advance by hand, so no test sleeps to see an entry expire.
//!
//! A clock gives both a monotonic instant (for in-process expiry and timeouts) and wall
//! time since the Unix epoch (for values shared between processes, such as a region's
//! creation time or memcached's absolute expiry).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// A monotonic instant.
    fn now(&self) -> Instant;
    /// Wall time since the Unix epoch.
    fn unix_time(&self) -> Duration;
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
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new();
        let (t0, w0) = (c.now(), c.unix_time());
        let shared = c.clone();
        shared.advance(Duration::from_secs(90));
        assert_eq!(c.now() - t0, Duration::from_secs(90));
        assert_eq!(c.unix_time() - w0, Duration::from_secs(90));
    }
}
