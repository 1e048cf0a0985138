//! [`Tiered`] and [`AsyncTiered`]: an in-process L1 [`MemoryCache`] in front of a shared L2
//! ([`Cache`] or [`AsyncCache`]) — hot keys are served from memory, everything else from the
//! shared cache. The two faces keep the same rules (they live once, in `core`):
//!
//! - Reads try L1, then L2; an L2 hit fills L1 with a time to live never longer than the
//!   L2 entry's remaining life (from `get_with_ttl`, or `get_multi_with_ttl` for
//!   `get_multi`) nor than the configured cap. An L2 that cannot report remaining life is
//!   filled for the cap only.
//! - Writes and deletes go to L2 first, then L1; `incr`/`decr`/`touch` go to L2 and drop the
//!   L1 copy; `clear` clears both.
//! - A fill never resurrects a value that was overwritten meanwhile: every local write (and
//!   every remote invalidation) bumps an epoch, and a read whose L2 fetch overlapped one
//!   does not fill L1.
//! - Optional cross-instance invalidation through an [`InvalidationBus`] (Redis pub/sub:
//!   `redis::RedisInvalidation`): each write publishes the key, and every other instance
//!   evicts it from its L1. The async face publishes on tokio's blocking pool, since a bus
//!   may wait on the network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::memory::MemoryCache;
#[cfg(feature = "tokio")]
use crate::AsyncCache;
use crate::{Cache, Error, Expiry, MultiWrite, Result};

pub use crate::invalidation::{InvalidationBus, Stale};

mod core;

use self::core::{copies, life_unknown, Core};

/// L1 memory in front of a blocking L2 cache. See the [module docs](self).
pub struct Tiered<V> {
    core: Core<V>,
    l2: Arc<dyn Cache<V>>,
}

impl<V> std::fmt::Debug for Tiered<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl<V: Clone + Send + Sync + 'static> Tiered<V> {
    /// `l1` in front of `l2`; an L1 copy lives at most `l1_cap`.
    pub fn new(l1: MemoryCache<V>, l2: Arc<dyn Cache<V>>, l1_cap: Duration) -> Self {
        Self {
            core: Core::new(l1, l1_cap),
            l2,
        }
    }

    /// Publishes every write on `bus` and evicts what other instances publish.
    pub fn with_invalidation(mut self, bus: Arc<dyn InvalidationBus>) -> Result<Self> {
        self.core.subscribe(bus)?;
        Ok(self)
    }

    /// The L1 cache (for its stats).
    pub fn l1(&self) -> &MemoryCache<V> {
        self.core.l1()
    }

    fn publish(&self, notices: Vec<Stale>) -> Result<()> {
        self.core.publish(&notices)
    }
}

/// L1 memory in front of an async L2 cache: the async face of [`Tiered`], with the same
/// rules. See the [module docs](self).
#[cfg(feature = "tokio")]
pub struct AsyncTiered<V> {
    core: Core<V>,
    l2: Arc<dyn AsyncCache<V>>,
}

#[cfg(feature = "tokio")]
impl<V> std::fmt::Debug for AsyncTiered<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

#[cfg(feature = "tokio")]
impl<V: Clone + Send + Sync + 'static> AsyncTiered<V> {
    /// `l1` in front of `l2`; an L1 copy lives at most `l1_cap`.
    pub fn new(l1: MemoryCache<V>, l2: Arc<dyn AsyncCache<V>>, l1_cap: Duration) -> Self {
        Self {
            core: Core::new(l1, l1_cap),
            l2,
        }
    }

    /// Publishes every write on `bus` and evicts what other instances publish. Subscribing
    /// waits until the bus confirms (for Redis, the `SUBSCRIBE`), so call it while setting
    /// up, not on a busy executor thread.
    pub fn with_invalidation(mut self, bus: Arc<dyn InvalidationBus>) -> Result<Self> {
        self.core.subscribe(bus)?;
        Ok(self)
    }

    /// The L1 cache (for its stats).
    pub fn l1(&self) -> &MemoryCache<V> {
        self.core.l1()
    }

    async fn publish(&self, notices: Vec<Stale>) -> Result<()> {
        let Some(bus) = self.core.bus().cloned() else {
            return Ok(());
        };
        if notices.is_empty() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || notices.iter().try_for_each(|n| bus.publish(n)))
            .await
            .map_err(|e| Error::from_join("the invalidation bus's publish", e))?
    }
}

