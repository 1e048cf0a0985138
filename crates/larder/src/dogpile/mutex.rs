//! Keyed mutexes behind one trait, [`KeyedMutex`]: the in-process [`LocalMutex`] (one lock
//! per key, entries dropped when nobody holds or waits), the [`FileMutex`] (`flock` on a file
//! per key, for processes on one host) and the [`DistributedMutex`] over a [`LockStore`]
//! (an owner token and a lock TTL in a shared store such as memcached).
//!
//! A holder that dies is covered by the OS releasing its `flock` (file) or by the lock TTL
//! (distributed). A waiter never waits longer than the bound it passes to
//! [`KeyedMutex::acquire`]; past it, the call fails with [`Error::LockTimeout`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::keys::{hex_digest, HashAlgorithm};
use crate::{Error, Result};

/// A held lock. Dropping it releases the lock; [`release`](LockGuard::release) does the same
/// and reports a failure to release (for example a distributed store that is unreachable).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    key: String,
    release: Option<Box<dyn FnOnce() -> Result<()> + Send>>,
}

impl LockGuard {
    /// A guard for `key` that runs `release` once, when released or dropped.
    pub fn new(
        key: impl Into<String>,
        release: impl FnOnce() -> Result<()> + Send + 'static,
    ) -> Self {
        Self {
            key: key.into(),
            release: Some(Box::new(release)),
        }
    }

    /// The key this guard locks.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Releases the lock now, reporting whether that worked.
    pub fn release(mut self) -> Result<()> {
        match self.release.take() {
            Some(release) => release(),
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            if let Err(err) = release() {
                log::warn!("releasing lock {:?} failed: {err}", self.key);
            }
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").field("key", &self.key).finish()
    }
}

/// A family of mutexes, one per key: [`LocalMutex`], [`FileMutex`], [`DistributedMutex`].
///
/// A holder that dies is covered by the OS releasing its `flock` (file) or by the lock TTL
/// (distributed). A waiter never waits longer than the bound it passes to `acquire`.
pub trait KeyedMutex: Send + Sync {
    /// Takes the lock on `key`, waiting at most `wait` for its holder; past that,
    /// [`Error::LockTimeout`].
    fn acquire(&self, key: &str, wait: Duration) -> Result<LockGuard>;

    /// Takes the lock on `key` only if it is free right now; `None` when someone holds it.
    fn try_acquire(&self, key: &str) -> Result<Option<LockGuard>>;
}

impl<M: KeyedMutex + ?Sized> KeyedMutex for Arc<M> {
    fn acquire(&self, key: &str, wait: Duration) -> Result<LockGuard> {
        (**self).acquire(key, wait)
    }
    fn try_acquire(&self, key: &str) -> Result<Option<LockGuard>> {
        (**self).try_acquire(key)
    }
}

fn timeout(key: &str, waited: Duration) -> Error {
    Error::LockTimeout {
        key: key.to_owned(),
        waited,
    }
}

/// Sleeps between polls: 1 ms, doubling up to 20 ms, never past `deadline`. Returns false
/// when the deadline has passed.
pub(crate) fn backoff(step: &mut Duration, deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    std::thread::sleep((*step).min(deadline - now));
    *step = (*step * 2).min(Duration::from_millis(20));
    true
}

// ---------------------------------------------------------------------------------------
// In-process

#[derive(Default)]
struct Slot {
    held: Mutex<bool>,
    freed: Condvar,
}

/// Per key: the slot and how many callers hold or wait for it.
type Slots = Mutex<HashMap<String, (Arc<Slot>, usize)>>;

/// In-process keyed mutex: callers on different keys never wait for each other, and a key's
/// entry is removed as soon as nobody holds or waits for it.
#[derive(Clone, Default)]
pub struct LocalMutex {
    slots: Arc<Slots>,
}

impl LocalMutex {
    /// An empty keyed mutex.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are currently held or waited for.
    pub fn active_keys(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn enter(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = slots
            .entry(key.to_owned())
            .or_insert_with(|| (Arc::new(Slot::default()), 0));
        entry.1 += 1;
        Arc::clone(&entry.0)
    }

    fn leave(slots: &Slots, key: &str) {
        let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = slots.get_mut(key) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                slots.remove(key);
            }
        }
    }

