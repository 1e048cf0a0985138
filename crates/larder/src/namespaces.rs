//! [`Namespaces`] and [`AsyncNamespaces`]: one entry point that routes operations to one of
//! several caches by namespace name (wheezy's `CacheClient`). Several namespaces may share
//! one cache, so the partitioning is configuration, not code. Both faces share the routing
//! table (`Routes`), and one list of operations writes both.

use std::collections::HashMap;
use std::sync::Arc;

#[cfg(feature = "tokio")]
use crate::AsyncCache;
use crate::{Cache, Error, Expiry, MultiWrite, Result};

/// The caches by namespace name, and the default one.
struct Routes<C: ?Sized> {
    caches: HashMap<String, Arc<C>>,
    default: Arc<C>,
    default_name: String,
}

impl<C: ?Sized> Routes<C> {
    fn new(caches: impl IntoIterator<Item = (String, Arc<C>)>, default: &str) -> Result<Self> {
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

    fn get(&self, name: &str) -> Result<&C> {
        self.caches
            .get(name)
            .map(|c| &**c)
            .ok_or_else(|| Error::UnknownNamespace(name.to_owned()))
    }

    /// Every cache behind any namespace, each once however many namespaces share it.
    fn distinct(&self) -> Vec<&C> {
        let mut seen: Vec<*const ()> = Vec::new();
        let mut out = Vec::new();
        for cache in self.caches.values() {
            let id = Arc::as_ptr(cache) as *const ();
            if !seen.contains(&id) {
                seen.push(id);
                out.push(&**cache);
            }
        }
        out
    }

    fn fmt(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.caches.keys().collect();
        names.sort();
        f.debug_struct(name)
            .field("namespaces", &names)
            .field("default", &self.default_name)
            .finish()
    }
}

/// Routes operations to blocking caches by namespace. As a [`Cache`] itself it uses the
/// default namespace; [`namespace`](Namespaces::namespace) picks another.
pub struct Namespaces<V> {
    routes: Routes<dyn Cache<V>>,
}

impl<V> std::fmt::Debug for Namespaces<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.routes.fmt("Namespaces", f)
    }
}

impl<V> Namespaces<V> {
    /// Builds the router from `(name, cache)` pairs; `default` must be one of the names.
    pub fn new<I>(caches: I, default: &str) -> Result<Self>
    where
        I: IntoIterator<Item = (String, Arc<dyn Cache<V>>)>,
    {
        Ok(Self {
            routes: Routes::new(caches, default)?,
        })
    }

    /// The cache behind `name`.
    pub fn namespace(&self, name: &str) -> Result<&dyn Cache<V>> {
        self.routes.get(name)
    }

    /// The default namespace's name.
    pub fn default_namespace(&self) -> &str {
        &self.routes.default_name
    }

    /// Clears every distinct cache behind any namespace once.
    pub fn clear_all(&self) -> Result<()> {
        for cache in self.routes.distinct() {
            cache.clear()?;
        }
        Ok(())
    }
}

/// Routes operations to async caches by namespace: the async face of [`Namespaces`]. As an
/// [`AsyncCache`] itself it uses the default namespace; [`namespace`](Self::namespace)
/// picks another.
#[cfg(feature = "tokio")]
pub struct AsyncNamespaces<V> {
    routes: Routes<dyn AsyncCache<V>>,
}

#[cfg(feature = "tokio")]
impl<V> std::fmt::Debug for AsyncNamespaces<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.routes.fmt("AsyncNamespaces", f)
    }
}

#[cfg(feature = "tokio")]
impl<V: Send + 'static> AsyncNamespaces<V> {
    /// Builds the router from `(name, cache)` pairs; `default` must be one of the names.
    pub fn new<I>(caches: I, default: &str) -> Result<Self>
    where
        I: IntoIterator<Item = (String, Arc<dyn AsyncCache<V>>)>,
    {
        Ok(Self {
            routes: Routes::new(caches, default)?,
        })
    }

    /// The cache behind `name`.
    pub fn namespace(&self, name: &str) -> Result<&dyn AsyncCache<V>> {
        self.routes.get(name)
    }

    /// The default namespace's name.
    pub fn default_namespace(&self) -> &str {
        &self.routes.default_name
    }

    /// Clears every distinct cache behind any namespace once.
    pub async fn clear_all(&self) -> Result<()> {
        for cache in self.routes.distinct() {
            cache.clear().await?;
        }
        Ok(())
    }
}

/// Writes one face, every operation going to the default namespace's cache:
/// `namespaces_face!(Type, Trait, [bounds], [attributes], [async], [.await])`.
macro_rules! namespaces_face {
    ($ty:ident, $face:ident, [$($bounds:tt)*], [$(#[$attr:meta])*], [$($asy:tt)*], [$($aw:tt)*]) => {
        $(#[$attr])*
        impl<V: $($bounds)*> $face<V> for $ty<V> {
            $($asy)* fn get(&self, key: &str) -> Result<Option<V>> {
                self.routes.default.get(key)$($aw)*
            }
            $($asy)* fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
                self.routes.default.get_multi(keys)$($aw)*
            }
            $($asy)* fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
                self.routes.default.get_with_ttl(key)$($aw)*
            }
            $($asy)* fn get_multi_with_ttl(
                &self,
                keys: &[&str],
            ) -> Result<HashMap<String, (V, Expiry)>> {
                self.routes.default.get_multi_with_ttl(keys)$($aw)*
            }
            $($asy)* fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
                self.routes.default.set(key, value, expiry)$($aw)*
            }
            $($asy)* fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
                self.routes.default.set_multi(items, expiry)$($aw)*
            }
            $($asy)* fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
                self.routes.default.add(key, value, expiry)$($aw)*
            }
            $($asy)* fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
                self.routes.default.add_multi(items, expiry)$($aw)*
            }
            $($asy)* fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
                self.routes.default.replace(key, value, expiry)$($aw)*
            }
            $($asy)* fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
                self.routes.default.replace_multi(items, expiry)$($aw)*
            }
            $($asy)* fn delete(&self, key: &str) -> Result<bool> {
                self.routes.default.delete(key)$($aw)*
            }
            $($asy)* fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
                self.routes.default.delete_multi(keys)$($aw)*
            }
            $($asy)* fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
                self.routes.default.incr(key, delta)$($aw)*
            }
            $($asy)* fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
                self.routes.default.decr(key, delta)$($aw)*
            }
            $($asy)* fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
                self.routes.default.touch(key, expiry)$($aw)*
            }
            /// Clears the default namespace's cache only; see `clear_all`.
            $($asy)* fn clear(&self) -> Result<()> {
                self.routes.default.clear()$($aw)*
            }
        }
    };
}

namespaces_face!(Namespaces, Cache, [], [], [], []);
#[cfg(feature = "tokio")]
namespaces_face!(AsyncNamespaces, AsyncCache, [Send + 'static], [#[async_trait::async_trait]], [async], [.await]);
