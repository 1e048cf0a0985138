//! The region core: the rules both region faces (and [`Lock`](super::Lock)) follow, with no
//! I/O and no waiting.
//!
//! A face reads an entry and asks for a [`Verdict`]; the verdict says what to do before
//! locking ([`Step`]) and, read again under the lock, what the holder does ([`Holder`]:
//! serve, create inline, or hand the creator to the background). The face only waits for
//! locks, talks to the backend and runs the creator. Invalidation timestamps, early
//! expiration, should-cache and creation stamps live here too, with the stored form,
//! [`CachedValue`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SharedClock};
use crate::dogpile::early::EarlyExpiration;
use crate::dogpile::lock::Lookup;
use crate::keys::{check_key, hex_digest, HashAlgorithm, KeyEncoder};
use crate::{Expiry, Result};

/// The stored format version of [`CachedValue`]; entries with another version are treated
/// as missing (and overwritten).
pub const CACHED_VALUE_VERSION: u32 = 1;

/// A value as a region stores it in its backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedValue<V> {
    /// The cached value.
    pub value: V,
    /// When it was created: milliseconds since the Unix epoch ([`Clock::unix_time`]).
    pub created_at_ms: u64,
    /// How long its creation took, in milliseconds (0 for values written with `set`).
    pub creation_ms: u64,
    /// [`CACHED_VALUE_VERSION`] when written.
    pub version: u32,
}

/// How [`Region::invalidate`](super::Region::invalidate) treats every value created before
/// the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// As if missing: the next callers wait for one creator.
    Hard,
    /// Stale: served to every caller while one regenerates.
    Soft,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// True when a value created at `created_at` (wall time) is past `expiration` now.
pub(crate) fn expired(
    created_at: Duration,
    expiration: Option<Duration>,
    clock: &dyn Clock,
) -> bool {
    expiration.is_some_and(|exp| clock.unix_time().saturating_sub(created_at) >= exp)
}

/// How a stored value stands for one call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict<V> {
    /// Valid and young enough: return it.
    Fresh(V),
    /// Must be regenerated, but can be served meanwhile.
    Stale(V),
    /// Nothing to serve.
    Missing,
}

/// What a caller does before holding the key's lock.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<V> {
    /// Return this value.
    Serve(V),
    /// Take the lock only if it is free; when someone holds it, serve this stale value.
    TryLock(V),
    /// Wait (bounded) for the lock: there is nothing to serve.
    WaitLock,
}

/// What the lock holder does after reading the value again.
#[derive(Debug)]
pub(crate) enum Holder<V> {
    /// Someone made it meanwhile: return it.
    Serve(V),
    /// Run the creator inline and return its value.
    Create,
    /// Run the creator inline (every background worker is busy), then serve this stale
    /// value; a creator error is only logged.
    CreateThenServe(V),
    /// Serve this stale value now; the creator and the held lock go to the background.
    Spawn(V, Option<Permit>),
}

/// Whether the lock holder on a stale value may regenerate in the background.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Spawn<'a> {
    /// Never: the holder regenerates inline.
    Never,
    /// Always (the caller of [`Lock::get_or_spawn`](super::Lock::get_or_spawn) decides how).
    Always,
    /// When one of a bounded number of background slots is free.
    Bounded(&'a Background),
}

impl<V> Verdict<V> {
    /// The verdict on what a retriever found, judging age against `expiration`.
    pub(crate) fn of(found: Lookup<V>, expiration: Option<Duration>, clock: &dyn Clock) -> Self {
        match found {
            Lookup::Value { value, created_at } => {
                if expired(created_at, expiration, clock) {
                    Verdict::Stale(value)
                } else {
                    Verdict::Fresh(value)
                }
            }
            Lookup::Stale(value) => Verdict::Stale(value),
            Lookup::NeedRegeneration => Verdict::Missing,
        }
    }

