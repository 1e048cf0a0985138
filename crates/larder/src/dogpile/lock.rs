//! [`Lock`]: the dogpile algorithm, generic over any [`KeyedMutex`].
//!
//! See [`Lock`] for the algorithm.

use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::dogpile::mutex::{KeyedMutex, LockGuard};
use crate::Result;

/// What a retriever found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retrieval<V> {
    /// A value and its creation time (wall time since the Unix epoch); it is expired once
    /// older than the lock's expiration.
    Value {
        /// The value.
        value: V,
        /// When it was created, as [`Clock::unix_time`](crate::clock::Clock::unix_time).
        created_at: Duration,
    },
    /// A value known to need regeneration whatever its age (soft invalidation, early
    /// expiration); served to other callers while one regenerates.
    Stale(V),
    /// No usable value: callers wait for the one creator.
    NeedRegeneration,
}

/// The dogpile lock: one creator at a time per key, other callers wait (no value) or get the
/// stale value (expired value).
///
/// A value is read with a *retriever* (which reports the value and its creation time, or
/// [`Retrieval::NeedRegeneration`]) and made with a *creator* (which stores the value and
/// returns it). Exactly one caller runs the creator:
/// - **No value**: every caller blocks on the mutex ([`KeyedMutex::acquire`], bounded by
///   [`Lock::wait`]); the first in creates, the others find the fresh value when they get in.
/// - **Expired value**: callers *try* the mutex ([`KeyedMutex::try_acquire`]); the one that
///   gets it regenerates, every other caller returns the stale value at once.
/// - After acquiring, the value is read again: another caller may have just made it.
///
/// A creator error is returned to the caller that ran the creator; the mutex is released, so
/// the lock is never poisoned. Callers that were waiting on a missing value then take the
/// mutex in turn, still find no value and run the creator themselves (dogpile's behaviour):
/// a failing creator is retried by each waiter rather than failing them all.
pub struct Lock<'m, M: KeyedMutex + ?Sized> {
    mutex: &'m M,
    expiration: Option<Duration>,
    wait: Duration,
    clock: SharedClock,
}

impl<M: KeyedMutex + ?Sized> std::fmt::Debug for Lock<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("expiration", &self.expiration)
            .field("wait", &self.wait)
            .finish()
    }
}

/// The default bound on waiting for a creator: 30 seconds.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

impl<'m, M: KeyedMutex + ?Sized> Lock<'m, M> {
    /// A lock over `mutex`, values never expiring by age, waits bounded by
    /// [`DEFAULT_LOCK_WAIT`], the system clock.
    pub fn new(mutex: &'m M) -> Self {
        Self {
            mutex,
            expiration: None,
            wait: DEFAULT_LOCK_WAIT,
            clock: std::sync::Arc::new(SystemClock),
        }
    }

    /// Values older than `expiration` are regenerated; `None`: never by age.
    pub fn expiration(mut self, expiration: Option<Duration>) -> Self {
        self.expiration = expiration;
        self
    }

    /// The longest a caller waits for the creator of a missing value
    /// ([`Error::LockTimeout`](crate::Error::LockTimeout) past it).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Reads the current time from `clock`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// True when a value created at `created_at` is past the expiration now.
    pub fn is_expired(&self, created_at: Duration) -> bool {
        self.expiration
            .is_some_and(|exp| self.clock.unix_time().saturating_sub(created_at) >= exp)
    }

    /// Classifies a retrieval: `Ok(value)` when fresh, `Err(Some(stale))` when it must be
    /// regenerated but can be served, `Err(None)` when there is nothing to serve.
    fn classify<V>(&self, found: Retrieval<V>) -> std::result::Result<V, Option<V>> {
        match found {
            Retrieval::Value { value, created_at } if !self.is_expired(created_at) => Ok(value),
            Retrieval::Value { value, .. } | Retrieval::Stale(value) => Err(Some(value)),
            Retrieval::NeedRegeneration => Err(None),
        }
    }

    /// Runs the algorithm for `key`: returns a fresh value, the stale value while another
    /// caller regenerates, or the value this caller created. `creator` stores the value and
    /// returns it with its creation time (as in dogpile).
    pub fn get<V>(
        &self,
        key: &str,
        creator: impl FnOnce() -> Result<(V, Duration)>,
        retriever: impl FnMut() -> Result<Retrieval<V>>,
    ) -> Result<V> {
        self.run(key, creator, retriever, None::<fn(LockGuard)>)
    }

    /// Like [`get`](Self::get), but when this caller wins the mutex over a *stale* value it
    /// hands the held guard to `background` and returns the stale value at once.
    /// `background` must run the creator (on another thread) and drop the guard when done,
    /// so the mutex stays held until the new value is stored. With no value to serve the
    /// creator runs inline, as in [`get`](Self::get).
    pub fn get_or_spawn<V>(
        &self,
        key: &str,
        creator: impl FnOnce() -> Result<(V, Duration)>,
        retriever: impl FnMut() -> Result<Retrieval<V>>,
        background: impl FnOnce(LockGuard),
    ) -> Result<V> {
        self.run(key, creator, retriever, Some(background))
    }

    fn run<V>(
        &self,
        key: &str,
        creator: impl FnOnce() -> Result<(V, Duration)>,
        mut retriever: impl FnMut() -> Result<Retrieval<V>>,
        background: Option<impl FnOnce(LockGuard)>,
    ) -> Result<V> {
        let stale = match self.classify(retriever()?) {
            Ok(fresh) => return Ok(fresh),
            Err(stale) => stale,
        };
        let guard = match stale {
            Some(stale) => match self.mutex.try_acquire(key)? {
                Some(guard) => guard,
                // Someone else is regenerating: serve what we have.
                None => return Ok(stale),
            },
            None => self.mutex.acquire(key, self.wait)?,
        };
        // Re-check under the mutex: the value may have just been made.
        match self.classify(retriever()?) {
            Ok(fresh) => Ok(fresh),
            Err(Some(stale)) if background.is_some() => {
                if let Some(spawn) = background {
                    spawn(guard);
                }
                Ok(stale)
            }
            Err(_) => {
                let created = creator();
                drop(guard);
                created.map(|(value, _)| value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::dogpile::mutex::LocalMutex;
    use std::sync::Arc;

    #[test]
    fn expired_value_is_regenerated_and_fresh_one_is_not() {
        let clock = ManualClock::new();
        let mutex = LocalMutex::new();
        let lock = Lock::new(&mutex)
            .expiration(Some(Duration::from_secs(10)))
            .clock(Arc::new(clock.clone()));
        let stored = std::cell::RefCell::new(None::<(u32, Duration)>);
        let retrieve = || {
            Ok(match *stored.borrow() {
                Some((value, created_at)) => Retrieval::Value { value, created_at },
                None => Retrieval::NeedRegeneration,
            })
        };
        let create = |n: u32| {
            let entry = (n, clock.unix_time());
            *stored.borrow_mut() = Some(entry);
            Ok(entry)
        };
        assert_eq!(lock.get("k", || create(1), retrieve).unwrap(), 1);
        assert_eq!(lock.get("k", || create(2), retrieve).unwrap(), 1);
        clock.advance(Duration::from_secs(10));
        assert_eq!(lock.get("k", || create(3), retrieve).unwrap(), 3);
        assert_eq!(mutex.active_keys(), 0);
    }
}
