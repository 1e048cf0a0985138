//! [`Tiered`]: an in-process L1 [`MemoryCache`] in front of any shared L2 [`Cache`] —
//! hot keys are served from memory, everything else from the shared cache.
//!
//! - Reads try L1, then L2; an L2 hit fills L1 with a time to live never longer than the
//!   L2 entry's remaining life (from [`Cache::get_with_ttl`]) nor than the configured cap.
//!   An L2 that cannot report remaining life is filled for the cap only.
//! - Writes and deletes go to L2 first, then L1; `incr`/`decr`/`touch` go to L2 and drop the
//!   L1 copy; `clear` clears both.
//! - A fill never resurrects a value that was overwritten meanwhile: every local write (and
//!   every remote invalidation) bumps an epoch, and a read whose L2 fetch overlapped one
//!   does not fill L1.
//! - Optional cross-instance invalidation through an [`InvalidationBus`] (Redis pub/sub:
//!   [`crate::redis::RedisInvalidation`]): each write publishes the key, and every other
//!   instance evicts it from its L1.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::memory::MemoryCache;
use crate::{Cache, Error, Expiry, MultiWrite, Result};

pub use crate::invalidation::{InvalidationBus, Stale};

/// L1 memory in front of an L2 cache. See the [module docs](self).
pub struct Tiered<V> {
    l1: MemoryCache<V>,
    l2: Arc<dyn Cache<V>>,
    l1_cap: Duration,
    epoch: Arc<AtomicU64>,
    bus: Option<Arc<dyn InvalidationBus>>,
}

impl<V> std::fmt::Debug for Tiered<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiered")
            .field("l1_cap", &self.l1_cap)
            .field("bus", &self.bus.is_some())
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> Tiered<V> {
    /// `l1` in front of `l2`; an L1 copy lives at most `l1_cap`.
    pub fn new(l1: MemoryCache<V>, l2: Arc<dyn Cache<V>>, l1_cap: Duration) -> Self {
        Self {
            l1,
            l2,
            l1_cap,
            epoch: Arc::new(AtomicU64::new(0)),
            bus: None,
        }
    }

    /// Publishes every write on `bus` and evicts what other instances publish.
    pub fn with_invalidation(mut self, bus: Arc<dyn InvalidationBus>) -> Result<Self> {
        let l1 = self.l1.clone();
        let epoch = Arc::clone(&self.epoch);
        bus.subscribe(Box::new(move |what| {
            epoch.fetch_add(1, Ordering::SeqCst);
            let evicted = match &what {
                Stale::Key(key) => l1.delete(key).map(drop),
                Stale::All => l1.clear(),
            };
            if let Err(e) = evicted {
                log::warn!("tiered cache: could not evict {what:?} from L1: {e}");
            }
        }))?;
        self.bus = Some(bus);
        Ok(self)
    }

    /// The L1 cache (for its stats).
    pub fn l1(&self) -> &MemoryCache<V> {
        &self.l1
    }

    fn l1_expiry(&self, left: Expiry) -> Option<Expiry> {
        let ttl = left.ttl().map_or(self.l1_cap, |d| d.min(self.l1_cap));
        (!ttl.is_zero()).then_some(Expiry::After(ttl))
    }

    /// Bumps the epoch and tells the other instances; called after every L2 write.
    fn invalidate(&self, what: Stale) -> Result<()> {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match &self.bus {
            Some(bus) => bus.publish(&what),
            None => Ok(()),
        }
    }

    /// Drops the L1 copy of `key` and tells the others.
    fn forget(&self, key: &str) -> Result<()> {
        self.l1.delete(key)?;
        self.invalidate(Stale::Key(key.to_owned()))
    }

    /// Fetches `key` from L2 and fills L1 unless a write overlapped the fetch.
    fn fetch(&self, key: &str) -> Result<Option<V>> {
        let before = self.epoch.load(Ordering::SeqCst);
        let (value, left) = match self.l2.get_with_ttl(key) {
            Ok(Some((value, left))) => (value, left),
            Ok(None) => return Ok(None),
            Err(Error::Unsupported(_)) => match self.l2.get(key)? {
                Some(value) => (value, Expiry::Never),
                None => return Ok(None),
            },
            Err(e) => return Err(e),
        };
        if let Some(expiry) = self.l1_expiry(left) {
            if self.epoch.load(Ordering::SeqCst) == before {
                self.l1.set(key, value.clone(), expiry)?;
            }
        }
        Ok(Some(value))
    }

    /// Stores `value` in L1 after a successful L2 write with `expiry`.
    fn keep(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        match self.l1_expiry(expiry) {
            Some(l1_expiry) => self.l1.set(key, value, l1_expiry),
            None => self.l1.delete(key).map(drop),
        }
    }

    /// One L2 write (`true` when it stored), then L1 keeps the value if it was stored and
    /// drops its copy otherwise (or on an error), and the other instances are told.
    fn write_one(
        &self,
        key: &str,
        value: V,
        expiry: Expiry,
        l2_write: impl FnOnce(V) -> Result<bool>,
    ) -> Result<bool> {
        let stored = l2_write(value.clone());
        match &stored {
            Ok(true) => self.keep(key, value, expiry)?,
            _ => drop(self.l1.delete(key)?),
        }
        self.invalidate(Stale::Key(key.to_owned()))?;
        stored
    }

    fn write_multi(
        &self,
        items: Vec<(&str, V)>,
        expiry: Expiry,
        l2_write: impl FnOnce(Vec<(&str, V)>) -> Result<MultiWrite>,
    ) -> Result<MultiWrite> {
        let copies: Vec<(String, V)> = items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let outcome = l2_write(items);
        for (key, value) in copies {
            let applied = matches!(&outcome, Ok(w) if w.applied.contains(&key));
            if applied {
                self.keep(&key, value, expiry)?;
            } else {
                self.l1.delete(&key)?;
            }
            self.invalidate(Stale::Key(key))?;
        }
        outcome
    }
}

