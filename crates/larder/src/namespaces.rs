//! [`Namespaces`]: one entry point that routes operations to one of several caches by
//! namespace name (wheezy's `CacheClient`). Several namespaces may share one cache, so the
//! partitioning is configuration, not code.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{Cache, Error, Expiry, MultiWrite, Result};

/// Routes operations to caches by namespace. As a [`Cache`] itself it uses the default
/// namespace; [`namespace`](Namespaces::namespace) picks another.
pub struct Namespaces<V> {
    caches: HashMap<String, Arc<dyn Cache<V>>>,
    default: Arc<dyn Cache<V>>,
    default_name: String,
}

impl<V> std::fmt::Debug for Namespaces<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.caches.keys().collect();
        names.sort();
        f.debug_struct("Namespaces")
            .field("namespaces", &names)
            .field("default", &self.default_name)
            .finish()
    }
}

impl<V> Namespaces<V> {
    /// Builds the router from `(name, cache)` pairs; `default` must be one of the names.
    pub fn new<I>(caches: I, default: &str) -> Result<Self>
    where
        I: IntoIterator<Item = (String, Arc<dyn Cache<V>>)>,
    {
        let caches: HashMap<_, _> = caches.into_iter().collect();
        let default_cache = caches
            .get(default)
            .cloned()
            .ok_or_else(|| Error::UnknownNamespace(default.to_owned()))?;
        Ok(Self {
            caches,
            default: default_cache,
            default_name: default.to_owned(),
        })
    }

    /// The cache behind `name`.
    pub fn namespace(&self, name: &str) -> Result<&dyn Cache<V>> {
        self.caches
            .get(name)
            .map(|c| &**c)
            .ok_or_else(|| Error::UnknownNamespace(name.to_owned()))
    }

    /// The default namespace's name.
    pub fn default_namespace(&self) -> &str {
        &self.default_name
    }

    /// Clears every distinct cache behind any namespace once.
    pub fn clear_all(&self) -> Result<()> {
        let mut seen: Vec<*const ()> = Vec::new();
        for cache in self.caches.values() {
            let id = Arc::as_ptr(cache) as *const ();
            if !seen.contains(&id) {
                seen.push(id);
                cache.clear()?;
            }
        }
        Ok(())
    }
}

impl<V> Cache<V> for Namespaces<V> {
    fn get(&self, key: &str) -> Result<Option<V>> {
        self.default.get(key)
    }
    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        self.default.get_multi(keys)
    }
    fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        self.default.get_with_ttl(key)
    }
    fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        self.default.set(key, value, expiry)
    }
    fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.default.set_multi(items, expiry)
    }
    fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.default.add(key, value, expiry)
    }
    fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.default.add_multi(items, expiry)
    }
    fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.default.replace(key, value, expiry)
    }
    fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.default.replace_multi(items, expiry)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        self.default.delete(key)
    }
    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        self.default.delete_multi(keys)
    }
    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.default.incr(key, delta)
    }
    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.default.decr(key, delta)
    }
    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.default.touch(key, expiry)
    }
    /// Clears the default namespace's cache only; see [`Namespaces::clear_all`].
    fn clear(&self) -> Result<()> {
        self.default.clear()
    }
}
