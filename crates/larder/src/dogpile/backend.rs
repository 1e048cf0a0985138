//! What a region stores into: the backend kinds ([`RegionBackend`] says which and why),
//! the adapters that turn each into the region's store of entries, and the byte form of an
//! entry in a cache of bytes.

use std::collections::HashMap;
use std::sync::Arc;

#[cfg(feature = "json")]
use serde::{de::DeserializeOwned, Serialize};

use crate::dogpile::core::{CachedValue, Core, Verdict};
use crate::memory::{MemoryCache, MemoryCacheBuilder};
use crate::{Cache, Codec, Expiry, Result};

/// The kind of a backend that stores [`CachedValue`]s as they are (e.g. a memory cache).
#[derive(Debug)]
pub enum Entries {}

/// The kind of a backend that stores bytes; the region encodes its entries (feature `json`,
/// the default codec of entries).
#[derive(Debug)]
pub enum Bytes {}

/// The kind of a memory cache the region builds from a
/// [`MemoryCacheBuilder`](crate::memory::MemoryCacheBuilder) and so owns alone.
#[derive(Debug)]
pub enum OwnedMemory {}

pub(crate) type SharedCodec<V> = Arc<dyn Codec<CachedValue<V>>>;

/// Encodes an entry for a byte cache: flags, then the codec's bytes.
#[cfg(feature = "json")]
fn encode<V>(codec: &dyn Codec<CachedValue<V>>, entry: &CachedValue<V>) -> Result<Vec<u8>> {
    let encoded = codec.encode(entry)?;
    let mut out = Vec::with_capacity(4 + encoded.data.len());
    out.extend_from_slice(&encoded.flags.to_be_bytes());
    out.extend_from_slice(&encoded.data);
    Ok(out)
}

/// Decodes an entry read from a byte cache; `None` (logged) when it does not decode.
#[cfg(feature = "json")]
fn decode<V>(codec: &dyn Codec<CachedValue<V>>, key: &str, bytes: &[u8]) -> Option<CachedValue<V>> {
    let decoded = match bytes.split_first_chunk::<4>() {
        Some((flags, data)) => codec.decode(data, u32::from_be_bytes(*flags)),
        None => Err(crate::Error::Codec(format!(
            "{} bytes, shorter than the 4-byte flags header",
            bytes.len()
        ))),
    };
    match decoded {
        Ok(entry) => Some(entry),
        Err(err) => {
            log::warn!("region entry {key:?} does not decode, regenerating it: {err}");
            None
        }
    }
}

/// A region's blocking backend, whatever its kind.
pub(crate) trait EntryStore<V>: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<CachedValue<V>>>;
    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, CachedValue<V>>>;
    fn set(&self, key: &str, entry: CachedValue<V>, expiry: Expiry) -> Result<()>;
    fn delete(&self, key: &str) -> Result<bool>;
}

/// A cache of entries, used as it is.
struct Direct<C>(C);

/// A cache of bytes and the codec of the entries in it.
#[cfg(feature = "json")]
struct Encoded<C, V> {
    cache: C,
    codec: SharedCodec<V>,
}

impl<V, C: Cache<CachedValue<V>>> EntryStore<V> for Direct<C> {
    fn get(&self, key: &str) -> Result<Option<CachedValue<V>>> {
        self.0.get(key)
    }
    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, CachedValue<V>>> {
        self.0.get_multi(keys)
    }
    fn set(&self, key: &str, entry: CachedValue<V>, expiry: Expiry) -> Result<()> {
        self.0.set(key, entry, expiry)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        self.0.delete(key)
    }
}

#[cfg(feature = "json")]
impl<V, C: Cache<Vec<u8>>> EntryStore<V> for Encoded<C, V> {
    fn get(&self, key: &str) -> Result<Option<CachedValue<V>>> {
        Ok(self
            .cache
            .get(key)?
            .and_then(|bytes| decode(&*self.codec, key, &bytes)))
    }
    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, CachedValue<V>>> {
        let hits = self.cache.get_multi(keys)?;
        Ok(hits
            .into_iter()
            .filter_map(|(k, bytes)| decode(&*self.codec, &k, &bytes).map(|e| (k, e)))
            .collect())
    }
    fn set(&self, key: &str, entry: CachedValue<V>, expiry: Expiry) -> Result<()> {
        self.cache.set(key, encode(&*self.codec, &entry)?, expiry)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        self.cache.delete(key)
    }
}

/// The blocking face's backend: a memory cache the region owns (called directly, as the
/// fresh-hit path is short enough for an indirect call to show), or any other.
pub(crate) enum Store<V> {
    Owned(MemoryCache<CachedValue<V>>),
    Any(Box<dyn EntryStore<V>>),
}

