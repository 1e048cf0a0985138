//! The tokio `AsyncClient` and `AsyncMemcachedCache` (an `AsyncCache`): operations against a real
//! memcached, 16 concurrent tasks, timeouts, and cancellation dropping the connection.
#![cfg(all(feature = "tokio", feature = "memcached"))]

use std::sync::Arc;
use std::time::Duration;

use larder::codec::TextCodec;
use larder::memcache::{
    AsyncClient, AsyncMemcachedCache, Client, ClientConfig, MetaGetOptions, ServerAddr,
};
use larder::{AsyncCache, Error, Expiry};
use larder_testing::memcached::{with_opaque, FakeAction, FakeServer, MemcachedServer};

/// `get_multi_indexed` on both faces, over three servers: every third key missing, repeats
/// (a text key and a binary key, which travels in a meta chunk), and over 256 keys on some
/// server (several pipelined chunks). Every position of a stored key is visited once, with
/// that key's hit; no other position is.
#[tokio::test]
async fn get_multi_indexed_names_each_hits_position() {
    let servers: Vec<MemcachedServer> = (0..3).map(|_| MemcachedServer::start().unwrap()).collect();
    let all: Vec<&str> = servers.iter().map(MemcachedServer::addr).collect();
    let blocking = Client::connect(&all.join(",")).unwrap();
    let client = AsyncClient::connect(&all.join(",")).unwrap();
    let mut keys: Vec<Vec<u8>> = (0..900).map(|i| format!("ix{i}").into_bytes()).collect();
    keys[7] = vec![0, 159, 146, 150];
    keys.extend([
        b"ix4".to_vec(),
        vec![0, 159, 146, 150],
        b"ix3".to_vec(),
        b"ix5".to_vec(),
    ]);
    let stored_at = |i: usize| i % 3 != 2;
    for (_, k) in keys.iter().enumerate().filter(|&(i, _)| stored_at(i)) {
        blocking.set(k, k, 0, Expiry::Never).unwrap();
    }
    // A key hits when any of its positions stored it.
    let want: Vec<usize> = (0..keys.len())
        .filter(|&i| (0..keys.len()).any(|j| stored_at(j) && keys[j] == keys[i]))
        .collect();
    let check = |visits: Vec<(usize, Vec<u8>, Vec<u8>)>, hits: usize| {
        let mut got: Vec<usize> = visits.iter().map(|(at, _, _)| *at).collect();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(hits, want.len());
        for (at, key, value) in &visits {
            assert_eq!((key, value), (&keys[*at], &keys[*at]), "position {at}");
        }
    };
    let mut visits = Vec::new();
    let hits = blocking
        .get_multi_indexed(&keys, |at, hit| {
            visits.push((at, hit.key.to_vec(), hit.value.to_vec()));
        })
        .unwrap();
    check(visits, hits);
    let mut visits = Vec::new();
    let hits = client
        .get_multi_indexed(&keys, |at, hit| {
            visits.push((at, hit.key.to_vec(), hit.value.to_vec()));
        })
        .await
        .unwrap();
    check(visits, hits);
}

/// Values larger than a socket buffer: the write and the reply's reads both take several
/// steps (the first try without waiting, the rest under the timeouts), and the bytes are
/// exact, in a single get and in a multi-get next to small values.
#[tokio::test]
async fn values_larger_than_a_socket_buffer_arrive_exactly() {
    let server = MemcachedServer::start().unwrap();
    let c = AsyncClient::connect(server.addr()).unwrap();
    // memcached 1.6.18 with -I 1m stores at most 1,048,516 bytes under a 1-byte key.
    let largest: Vec<u8> = (0..1_048_516u32).map(|i| (i % 251) as u8).collect();
    c.set("k", &largest, 0, Expiry::Never).await.unwrap();
    c.set("s", b"small", 1, Expiry::Never).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some((largest.clone(), 0)));
    let hits = c.get_multi(&["s", "k", "absent"]).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits.get("k").map(|h| h.value), Some(&largest[..]));
    assert_eq!(
        hits.get("s").map(|h| (h.value, h.flags)),
        Some((&b"small"[..], 1))
    );
    // The connection is still in step afterwards.
    assert_eq!(c.get("s").await.unwrap(), Some((b"small".to_vec(), 1)));
}

