//! The one cache contract: [`Cache`] (blocking) and [`AsyncCache`] (tokio), the [`Expiry`]
//! of a write, and the per-key outcome of multi-key writes.
//!
//! Every backend (memory, null, namespaces, memcached, Redis, tiered) implements `Cache<V>`;
//! the trait is object-safe for a fixed `V`, so `Box<dyn Cache<V>>` lets configuration pick
//! the backend. Semantics every backend keeps:
//! - `add` stores only when the key is absent, `replace` only when it is present.
//! - `incr`/`decr` are atomic per key. A missing key gives `Ok(None)` and stores nothing
//!   (memcached's `NOT_FOUND`); a value that is not an unsigned decimal integer gives
//!   [`Error::NotANumber`](crate::Error::NotANumber). `incr` wraps at 2^64 and `decr`
//!   stops at 0, as memcached does. Both keep the entry's remaining time to live.
//! - `touch` resets an existing entry's expiry and says whether the key was there.
//! - Multi-key reads return only the hits; multi-key writes return which keys were applied.
//! - `get_with_ttl` reports the remaining life where the backend can tell (a two-level cache
//!   needs it so that its copy never outlives the original).
//!
//! Two faces, one name per operation. [`Cache`] and [`AsyncCache`] use the same method
//! names, so code moves between them by adding `.await`, and one list of operations can
//! write both faces (as the memcached clients, `Tiered` and `Namespaces` do). A concrete
//! type that implemented both traits would make `cache.get(k)` ambiguous (E0034) as soon as
//! both traits are imported, so:
//! - a backend that does I/O comes as one type per face: `MemcachedCache` and
//!   `AsyncMemcachedCache`, `RedisCache` and `AsyncRedisCache`, `Tiered` and `AsyncTiered`,
//!   `Namespaces` and `AsyncNamespaces`
//!   (the pattern of `memcache::Client`/`AsyncClient`, moka's `sync::Cache`/`future::Cache`,
//!   and redis-rs, whose `Commands`/`AsyncCommands` are implemented by different
//!   connection types);
//! - an in-process cache that never waits (`MemoryCache`, `NullCache`) implements both
//!   traits, so it plugs in wherever either is wanted, and also has every operation as an
//!   inherent method; Rust picks an inherent method before any trait method, so
//!   `cache.get(k)` on it is never ambiguous either.
//!
//! Distinct async names (`get_async`) were the alternative; they would make every async
//! call say "async" twice and split the one list of operations into two.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::Result;

/// When an entry written now stops being returned.
///
/// "No expiry" is spelled [`Expiry::Never`], never a magic zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Expiry {
    /// The entry lives until it is deleted or evicted.
    #[default]
    Never,
    /// The entry expires this long after the write.
    After(Duration),
}

impl Expiry {
    /// An expiry `secs` seconds from now.
    pub const fn secs(secs: u64) -> Self {
        Expiry::After(Duration::from_secs(secs))
    }

    /// The time to live, or `None` for [`Expiry::Never`].
    pub const fn ttl(self) -> Option<Duration> {
        match self {
            Expiry::Never => None,
            Expiry::After(d) => Some(d),
        }
    }
}

impl From<Duration> for Expiry {
    fn from(d: Duration) -> Self {
        Expiry::After(d)
    }
}

impl From<Option<Duration>> for Expiry {
    fn from(d: Option<Duration>) -> Self {
        d.map_or(Expiry::Never, Expiry::After)
    }
}

/// Per-key outcome of a multi-key write: which keys the operation applied to and which it
/// did not (for `add_multi`: already present; for `replace_multi`/`delete_multi`: absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiWrite {
    /// Keys that were stored (or deleted).
    pub applied: Vec<String>,
    /// Keys that were left alone because the condition did not hold.
    pub not_applied: Vec<String>,
}

impl MultiWrite {
    /// True when every key was applied.
    pub fn all_applied(&self) -> bool {
        self.not_applied.is_empty()
    }

    /// Records one key's outcome.
    pub fn record(&mut self, key: impl Into<String>, applied: bool) {
        if applied {
            self.applied.push(key.into());
        } else {
            self.not_applied.push(key.into());
        }
    }
}

/// The blocking cache contract. See the [module docs](self) for the semantics every
/// backend keeps.
pub trait Cache<V>: Send + Sync {
    /// The value stored under `key`, or `None` on a miss or an expired entry.
    fn get(&self, key: &str) -> Result<Option<V>>;