    /// Before the lock: a fresh value is served, a stale one is served unless this caller
    /// can take the lock at once, and with nothing to serve every caller waits for it.
    pub(crate) fn step(self) -> Step<V> {
        match self {
            Verdict::Fresh(value) => Step::Serve(value),
            Verdict::Stale(value) => Step::TryLock(value),
            Verdict::Missing => Step::WaitLock,
        }
    }

    /// Under the lock (read again, since the previous holder may have just made it).
    pub(crate) fn holder(self, spawn: Spawn<'_>) -> Holder<V> {
        match self {
            Verdict::Fresh(value) => Holder::Serve(value),
            Verdict::Missing => Holder::Create,
            Verdict::Stale(value) => match spawn {
                Spawn::Never => Holder::Create,
                Spawn::Always => Holder::Spawn(value, None),
                Spawn::Bounded(background) => match background.reserve() {
                    Some(permit) => Holder::Spawn(value, Some(permit)),
                    None => Holder::CreateThenServe(value),
                },
            },
        }
    }
}

/// Bounded background regeneration: at most `max` creators running at once.
#[derive(Debug)]
pub(crate) struct Background {
    max: usize,
    running: Arc<AtomicUsize>,
}

/// A reserved background slot; freed on drop.
#[derive(Debug)]
pub(crate) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Background {
    fn reserve(&self) -> Option<Permit> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(Arc::clone(&self.running)))
    }
}

pub(crate) type ShouldCache<V> = Arc<dyn Fn(&V) -> bool + Send + Sync>;

/// The region's rules and state, shared by both faces.
pub(crate) struct Core<V> {
    pub(crate) name: String,
    pub(crate) expiration: Option<Duration>,
    pub(crate) backend_expiry: Expiry,
    pub(crate) lock_wait: Duration,
    clock: SharedClock,
    keys: KeyEncoder,
    should_cache: Option<ShouldCache<V>>,
    early: Option<EarlyExpiration>,
    background: Option<Background>,
    /// Values created at or before these times (ms since the epoch) are invalid; 0: none.
    hard_invalidated_ms: AtomicU64,
    soft_invalidated_ms: AtomicU64,
}

/// The parts of the settings the core keeps.
pub(crate) struct CoreParts<V> {
    pub(crate) name: String,
    pub(crate) expiration: Option<Duration>,
    pub(crate) backend_expiry: Expiry,
    pub(crate) lock_wait: Duration,
    pub(crate) clock: SharedClock,
    pub(crate) keys: KeyEncoder,
    pub(crate) should_cache: Option<ShouldCache<V>>,
    pub(crate) early: Option<EarlyExpiration>,
    pub(crate) background_workers: usize,
}

impl<V> Core<V> {
    pub(crate) fn new(parts: CoreParts<V>) -> Self {
        Self {
            name: parts.name,
            expiration: parts.expiration,
            backend_expiry: parts.backend_expiry,
            lock_wait: parts.lock_wait,
            clock: parts.clock,
            keys: parts.keys,
            should_cache: parts.should_cache,
            early: parts.early,
            background: (parts.background_workers > 0).then(|| Background {
                max: parts.background_workers,
                running: Arc::default(),
            }),
            hard_invalidated_ms: AtomicU64::new(0),
            soft_invalidated_ms: AtomicU64::new(0),
        }
    }

    /// The backend key for `key` (the key mangler's output).
    pub(crate) fn mangle(&self, key: &str) -> Result<String> {
        self.keys.encode(key)
    }

