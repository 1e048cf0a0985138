//! The region core: the rules both region faces (and [`Lock`](super::Lock)) follow, with no
//! I/O and no waiting.
//!
//! A face reads an entry and asks for a [`Verdict`]; the verdict says what to do before
//! locking ([`Step`]) and, read again under the lock, what the holder does ([`Holder`]:
//! serve, create inline, or hand the creator to the background). The face only waits for
//! locks, talks to the backend and runs the creator. Invalidation timestamps, early
//! expiration, should-cache and creation stamps live here too, with the stored form,
//! [`CachedValue`].

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, CoarseClock, SharedClock};
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

/// The expiration rule: a value created at `created_ms` (ms since the epoch) is past
/// `expiration` once its age reaches it.
#[inline]
fn past(now_ms: u64, created_ms: u64, expiration_ms: u64) -> bool {
    now_ms >= created_ms.saturating_add(expiration_ms)
}

/// True when a value created at `created_at` (wall time) is past `expiration` now.
pub(crate) fn expired(
    created_at: Duration,
    expiration: Option<Duration>,
    clock: &dyn Clock,
) -> bool {
    expiration.is_some_and(|exp| past(clock.unix_ms(), millis(created_at), millis(exp)))
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

/// A [`Verdict`] before its value is taken, so an entry can be judged where it lies.
#[derive(Debug, Clone, Copy)]
enum Standing {
    Fresh,
    Stale,
    Missing,
}

impl Standing {
    #[inline]
    fn with<V>(self, value: impl FnOnce() -> V) -> Verdict<V> {
        match self {
            Standing::Fresh => Verdict::Fresh(value()),
            Standing::Stale => Verdict::Stale(value()),
            Standing::Missing => Verdict::Missing,
        }
    }
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
    #[inline]
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
    #[inline]
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

/// The name of the shared lock on backend key `mangled`: `lock_prefix` + key when backend
/// keys do not carry the region's name (so lock names are the same for every backend).
pub(crate) fn lock_key<'k>(lock_prefix: Option<&str>, mangled: &'k str) -> Cow<'k, str> {
    match lock_prefix {
        Some(prefix) => format!("{prefix}{mangled}").into(),
        None => mangled.into(),
    }
}

/// The longest backend key [`Core::with_mangled`] builds on the stack.
const SHORT_KEY: usize = 64;

/// The default mangler's keys, built without allocating.
enum FastKeys {
    /// Another mangler: every key goes through it.
    None,
    /// Keys as they are (a region that owns its backend).
    Bare,
    /// The prefix at the start of a key buffer, and its length.
    Prefixed([u8; SHORT_KEY], usize),
}

impl FastKeys {
    fn new(prefix: Option<&str>) -> Self {
        match prefix {
            None => FastKeys::None,
            Some("") => FastKeys::Bare,
            Some(prefix) => {
                let mut buf = [0u8; SHORT_KEY];
                match buf.get_mut(..prefix.len()) {
                    Some(head) => {
                        head.copy_from_slice(prefix.as_bytes());
                        FastKeys::Prefixed(buf, prefix.len())
                    }
                    None => FastKeys::None,
                }
            }
        }
    }
}

pub(crate) type ShouldCache<V> = Arc<dyn Fn(&V) -> bool + Send + Sync>;

/// The region's rules and state, shared by both faces.
pub(crate) struct Core<V> {
    pub(crate) name: String,
    pub(crate) expiration: Option<Duration>,
    /// The same in milliseconds, as [`Core::judge`] takes it.
    pub(crate) expiration_ms: Option<u64>,
    pub(crate) backend_expiry: Expiry,
    pub(crate) lock_wait: Duration,
    /// `None`: [`CoarseClock`], called directly.
    clock: Option<SharedClock>,
    keys: KeyEncoder,
    /// How [`Core::with_mangled`] builds keys of the default mangler without allocating.
    fast_keys: FastKeys,
    /// Prepended to the backend key to name a shared lock, when backend keys do not carry
    /// the region's name. (The blocking face keeps its own copy beside its mutexes.)
    #[cfg(feature = "tokio")]
    lock_prefix: Option<String>,
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
    /// `None`: [`CoarseClock`].
    pub(crate) clock: Option<SharedClock>,
    pub(crate) keys: KeyEncoder,
    /// The default mangler's prefix (`""` for a region that owns its backend).
    pub(crate) plain_prefix: Option<String>,
    pub(crate) lock_prefix: Option<String>,
    pub(crate) should_cache: Option<ShouldCache<V>>,
    pub(crate) early: Option<EarlyExpiration>,
    pub(crate) background_workers: usize,
}