    /// The hits among `keys`, keyed by key; misses are absent from the map.
    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>>;

    /// The value under `key` with its remaining life (`Expiry::After(left)`, or
    /// `Expiry::Never`). Backends that cannot tell return [`Error::Unsupported`](crate::Error)
    /// (the default); a two-level cache needs it to never keep a copy longer than the original.
    fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        let _ = key;
        Err(crate::Error::Unsupported(
            "this backend does not report remaining time to live".into(),
        ))
    }

    /// The hits among `keys` with their remaining life. The default asks
    /// [`get_with_ttl`](Cache::get_with_ttl) key by key (so it is `Unsupported` where that
    /// is); backends that can answer for many keys in one request override it.
    fn get_multi_with_ttl(&self, keys: &[&str]) -> Result<HashMap<String, (V, Expiry)>> {
        let mut found = HashMap::with_capacity(keys.len());
        for &key in keys {
            if let Some(hit) = self.get_with_ttl(key)? {
                found.insert(key.to_owned(), hit);
            }
        }
        Ok(found)
    }

    /// Stores `value` under `key` unconditionally.
    fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()>;

    /// Stores every item unconditionally; the returned `applied` lists every key.
    fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite>;

    /// Stores `value` only when `key` is absent; `true` when it was stored.
    fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool>;

    /// `add` for each item.
    fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite>;

    /// Stores `value` only when `key` is present; `true` when it was stored.
    fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool>;

    /// `replace` for each item.
    fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite>;

    /// Removes `key`; `true` when it was present.
    fn delete(&self, key: &str) -> Result<bool>;

    /// `delete` for each key.
    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite>;

    /// Atomically adds `delta`; the new value, or `None` when the key is missing.
    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>>;

    /// Atomically subtracts `delta` (stopping at 0); the new value, or `None` when missing.
    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>>;

    /// Gives an existing entry a new expiry; `true` when the key was present.
    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool>;

    /// Removes every entry this cache owns.
    fn clear(&self) -> Result<()>;
}

/// The async cache contract: the same operations and semantics as [`Cache`], for tokio
/// (feature `tokio`). Object-safe for a fixed `V` (`Box<dyn AsyncCache<V>>`).
#[cfg(feature = "tokio")]
#[async_trait::async_trait]
pub trait AsyncCache<V: Send + 'static>: Send + Sync {
    /// See [`Cache::get`].
    async fn get(&self, key: &str) -> Result<Option<V>>;
    /// See [`Cache::get_multi`].
    async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>>;
    /// See [`Cache::get_with_ttl`]; the default is [`Error::Unsupported`](crate::Error).
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        let _ = key;
        Err(crate::Error::Unsupported(
            "this backend does not report remaining time to live".into(),
        ))
    }
    /// See [`Cache::get_multi_with_ttl`]; the default asks `get_with_ttl` key by key.
    async fn get_multi_with_ttl(&self, keys: &[&str]) -> Result<HashMap<String, (V, Expiry)>> {
        let mut found = HashMap::with_capacity(keys.len());
        for &key in keys {
            if let Some(hit) = self.get_with_ttl(key).await? {
                found.insert(key.to_owned(), hit);
            }
        }
        Ok(found)
    }
    /// See [`Cache::set`].
    async fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()>;
    /// See [`Cache::set_multi`].
    async fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite>;
    /// See [`Cache::add`].
    async fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool>;
    /// See [`Cache::add_multi`].
    async fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite>;
    /// See [`Cache::replace`].
    async fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool>;
    /// See [`Cache::replace_multi`].
    async fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite>;
    /// See [`Cache::delete`].
    async fn delete(&self, key: &str) -> Result<bool>;
    /// See [`Cache::delete_multi`].
    async fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite>;
    /// See [`Cache::incr`].
    async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>>;
    /// See [`Cache::decr`].
    async fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>>;
    /// See [`Cache::touch`].
    async fn touch(&self, key: &str, expiry: Expiry) -> Result<bool>;
    /// See [`Cache::clear`].
    async fn clear(&self) -> Result<()>;
}

