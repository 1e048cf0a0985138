//! [`Lock`]: the dogpile algorithm, generic over any [`KeyedMutex`].
//!
//! See [`Lock`] for the algorithm.

use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::dogpile::core::{expired, Holder, Permit, Spawn, Step, Verdict};
use crate::dogpile::mutex::{KeyedMutex, LockGuard};
use crate::Result;

/// What a retriever found under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<V> {
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
/// [`Lookup::NeedRegeneration`]) and made with a *creator* (`FnOnce() -> Result<V>`, the
/// same shape as a [`Region`](super::Region)'s creator; here it also stores the value).
/// Exactly one caller runs the creator:
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
        expired(created_at, self.expiration, &*self.clock)
    }

    /// Runs the algorithm for `key`: returns a fresh value, the stale value while another
    /// caller regenerates, or the value this caller created. `creator` stores the value and
    /// returns it.
    pub fn get<V>(
        &self,
        key: &str,
        creator: impl FnOnce() -> Result<V>,
        mut retriever: impl FnMut() -> Result<Lookup<V>>,
    ) -> Result<V> {
        let mut look = || Ok(Verdict::of(retriever()?, self.expiration, &*self.clock));
        run(
            self.mutex,
            key,
            self.wait,
            look()?,
            look,
            Spawn::Never,
            creator,
            |creator| creator(),
            |_, _, _| {},
        )
    }

    /// Like [`get`](Self::get), but when this caller wins the mutex over a *stale* value it
    /// hands the creator and the held guard to `background` and returns the stale value at
    /// once. `background` must run the creator (on another thread) and drop the guard when
    /// done, so the mutex stays held until the new value is stored. With no value to serve
    /// the creator runs inline, as in [`get`](Self::get).
    pub fn get_or_spawn<V, C>(
        &self,
        key: &str,
        creator: C,
        mut retriever: impl FnMut() -> Result<Lookup<V>>,
        background: impl FnOnce(C, LockGuard),
    ) -> Result<V>
    where
        C: FnOnce() -> Result<V>,
    {
        let mut look = || Ok(Verdict::of(retriever()?, self.expiration, &*self.clock));
        run(
            self.mutex,
            key,
            self.wait,
            look()?,
            look,
            Spawn::Always,
            creator,
            |creator| creator(),
            |creator, guard, _| background(creator, guard),
        )
    }
}

/// The blocking face of the dogpile algorithm, for [`Lock`] and the blocking region: from
/// the `first` verdict, waits on `mutex` as it says, reads again with `look` under the
/// lock, and runs the creator `inline` or hands it, with the held guard, to `background`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<V, C, M: KeyedMutex + ?Sized>(
    mutex: &M,
    key: &str,
    wait: Duration,
    first: Verdict<V>,
    look: impl FnOnce() -> Result<Verdict<V>>,
    spawn: Spawn<'_>,
    creator: C,
    inline: impl FnOnce(C) -> Result<V>,
    background: impl FnOnce(C, LockGuard, Option<Permit>),
) -> Result<V> {
    let guard = match first.step() {
        Step::Serve(value) => return Ok(value),
        Step::TryLock(stale) => match mutex.try_acquire(key)? {
            Some(guard) => guard,
            None => return Ok(stale),
        },
        Step::WaitLock => mutex.acquire(key, wait)?,
    };
    match look()?.holder(spawn) {
        Holder::Serve(value) => Ok(value),
        Holder::Create => {
            let created = inline(creator);
            drop(guard);
            created
        }
        Holder::CreateThenServe(stale) => {
            if let Err(err) = inline(creator) {
                log::warn!("regeneration of {key:?} failed: {err}");
            }
            drop(guard);
            Ok(stale)
        }
        Holder::Spawn(stale, permit) => {
            background(creator, guard, permit);
            Ok(stale)
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
                Some((value, created_at)) => Lookup::Value { value, created_at },
                None => Lookup::NeedRegeneration,
            })
        };
        let create = |n: u32| {
            *stored.borrow_mut() = Some((n, clock.unix_time()));
            Ok(n)
        };
        assert_eq!(lock.get("k", || create(1), retrieve).unwrap(), 1);
        assert_eq!(lock.get("k", || create(2), retrieve).unwrap(), 1);
        clock.advance(Duration::from_secs(10));
        assert_eq!(lock.get("k", || create(3), retrieve).unwrap(), 3);
        assert_eq!(mutex.active_keys(), 0);
    }
}
