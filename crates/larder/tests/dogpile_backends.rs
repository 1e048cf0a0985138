//! Regions over the backends a user already has: memory caches of entries or of bytes,
//! boxed, shared and tiered caches, memcached and Redis (real servers on free loopback
//! ports), on both faces. A byte backend holds the codec's flags and bytes; a region with
//! another codec reads such an entry as missing and regenerates it.
#![cfg(all(feature = "json", feature = "postcard"))]

use std::sync::Arc;
use std::time::Duration;

use larder::codec::{PostcardCodec, FLAG_JSON, FLAG_POSTCARD};
use larder::dogpile::{CachedValue, Region, CACHED_VALUE_VERSION};
use larder::memory::MemoryCache;
use larder::tiered::Tiered;
use larder::{Cache, Expiry};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    title: String,
    rows: Vec<u32>,
}

fn report(title: &str) -> Report {
    Report {
        title: title.into(),
        rows: vec![1, 2, 3],
    }
}

/// The flags and codec bytes a region left in a byte cache.
fn raw(cache: &impl Cache<Vec<u8>>, key: &str) -> (u32, Vec<u8>) {
    let bytes = cache.get(key).unwrap().expect("an entry");
    let (flags, data) = bytes.split_at(4);
    (u32::from_be_bytes(flags.try_into().unwrap()), data.to_vec())
}

#[test]
fn a_region_over_a_memory_cache_of_bytes_stores_flagged_json() {
    let bytes = MemoryCache::<Vec<u8>>::new(100);
    let region: Region<Report> = Region::builder("b", bytes.clone()).build();
    assert_eq!(
        region.get_or_create("k", || Ok(report("q1"))).unwrap(),
        report("q1")
    );
    let (flags, data) = raw(&bytes, "b:k");
    assert_eq!(flags, FLAG_JSON);
    let entry: CachedValue<Report> = serde_json::from_slice(&data).unwrap();
    assert_eq!(entry.value, report("q1"));
    assert_eq!(entry.version, CACHED_VALUE_VERSION);
    assert_eq!(
        region.get_or_create("k", || panic!("fresh")).unwrap(),
        report("q1")
    );
}

#[test]
fn the_codec_is_the_builders_choice_and_a_foreign_entry_is_regenerated() {
    let bytes = MemoryCache::<Vec<u8>>::new(100);
    let postcard: Region<String> = Region::builder("c", bytes.clone())
        .codec(PostcardCodec::new())
        .build();
    postcard.set("k", "v".into()).unwrap();
    assert_eq!(raw(&bytes, "c:k").0, FLAG_POSTCARD);
    assert_eq!(postcard.get("k").unwrap().as_deref(), Some("v"));

    // A region with another codec never reads a wrong value: the entry is missing to it.
    let json: Region<String> = Region::builder("c", bytes.clone()).build();
    assert_eq!(json.get("k").unwrap(), None);
    assert_eq!(json.get_or_create("k", || Ok("w".into())).unwrap(), "w");
    assert_eq!(raw(&bytes, "c:k").0, FLAG_JSON, "overwritten");
    // Nor does one on bytes that are no entry at all.
    bytes.set("c:g", b"xy".to_vec(), Expiry::Never).unwrap();
    assert_eq!(
        json.get_or_create("g", || Ok("made".into())).unwrap(),
        "made"
    );
    // Multi-key reads skip undecodable entries the same way.
    bytes
        .set("c:m", b"\0\0\x01\0{".to_vec(), Expiry::Never)
        .unwrap();
    let got = json
        .get_or_create_multi(&["k", "m"], |keys| {
            Ok(keys.iter().map(|k| format!("{k}2")).collect())
        })
        .unwrap();
    assert_eq!(got, ["w", "m2"]);
}