/// Forwards every [`Cache`] method through a smart pointer.
macro_rules! forward_cache {
    ($($ptr:ty),*) => {$(
        impl<V, C: Cache<V> + ?Sized> Cache<V> for $ptr {
            fn get(&self, key: &str) -> Result<Option<V>> { (**self).get(key) }
            fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> { (**self).get_multi(keys) }
            fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> { (**self).get_with_ttl(key) }
            fn get_multi_with_ttl(&self, keys: &[&str]) -> Result<HashMap<String, (V, Expiry)>> { (**self).get_multi_with_ttl(keys) }
            fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> { (**self).set(key, value, expiry) }
            fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> { (**self).set_multi(items, expiry) }
            fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> { (**self).add(key, value, expiry) }
            fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> { (**self).add_multi(items, expiry) }
            fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> { (**self).replace(key, value, expiry) }
            fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> { (**self).replace_multi(items, expiry) }
            fn delete(&self, key: &str) -> Result<bool> { (**self).delete(key) }
            fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> { (**self).delete_multi(keys) }
            fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> { (**self).incr(key, delta) }
            fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> { (**self).decr(key, delta) }
            fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> { (**self).touch(key, expiry) }
            fn clear(&self) -> Result<()> { (**self).clear() }
        }
    )*};
}
forward_cache!(Box<C>, Arc<C>, &C);

/// Implements [`AsyncCache`] for a type whose [`Cache`] methods never block on I/O (the
/// memory and null caches): each async method runs the blocking one inline.
#[cfg(feature = "tokio")]
#[macro_export]
#[doc(hidden)]
macro_rules! async_cache_via_blocking {
    (impl<$($g:ident),*> for $ty:ty where $($bounds:tt)*) => {
        #[$crate::__private::async_trait]
        impl<$($g),*> $crate::AsyncCache<V> for $ty where $($bounds)* {
            async fn get(&self, key: &str) -> $crate::Result<Option<V>> { $crate::Cache::get(self, key) }
            async fn get_multi(&self, keys: &[&str]) -> $crate::Result<std::collections::HashMap<String, V>> { $crate::Cache::get_multi(self, keys) }
            async fn get_with_ttl(&self, key: &str) -> $crate::Result<Option<(V, $crate::Expiry)>> { $crate::Cache::get_with_ttl(self, key) }
            async fn get_multi_with_ttl(&self, keys: &[&str]) -> $crate::Result<std::collections::HashMap<String, (V, $crate::Expiry)>> { $crate::Cache::get_multi_with_ttl(self, keys) }
            async fn set(&self, key: &str, value: V, expiry: $crate::Expiry) -> $crate::Result<()> { $crate::Cache::set(self, key, value, expiry) }
            async fn set_multi(&self, items: Vec<(&str, V)>, expiry: $crate::Expiry) -> $crate::Result<$crate::MultiWrite> { $crate::Cache::set_multi(self, items, expiry) }
            async fn add(&self, key: &str, value: V, expiry: $crate::Expiry) -> $crate::Result<bool> { $crate::Cache::add(self, key, value, expiry) }
            async fn add_multi(&self, items: Vec<(&str, V)>, expiry: $crate::Expiry) -> $crate::Result<$crate::MultiWrite> { $crate::Cache::add_multi(self, items, expiry) }
            async fn replace(&self, key: &str, value: V, expiry: $crate::Expiry) -> $crate::Result<bool> { $crate::Cache::replace(self, key, value, expiry) }
            async fn replace_multi(&self, items: Vec<(&str, V)>, expiry: $crate::Expiry) -> $crate::Result<$crate::MultiWrite> { $crate::Cache::replace_multi(self, items, expiry) }
            async fn delete(&self, key: &str) -> $crate::Result<bool> { $crate::Cache::delete(self, key) }
            async fn delete_multi(&self, keys: &[&str]) -> $crate::Result<$crate::MultiWrite> { $crate::Cache::delete_multi(self, keys) }
            async fn incr(&self, key: &str, delta: u64) -> $crate::Result<Option<u64>> { $crate::Cache::incr(self, key, delta) }
            async fn decr(&self, key: &str, delta: u64) -> $crate::Result<Option<u64>> { $crate::Cache::decr(self, key, delta) }
            async fn touch(&self, key: &str, expiry: $crate::Expiry) -> $crate::Result<bool> { $crate::Cache::touch(self, key, expiry) }
            async fn clear(&self) -> $crate::Result<()> { $crate::Cache::clear(self) }
        }
    };
}