impl<V> Core<V> {
    pub(crate) fn new(parts: CoreParts<V>) -> Self {
        Self {
            name: parts.name,
            expiration: parts.expiration,
            expiration_ms: parts.expiration.map(millis),
            backend_expiry: parts.backend_expiry,
            lock_wait: parts.lock_wait,
            clock: parts.clock,
            keys: parts.keys,
            fast_keys: FastKeys::new(parts.plain_prefix.as_deref()),
            #[cfg(feature = "tokio")]
            lock_prefix: parts.lock_prefix,
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

    /// Runs `f` with the backend key for `key`; for the default mangler and a short key the
    /// key is built on the stack (a fresh hit then allocates nothing for its key).
    #[inline]
    pub(crate) fn with_mangled<R>(
        &self,
        key: &str,
        f: impl FnOnce(&str) -> Result<R>,
    ) -> Result<R> {
        match &self.fast_keys {
            FastKeys::Bare if check_key(key.as_bytes()).is_ok() => return f(key),
            FastKeys::Prefixed(prefix, at) => {
                let mut buf = *prefix;
                if let Some(tail) = buf.get_mut(*at..*at + key.len()) {
                    tail.copy_from_slice(key.as_bytes());
                    if let Ok(mangled) = std::str::from_utf8(&buf[..*at + key.len()]) {
                        if check_key(mangled.as_bytes()).is_ok() {
                            return f(mangled);
                        }
                    }
                }
            }
            FastKeys::Bare | FastKeys::None => {}
        }
        // Longer keys, other manglers, and keys the rules refuse (for the error that names
        // the caller's key).
        f(&self.mangle(key)?)
    }

    /// The name of the shared lock on backend key `mangled`.
    #[cfg(feature = "tokio")]
    pub(crate) fn lock_key<'k>(&self, mangled: &'k str) -> Cow<'k, str> {
        lock_key(self.lock_prefix.as_deref(), mangled)
    }

