//! [`MemcachedCache`]: the [`Cache`] contract over a memcached [`Client`] and a [`Codec`].
//!
//! Values are encoded with the codec (its flags word travels as memcached's client flags).
//! Keys get an optional prefix; keys that are not valid memcached keys travel base64 (meta
//! `b` flag). `clear` is `flush_all` on every server: it empties the whole servers, including
//! entries other applications or prefixes stored there.
//!
//! Over several servers: `get_multi` fans out to them in parallel and returns the hits of
//! those that answered (a failed server's keys read as misses; an error only when every
//! server involved failed). The `*_multi` writes are batched per server and run in parallel;
//! a failed server makes the call an error (the other servers' writes were still applied).

use std::collections::HashMap;
use std::marker::PhantomData;

use super::Client;
use crate::{Cache, Codec, Encoded, Error, Expiry, MultiWrite, Result};

/// The hits of a cache-level `get_multi`, decoded straight from the client's read buffer
/// and keyed by the caller's keys (each wire key maps back to the key it came from).
struct Found<'k, V> {
    by_wire: HashMap<&'k [u8], &'k str, foldhash::fast::RandomState>,
    out: HashMap<String, V>,
    first_err: Option<Error>,
}

impl<'k, V> Found<'k, V> {
    fn new(keys: &[&'k str], wire: &'k [Vec<u8>]) -> Self {
        let mut by_wire = HashMap::with_capacity_and_hasher(keys.len(), Default::default());
        by_wire.extend(wire.iter().map(Vec::as_slice).zip(keys.iter().copied()));
        Self {
            by_wire,
            out: HashMap::with_capacity(keys.len()),
            first_err: None,
        }
    }

    fn visit<C: Codec<V>>(&mut self, codec: &C, hit: super::HitRef<'_>) {
        let Some(key) = self.by_wire.get(hit.key) else {
            return;
        };
        match codec.decode(hit.value, hit.flags) {
            Ok(v) => {
                self.out.insert((*key).to_owned(), v);
            }
            Err(e) => {
                self.first_err.get_or_insert(e);
            }
        }
    }

    /// The decoded hits, or the first value that failed to decode.
    fn finish(self) -> Result<HashMap<String, V>> {
        match self.first_err {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

/// A [`Cache`] stored in memcached.
pub struct MemcachedCache<V, C> {
    client: Client,
    #[cfg(feature = "tokio")]
    async_client: super::AsyncClient,
    codec: C,
    prefix: String,
    _value: PhantomData<fn(V) -> V>,
}

impl<V, C> std::fmt::Debug for MemcachedCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedCache")
            .field("client", &self.client)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl<V, C: Codec<V>> MemcachedCache<V, C> {
    /// A cache over `client` encoding values with `codec`.
    ///
    /// With feature `tokio` the cache also implements [`AsyncCache`](crate::AsyncCache), over
    /// an [`AsyncClient`](super::AsyncClient) built from the same configuration and sharing
    /// the client's server health.
    pub fn new(client: Client, codec: C) -> Self {
        Self {
            #[cfg(feature = "tokio")]
            async_client: client.async_twin(),
            client,
            codec,
            prefix: String::new(),
            _value: PhantomData,
        }
    }

    /// Prepends `prefix` to every key (it does not scope `clear`, which flushes the servers).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// Puts the caller's key (not the prefixed one) into errors that name a key.
    fn name_key(&self, key: &str, err: Error) -> Error {
        match err {
            Error::NotANumber { .. } => Error::NotANumber {
                key: key.to_owned(),
            },
            Error::KeyInvalid { rule, .. } => Error::KeyInvalid {
                key: key.to_owned(),
                rule,
            },
            other => other,
        }
    }

    fn write(&self, mode: super::SetMode, key: &str, value: &V, expiry: Expiry) -> Result<bool> {
        let enc = self.codec.encode(value)?;
        let k = self.key(key);
        let res = match mode {
            super::SetMode::Add => self.client.add(&k, &enc.data, enc.flags, expiry),
            super::SetMode::Replace => self.client.replace(&k, &enc.data, enc.flags, expiry),
            _ => self
                .client
                .set(&k, &enc.data, enc.flags, expiry)
                .map(|()| true),
        };
        res.map_err(|e| self.name_key(key, e))
    }

    /// Each item's stored key and encoded value.
    fn encode_items(&self, items: &[(&str, V)]) -> Result<Vec<(Vec<u8>, Encoded)>> {
        items
            .iter()
            .map(|(key, value)| Ok((self.key(key), self.codec.encode(value)?)))
            .collect()
    }

    /// The per-key outcome of a multi-write of `keys`; a single-key batch's error names its
    /// key.
    fn multi_outcome<'k>(
        &self,
        mut keys: impl ExactSizeIterator<Item = &'k str>,
        applied: Result<Vec<bool>>,
    ) -> Result<MultiWrite> {
        let applied = match (applied, keys.len()) {
            (Ok(applied), _) => applied,
            (Err(e), 1) => {
                return Err(match keys.next() {
                    Some(key) => self.name_key(key, e),
                    None => e,
                })
            }
            (Err(e), _) => return Err(e),
        };
        let mut out = MultiWrite::default();
        for (key, applied) in keys.zip(applied) {
            out.record(key, applied);
        }
        Ok(out)
    }

    fn write_multi(
        &self,
        mode: super::SetMode,
        items: Vec<(&str, V)>,
        expiry: Expiry,
    ) -> Result<MultiWrite> {
        let encoded = self.encode_items(&items)?;
        let wire = wire_items(&encoded);
        let applied = self.client.store_multi(mode, &wire, expiry);
        self.multi_outcome(items.iter().map(|(key, _)| *key), applied)
    }
}

impl<V, C: Codec<V>> Cache<V> for MemcachedCache<V, C> {
    fn get(&self, key: &str) -> Result<Option<V>> {
        match self
            .client
            .get(self.key(key))
            .map_err(|e| self.name_key(key, e))?
        {
            Some((data, flags)) => Ok(Some(self.codec.decode(&data, flags)?)),
            None => Ok(None),
        }
    }

    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let wire: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        let mut found = Found::new(keys, &wire);
        self.client
            .get_multi_with(&wire, |hit| found.visit(&self.codec, hit))?;
        found.finish()
    }

    fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        self.write(super::SetMode::Set, key, &value, expiry)
            .map(|_| ())
    }

    fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(super::SetMode::Set, items, expiry)
    }

    fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.write(super::SetMode::Add, key, &value, expiry)
    }

    fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(super::SetMode::Add, items, expiry)
    }

    fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.write(super::SetMode::Replace, key, &value, expiry)
    }

    fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(super::SetMode::Replace, items, expiry)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        self.client
            .delete(self.key(key))
            .map_err(|e| self.name_key(key, e))
    }

    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let wire: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        let deleted = self.client.delete_multi(&wire);
        self.multi_outcome(keys.iter().copied(), deleted)
    }

    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.client
            .incr(self.key(key), delta)
            .map_err(|e| self.name_key(key, e))
    }

    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.client
            .decr(self.key(key), delta)
            .map_err(|e| self.name_key(key, e))
    }

    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.client
            .touch(self.key(key), expiry)
            .map_err(|e| self.name_key(key, e))
    }

    /// `flush_all` on every server: clears the whole servers, not only this cache's keys.
    fn clear(&self) -> Result<()> {
        self.client.flush_all()
    }
}

#[cfg(feature = "tokio")]
impl<V, C> MemcachedCache<V, C> {
    /// The async client used by the [`AsyncCache`](crate::AsyncCache) implementation.
    pub fn async_client(&self) -> &super::AsyncClient {
        &self.async_client
    }
}

#[cfg(feature = "tokio")]
#[async_trait::async_trait]
impl<V: Send + 'static, C: Codec<V>> crate::AsyncCache<V> for MemcachedCache<V, C> {
    async fn get(&self, key: &str) -> Result<Option<V>> {
        match self
            .async_client
            .get(self.key(key))
            .await
            .map_err(|e| self.name_key(key, e))?
        {
            Some((data, flags)) => Ok(Some(self.codec.decode(&data, flags)?)),
            None => Ok(None),
        }
    }

    async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let wire: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        let mut found = Found::new(keys, &wire);
        self.async_client
            .get_multi_with(&wire, |hit| found.visit(&self.codec, hit))
            .await?;
        found.finish()
    }

    async fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        self.async_write(super::SetMode::Set, key, self.codec.encode(&value)?, expiry)
            .await
            .map(|_| ())
    }

    async fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.async_write_multi(super::SetMode::Set, items, expiry)
            .await
    }

    async fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.async_write(super::SetMode::Add, key, self.codec.encode(&value)?, expiry)
            .await
    }

    async fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.async_write_multi(super::SetMode::Add, items, expiry)
            .await
    }

    async fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.async_write(
            super::SetMode::Replace,
            key,
            self.codec.encode(&value)?,
            expiry,
        )
        .await
    }

    async fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.async_write_multi(super::SetMode::Replace, items, expiry)
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.async_client
            .delete(self.key(key))
            .await
            .map_err(|e| self.name_key(key, e))
    }

    async fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let wire: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        let deleted = self.async_client.delete_multi(&wire).await;
        self.multi_outcome(keys.iter().copied(), deleted)
    }

    async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.async_client
            .incr(self.key(key), delta)
            .await
            .map_err(|e| self.name_key(key, e))
    }

    async fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.async_client
            .decr(self.key(key), delta)
            .await
            .map_err(|e| self.name_key(key, e))
    }

    async fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.async_client
            .touch(self.key(key), expiry)
            .await
            .map_err(|e| self.name_key(key, e))
    }

    /// `flush_all` on every server: clears the whole servers, not only this cache's keys.
    async fn clear(&self) -> Result<()> {
        self.async_client.flush_all().await
    }
}

#[cfg(feature = "tokio")]
impl<V: Send + 'static, C: Codec<V>> MemcachedCache<V, C> {
    async fn async_write(
        &self,
        mode: super::SetMode,
        key: &str,
        enc: crate::Encoded,
        expiry: Expiry,
    ) -> Result<bool> {
        let k = self.key(key);
        let c = &self.async_client;
        let res = match mode {
            super::SetMode::Add => c.add(&k, &enc.data, enc.flags, expiry).await,
            super::SetMode::Replace => c.replace(&k, &enc.data, enc.flags, expiry).await,
            _ => c.set(&k, &enc.data, enc.flags, expiry).await.map(|()| true),
        };
        res.map_err(|e| self.name_key(key, e))
    }

    async fn async_write_multi(
        &self,
        mode: super::SetMode,
        items: Vec<(&str, V)>,
        expiry: Expiry,
    ) -> Result<MultiWrite> {
        let encoded = self.encode_items(&items)?;
        let wire = wire_items(&encoded);
        let applied = self.async_client.store_multi(mode, &wire, expiry).await;
        self.multi_outcome(items.iter().map(|(key, _)| *key), applied)
    }
}

/// `(key, data, flags)` views of encoded items, as the clients' `store_multi` takes them.
fn wire_items(encoded: &[(Vec<u8>, Encoded)]) -> Vec<(&[u8], &[u8], u32)> {
    encoded
        .iter()
        .map(|(k, enc)| (k.as_slice(), enc.data.as_slice(), enc.flags))
        .collect()
}