/// Gives an in-process cache (one that implements both faces) every [`Cache`] operation as
/// an inherent method, so that a call on the concrete type is never ambiguous between
/// [`Cache`] and [`AsyncCache`] (see the [module docs](self)).
macro_rules! inherent_cache_ops {
    (impl<$($g:ident),*> for $ty:ty where $($bounds:tt)*) => {
        impl<$($g),*> $ty where $($bounds)* {
            /// See [`Cache::get`](crate::Cache::get).
            pub fn get(&self, key: &str) -> $crate::Result<Option<V>> { $crate::Cache::get(self, key) }
            /// See [`Cache::get_multi`](crate::Cache::get_multi).
            pub fn get_multi(&self, keys: &[&str]) -> $crate::Result<std::collections::HashMap<String, V>> { $crate::Cache::get_multi(self, keys) }
            /// See [`Cache::get_with_ttl`](crate::Cache::get_with_ttl).
            pub fn get_with_ttl(&self, key: &str) -> $crate::Result<Option<(V, $crate::Expiry)>> { $crate::Cache::get_with_ttl(self, key) }
            /// See [`Cache::get_multi_with_ttl`](crate::Cache::get_multi_with_ttl).
            pub fn get_multi_with_ttl(&self, keys: &[&str]) -> $crate::Result<std::collections::HashMap<String, (V, $crate::Expiry)>> { $crate::Cache::get_multi_with_ttl(self, keys) }
            /// See [`Cache::set`](crate::Cache::set).
            pub fn set(&self, key: &str, value: V, expiry: $crate::Expiry) -> $crate::Result<()> { $crate::Cache::set(self, key, value, expiry) }
            /// See [`Cache::set_multi`](crate::Cache::set_multi).
            pub fn set_multi(&self, items: Vec<(&str, V)>, expiry: $crate::Expiry) -> $crate::Result<$crate::MultiWrite> { $crate::Cache::set_multi(self, items, expiry) }
            /// See [`Cache::add`](crate::Cache::add).
            pub fn add(&self, key: &str, value: V, expiry: $crate::Expiry) -> $crate::Result<bool> { $crate::Cache::add(self, key, value, expiry) }
            /// See [`Cache::add_multi`](crate::Cache::add_multi).
            pub fn add_multi(&self, items: Vec<(&str, V)>, expiry: $crate::Expiry) -> $crate::Result<$crate::MultiWrite> { $crate::Cache::add_multi(self, items, expiry) }
            /// See [`Cache::replace`](crate::Cache::replace).
            pub fn replace(&self, key: &str, value: V, expiry: $crate::Expiry) -> $crate::Result<bool> { $crate::Cache::replace(self, key, value, expiry) }
            /// See [`Cache::replace_multi`](crate::Cache::replace_multi).
            pub fn replace_multi(&self, items: Vec<(&str, V)>, expiry: $crate::Expiry) -> $crate::Result<$crate::MultiWrite> { $crate::Cache::replace_multi(self, items, expiry) }
            /// See [`Cache::delete`](crate::Cache::delete).
            pub fn delete(&self, key: &str) -> $crate::Result<bool> { $crate::Cache::delete(self, key) }
            /// See [`Cache::delete_multi`](crate::Cache::delete_multi).
            pub fn delete_multi(&self, keys: &[&str]) -> $crate::Result<$crate::MultiWrite> { $crate::Cache::delete_multi(self, keys) }
            /// See [`Cache::incr`](crate::Cache::incr).
            pub fn incr(&self, key: &str, delta: u64) -> $crate::Result<Option<u64>> { $crate::Cache::incr(self, key, delta) }
            /// See [`Cache::decr`](crate::Cache::decr).
            pub fn decr(&self, key: &str, delta: u64) -> $crate::Result<Option<u64>> { $crate::Cache::decr(self, key, delta) }
            /// See [`Cache::touch`](crate::Cache::touch).
            pub fn touch(&self, key: &str, expiry: $crate::Expiry) -> $crate::Result<bool> { $crate::Cache::touch(self, key, expiry) }
            /// See [`Cache::clear`](crate::Cache::clear).
            pub fn clear(&self) -> $crate::Result<()> { $crate::Cache::clear(self) }
        }
    };
}
pub(crate) use inherent_cache_ops;