    fn guard(&self, key: &str, slot: Arc<Slot>) -> LockGuard {
        let slots = Arc::clone(&self.slots);
        let owned = key.to_owned();
        LockGuard::new(key, move || {
            *slot.held.lock().unwrap_or_else(PoisonError::into_inner) = false;
            slot.freed.notify_one();
            Self::leave(&slots, &owned);
            Ok(())
        })
    }
}

impl std::fmt::Debug for LocalMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMutex")
            .field("active_keys", &self.active_keys())
            .finish()
    }
}

impl KeyedMutex for LocalMutex {
    fn acquire(&self, key: &str, wait: Duration) -> Result<LockGuard> {
        let slot = self.enter(key);
        let held = slot.held.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut held, result) = slot
            .freed
            .wait_timeout_while(held, wait, |held| *held)
            .unwrap_or_else(PoisonError::into_inner);
        if result.timed_out() && *held {
            drop(held);
            Self::leave(&self.slots, key);
            return Err(timeout(key, wait));
        }
        *held = true;
        drop(held);
        Ok(self.guard(key, slot))
    }

    fn try_acquire(&self, key: &str) -> Result<Option<LockGuard>> {
        let slot = self.enter(key);
        let mut held = slot.held.lock().unwrap_or_else(PoisonError::into_inner);
        if *held {
            drop(held);
            Self::leave(&self.slots, key);
            return Ok(None);
        }
        *held = true;
        drop(held);
        Ok(Some(self.guard(key, slot)))
    }
}

// ---------------------------------------------------------------------------------------
// File

/// A keyed mutex for processes on one host: `flock` on `<dir>/<sha256(key)>.lock`.
///
/// Every acquisition opens its own file handle, so threads of one process exclude each other
/// as well. When a holder dies the OS closes its handle and releases the lock. Lock files are
/// left in place (deleting them would race with a process opening the same path).
#[derive(Debug, Clone)]
pub struct FileMutex {
    dir: PathBuf,
}

impl FileMutex {
    /// Lock files live in `dir`, which is created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The directory holding the lock files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock file of `key`.
    pub fn path_for(&self, key: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.lock",
            hex_digest(HashAlgorithm::Sha256, key.as_bytes())
        ))
    }

    fn open(&self, key: &str) -> Result<File> {
        let path = self.path_for(key);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| {
                Error::Io(std::io::Error::new(
                    err.kind(),
                    format!("opening lock file {} for {key:?}: {err}", path.display()),
                ))
            })
    }

    fn try_lock(key: &str, file: File) -> Result<Option<LockGuard>> {
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard::new(key, move || {
                file.unlock()?;
                Ok(())
            }))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(err)) => Err(Error::Io(err)),
        }
    }
}

impl KeyedMutex for FileMutex {
    fn acquire(&self, key: &str, wait: Duration) -> Result<LockGuard> {
        let deadline = Instant::now() + wait;
        let mut step = Duration::from_millis(1);
        loop {
            if let Some(guard) = Self::try_lock(key, self.open(key)?)? {
                return Ok(guard);
            }
            if !backoff(&mut step, deadline) {
                return Err(timeout(key, wait));
            }
        }
    }

    fn try_acquire(&self, key: &str) -> Result<Option<LockGuard>> {
        Self::try_lock(key, self.open(key)?)
    }
}

// ---------------------------------------------------------------------------------------
// Distributed

/// A shared store that can hold a lock entry with an owner token and a time to live
/// (memcached `add`, Redis `SET NX PX`, or [`MemoryLockStore`] in tests).
pub trait LockStore: Send + Sync {
    /// Creates the entry `key` = `token` with time to live `ttl` if no live entry exists;
    /// `true` when it was created (the lock is ours).
    fn try_acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<bool>;

    /// Deletes the entry `key` only if it still holds `token`; `true` when it was deleted.
    fn release(&self, key: &str, token: &str) -> Result<bool>;
}