impl<V: Clone + Send + Sync + 'static> Cache<V> for Tiered<V> {
    fn get(&self, key: &str) -> Result<Option<V>> {
        if let Some(value) = self.l1.get(key)? {
            return Ok(Some(value));
        }
        self.fetch(key)
    }

    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        let mut found = self.l1.get_multi(keys)?;
        let missing: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !found.contains_key(*k))
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        // One L2 round trip for all the misses; they fill L1 on their next single read,
        // since a multi-read reports no remaining life per key.
        found.extend(self.l2.get_multi(&missing)?);
        Ok(found)
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        self.l2.get_with_ttl(key)
    }

    fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        self.write_one(key, value, expiry, |v| {
            self.l2.set(key, v, expiry).map(|()| true)
        })
        .map(drop)
    }

    fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, |items| self.l2.set_multi(items, expiry))
    }

    fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.write_one(key, value, expiry, |v| self.l2.add(key, v, expiry))
    }

    fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, |items| self.l2.add_multi(items, expiry))
    }

    fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.write_one(key, value, expiry, |v| self.l2.replace(key, v, expiry))
    }

    fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, |items| self.l2.replace_multi(items, expiry))
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let deleted = self.l2.delete(key);
        self.forget(key)?;
        deleted
    }

    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let deleted = self.l2.delete_multi(keys);
        for key in keys {
            self.forget(key)?;
        }
        deleted
    }

    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let n = self.l2.incr(key, delta);
        self.forget(key)?;
        n
    }

    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let n = self.l2.decr(key, delta);
        self.forget(key)?;
        n
    }

    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        let touched = self.l2.touch(key, expiry);
        self.forget(key)?;
        touched
    }

    fn clear(&self) -> Result<()> {
        let cleared = self.l2.clear();
        self.l1.clear()?;
        self.invalidate(Stale::All)?;
        cleared
    }
}