#[tokio::test]
async fn operations() {
    let server = MemcachedServer::start().unwrap();
    let c = AsyncClient::connect(server.addr()).unwrap();
    assert_eq!(c.get("k").await.unwrap(), None);
    c.set("k", b"a\r\nb", 5, Expiry::Never).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some((b"a\r\nb".to_vec(), 5)));
    let item = c.gets("k").await.unwrap().unwrap();
    assert!(c.cas("k", b"v2", 0, Expiry::Never, item.cas).await.unwrap());
    assert!(!c.cas("k", b"v3", 0, Expiry::Never, item.cas).await.unwrap());
    assert!(!c.add("k", b"x", 0, Expiry::Never).await.unwrap());
    assert!(c.replace("k", b"r", 0, Expiry::Never).await.unwrap());
    assert!(c.append("k", b"s").await.unwrap());
    assert!(c.prepend("k", b"p").await.unwrap());
    assert_eq!(c.get("k").await.unwrap().unwrap().0, b"prs");
    assert!(c.touch("k", Expiry::secs(60)).await.unwrap());
    assert!(c.gat("k", Expiry::Never).await.unwrap().is_some());
    c.set("n", b"1", 0, Expiry::Never).await.unwrap();
    assert_eq!(c.incr("n", 9).await.unwrap(), Some(10));
    assert_eq!(c.decr("n", 3).await.unwrap(), Some(7));
    assert!(matches!(
        c.incr("k", 1).await,
        Err(Error::NotANumber { .. })
    ));
    let keys: Vec<String> = (0..1000).map(|i| format!("a{i}")).collect();
    for k in keys.iter().step_by(2) {
        c.set(k, k.as_bytes(), 0, Expiry::Never).await.unwrap();
    }
    let got = c.get_multi(&keys).await.unwrap();
    assert_eq!(got.len(), 500);
    assert!(got.iter().all(|hit| hit.value == hit.key));
    let mut visited = Vec::new();
    let hits = c
        .get_multi_with(&keys, |hit| {
            assert_eq!(hit.key, hit.value);
            visited.push(hit.key.to_vec());
        })
        .await
        .unwrap();
    visited.sort();
    let mut expected: Vec<Vec<u8>> = keys
        .iter()
        .step_by(2)
        .map(|k| k.clone().into_bytes())
        .collect();
    expected.sort();
    assert_eq!((hits, visited), (500, expected));
    let won = c
        .meta_get("sw", MetaGetOptions::default().vivify(30))
        .await
        .unwrap();
    assert!(won.won);
    assert!(c
        .meta_set_cas("sw", b"v", 0, Expiry::Never, won.cas)
        .await
        .unwrap());
    assert!(c.meta_invalidate("sw", Expiry::secs(30)).await.unwrap());
    assert!(c.stats().await.unwrap()[server.addr()].contains_key("pid"));
    assert!(c.version().await.unwrap()[server.addr()].starts_with("1."));
    assert!(c.delete("k").await.unwrap());
    c.flush_all().await.unwrap();
    assert_eq!(c.get("n").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks() {
    let server = MemcachedServer::start().unwrap();
    let c = AsyncClient::connect(server.addr()).unwrap();
    c.set("shared", b"0", 0, Expiry::Never).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let c = c.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    let k = format!("t{t}:{i}");
                    c.set(&k, k.as_bytes(), 0, Expiry::Never).await.unwrap();
                    assert_eq!(c.get(&k).await.unwrap().unwrap().0, k.as_bytes());
                    c.incr("shared", 1).await.unwrap().unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(c.get("shared").await.unwrap().unwrap().0, b"1600");
}

fn fake_client(fake: &FakeServer, timeout: Duration) -> AsyncClient {
    AsyncClient::new(
        ClientConfig::new(vec![ServerAddr::parse(fake.addr()).unwrap()]).io_timeout(timeout),
    )
    .unwrap()
}

#[tokio::test]
async fn silent_server_times_out() {
    let fake = FakeServer::start(|_, _| FakeAction::Silent).unwrap();
    let c = fake_client(&fake, Duration::from_millis(200));
    match c.get("k").await {
        Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cancelled_call_drops_its_connection() {
    // The first connection never answers; later ones answer every request with a miss.
    let fake = FakeServer::start(|conn, req| {
        if conn == 0 {
            FakeAction::Silent
        } else {
            FakeAction::Reply(with_opaque(req, b"EN\r\n"))
        }
    })
    .unwrap();
    let c = fake_client(&fake, Duration::from_secs(30));
    let cancelled = tokio::time::timeout(Duration::from_millis(100), c.get("k")).await;
    assert!(cancelled.is_err(), "the call was cancelled");
    // Had the half-read connection gone back to the pool, this would hang on it.
    assert_eq!(c.get("k").await.unwrap(), None);
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn garbage_reply_then_recovery() {
    let fake = FakeServer::start(|conn, req| {
        if conn == 0 {
            FakeAction::Reply(b"VALUE k 0 99999999999\r\n".to_vec())
        } else {
            FakeAction::Reply(with_opaque(req, b"EN\r\n"))
        }
    })
    .unwrap();
    let c = fake_client(&fake, Duration::from_secs(2));
    assert!(matches!(c.get("k").await, Err(Error::Protocol(_))));
    assert_eq!(c.get("k").await.unwrap(), None);
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn async_memcached_cache_is_an_async_cache() {
    let server = MemcachedServer::start().unwrap();
    let cache: Arc<dyn AsyncCache<String>> = Arc::new(
        AsyncMemcachedCache::new(AsyncClient::connect(server.addr()).unwrap(), TextCodec)
            .with_prefix("p:"),
    );
    cache.set("a", "1".into(), Expiry::Never).await.unwrap();
    assert_eq!(cache.get("a").await.unwrap().as_deref(), Some("1"));
    assert!(!cache.add("a", "2".into(), Expiry::Never).await.unwrap());
    assert_eq!(cache.incr("a", 4).await.unwrap(), Some(5));
    cache.set("t", "text".into(), Expiry::Never).await.unwrap();
    match cache.incr("t", 1).await {
        Err(Error::NotANumber { key }) => assert_eq!(key, "t", "caller's key, not prefixed"),
        other => panic!("{other:?}"),
    }
    let w = cache
        .set_multi(vec![("x", "1".into()), ("y", "2".into())], Expiry::Never)
        .await
        .unwrap();
    assert_eq!(w.applied.len(), 2);
    assert_eq!(cache.get_multi(&["x", "y", "z"]).await.unwrap().len(), 2);
    // Hits map back to the caller's keys (unprefixed), a key asked twice once.
    let got = cache.get_multi(&["y", "z", "x", "y"]).await.unwrap();
    let want: std::collections::HashMap<String, String> =
        [("x".into(), "1".into()), ("y".into(), "2".into())].into();
    assert_eq!(got, want);
    assert!(cache.delete("x").await.unwrap());
    assert!(cache.touch("y", Expiry::secs(10)).await.unwrap());
    // The prefix is really on the server.
    let raw = Client::connect(server.addr()).unwrap();
    assert_eq!(raw.get("p:y").unwrap().unwrap().0, b"2");
    cache.clear().await.unwrap();
    assert_eq!(cache.get("y").await.unwrap(), None);
}