impl<V: Clone + Send + Sync + 'static> Store<V> {
    /// The verdict on the entry under backend key `key`. An owned memory cache's entry is
    /// judged in place, so a fresh hit clones the value and nothing else. `key` passed the
    /// portable rule on the way (the fast paths check it, the key encoder checks what it
    /// makes), so the owned cache need not check it again.
    #[inline]
    pub(crate) fn judge(
        &self,
        core: &Core<V>,
        key: &str,
        expiration_ms: Option<u64>,
    ) -> Result<Verdict<V>> {
        match self {
            Store::Owned(cache) => Ok(cache
                .read_prechecked(key, |entry| core.judge_in_place(entry, expiration_ms))
                .unwrap_or(Verdict::Missing)),
            Store::Any(store) => Ok(core.judge(store.get(key)?, expiration_ms)),
        }
    }

    /// The fresh value under backend key `key`, if any (see [`judge`](Self::judge)).
    pub(crate) fn peek(&self, core: &Core<V>, key: &str) -> Result<Option<V>> {
        match self {
            Store::Owned(cache) => Ok(cache
                .read_prechecked(key, |entry| core.peek_in_place(entry))
                .flatten()),
            Store::Any(store) => Ok(core.peek(store.get(key)?)),
        }
    }
    pub(crate) fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, CachedValue<V>>> {
        match self {
            Store::Owned(cache) => cache.get_multi(keys),
            Store::Any(store) => store.get_multi(keys),
        }
    }
    pub(crate) fn set(&self, key: &str, entry: CachedValue<V>, expiry: Expiry) -> Result<()> {
        match self {
            Store::Owned(cache) => cache.set(key, entry, expiry),
            Store::Any(store) => store.set(key, entry, expiry),
        }
    }
    pub(crate) fn delete(&self, key: &str) -> Result<bool> {
        match self {
            Store::Owned(cache) => cache.delete(key),
            Store::Any(store) => store.delete(key),
        }
    }
}

/// A backend waiting for the builder's codec (bytes) or needing none (entries).
enum Pending<T, V> {
    Ready(T),
    /// Makes the store with the builder's codec, or the default one. Only a cache of bytes
    /// needs one, and that takes feature `json`.
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    NeedsCodec(Box<dyn FnOnce(Option<SharedCodec<V>>) -> T + Send>),
}

impl<T, V> Pending<T, V> {
    fn finish(self, codec: Option<SharedCodec<V>>) -> T {
        match self {
            Pending::Ready(store) => store,
            Pending::NeedsCodec(make) => make(codec),
        }
    }
}

/// The backend inside a [`RegionBuilder`](super::RegionBuilder) of the blocking face, its
/// kind erased.
pub struct BlockingStore<V>(Pending<Store<V>, V>);

impl<V> BlockingStore<V> {
    /// True when no one but the region can reach the backend.
    pub(crate) fn owned(&self) -> bool {
        matches!(self.0, Pending::Ready(Store::Owned(_)))
    }

    pub(crate) fn finish(self, codec: Option<SharedCodec<V>>) -> Store<V> {
        self.0.finish(codec)
    }
}

/// The default codec of entries in a byte cache.
#[cfg(feature = "json")]
fn json<V: Serialize + DeserializeOwned + 'static>() -> SharedCodec<V> {
    Arc::new(crate::codec::JsonCodec::<CachedValue<V>>::new())
}

