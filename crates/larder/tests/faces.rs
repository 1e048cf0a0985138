//! Both cache traits imported at once: the ordinary method call compiles on every backend
//! and composite (no E0034, "multiple applicable items in scope") and each face does what it
//! says, against a real memcached, a real Redis (feature `redis`) and the memory cache. Also
//! `get_with_ttl` on both memcached and both Redis faces, and an async tiered cache over
//! Redis whose L1 copy never outlives the Redis entry.
#![cfg(all(feature = "tokio", feature = "memcached"))]

use std::sync::Arc;
use std::time::Duration;

use larder::codec::TextCodec;
use larder::memcache::{AsyncClient, AsyncMemcachedCache, Client, MemcachedCache};
use larder::memory::MemoryCache;
use larder::tiered::{AsyncTiered, Tiered};
use larder::{AsyncCache, AsyncNamespaces, Cache, Expiry, Namespaces, NullCache};
use larder_testing::memcached::MemcachedServer;

/// Generic code over one face reads the same with both traits in scope.
async fn read_async<C: AsyncCache<String>>(cache: &C, key: &str) -> Option<String> {
    cache.get(key).await.unwrap()
}

fn read_blocking<C: Cache<String>>(cache: &C, key: &str) -> Option<String> {
    cache.get(key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_traits_imported_calls_resolve_on_memcached() {
    let server = MemcachedServer::start().unwrap();
    let cache: MemcachedCache<String, TextCodec> =
        MemcachedCache::new(Client::connect(server.addr()).unwrap(), TextCodec).with_prefix("f:");
    let async_cache = cache.to_async();

    // The blocking face: a plain call (in a blocking section, as async code must).
    let stored = tokio::task::block_in_place(|| {
        cache.set("k", "blocking".into(), Expiry::Never).unwrap();
        cache.get("k").unwrap()
    });
    assert_eq!(stored.as_deref(), Some("blocking"));

    // The async face sees the same entry (same prefix and codec) and writes over it.
    assert_eq!(
        async_cache.get("k").await.unwrap().as_deref(),
        Some("blocking")
    );
    async_cache
        .set("k", "async".into(), Expiry::Never)
        .await
        .unwrap();
    assert_eq!(
        read_async(&async_cache, "k").await.as_deref(),
        Some("async")
    );
    let seen = tokio::task::block_in_place(|| read_blocking(&cache, "k"));
    assert_eq!(seen.as_deref(), Some("async"));
}

#[tokio::test]
async fn both_traits_imported_calls_resolve_on_in_process_caches() {
    let memory: MemoryCache<String> = MemoryCache::new(100);
    memory.set("k", "v".into(), Expiry::Never).unwrap();
    assert_eq!(memory.get("k").unwrap().as_deref(), Some("v"));
    // Its async face is the same store.
    assert_eq!(read_async(&memory, "k").await.as_deref(), Some("v"));
    let as_async: &dyn AsyncCache<String> = &memory;
    assert!(as_async.add("k2", "w".into(), Expiry::Never).await.unwrap());
    assert_eq!(memory.get("k2").unwrap().as_deref(), Some("w"));
    assert_eq!(read_blocking(&memory, "k2").as_deref(), Some("w"));

    let null: NullCache<String> = NullCache::new();
    null.set("k", "v".into(), Expiry::Never).unwrap();
    assert_eq!(null.get("k").unwrap(), None);
    assert_eq!(read_async(&null, "k").await, None);
}

#[tokio::test]
async fn both_traits_imported_calls_resolve_on_composites() {
    let shared: MemoryCache<String> = MemoryCache::new(100);
    let tiered = Tiered::new(
        MemoryCache::new(10),
        Arc::new(shared.clone()),
        Duration::from_secs(60),
    );
    tiered.set("k", "blocking".into(), Expiry::Never).unwrap();
    assert_eq!(tiered.get("k").unwrap().as_deref(), Some("blocking"));

    let async_tiered = AsyncTiered::new(
        MemoryCache::new(10),
        Arc::new(shared.clone()),
        Duration::from_secs(60),
    );
    assert_eq!(
        async_tiered.get("k").await.unwrap().as_deref(),
        Some("blocking")
    );
    async_tiered
        .set("k", "async".into(), Expiry::Never)
        .await
        .unwrap();
    assert_eq!(shared.get("k").unwrap().as_deref(), Some("async"));

    let ns = Namespaces::new(
        [(
            "a".to_owned(),
            Arc::new(shared.clone()) as Arc<dyn Cache<String>>,
        )],
        "a",
    )
    .unwrap();
    assert_eq!(ns.get("k").unwrap().as_deref(), Some("async"));
    let async_ns = AsyncNamespaces::new(
        [(
            "a".to_owned(),
            Arc::new(shared.clone()) as Arc<dyn AsyncCache<String>>,
        )],
        "a",
    )
    .unwrap();
    assert!(async_ns.delete("k").await.unwrap());
    assert_eq!(ns.get("k").unwrap(), None);
}

/// `t` is whole seconds on a clock that ticks once a second; the face reports one second
/// less, so the reported life is never longer than the item's.
fn assert_life_within(left: Expiry, ttl: Duration) {
    let Expiry::After(left) = left else {
        panic!("expected a finite life, got {left:?}");
    };
    assert!(
        left < ttl,
        "{left:?} must be under the {ttl:?} it was set with"
    );
    assert!(
        left >= ttl - Duration::from_secs(2),
        "{left:?} is far under {ttl:?}"
    );
}

#[test]
fn blocking_memcached_reports_remaining_life() {
    let server = MemcachedServer::start().unwrap();
    let cache =
        MemcachedCache::new(Client::connect(server.addr()).unwrap(), TextCodec).with_prefix("ttl:");
    assert_eq!(cache.get_with_ttl("absent").unwrap(), None);
    cache.set("short", "s".into(), Expiry::secs(10)).unwrap();
    cache.set("forever", "f".into(), Expiry::Never).unwrap();
    let (value, left) = cache.get_with_ttl("short").unwrap().unwrap();
    assert_eq!(value, "s");
    assert_life_within(left, Duration::from_secs(10));
    assert_eq!(
        cache.get_with_ttl("forever").unwrap(),
        Some(("f".into(), Expiry::Never))
    );
    let both = cache
        .get_multi_with_ttl(&["short", "forever", "absent"])
        .unwrap();
    assert_eq!(both.len(), 2);
    assert_life_within(both["short"].1, Duration::from_secs(10));
    assert_eq!(both["forever"], ("f".into(), Expiry::Never));
    // The prefix is on the server.
    let raw = Client::connect(server.addr()).unwrap();
    assert_eq!(raw.get("ttl:short").unwrap().unwrap().0, b"s");
}

#[tokio::test]
async fn async_memcached_reports_remaining_life() {
    let server = MemcachedServer::start().unwrap();
    let cache = AsyncMemcachedCache::new(AsyncClient::connect(server.addr()).unwrap(), TextCodec);
    assert_eq!(cache.get_with_ttl("absent").await.unwrap(), None);
    cache
        .set("short", "s".into(), Expiry::secs(30))
        .await
        .unwrap();
    cache
        .set("forever", "f".into(), Expiry::Never)
        .await
        .unwrap();
    let (value, left) = cache.get_with_ttl("short").await.unwrap().unwrap();
    assert_eq!(value, "s");
    assert_life_within(left, Duration::from_secs(30));
    assert_eq!(
        cache.get_with_ttl("forever").await.unwrap(),
        Some(("f".into(), Expiry::Never))
    );
    let both = cache
        .get_multi_with_ttl(&["short", "forever", "absent"])
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    assert_life_within(both["short"].1, Duration::from_secs(30));
}

#[cfg(feature = "redis")]
mod on_redis {
    use super::*;
    use larder::redis::{AsyncRedisCache, RedisCache, RedisConfig};
    use larder_testing::redis::RedisServer;

    /// `PTTL` is milliseconds: read at once, the life left may be all of it, never more.
    fn assert_redis_life_within(left: Expiry, ttl: Duration) {
        let Expiry::After(left) = left else {
            panic!("expected a finite life, got {left:?}");
        };
        assert!(left <= ttl, "{left:?} is over the {ttl:?} it was set with");
        assert!(
            left >= ttl - Duration::from_secs(2),
            "{left:?} is far under {ttl:?}"
        );
    }

    fn blocking(server: &RedisServer, prefix: &str) -> RedisCache<String, TextCodec> {
        RedisCache::new(RedisConfig::new(server.url()).prefix(prefix), TextCodec).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_traits_imported_calls_resolve_on_redis() {
        let server = RedisServer::start().unwrap();
        let cache = blocking(&server, "f:");
        let async_cache = cache.to_async();

        let stored = tokio::task::block_in_place(|| {
            cache.set("k", "blocking".into(), Expiry::Never).unwrap();
            cache.get("k").unwrap()
        });
        assert_eq!(stored.as_deref(), Some("blocking"));

        // The async face reads the same entry (prefix, layout and codec) and writes over it.
        assert_eq!(
            async_cache.get("k").await.unwrap().as_deref(),
            Some("blocking")
        );
        async_cache
            .set("k", "async".into(), Expiry::Never)
            .await
            .unwrap();
        assert_eq!(
            read_async(&async_cache, "k").await.as_deref(),
            Some("async")
        );
        let seen = tokio::task::block_in_place(|| read_blocking(&cache, "k"));
        assert_eq!(seen.as_deref(), Some("async"));

        // Built on its own, from the same configuration, it is the same cache.
        let own: AsyncRedisCache<String, TextCodec> =
            AsyncRedisCache::new(RedisConfig::new(server.url()).prefix("f:"), TextCodec).unwrap();
        assert!(own.delete("k").await.unwrap());
        assert_eq!(
            tokio::task::block_in_place(|| cache.get("k").unwrap()),
            None
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_redis_faces_report_remaining_life() {
        let server = RedisServer::start().unwrap();
        let cache = blocking(&server, "ttl:");
        let async_cache = cache.to_async();
        let ttl = Duration::from_secs(10);
        async_cache
            .set("short", "s".into(), ttl.into())
            .await
            .unwrap();
        async_cache
            .set("forever", "f".into(), Expiry::Never)
            .await
            .unwrap();
        assert_eq!(async_cache.get_with_ttl("absent").await.unwrap(), None);
        let (value, left) = async_cache.get_with_ttl("short").await.unwrap().unwrap();
        assert_eq!(value, "s");
        assert_redis_life_within(left, ttl);
        assert_eq!(
            async_cache.get_with_ttl("forever").await.unwrap(),
            Some(("f".into(), Expiry::Never))
        );
        let (value, left) =
            tokio::task::block_in_place(|| cache.get_with_ttl("short").unwrap().unwrap());
        assert_eq!(value, "s");
        assert_redis_life_within(left, ttl);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_tiered_copy_never_outlives_the_redis_entry() {
        let server = RedisServer::start().unwrap();
        let l2 = blocking(&server, "tier:").to_async();
        l2.set("k", "v".into(), Expiry::After(Duration::from_millis(800)))
            .await
            .unwrap();
        let tiered = AsyncTiered::new(
            MemoryCache::new(10),
            Arc::new(l2) as Arc<dyn AsyncCache<String>>,
            Duration::from_secs(60),
        );
        assert_eq!(tiered.get("k").await.unwrap().as_deref(), Some("v"));
        // The L1 copy got the Redis entry's remaining life, not the 60 s cap.
        let Some((_, Expiry::After(left))) = tiered.l1().get_with_ttl("k").unwrap() else {
            panic!("L1 holds a copy with a finite life");
        };
        assert!(left <= Duration::from_millis(800), "L1 copy lives {left:?}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            tiered.get("k").await.unwrap(),
            None,
            "gone from both levels"
        );
    }
}