#[test]
fn boxed_shared_and_tiered_backends() {
    let boxed: Box<dyn Cache<Vec<u8>>> = Box::new(MemoryCache::<Vec<u8>>::new(10));
    let region: Region<String> = Region::builder("x", boxed).build();
    assert_eq!(
        region.get_or_create("k", || Ok("boxed".into())).unwrap(),
        "boxed"
    );

    let shared: Arc<dyn Cache<CachedValue<String>>> =
        Arc::new(MemoryCache::<CachedValue<String>>::new(10));
    let region = Region::builder("y", Arc::clone(&shared)).build();
    region.set("k", "entry".into()).unwrap();
    let stored = shared.get("y:k").unwrap().expect("stored as it is");
    assert_eq!(stored.value, "entry");

    let l2 = MemoryCache::<Vec<u8>>::new(10);
    let tiered = Tiered::new(
        MemoryCache::new(10),
        Arc::new(l2.clone()),
        Duration::from_secs(60),
    );
    let region: Region<u64> = Region::builder("t", tiered).build();
    assert_eq!(region.get_or_create("k", || Ok(7)).unwrap(), 7);
    assert_eq!(
        raw(&l2, "t:k").0,
        FLAG_JSON,
        "the L2 holds the encoded entry"
    );
    assert_eq!(region.get_or_create("k", || panic!("fresh")).unwrap(), 7);
}