/// What a blocking [`Region`](super::Region) can store into; `K`, the kind, is inferred
/// from the backend's type:
///
/// - [`OwnedMemory`]: a [`MemoryCacheBuilder<CachedValue<V>>`](MemoryCacheBuilder). The
///   region builds the cache and is its only user, so keys are stored as given (no
///   `"<name>:"` to build on every call) and hits involve no encoding.
/// - [`Entries`]: any `Cache<CachedValue<V>>` (e.g. a memory cache shared with other
///   regions, or a remote cache with its own codec of `CachedValue<V>`), used as it is.
/// - [`Bytes`] (feature `json`): any `Cache<Vec<u8>>` — `MemcachedCache` or `RedisCache` with
///   `BytesCodec`, a `Tiered` or `MemoryCache` of bytes, boxed or behind an `Arc`. The
///   region encodes its own entries with a codec of `CachedValue<V>` (JSON unless
///   [`RegionBuilder::codec`](super::RegionBuilder::codec) picks another), so `V` needs
///   serde and nothing about the envelope shows in the user's types.
///
/// Without feature `json` a cache of bytes is not a backend (a default codec that changed
/// with the features would change what is stored whenever another crate in the build
/// turned a codec on): the call does not compile, and the error says so. A cache of
/// entries with its own codec (`MemcachedCache<CachedValue<V>, _>` over `PostcardCodec`, say)
/// needs no feature.
///
/// Why kinds: the envelope (creation time, creation duration, version) must travel with
/// the value, and a cache's value type is fixed by whoever made it. A cache of bytes can
/// carry any envelope, so the region takes it as it is; a cache of entries lets the
/// in-process case skip encoding. One `builder(name, backend)` takes every kind because the
/// kind is a type parameter the compiler infers (a `MemoryCache::new(..)` whose value type
/// is not yet known matches two kinds: name the type, or pass the builder).
///
/// In a cache of bytes an entry is the codec's flags word (4 bytes, big-endian) followed by
/// the codec's bytes, so a reader with another codec gets no wrong value. An entry that does
/// not decode (another codec, or a `V` whose shape changed) is treated like one of another
/// [version](super::CACHED_VALUE_VERSION): missing, so it is regenerated and overwritten;
/// each such read is logged.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a backend of a `Region<{V}>`",
    note = "a region stores into a `MemoryCacheBuilder<CachedValue<{V}>>`, a \
            `Cache<CachedValue<{V}>>`, or (feature `json`) a `Cache<Vec<u8>>`"
)]
pub trait RegionBackend<V, K> {
    /// Erases the backend's type.
    #[doc(hidden)]
    fn into_store(self) -> BlockingStore<V>;
}

impl<V: 'static, C: Cache<CachedValue<V>> + 'static> RegionBackend<V, Entries> for C {
    fn into_store(self) -> BlockingStore<V> {
        BlockingStore(Pending::Ready(Store::Any(Box::new(Direct(self)))))
    }
}

#[cfg(feature = "json")]
impl<V, C> RegionBackend<V, Bytes> for C
where
    V: Serialize + DeserializeOwned + 'static,
    C: Cache<Vec<u8>> + 'static,
{
    fn into_store(self) -> BlockingStore<V> {
        BlockingStore(Pending::NeedsCodec(Box::new(move |codec| {
            let codec = codec.unwrap_or_else(json::<V>);
            Store::Any(Box::new(Encoded { cache: self, codec }))
        })))
    }
}

impl<V> RegionBackend<V, OwnedMemory> for MemoryCacheBuilder<CachedValue<V>>
where
    V: Clone + Send + Sync + 'static,
{
    fn into_store(self) -> BlockingStore<V> {
        BlockingStore(Pending::Ready(Store::Owned(self.build())))
    }
}

#[cfg(feature = "tokio")]
pub(crate) use self::asynchronous::AsyncEntryStore;
#[cfg(feature = "tokio")]
pub use self::asynchronous::{AsyncRegionBackend, AsyncStore};

#[cfg(feature = "tokio")]
mod asynchronous {
    use super::*;
    use crate::AsyncCache;

