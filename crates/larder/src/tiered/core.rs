//! The rules of the two-level cache, once for both faces: what a read takes from L1, when and
//! for how long an L2 hit fills L1, what L1 keeps after a write, and the epoch that stops a
//! fill from resurrecting a value overwritten meanwhile. Nothing here waits on L2: the faces
//! make the L2 calls between these steps and publish the notices the steps return.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::invalidation::{InvalidationBus, Stale};
use crate::memory::MemoryCache;
use crate::{Expiry, MultiWrite, Result};

/// The L1, its cap, the epoch and the bus of one two-level cache.
pub(super) struct Core<V> {
    l1: MemoryCache<V>,
    l1_cap: Duration,
    epoch: Arc<AtomicU64>,
    bus: Option<Arc<dyn InvalidationBus>>,
}

/// The epoch a read saw before it asked L2: a fill happens only if it is still current.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen(u64);

/// An L2 hit whose remaining life L2 cannot tell: L1 keeps it for the cap.
pub(super) fn life_unknown<V>(value: V) -> (V, Expiry) {
    (value, Expiry::Never)
}

/// Owned copies of the items of a multi-write, for L1 once L2 has answered.
pub(super) fn copies<V: Clone>(items: &[(&str, V)]) -> Vec<(String, V)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl<V> std::fmt::Debug for Core<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiered")
            .field("l1_cap", &self.l1_cap)
            .field("bus", &self.bus.is_some())
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> Core<V> {
    pub(super) fn new(l1: MemoryCache<V>, l1_cap: Duration) -> Self {
        Self {
            l1,
            l1_cap,
            epoch: Arc::new(AtomicU64::new(0)),
            bus: None,
        }
    }

    /// Evicts from L1 what other instances publish on `bus`, and publishes on it from now on.
    pub(super) fn subscribe(&mut self, bus: Arc<dyn InvalidationBus>) -> Result<()> {
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
        Ok(())
    }

    pub(super) fn l1(&self) -> &MemoryCache<V> {
        &self.l1
    }

    #[cfg(feature = "tokio")]
    pub(super) fn bus(&self) -> Option<&Arc<dyn InvalidationBus>> {
        self.bus.as_ref()
    }

    /// How long L1 may keep a copy of an entry with `left` to live (`None`: not at all).
    fn l1_expiry(&self, left: Expiry) -> Option<Expiry> {
        let ttl = left.ttl().map_or(self.l1_cap, |d| d.min(self.l1_cap));
        (!ttl.is_zero()).then_some(Expiry::After(ttl))
    }

    /// The notices of a change to `keys`; none without a bus, so nothing is copied for it.
    fn notices<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Vec<Stale> {
        match self.bus {
            Some(_) => keys.into_iter().map(|k| Stale::Key(k.to_owned())).collect(),
            None => Vec::new(),
        }
    }

    /// Marks a change: a read whose L2 fetch overlapped it will not fill L1.
    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn cached(&self, key: &str) -> Result<Option<V>> {
        self.l1.get(key)
    }

    /// The L1 hits among `keys`, and the keys L2 has to be asked for.
    pub(super) fn cached_multi<'k>(
        &self,
        keys: &[&'k str],
    ) -> Result<(HashMap<String, V>, Vec<&'k str>)> {
        let found = self.l1.get_multi(keys)?;
        let missing = keys
            .iter()
            .copied()
            .filter(|k| !found.contains_key(*k))
            .collect();
        Ok((found, missing))
    }

    /// Taken before asking L2; see [`fill`](Self::fill).
    pub(super) fn seen(&self) -> Seen {
        Seen(self.epoch.load(Ordering::SeqCst))
    }

    fn still(&self, seen: Seen) -> bool {
        self.epoch.load(Ordering::SeqCst) == seen.0
    }

    /// L2's answer for `key`: fills L1 for the entry's remaining life (capped), unless a
    /// write or an invalidation happened since `seen`.
    pub(super) fn fill(
        &self,
        key: &str,
        seen: Seen,
        found: Option<(V, Expiry)>,
    ) -> Result<Option<V>> {
        let Some((value, left)) = found else {
            return Ok(None);
        };
        if let Some(expiry) = self.l1_expiry(left) {
            if self.still(seen) {
                self.l1.set(key, value.clone(), expiry)?;
            }
        }
        Ok(Some(value))
    }

    /// [`fill`](Self::fill) for each of L2's hits, which join the L1 hits in `into`.
    pub(super) fn fill_multi(
        &self,
        seen: Seen,
        found: HashMap<String, (V, Expiry)>,
        into: &mut HashMap<String, V>,
    ) -> Result<()> {
        into.reserve(found.len());
        for (key, (value, left)) in found {
            if let Some(expiry) = self.l1_expiry(left) {
                if self.still(seen) {
                    self.l1.set(&key, value.clone(), expiry)?;
                }
            }
            into.insert(key, value);
        }
        Ok(())
    }

    /// After an L2 write of `key`: L1 keeps `value` if L2 stored it and drops its copy
    /// otherwise (or on an error). Returns the notices to publish.
    pub(super) fn settle(
        &self,
        key: &str,
        value: V,
        expiry: Expiry,
        stored: bool,
    ) -> Result<Vec<Stale>> {
        self.keep_or_drop(key, stored.then_some(value), expiry)?;
        self.bump();
        Ok(self.notices([key]))
    }

    /// [`settle`](Self::settle) for each item of a multi-write, by L2's per-key outcome.
    pub(super) fn settle_multi(
        &self,
        copies: Vec<(String, V)>,
        expiry: Expiry,
        outcome: &Result<MultiWrite>,
    ) -> Result<Vec<Stale>> {
        let applied: HashSet<&str> = match outcome {
            Ok(w) => w.applied.iter().map(String::as_str).collect(),
            Err(_) => HashSet::new(),
        };
        for (key, value) in &copies {
            let kept = applied.contains(key.as_str()).then(|| value.clone());
            self.keep_or_drop(key, kept, expiry)?;
        }
        self.bump();
        Ok(self.notices(copies.iter().map(|(k, _)| k.as_str())))
    }

    fn keep_or_drop(&self, key: &str, value: Option<V>, expiry: Expiry) -> Result<()> {
        match (value, self.l1_expiry(expiry)) {
            (Some(value), Some(l1_expiry)) => self.l1.set(key, value, l1_expiry),
            _ => self.l1.delete(key).map(drop),
        }
    }

    /// After an L2 operation that changed `keys` in a way L1 cannot follow (delete, incr,
    /// decr, touch): L1 drops its copies.
    pub(super) fn forget(&self, keys: &[&str]) -> Result<Vec<Stale>> {
        for key in keys {
            self.l1.delete(key)?;
        }
        self.bump();
        Ok(self.notices(keys.iter().copied()))
    }

    /// After L2 was cleared: so is L1.
    pub(super) fn forget_all(&self) -> Result<Vec<Stale>> {
        self.l1.clear()?;
        self.bump();
        Ok(match self.bus {
            Some(_) => vec![Stale::All],
            None => Vec::new(),
        })
    }

    /// Tells the other instances, on this thread.
    pub(super) fn publish(&self, notices: &[Stale]) -> Result<()> {
        match &self.bus {
            Some(bus) => notices.iter().try_for_each(|n| bus.publish(n)),
            None => Ok(()),
        }
    }
}