    /// How a holder on a stale value may regenerate.
    pub(crate) fn spawn(&self) -> Spawn<'_> {
        match &self.background {
            Some(background) => Spawn::Bounded(background),
            None => Spawn::Never,
        }
    }

    /// The verdict on a stored entry for a call that may regenerate: missing, wrong version
    /// or hard-invalidated → missing; soft-invalidated or drawn for early refresh → stale;
    /// otherwise by age.
    pub(crate) fn judge(
        &self,
        entry: Option<CachedValue<V>>,
        expiration: Option<Duration>,
    ) -> Verdict<V> {
        Verdict::of(
            self.lookup(entry, expiration, true),
            expiration,
            &*self.clock,
        )
    }

    /// The entry's value if it is valid and fresh by the region's expiration, never drawing
    /// early expiration (plain reads regenerate nothing).
    pub(crate) fn peek(&self, entry: Option<CachedValue<V>>) -> Option<V> {
        let exp = self.expiration;
        match Verdict::of(self.lookup(entry, exp, false), exp, &*self.clock) {
            Verdict::Fresh(value) => Some(value),
            Verdict::Stale(_) | Verdict::Missing => None,
        }
    }

    fn lookup(
        &self,
        entry: Option<CachedValue<V>>,
        expiration: Option<Duration>,
        early_refresh: bool,
    ) -> Lookup<V> {
        let Some(entry) = entry else {
            return Lookup::NeedRegeneration;
        };
        if entry.version != CACHED_VALUE_VERSION
            || entry.created_at_ms <= self.hard_invalidated_ms.load(Ordering::Acquire)
        {
            return Lookup::NeedRegeneration;
        }
        if entry.created_at_ms <= self.soft_invalidated_ms.load(Ordering::Acquire) {
            return Lookup::Stale(entry.value);
        }
        if let (Some(early), Some(exp), true) = (&self.early, expiration, early_refresh) {
            let expires_at = entry.created_at_ms.saturating_add(millis(exp));
            if early.should_refresh(self.now_ms(), expires_at, entry.creation_ms) {
                return Lookup::Stale(entry.value);
            }
        }
        Lookup::Value {
            value: entry.value,
            created_at: Duration::from_millis(entry.created_at_ms),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.clock.unix_time())
    }

    /// A creation stamp: now, but always after the latest invalidation, so a value made
    /// after `invalidate` (even within the same millisecond) is valid.
    fn stamp(&self) -> u64 {
        let latest = self
            .hard_invalidated_ms
            .load(Ordering::Acquire)
            .max(self.soft_invalidated_ms.load(Ordering::Acquire));
        if latest == 0 {
            self.now_ms()
        } else {
            self.now_ms().max(latest.saturating_add(1))
        }
    }

    /// Records an invalidation of everything created until now.
    pub(crate) fn invalidate(&self, how: Invalidation) {
        let now = self.now_ms().max(1);
        let ts = match how {
            Invalidation::Hard => &self.hard_invalidated_ms,
            Invalidation::Soft => &self.soft_invalidated_ms,
        };
        ts.fetch_max(now, Ordering::AcqRel);
    }

    /// When a creator starts (to measure how long it took).
    pub(crate) fn started(&self) -> Instant {
        self.clock.now()
    }

    fn keeps(&self, value: &V) -> bool {
        self.should_cache.as_ref().is_none_or(|keep| keep(value))
    }

    fn entry(&self, value: V, creation_ms: u64) -> CachedValue<V> {
        CachedValue {
            value,
            created_at_ms: self.stamp(),
            creation_ms,
            version: CACHED_VALUE_VERSION,
        }
    }

    /// The entry to store for `value`, made by a creator that started at `started`; `None`
    /// when `should_cache` says not to store it.
    pub(crate) fn created(&self, value: &V, started: Instant) -> Option<CachedValue<V>>
    where
        V: Clone,
    {
        if !self.keeps(value) {
            return None;
        }
        let creation_ms = millis(self.clock.now().saturating_duration_since(started));
        Some(self.entry(value.clone(), creation_ms))
    }

    /// The entry to store for `value` written directly (`set`), as created now.
    pub(crate) fn written(&self, value: V) -> Option<CachedValue<V>> {
        self.keeps(&value).then(|| self.entry(value, 0))
    }
}