    /// How a holder on a stale value may regenerate.
    pub(crate) fn spawn(&self) -> Spawn<'_> {
        match &self.background {
            Some(background) => Spawn::Bounded(background),
            None => Spawn::Never,
        }
    }

    /// The verdict on a stored entry for a call that may regenerate, with an expiration in
    /// milliseconds (see [`Core::verdict`]).
    #[inline]
    pub(crate) fn judge(
        &self,
        entry: Option<CachedValue<V>>,
        expiration_ms: Option<u64>,
    ) -> Verdict<V> {
        self.verdict(entry, expiration_ms, true)
    }

    /// The entry's value if it is valid and fresh by the region's expiration, never drawing
    /// early expiration (plain reads regenerate nothing).
    pub(crate) fn peek(&self, entry: Option<CachedValue<V>>) -> Option<V> {
        match self.verdict(entry, self.expiration_ms, false) {
            Verdict::Fresh(value) => Some(value),
            Verdict::Stale(_) | Verdict::Missing => None,
        }
    }

    /// Missing, wrong version or hard-invalidated → missing; soft-invalidated, past the
    /// expiration or (when `early_refresh`) drawn for early refresh → stale; otherwise
    /// fresh. The clock is read only with an expiration.
    #[inline]
    fn verdict(
        &self,
        entry: Option<CachedValue<V>>,
        expiration_ms: Option<u64>,
        early_refresh: bool,
    ) -> Verdict<V> {
        match entry {
            Some(entry) => self
                .standing(&entry, expiration_ms, early_refresh)
                .with(|| entry.value),
            None => Verdict::Missing,
        }
    }

    /// [`judge`](Self::judge) of an entry read in place (a memory cache's, under its
    /// lock), cloning the value only when there is one to serve.
    #[inline]
    pub(crate) fn judge_in_place(
        &self,
        entry: &CachedValue<V>,
        expiration_ms: Option<u64>,
    ) -> Verdict<V>
    where
        V: Clone,
    {
        self.standing(entry, expiration_ms, true)
            .with(|| entry.value.clone())
    }

    /// [`peek`](Self::peek) of an entry read in place.
    #[inline]
    pub(crate) fn peek_in_place(&self, entry: &CachedValue<V>) -> Option<V>
    where
        V: Clone,
    {
        match self.standing(entry, self.expiration_ms, false) {
            Standing::Fresh => Some(entry.value.clone()),
            Standing::Stale | Standing::Missing => None,
        }
    }

    /// The rules of [`verdict`](Self::verdict), on an entry that is present.
    #[inline]
    fn standing(
        &self,
        entry: &CachedValue<V>,
        expiration_ms: Option<u64>,
        early_refresh: bool,
    ) -> Standing {
        if entry.version != CACHED_VALUE_VERSION
            || entry.created_at_ms <= self.hard_invalidated_ms.load(Ordering::Acquire)
        {
            return Standing::Missing;
        }
        if entry.created_at_ms <= self.soft_invalidated_ms.load(Ordering::Acquire) {
            return Standing::Stale;
        }
        let Some(exp) = expiration_ms else {
            return Standing::Fresh;
        };
        let now = self.now_ms();
        if past(now, entry.created_at_ms, exp) {
            return Standing::Stale;
        }
        if let (Some(early), true) = (&self.early, early_refresh) {
            let expires_at = entry.created_at_ms.saturating_add(exp);
            if early.should_refresh(now, expires_at, entry.creation_ms) {
                return Standing::Stale;
            }
        }
        Standing::Fresh
    }

    fn now_ms(&self) -> u64 {
        match &self.clock {
            Some(clock) => clock.unix_ms(),
            None => CoarseClock.unix_ms(),
        }
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

    fn instant(&self) -> Instant {
        match &self.clock {
            Some(clock) => clock.now(),
            None => CoarseClock.now(),
        }
    }

    /// When a creator starts (to measure how long it took).
    pub(crate) fn started(&self) -> Instant {
        self.instant()
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
        let creation_ms = millis(self.instant().saturating_duration_since(started));
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
            clock: Some(Arc::new(clock.clone())),
            keys: KeyEncoder::new(crate::keys::KeyEncoding::Utf8),
            plain_prefix: None,
            lock_prefix: None,
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
            core.judge(Some(entry.clone()), core.expiration_ms),
            Verdict::Fresh(7)
        );
        assert_eq!(core.judge(None, core.expiration_ms), Verdict::Missing);
        let old = CachedValue {
            version: 0,
            ..entry.clone()
        };
        assert_eq!(core.judge(Some(old), core.expiration_ms), Verdict::Missing);
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            core.judge(Some(entry.clone()), core.expiration_ms),
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
    fn keys_built_on_the_stack_match_the_mangler() {
        let clock = ManualClock::new();
        let mut core = core(&clock, 0);
        core.keys = crate::dogpile::default_key_encoder("t");
        core.fast_keys = FastKeys::new(Some("t:"));
        for key in [
            "k",
            "ключ",
            &"x".repeat(62),
            &"x".repeat(63),
            &"x".repeat(248),
        ] {
            let fast = core.with_mangled(key, |m| Ok(m.to_owned())).unwrap();
            assert_eq!(fast, core.mangle(key).unwrap());
        }
        for bad in ["a b", "tab\t", &"x".repeat(249)] {
            let err = core.with_mangled(bad, |m| Ok(m.to_owned()));
            let want = core.mangle(bad).map(|_| ()).unwrap_err().to_string();
            assert_eq!(err.unwrap_err().to_string(), want, "{bad:?}");
        }
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