/// Writes one face from one list of operations: `tiered_face!(Type, Trait, [attributes],
/// [async], [.await])`. Each operation makes its L2 calls and hands their results to the
/// core's rules, then publishes what the rules say changed.
macro_rules! tiered_face {
    ($ty:ident, $face:ident, [$(#[$attr:meta])*], [$($asy:tt)*], [$($aw:tt)*]) => {
        $(#[$attr])*
        impl<V: Clone + Send + Sync + 'static> $face<V> for $ty<V> {
            $($asy)* fn get(&self, key: &str) -> Result<Option<V>> {
                if let Some(value) = self.core.cached(key)? {
                    return Ok(Some(value));
                }
                let seen = self.core.seen();
                let found = match self.l2.get_with_ttl(key)$($aw)* {
                    Err(Error::Unsupported(_)) => self.l2.get(key)$($aw)*?.map(life_unknown),
                    other => other?,
                };
                self.core.fill(key, seen, found)
            }

            $($asy)* fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
                let (mut found, missing) = self.core.cached_multi(keys)?;
                if missing.is_empty() {
                    return Ok(found);
                }
                let seen = self.core.seen();
                let fetched = match self.l2.get_multi_with_ttl(&missing)$($aw)* {
                    Err(Error::Unsupported(_)) => self
                        .l2
                        .get_multi(&missing)$($aw)*?
                        .into_iter()
                        .map(|(k, v)| (k, life_unknown(v)))
                        .collect(),
                    other => other?,
                };
                self.core.fill_multi(seen, fetched, &mut found)?;
                Ok(found)
            }

            /// L2's answer (L1 does not know the original's remaining life).
            $($asy)* fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
                self.l2.get_with_ttl(key)$($aw)*
            }

            /// L2's answer (L1 does not know the originals' remaining life).
            $($asy)* fn get_multi_with_ttl(
                &self,
                keys: &[&str],
            ) -> Result<HashMap<String, (V, Expiry)>> {
                self.l2.get_multi_with_ttl(keys)$($aw)*
            }

            $($asy)* fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
                let stored = self.l2.set(key, value.clone(), expiry)$($aw)*;
                let notices = self.core.settle(key, value, expiry, stored.is_ok())?;
                self.publish(notices)$($aw)*?;
                stored
            }

            $($asy)* fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
                let copies = copies(&items);
                let outcome = self.l2.set_multi(items, expiry)$($aw)*;
                let notices = self.core.settle_multi(copies, expiry, &outcome)?;
                self.publish(notices)$($aw)*?;
                outcome
            }

            $($asy)* fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
                let stored = self.l2.add(key, value.clone(), expiry)$($aw)*;
                let notices = self.core.settle(key, value, expiry, matches!(stored, Ok(true)))?;
                self.publish(notices)$($aw)*?;
                stored
            }

            $($asy)* fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
                let copies = copies(&items);
                let outcome = self.l2.add_multi(items, expiry)$($aw)*;
                let notices = self.core.settle_multi(copies, expiry, &outcome)?;
                self.publish(notices)$($aw)*?;
                outcome
            }

            $($asy)* fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
                let stored = self.l2.replace(key, value.clone(), expiry)$($aw)*;
                let notices = self.core.settle(key, value, expiry, matches!(stored, Ok(true)))?;
                self.publish(notices)$($aw)*?;
                stored
            }

            $($asy)* fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
                let copies = copies(&items);
                let outcome = self.l2.replace_multi(items, expiry)$($aw)*;
                let notices = self.core.settle_multi(copies, expiry, &outcome)?;
                self.publish(notices)$($aw)*?;
                outcome
            }

            $($asy)* fn delete(&self, key: &str) -> Result<bool> {
                let deleted = self.l2.delete(key)$($aw)*;
                let notices = self.core.forget(&[key])?;
                self.publish(notices)$($aw)*?;
                deleted
            }

            $($asy)* fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
                let deleted = self.l2.delete_multi(keys)$($aw)*;
                let notices = self.core.forget(keys)?;
                self.publish(notices)$($aw)*?;
                deleted
            }

            $($asy)* fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
                let n = self.l2.incr(key, delta)$($aw)*;
                let notices = self.core.forget(&[key])?;
                self.publish(notices)$($aw)*?;
                n
            }

            $($asy)* fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
                let n = self.l2.decr(key, delta)$($aw)*;
                let notices = self.core.forget(&[key])?;
                self.publish(notices)$($aw)*?;
                n
            }

            $($asy)* fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
                let touched = self.l2.touch(key, expiry)$($aw)*;
                let notices = self.core.forget(&[key])?;
                self.publish(notices)$($aw)*?;
                touched
            }

            $($asy)* fn clear(&self) -> Result<()> {
                let cleared = self.l2.clear()$($aw)*;
                let notices = self.core.forget_all()?;
                self.publish(notices)$($aw)*?;
                cleared
            }
        }
    };
}

tiered_face!(Tiered, Cache, [], [], []);
#[cfg(feature = "tokio")]
tiered_face!(AsyncTiered, AsyncCache, [#[async_trait::async_trait]], [async], [.await]);