#[test]
fn a_region_owns_the_memory_cache_it_builds_and_keys_it_as_given() {
    use larder::dogpile::{DistributedMutex, LockStore, MemoryLockStore};
    use larder::Error;
    // The builder's value type is inferred: the region stores its entries in it.
    let region: Region<String> =
        Region::builder("own", MemoryCache::builder().max_entries(100)).build();
    assert_eq!(region.mangle("k").unwrap(), "k");
    assert_eq!(region.get_or_create("k", || Ok("v".into())).unwrap(), "v");
    assert_eq!(region.get("k").unwrap().as_deref(), Some("v"));
    // Keys still follow the one key policy.
    let err = region.get_or_create("a b", || Ok("x".into())).unwrap_err();
    assert!(matches!(err, Error::KeyInvalid { .. }), "{err}");
    assert!(matches!(
        region.get(&"x".repeat(251)),
        Err(Error::KeyInvalid { .. })
    ));

    // Shared locks keep the region's name, as for any other backend: "lock:own:k2".
    let store = MemoryLockStore::default();
    assert!(store
        .try_acquire("lock:own:k2", "another-process", Duration::from_secs(30))
        .unwrap());
    let locked: Region<String> = Region::builder("own", MemoryCache::builder())
        .mutex(Arc::new(DistributedMutex::new(
            store.clone(),
            Duration::from_secs(30),
        )))
        .lock_wait(Duration::from_millis(20))
        .build();
    let err = locked.get_or_create("k2", || Ok("v".into())).unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    assert_eq!(
        locked.get_or_create("k3", || Ok("v3".into())).unwrap(),
        "v3"
    );
    assert_eq!(store.holder("lock:own:k3"), None, "released");
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_region_owns_the_memory_cache_it_builds() {
    use larder::dogpile::AsyncRegion;
    let region: AsyncRegion<Report> =
        AsyncRegion::builder("own", MemoryCache::builder().max_entries(100)).build();
    assert_eq!(region.mangle("k").unwrap(), "k");
    let made = region
        .get_or_create("k", || async { Ok(report("a")) })
        .await;
    assert_eq!(made.unwrap(), report("a"));
    assert_eq!(region.get("k").await.unwrap(), Some(report("a")));
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_faces_read_each_others_entries_in_one_byte_cache() {
    use larder::dogpile::AsyncRegion;
    let bytes = MemoryCache::<Vec<u8>>::new(100);
    let async_region: AsyncRegion<Report> = AsyncRegion::builder("s", bytes.clone()).build();
    let made = async_region
        .get_or_create("k", || async { Ok(report("async")) })
        .await
        .unwrap();
    assert_eq!(made, report("async"));
    let blocking: Region<Report> = Region::builder("s", bytes.clone()).build();
    assert_eq!(blocking.get("k").unwrap(), Some(report("async")));
    blocking.set("k2", report("blocking")).unwrap();
    assert_eq!(
        async_region.get("k2").await.unwrap(),
        Some(report("blocking"))
    );
}

/// A creator that counts its calls.
#[cfg(any(feature = "memcached", feature = "redis"))]
fn counted(
    calls: &Arc<std::sync::atomic::AtomicUsize>,
    title: &str,
) -> impl FnOnce() -> larder::Result<Report> + Send {
    let (calls, title) = (Arc::clone(calls), title.to_owned());
    move || {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(report(&title))
    }
}

#[cfg(feature = "memcached")]
mod on_memcached {
    use super::*;
    use larder::codec::{BytesCodec, JsonCodec};
    use larder::memcache::{Client, MemcachedCache};
    use larder_testing::memcached::MemcachedServer;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn bytes(server: &MemcachedServer) -> MemcachedCache<Vec<u8>, BytesCodec> {
        MemcachedCache::new(Client::connect(server.addr()).unwrap(), BytesCodec)
    }

    #[test]
    fn regions_over_memcached_bytes_share_entries_between_clients() {
        let server = MemcachedServer::start().expect("memcached starts");
        let calls = Arc::new(AtomicUsize::new(0));
        // Two clients, as two processes would have.
        let a: Region<Report> = Region::builder("reports", bytes(&server)).build();
        let b: Region<Report> = Region::builder("reports", bytes(&server)).build();
        assert_eq!(
            a.get_or_create("q1", counted(&calls, "q1")).unwrap(),
            report("q1")
        );
        assert_eq!(
            b.get_or_create("q1", counted(&calls, "b")).unwrap(),
            report("q1")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (flags, _) = raw(&bytes(&server), "reports:q1");
        assert_eq!(flags, FLAG_JSON);

        let got = b
            .get_or_create_multi(&["q1", "q2", "q3"], |keys| {
                Ok(keys.iter().map(|k| report(k)).collect())
            })
            .unwrap();
        assert_eq!(got, [report("q1"), report("q2"), report("q3")]);
        assert_eq!(a.get("q3").unwrap(), Some(report("q3")));
        assert!(a.delete("q3").unwrap());
        assert_eq!(b.get("q3").unwrap(), None);
    }

    #[test]
    fn a_region_over_a_memcached_cache_of_entries() {
        let server = MemcachedServer::start().expect("memcached starts");
        let client = Client::connect(server.addr()).unwrap();
        let entries = MemcachedCache::<CachedValue<String>, _>::new(client, JsonCodec::new());
        let region = Region::builder("e", entries).build();
        assert_eq!(region.get_or_create("k", || Ok("v".into())).unwrap(), "v");
        assert_eq!(region.get_or_create("k", || panic!("fresh")).unwrap(), "v");
        // The cache's own codec wrote plain JSON, with its flags in memcached's.
        let peek = Client::connect(server.addr()).unwrap();
        let (data, flags) = peek.get("e:k").unwrap().unwrap();
        assert_eq!(flags, FLAG_JSON);
        assert!(data.starts_with(b"{"), "{data:?}");
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn an_async_region_over_memcached_bytes() {
        use larder::dogpile::AsyncRegion;
        let server = MemcachedServer::start().expect("memcached starts");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let region: AsyncRegion<Report> = AsyncRegion::builder("ar", bytes(&server).to_async())
            .expiration(Some(Duration::from_secs(60)))
            .build();
        let calls = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let first = counted(&calls, "one");
            let made = region.get_or_create("k", || async move { first() }).await;
            assert_eq!(made.unwrap(), report("one"));
            let again = counted(&calls, "two");
            let got = region.get_or_create("k", || async move { again() }).await;
            assert_eq!(got.unwrap(), report("one"));
            let got = region
                .get_or_create_multi(&["k", "k2"], |keys| async move {
                    Ok(keys.iter().map(|k| report(k)).collect())
                })
                .await
                .unwrap();
            assert_eq!(got, [report("one"), report("k2")]);
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A blocking region on another client reads what the async one stored.
        let blocking: Region<Report> = Region::builder("ar", bytes(&server)).build();
        assert_eq!(blocking.get("k2").unwrap(), Some(report("k2")));
    }
}

#[cfg(feature = "redis")]
mod on_redis {
    use super::*;
    use larder::codec::BytesCodec;
    use larder::redis::{RedisCache, RedisConfig};
    use larder_testing::redis::RedisServer;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_region_over_redis_bytes() {
        let server = RedisServer::start().expect("redis starts");
        let cache = RedisCache::new(RedisConfig::new(server.url()), BytesCodec).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let region: Region<Report> = Region::builder("rr", cache).build();
        assert_eq!(
            region.get_or_create("k", counted(&calls, "r")).unwrap(),
            report("r")
        );
        assert_eq!(
            region.get_or_create("k", counted(&calls, "x")).unwrap(),
            report("r")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let other = RedisCache::new(RedisConfig::new(server.url()), BytesCodec).unwrap();
        assert_eq!(raw(&other, "rr:k").0, FLAG_JSON);
    }
}