    /// A region's async backend, whatever its kind.
    #[async_trait::async_trait]
    pub(crate) trait AsyncEntryStore<V: Send + 'static>: Send + Sync {
        async fn get(&self, key: &str) -> Result<Option<CachedValue<V>>>;
        async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, CachedValue<V>>>;
        async fn set(&self, key: &str, entry: CachedValue<V>, expiry: Expiry) -> Result<()>;
        async fn delete(&self, key: &str) -> Result<bool>;
    }

    #[async_trait::async_trait]
    impl<V, C> AsyncEntryStore<V> for Direct<C>
    where
        V: Send + 'static,
        C: AsyncCache<CachedValue<V>>,
    {
        async fn get(&self, key: &str) -> Result<Option<CachedValue<V>>> {
            self.0.get(key).await
        }
        async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, CachedValue<V>>> {
            self.0.get_multi(keys).await
        }
        async fn set(&self, key: &str, entry: CachedValue<V>, expiry: Expiry) -> Result<()> {
            self.0.set(key, entry, expiry).await
        }
        async fn delete(&self, key: &str) -> Result<bool> {
            self.0.delete(key).await
        }
    }

    #[cfg(feature = "json")]
    #[async_trait::async_trait]
    impl<V, C> AsyncEntryStore<V> for Encoded<C, V>
    where
        V: Send + 'static,
        C: AsyncCache<Vec<u8>>,
    {
        async fn get(&self, key: &str) -> Result<Option<CachedValue<V>>> {
            Ok(self
                .cache
                .get(key)
                .await?
                .and_then(|bytes| decode(&*self.codec, key, &bytes)))
        }
        async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, CachedValue<V>>> {
            let hits = self.cache.get_multi(keys).await?;
            Ok(hits
                .into_iter()
                .filter_map(|(k, bytes)| decode(&*self.codec, &k, &bytes).map(|e| (k, e)))
                .collect())
        }
        async fn set(&self, key: &str, entry: CachedValue<V>, expiry: Expiry) -> Result<()> {
            let bytes = encode(&*self.codec, &entry)?;
            self.cache.set(key, bytes, expiry).await
        }
        async fn delete(&self, key: &str) -> Result<bool> {
            self.cache.delete(key).await
        }
    }

    /// The backend inside an [`AsyncRegionBuilder`](crate::dogpile::AsyncRegionBuilder),
    /// its kind erased.
    pub struct AsyncStore<V: Send + 'static> {
        pending: Pending<Box<dyn AsyncEntryStore<V>>, V>,
        owned: bool,
    }

    impl<V: Send + 'static> AsyncStore<V> {
        /// True when no one but the region can reach the backend.
        pub(crate) fn owned(&self) -> bool {
            self.owned
        }

        pub(crate) fn finish(self, codec: Option<SharedCodec<V>>) -> Box<dyn AsyncEntryStore<V>> {
            self.pending.finish(codec)
        }
    }

    /// What an [`AsyncRegion`](crate::dogpile::AsyncRegion) can store into: the kinds of
    /// [`RegionBackend`], over [`AsyncCache`] (`AsyncCache<CachedValue<V>>` for
    /// [`Entries`], `AsyncCache<Vec<u8>>` for [`Bytes`], with feature `json`).
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a backend of an `AsyncRegion<{V}>`",
        note = "an async region stores into a `MemoryCacheBuilder<CachedValue<{V}>>`, an \
                `AsyncCache<CachedValue<{V}>>`, or (feature `json`) an `AsyncCache<Vec<u8>>`"
    )]
    pub trait AsyncRegionBackend<V: Send + 'static, K> {
        /// Erases the backend's type.
        #[doc(hidden)]
        fn into_async_store(self) -> AsyncStore<V>;
    }

    impl<V, C> AsyncRegionBackend<V, Entries> for C
    where
        V: Send + 'static,
        C: AsyncCache<CachedValue<V>> + 'static,
    {
        fn into_async_store(self) -> AsyncStore<V> {
            AsyncStore {
                pending: Pending::Ready(Box::new(Direct(self))),
                owned: false,
            }
        }
    }

    #[cfg(feature = "json")]
    impl<V, C> AsyncRegionBackend<V, Bytes> for C
    where
        V: Serialize + DeserializeOwned + Send + 'static,
        C: AsyncCache<Vec<u8>> + 'static,
    {
        fn into_async_store(self) -> AsyncStore<V> {
            AsyncStore {
                pending: Pending::NeedsCodec(Box::new(move |codec| {
                    let codec = codec.unwrap_or_else(json::<V>);
                    Box::new(Encoded { cache: self, codec }) as Box<dyn AsyncEntryStore<V>>
                })),
                owned: false,
            }
        }
    }

    impl<V> AsyncRegionBackend<V, OwnedMemory> for MemoryCacheBuilder<CachedValue<V>>
    where
        V: Clone + Send + Sync + 'static,
    {
        fn into_async_store(self) -> AsyncStore<V> {
            AsyncStore {
                pending: Pending::Ready(Box::new(Direct(self.build()))),
                owned: true,
            }
        }
    }
}

#[cfg(all(test, feature = "json", feature = "postcard"))]
mod tests {
    use super::*;
    use crate::codec::{PostcardCodec, FLAG_JSON};

    fn entry() -> CachedValue<String> {
        CachedValue {
            value: "v".into(),
            created_at_ms: 5,
            creation_ms: 1,
            version: 1,
        }
    }

    #[test]
    fn byte_entries_carry_the_codec_flags_and_other_codecs_read_them_as_missing() {
        let json = json::<String>();
        let bytes = encode(&*json, &entry()).unwrap();
        assert_eq!(bytes[..4], FLAG_JSON.to_be_bytes());
        assert_eq!(decode(&*json, "k", &bytes), Some(entry()));
        let postcard: SharedCodec<String> = Arc::new(PostcardCodec::new());
        assert_eq!(decode(&*postcard, "k", &bytes), None);
        assert_eq!(decode(&*json, "k", &bytes[..3]), None);
        assert_eq!(decode(&*json, "k", &bytes[..bytes.len() - 1]), None);
    }
}
