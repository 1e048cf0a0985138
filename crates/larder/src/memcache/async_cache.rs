//! [`AsyncMemcachedCache`]: the [`AsyncCache`] face of the memcached backend, over the tokio
//! [`AsyncClient`]. It shares the blocking face's mapping of keys, values and errors
//! (`cache::Mapping`), so both faces store and name keys alike.

use std::collections::HashMap;
use std::marker::PhantomData;

use super::cache::{wire_items, Found, Mapping};
use super::{AsyncClient, MetaGetOptions, SetMode};
use crate::{AsyncCache, Codec, Encoded, Expiry, MultiWrite, Result};

/// An [`AsyncCache`] stored in memcached, over an [`AsyncClient`]: the async face of
/// [`MemcachedCache`](super::MemcachedCache) (build one from the other with
/// [`MemcachedCache::to_async`](super::MemcachedCache::to_async)).
pub struct AsyncMemcachedCache<V, C> {
    client: AsyncClient,
    map: Mapping<C>,
    _value: PhantomData<fn(V) -> V>,
}

impl<V, C> std::fmt::Debug for AsyncMemcachedCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncMemcachedCache")
            .field("client", &self.client)
            .field("prefix", &self.map.prefix())
            .field("key_policy", &self.map.key_policy())
            .finish()
    }
}

impl<V, C: Codec<V>> AsyncMemcachedCache<V, C> {
    /// A cache over `client` encoding values with `codec`.
    pub fn new(client: AsyncClient, codec: C) -> Self {
        Self {
            client,
            map: Mapping::new(codec),
            _value: PhantomData,
        }
    }

    /// Prepends `prefix` to every key (it does not scope `clear`, which flushes the servers).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.map.set_prefix(prefix.into());
        self
    }

    /// Sets which keys the cache accepts (see [`MemcachedCache::with_key_policy`]).
    ///
    /// [`MemcachedCache::with_key_policy`]: super::MemcachedCache::with_key_policy
    pub fn with_key_policy(mut self, policy: crate::KeyPolicy) -> Self {
        self.map.set_key_policy(policy);
        self
    }

    /// The underlying client.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }
}

impl<V: Send + 'static, C: Codec<V>> AsyncMemcachedCache<V, C> {
    async fn write(&self, mode: SetMode, key: &str, enc: Encoded, expiry: Expiry) -> Result<bool> {
        let k = self.map.key(key)?;
        let c = &self.client;
        let res = match mode {
            SetMode::Add => c.add(&k, &enc.data, enc.flags, expiry).await,
            SetMode::Replace => c.replace(&k, &enc.data, enc.flags, expiry).await,
            _ => c.set(&k, &enc.data, enc.flags, expiry).await.map(|()| true),
        };
        res.map_err(|e| self.map.name_key(key, e))
    }

    async fn write_multi(
        &self,
        mode: SetMode,
        items: Vec<(&str, V)>,
        expiry: Expiry,
    ) -> Result<MultiWrite> {
        let encoded = self.map.encode_items(&items)?;
        let wire = wire_items(&encoded);
        let applied = self.client.store_multi(mode, &wire, expiry).await;
        self.map
            .multi_outcome(items.iter().map(|(key, _)| *key), applied)
    }
}

#[async_trait::async_trait]
impl<V: Send + 'static, C: Codec<V>> AsyncCache<V> for AsyncMemcachedCache<V, C> {
    async fn get(&self, key: &str) -> Result<Option<V>> {
        let hit = self
            .client
            .get(self.map.key(key)?)
            .await
            .map_err(|e| self.map.name_key(key, e))?;
        self.map.decode(hit)
    }

    async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let wire = self.map.keys(keys)?;
        let mut found = Found::new(keys);
        self.client
            .get_multi_indexed(&wire, |at, hit| found.visit(self.map.codec(), at, hit))
            .await?;
        found.finish()
    }

    // A meta get with the `t` flag; `Mapping::with_life` says why it rounds a second off.
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        let got = self
            .client
            .meta_get(self.map.key(key)?, MetaGetOptions::default())
            .await
            .map_err(|e| self.map.name_key(key, e))?;
        self.map.with_life(got)
    }

    async fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        self.write(SetMode::Set, key, self.map.encode(&value)?, expiry)
            .await
            .map(|_| ())
    }

    async fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(SetMode::Set, items, expiry).await
    }

    async fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.write(SetMode::Add, key, self.map.encode(&value)?, expiry)
            .await
    }

    async fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(SetMode::Add, items, expiry).await
    }

    async fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.write(SetMode::Replace, key, self.map.encode(&value)?, expiry)
            .await
    }

    async fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(SetMode::Replace, items, expiry).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.client
            .delete(self.map.key(key)?)
            .await
            .map_err(|e| self.map.name_key(key, e))
    }

    async fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let deleted = self.client.delete_multi(&self.map.keys(keys)?).await;
        self.map.multi_outcome(keys.iter().copied(), deleted)
    }

    async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.client
            .incr(self.map.key(key)?, delta)
            .await
            .map_err(|e| self.map.name_key(key, e))
    }

    async fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.client
            .decr(self.map.key(key)?, delta)
            .await
            .map_err(|e| self.map.name_key(key, e))
    }

    async fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.client
            .touch(self.map.key(key)?, expiry)
            .await
            .map_err(|e| self.map.name_key(key, e))
    }

    /// `flush_all` on every server: clears the whole servers, not only this cache's keys.
    async fn clear(&self) -> Result<()> {
        self.client.flush_all().await
    }
}