/// The region key of a cached function's call: `"<namespace>:<args as Debug>"`, or the
/// SHA-1 of the `Debug` form after `"<namespace>:#"` when that is not a valid key.
pub(crate) fn cached_fn_key<A: std::fmt::Debug>(namespace: &str, args: &A) -> String {
    let shown = format!("{args:?}");
    if shown.len() <= 200 && check_key(shown.as_bytes()).is_ok() {
        format!("{namespace}:{shown}")
    } else {
        format!(
            "{namespace}:#{}",
            hex_digest(HashAlgorithm::Sha1, shown.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn core(clock: &ManualClock, background_workers: usize) -> Core<u32> {
        Core::new(CoreParts {
            name: "t".into(),
            expiration: Some(Duration::from_secs(10)),
            backend_expiry: Expiry::Never,
            lock_wait: Duration::from_secs(1),
            clock: Arc::new(clock.clone()),
            keys: KeyEncoder::new(crate::keys::KeyEncoding::Utf8),
            should_cache: Some(Arc::new(|v: &u32| *v != 0)),
            early: None,
            background_workers,
        })
    }

    #[test]
    fn verdicts_follow_age_version_and_invalidation() {
        let clock = ManualClock::new();
        let core = core(&clock, 0);
        let entry = core.written(7).unwrap();
        assert_eq!(
            core.judge(Some(entry.clone()), core.expiration),
            Verdict::Fresh(7)
        );
        assert_eq!(core.judge(None, core.expiration), Verdict::Missing);
        let old = CachedValue {
            version: 0,
            ..entry.clone()
        };
        assert_eq!(core.judge(Some(old), core.expiration), Verdict::Missing);
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            core.judge(Some(entry.clone()), core.expiration),
            Verdict::Stale(7)
        );
        assert_eq!(core.peek(Some(entry.clone())), None);
        assert_eq!(core.judge(Some(entry.clone()), None), Verdict::Fresh(7));
        core.invalidate(Invalidation::Soft);
        assert_eq!(core.judge(Some(entry.clone()), None), Verdict::Stale(7));
        core.invalidate(Invalidation::Hard);
        assert_eq!(core.judge(Some(entry), None), Verdict::Missing);
        // A value written after the invalidation, in the same millisecond, is valid.
        assert_eq!(core.judge(core.written(8), None), Verdict::Fresh(8));
        // should_cache: 0 is never stored.
        assert!(core.written(0).is_none());
        assert!(core.created(&0, clock.now()).is_none());
    }

    #[test]
    fn steps_and_holders() {
        let clock = ManualClock::new();
        assert_eq!(Verdict::Fresh(1).step(), Step::Serve(1));
        assert_eq!(Verdict::Stale(1).step(), Step::TryLock(1));
        assert_eq!(Verdict::<u32>::Missing.step(), Step::WaitLock);
        assert!(matches!(
            Verdict::Stale(1).holder(Spawn::Never),
            Holder::Create
        ));
        assert!(matches!(
            Verdict::Stale(1).holder(Spawn::Always),
            Holder::Spawn(1, None)
        ));
        assert!(matches!(
            Verdict::<u32>::Missing.holder(Spawn::Always),
            Holder::Create
        ));
        // One background slot: the second stale holder regenerates inline and serves stale.
        let core = core(&clock, 1);
        let first = Verdict::Stale(1).holder(core.spawn());
        assert!(matches!(first, Holder::Spawn(1, Some(_))));
        assert!(matches!(
            Verdict::Stale(2).holder(core.spawn()),
            Holder::CreateThenServe(2)
        ));
        drop(first);
        assert!(matches!(
            Verdict::Stale(3).holder(core.spawn()),
            Holder::Spawn(3, Some(_))
        ));
    }

    #[test]
    fn cached_fn_keys_hash_what_is_not_a_key() {
        assert_eq!(cached_fn_key("sq", &3), "sq:3");
        let spaced = cached_fn_key("c", &("a b", 1));
        assert!(
            spaced.starts_with("c:#") && spaced.len() == 3 + 40,
            "{spaced}"
        );
    }
}
