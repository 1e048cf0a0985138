//! Dogpile protection: exactly one caller regenerates a missing or expired value.
//!
//! - [`Lock`]: the algorithm (a creator, a retriever reporting creation times or
//!   [`Retrieval::NeedRegeneration`], an expiration), generic over any [`KeyedMutex`].
//! - Mutexes: [`LocalMutex`] (in-process, per key), [`FileMutex`] (`flock`, processes on
//!   one host) and [`DistributedMutex`] over a [`LockStore`] (owner token + lock TTL), with
//!   [`MemoryLockStore`] and (feature `memcached`) `MemcachedLockStore`.
//! - [`Region`]: dogpile.cache's cache region over any [`Cache`](crate::Cache) backend —
//!   `get_or_create` (single and multi), hard and soft invalidation, cached functions,
//!   should-cache predicates, background regeneration and probabilistic early expiration.
//! - [`AsyncRegion`] (feature `tokio`): the same for async code, with in-process
//!   single-flight coalescing of concurrent misses.

#[cfg(feature = "tokio")]
mod async_region;
mod early;
mod lock;
#[cfg(feature = "memcached")]
mod memcached;
mod mutex;
mod region;

#[cfg(feature = "tokio")]
pub use async_region::{AsyncRegion, AsyncRegionBuilder};
pub use early::{EarlyExpiration, XorShift64};
pub use lock::{Lock, Retrieval, DEFAULT_LOCK_WAIT};
#[cfg(feature = "memcached")]
pub use memcached::{MemcachedLockStore, MetaRegion};
pub use mutex::{
    DistributedMutex, FileMutex, KeyedMutex, LocalMutex, LockGuard, LockStore, MemoryLockStore,
};
pub use region::{
    CachedFn, CachedValue, Invalidation, Region, RegionBuilder, CACHED_VALUE_VERSION,
};

/// The default key mangler of a region named `name`: UTF-8 keys prefixed with `"<name>:"`.
pub(crate) fn default_key_encoder(name: &str) -> crate::keys::KeyEncoder {
    crate::keys::KeyEncoder::new(crate::keys::KeyEncoding::Utf8).with_prefix(format!("{name}:"))
}
