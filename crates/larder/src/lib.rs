//! larder — a caching toolkit for Rust services.
//!
//! - [`Cache`] / [`AsyncCache`]: one contract, implemented by the embedded
//!   [`MemoryCache`](memory::MemoryCache) (the default, no server), [`NullCache`],
//!   [`Namespaces`], [`tiered`], the memcached backend and (feature `redis`) Redis; the
//!   async faces (`AsyncNamespaces`, `tiered::AsyncTiered`, `memcache::AsyncMemcachedCache`,
//!   `redis::AsyncRedisCache`) with feature `tokio`.
//! - [`pool`]: one pooling API whose strategy (shared, queue, per-thread) is configuration.
//! - [`memcache`]: a memcached client (meta and text protocols, libmemcached-compatible
//!   key placement).
//! - [`dogpile`]: stampede protection — exactly one caller regenerates an expired value.
//! - [`keys`], [`codec`], [`Dependency`]: key rules and encoders, value codecs, and
//!   dependency invalidation.
//!
//! # Features
//!
//! The memory cache, pools, tiered caches, namespaces and dogpile need none. Each feature
//! brings the dependencies of what it names:
//!
//! | feature | adds |
//! |---|---|
//! | `memcached` (default) | the memcached client and `MemcachedCache`, with the ring's hashes (md5, crc, murmur3) |
//! | `json` (default) | `JsonCodec`; regions on caches of bytes (JSON is their default codec) |
//! | `tokio` | `AsyncCache` and every async face: async pools, `AsyncClient`, `AsyncRegion`, ... |
//! | `redis` | `RedisCache`, `RedisLockStore`, `RedisInvalidation`; with `tokio`, `AsyncRedisCache` |
//! | `postcard`, `lz4`, `pycompat` | `PostcardCodec`, `Compressed`, `codec::pycompat::PyCompat` |
//! | `blake3` | `keys::HashAlgorithm::Blake3` (SHA-1 and SHA-256 are always there) |
//!
//! The default is the common path: a dogpile region on memcached builds with no feature
//! named.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod cache;
pub mod clock;
pub mod codec;
pub mod dependency;
pub mod dogpile;
pub mod error;
pub mod invalidation;
pub mod keys;
#[cfg(feature = "memcached")]
pub mod memcache;
pub mod memory;
pub mod namespaces;
pub mod null;
pub mod pool;
#[cfg(feature = "redis")]
pub mod redis;
pub mod tiered;
pub mod value;

#[cfg(feature = "tokio")]
pub use cache::AsyncCache;
pub use cache::{Cache, Expiry, MultiWrite};
pub use codec::{Codec, Encoded};
pub use dependency::Dependency;
pub use error::{BoxError, Error, KeyRule, Result};
pub use keys::KeyPolicy;
#[cfg(feature = "tokio")]
pub use namespaces::AsyncNamespaces;
pub use namespaces::Namespaces;
pub use null::NullCache;

#[cfg(feature = "tokio")]
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
}
