//! [`MemcachedCache`]: the [`Cache`] contract over a memcached [`Client`] and a [`Codec`], and
//! the mapping of keys, values and errors that its async face (`async_cache`) shares.
//!
//! Values are encoded with the codec (its flags word travels as memcached's client flags).
//! Keys follow the contract's rule ([`KeyPolicy::Portable`]: checked before anything is
//! sent, the prefix taking its share of the 250 bytes) unless [`KeyPolicy::Native`] is
//! chosen, with which keys that are not valid memcached keys travel base64 (meta `b` flag).
//! `clear` is `flush_all` on every server: it empties the whole servers, including
//! entries other applications or prefixes stored there.
//!
//! Over several servers: `get_multi` fans out to them in parallel and returns the hits of
//! those that answered (a failed server's keys read as misses; an error only when every
//! server involved failed). The `*_multi` writes are batched per server and run in parallel;
//! a failed server makes the call an error (the other servers' writes were still applied).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

use super::{Client, MetaGetOptions, MetaGetResult};
use crate::keys::MAX_KEY_LEN;
use crate::{Cache, Codec, Encoded, Error, Expiry, KeyPolicy, MultiWrite, Result};

/// The hits of a cache-level `get_multi`, decoded straight from the client's read buffer
/// and keyed by the caller's keys (each hit names the position of the key it answers).
pub(super) struct Found<'k, V> {
    keys: &'k [&'k str],
    out: HashMap<String, V>,
    first_err: Option<Error>,
}

