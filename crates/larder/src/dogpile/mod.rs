//! Dogpile protection: exactly one caller regenerates a missing or expired value.
//!
//! - [`Lock`]: the algorithm (a creator, a retriever reporting creation times or
//!   [`Lookup::NeedRegeneration`], an expiration), generic over any [`KeyedMutex`].
//! - Mutexes: [`LocalMutex`] (in-process, per key), [`FileMutex`] (`flock`, processes on
//!   one host) and [`DistributedMutex`] over a [`LockStore`] (owner token + lock TTL), with
//!   [`MemoryLockStore`]; the memcached and Redis lock stores live with their backends.
//! - [`Region`]: dogpile.cache's cache region over any backend (a memory cache it builds,
//!   a cache of [`CachedValue`]s, or of bytes it encodes itself: [`RegionBackend`]) —
//!   `get_or_create` (single and multi), hard and soft invalidation, cached functions,
//!   should-cache predicates, background regeneration and probabilistic early expiration.
//! - [`AsyncRegion`] (feature `tokio`): the same for async code, with in-process
//!   single-flight coalescing of concurrent misses.
//!
//! Both regions run on one core (`core`: the fresh / stale / missing rules, invalidation,
//! the background decision; `multi`: the multi-key plan), sans-IO, and are configured by
//! one [`RegionBuilder`]; the faces only wait, lock and call the backend.

#[cfg(feature = "tokio")]
mod async_region;
mod backend;
mod cached_fn;
mod core;
mod early;
mod lock;
mod multi;
mod mutex;
mod region;
mod settings;

#[cfg(feature = "tokio")]
pub use async_region::{AsyncRegion, AsyncRegionBuilder};
#[cfg(feature = "tokio")]
pub use backend::{AsyncRegionBackend, AsyncStore};
pub use backend::{BlockingStore, Bytes, Entries, OwnedMemory, RegionBackend};
#[cfg(feature = "tokio")]
pub use cached_fn::AsyncCachedFn;
pub use cached_fn::CachedFn;
pub use core::{CachedValue, Invalidation, CACHED_VALUE_VERSION};
pub use early::{EarlyExpiration, XorShift64};
pub use lock::{Lock, Lookup, DEFAULT_LOCK_WAIT};
#[cfg(feature = "memcached")]
pub(crate) use mutex::backoff;
pub use mutex::{
    DistributedMutex, FileMutex, KeyedMutex, LocalMutex, LockGuard, LockStore, MemoryLockStore,
};
pub use region::Region;
pub use settings::RegionBuilder;

/// The default key mangler of a region named `name`: UTF-8 keys prefixed with `"<name>:"`.
pub(crate) fn default_key_encoder(name: &str) -> crate::keys::KeyEncoder {
    crate::keys::KeyEncoder::new(crate::keys::KeyEncoding::Utf8).with_prefix(format!("{name}:"))
}