impl<S: LockStore + ?Sized> LockStore for Arc<S> {
    fn try_acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        (**self).try_acquire(key, token, ttl)
    }
    fn release(&self, key: &str, token: &str) -> Result<bool> {
        (**self).release(key, token)
    }
}

/// A keyed mutex shared by processes on many hosts: each lock is an entry in a
/// [`LockStore`] holding a unique owner token, with a TTL so a dead holder's lock lapses.
///
/// Release deletes the entry only while it still holds our token, so a holder that outlived
/// its TTL never frees someone else's lock. Waiters poll (1 ms doubling to 20 ms).
pub struct DistributedMutex<S: LockStore> {
    store: S,
    lock_ttl: Duration,
    prefix: String,
    owner: String,
    counter: Arc<AtomicU64>,
}

impl<S: LockStore> DistributedMutex<S> {
    /// Locks in `store` that lapse `lock_ttl` after they were taken; entries are named
    /// `"lock:" + key`.
    pub fn new(store: S, lock_ttl: Duration) -> Self {
        let unique = SystemClock.unix_time().as_nanos();
        Self {
            store,
            lock_ttl,
            prefix: "lock:".to_owned(),
            owner: format!("{}-{unique:x}", std::process::id()),
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Names lock entries `prefix + key` instead of `"lock:" + key`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a taken lock lives if its holder never releases it.
    pub fn lock_ttl(&self) -> Duration {
        self.lock_ttl
    }

    fn token(&self) -> String {
        format!(
            "{}-{}",
            self.owner,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }
}

impl<S: LockStore + Clone + 'static> DistributedMutex<S> {
    fn try_once(&self, key: &str) -> Result<Option<LockGuard>> {
        let store_key = format!("{}{key}", self.prefix);
        let token = self.token();
        if !self.store.try_acquire(&store_key, &token, self.lock_ttl)? {
            return Ok(None);
        }
        let store = self.store.clone();
        Ok(Some(LockGuard::new(key, move || {
            if !store.release(&store_key, &token)? {
                log::warn!("lock {store_key:?} had lapsed (TTL) before it was released");
            }
            Ok(())
        })))
    }
}

impl<S: LockStore> std::fmt::Debug for DistributedMutex<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedMutex")
            .field("lock_ttl", &self.lock_ttl)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl<S: LockStore + Clone + 'static> KeyedMutex for DistributedMutex<S> {
    fn acquire(&self, key: &str, wait: Duration) -> Result<LockGuard> {
        let deadline = Instant::now() + wait;
        let mut step = Duration::from_millis(1);
        loop {
            if let Some(guard) = self.try_once(key)? {
                return Ok(guard);
            }
            if !backoff(&mut step, deadline) {
                return Err(timeout(key, wait));
            }
        }
    }

    fn try_acquire(&self, key: &str) -> Result<Option<LockGuard>> {
        self.try_once(key)
    }
}

/// An in-process [`LockStore`] with expiring entries on an injectable [`Clock`]: for tests
/// (simulate a holder that died with a [`ManualClock`](crate::clock::ManualClock)) and for
/// single-process use of [`DistributedMutex`].
#[derive(Debug, Clone)]
pub struct MemoryLockStore {
    entries: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    clock: SharedClock,
}

impl MemoryLockStore {
    /// An empty store reading time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            entries: Arc::default(),
            clock,
        }
    }

    /// The token holding `key`, if a live entry exists.
    pub fn holder(&self, key: &str) -> Option<String> {
        let now = self.clock.now();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(token, _)| token.clone())
    }
}

impl Default for MemoryLockStore {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl LockStore for MemoryLockStore {
    fn try_acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.get(key).is_some_and(|(_, expires)| *expires > now) {
            return Ok(false);
        }
        entries.insert(key.to_owned(), (token.to_owned(), now + ttl));
        Ok(true)
    }

    fn release(&self, key: &str, token: &str) -> Result<bool> {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some((held_by, expires)) if held_by == token && *expires > now => {
                entries.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