impl<'k, V> Found<'k, V> {
    pub(super) fn new(keys: &'k [&'k str]) -> Self {
        Self {
            keys,
            out: HashMap::with_capacity(keys.len()),
            first_err: None,
        }
    }

    /// Decodes `hit`, the answer to the key at position `at`.
    pub(super) fn visit<C: Codec<V>>(&mut self, codec: &C, at: usize, hit: super::HitRef<'_>) {
        let Some(key) = self.keys.get(at) else {
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
    pub(super) fn finish(self) -> Result<HashMap<String, V>> {
        match self.first_err {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

/// What both faces share: the codec and the key prefix, and the rules that map the caller's
/// keys and values to what travels and the client's errors back to the caller's keys.
pub(super) struct Mapping<C> {
    codec: C,
    prefix: String,
    key_policy: KeyPolicy,
}

impl<C> Mapping<C> {
    pub(super) fn new(codec: C) -> Self {
        Self {
            codec,
            prefix: String::new(),
            key_policy: KeyPolicy::default(),
        }
    }

    pub(super) fn key_policy(&self) -> KeyPolicy {
        self.key_policy
    }

    pub(super) fn set_key_policy(&mut self, policy: KeyPolicy) {
        self.key_policy = policy;
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn set_prefix(&mut self, prefix: String) {
        self.prefix = prefix;
    }

    /// The stored key of the caller's `key`, once the key policy accepts it.
    pub(super) fn key(&self, key: &str) -> Result<Vec<u8>> {
        self.key_policy
            .check_within(key, MAX_KEY_LEN.saturating_sub(self.prefix.len()))?;
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        Ok(k)
    }

    /// The stored keys of a batch; one refused key refuses the batch before anything is sent.
    pub(super) fn keys(&self, keys: &[&str]) -> Result<Vec<Vec<u8>>> {
        keys.iter().map(|k| self.key(k)).collect()
    }

    /// Puts the caller's key (not the prefixed one) into errors that name a key.
    pub(super) fn name_key(&self, key: &str, err: Error) -> Error {
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

    /// The per-key outcome of a multi-write of `keys`; a single-key batch's error names its
    /// key.
    pub(super) fn multi_outcome<'k>(
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

    pub(super) fn codec(&self) -> &C {
        &self.codec
    }
}

impl<C> Mapping<C> {
    pub(super) fn encode<V>(&self, value: &V) -> Result<Encoded>
    where
        C: Codec<V>,
    {
        self.codec.encode(value)
    }

    pub(super) fn decode<V>(&self, hit: Option<(Vec<u8>, u32)>) -> Result<Option<V>>
    where
        C: Codec<V>,
    {
        hit.map(|(data, flags)| self.codec.decode(&data, flags))
            .transpose()
    }

    /// Each item's stored key and encoded value.
    pub(super) fn encode_items<V>(&self, items: &[(&str, V)]) -> Result<Vec<(Vec<u8>, Encoded)>>
    where
        C: Codec<V>,
    {
        items
            .iter()
            .map(|(key, value)| Ok((self.key(key)?, self.codec.encode(value)?)))
            .collect()
    }

    /// The value and remaining life of a meta get (`mg … t`).
    ///
    /// memcached counts whole seconds on a clock that ticks once a second, so an item it
    /// reports with `t` seconds left expires between `t - 1` and `t` seconds from now; the
    /// life reported here is `t - 1`, so that a copy kept for it never outlives the item.
    pub(super) fn with_life<V>(&self, got: MetaGetResult) -> Result<Option<(V, Expiry)>>
    where
        C: Codec<V>,
    {
        let Some(data) = got.value else {
            return Ok(None);
        };
        let left = got.ttl_remaining.map_or(Expiry::Never, |secs| {
            Expiry::After(Duration::from_secs(secs.saturating_sub(1)))
        });
        Ok(Some((self.codec.decode(&data, got.flags)?, left)))
    }
}

/// A [`Cache`] stored in memcached, over the blocking [`Client`]. Its async face is
/// [`AsyncMemcachedCache`](super::AsyncMemcachedCache) (feature `tokio`; see
/// [`to_async`](MemcachedCache::to_async)): one type per face, so importing both cache
/// traits never makes a call ambiguous.
pub struct MemcachedCache<V, C> {
    client: Client,
    map: Mapping<C>,
    _value: PhantomData<fn(V) -> V>,
}

impl<V, C> std::fmt::Debug for MemcachedCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedCache")
            .field("client", &self.client)
            .field("prefix", &self.map.prefix())
            .field("key_policy", &self.map.key_policy())
            .finish()
    }
}

impl<V, C: Codec<V>> MemcachedCache<V, C> {
    /// A cache over `client` encoding values with `codec`.
    pub fn new(client: Client, codec: C) -> Self {
        Self {
            client,
            map: Mapping::new(codec),
            _value: PhantomData,
        }
    }

    /// Prepends `prefix` to every key (it does not scope `clear`, which flushes the servers).
    /// The prefix is part of the stored key: under the default key policy it leaves
    /// `250 - prefix.len()` bytes for the caller's keys.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.map.set_prefix(prefix.into());
        self
    }

    /// Sets which keys the cache accepts (default [`KeyPolicy::Portable`], the contract's
    /// rule); [`KeyPolicy::Native`] also takes keys with spaces or control bytes, sent base64.
    pub fn with_key_policy(mut self, policy: KeyPolicy) -> Self {
        self.map.set_key_policy(policy);
        self
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The async face of this cache: the same servers, codec and prefix, over an
    /// [`AsyncClient`](super::AsyncClient) that shares this client's server health (and has
    /// its own connection pools).
    #[cfg(feature = "tokio")]
    pub fn to_async(&self) -> super::AsyncMemcachedCache<V, C>
    where
        C: Clone,
    {
        super::AsyncMemcachedCache::new(self.client.async_twin(), self.map.codec().clone())
            .with_prefix(self.map.prefix())
            .with_key_policy(self.map.key_policy())
    }

    fn write(&self, mode: super::SetMode, key: &str, value: &V, expiry: Expiry) -> Result<bool> {
        let enc = self.map.encode(value)?;
        let k = self.map.key(key)?;
        let res = match mode {
            super::SetMode::Add => self.client.add(&k, &enc.data, enc.flags, expiry),
            super::SetMode::Replace => self.client.replace(&k, &enc.data, enc.flags, expiry),
            _ => self
                .client
                .set(&k, &enc.data, enc.flags, expiry)
                .map(|()| true),
        };
        res.map_err(|e| self.map.name_key(key, e))
    }

    fn write_multi(
        &self,
        mode: super::SetMode,
        items: Vec<(&str, V)>,
        expiry: Expiry,
    ) -> Result<MultiWrite> {
        let encoded = self.map.encode_items(&items)?;
        let wire = wire_items(&encoded);
        let applied = self.client.store_multi(mode, &wire, expiry);
        self.map
            .multi_outcome(items.iter().map(|(key, _)| *key), applied)
    }
}

impl<V, C: Codec<V>> Cache<V> for MemcachedCache<V, C> {
    fn get(&self, key: &str) -> Result<Option<V>> {
        let hit = self
            .client
            .get(self.map.key(key)?)
            .map_err(|e| self.map.name_key(key, e))?;
        self.map.decode(hit)
    }

    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let wire = self.map.keys(keys)?;
        let mut found = Found::new(keys);
        self.client
            .get_multi_indexed(&wire, |at, hit| found.visit(self.map.codec(), at, hit))?;
        found.finish()
    }

    // A meta get with the `t` flag; `Mapping::with_life` says why it rounds a second off.
    fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        let got = self
            .client
            .meta_get(self.map.key(key)?, MetaGetOptions::default())
            .map_err(|e| self.map.name_key(key, e))?;
        self.map.with_life(got)
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
            .delete(self.map.key(key)?)
            .map_err(|e| self.map.name_key(key, e))
    }

    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let deleted = self.client.delete_multi(&self.map.keys(keys)?);
        self.map.multi_outcome(keys.iter().copied(), deleted)
    }

    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.client
            .incr(self.map.key(key)?, delta)
            .map_err(|e| self.map.name_key(key, e))
    }

    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        self.client
            .decr(self.map.key(key)?, delta)
            .map_err(|e| self.map.name_key(key, e))
    }

    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        self.client
            .touch(self.map.key(key)?, expiry)
            .map_err(|e| self.map.name_key(key, e))
    }

    /// `flush_all` on every server: clears the whole servers, not only this cache's keys.
    fn clear(&self) -> Result<()> {
        self.client.flush_all()
    }
}

/// `(key, data, flags)` views of encoded items, as the clients' `store_multi` takes them.
pub(super) fn wire_items(encoded: &[(Vec<u8>, Encoded)]) -> Vec<(&[u8], &[u8], u32)> {
    encoded
        .iter()
        .map(|(k, enc)| (k.as_slice(), enc.data.as_slice(), enc.flags))
        .collect()
}
