//! The shared cache contract run against `MemcachedCache<String, TextCodec>` on a fresh
//! memcached per test (real time: `advance` sleeps), and the cache's key policies: a prefix's
//! share of the limit, `KeyPolicy::Native`'s base64 keys, the async face's checks.
#![cfg(feature = "memcached")]

use std::sync::Arc;

use larder::codec::TextCodec;
use larder::memcache::{Client, MemcachedCache};
use larder::{Cache, Error, Expiry, KeyPolicy, KeyRule};
use larder_testing::memcached::MemcachedServer;
use larder_testing::Fixture;

fn make() -> Fixture {
    let server = MemcachedServer::start().expect("memcached starts");
    let client = Client::connect(server.addr()).unwrap();
    let cache: MemcachedCache<String, TextCodec> = MemcachedCache::new(client, TextCodec);
    Fixture {
        cache: Arc::new(cache),
        advance: Box::new(std::thread::sleep),
        guard: Box::new(server),
    }
}

larder_testing::contract_tests!(make);

fn server_and_client() -> (MemcachedServer, Client) {
    let server = MemcachedServer::start().expect("memcached starts");
    let client = Client::connect(server.addr()).unwrap();
    (server, client)
}

/// A prefix is part of memcached's 250 bytes: the caller's keys get what it leaves, and the
/// error says so in the caller's terms.
#[test]
fn a_prefix_takes_its_share_of_the_key_limit() {
    let (_server, client) = server_and_client();
    let cache: MemcachedCache<String, TextCodec> =
        MemcachedCache::new(client, TextCodec).with_prefix("app:");
    let fits = "k".repeat(246);
    cache.set(&fits, "v".into(), Expiry::Never).unwrap();
    assert_eq!(cache.get(&fits).unwrap().as_deref(), Some("v"));
    match cache.set(&"k".repeat(247), "v".into(), Expiry::Never) {
        Err(Error::KeyInvalid {
            rule: KeyRule::TooLong { len, limit },
            ..
        }) => assert_eq!((len, limit), (247, 246)),
        other => panic!("{other:?}"),
    }
}

/// `KeyPolicy::Native` on memcached: keys with spaces or control bytes travel base64 (the
/// server's own limits still hold: not empty, at most 250 bytes, 186 when base64).
#[test]
fn native_key_policy_sends_binary_keys_base64() {
    let (_server, client) = server_and_client();
    let cache: MemcachedCache<String, TextCodec> =
        MemcachedCache::new(client, TextCodec).with_key_policy(KeyPolicy::Native);
    for key in ["a b", "line\r\nEND", "\0\x7f"] {
        cache.set(key, key.into(), Expiry::Never).unwrap();
        assert_eq!(cache.get(key).unwrap().as_deref(), Some(key), "{key:?}");
    }
    let got = cache.get_multi(&["a b", "\0\x7f", "nope"]).unwrap();
    assert_eq!(got.len(), 2);
    for (key, rule) in [
        ("", KeyRule::Empty),
        (
            &*"k".repeat(251),
            KeyRule::TooLong {
                len: 251,
                limit: 250,
            },
        ),
        (
            &*" ".repeat(187),
            KeyRule::TooLong {
                len: 187,
                limit: 186,
            },
        ),
    ] {
        match cache.set(key, "v".into(), Expiry::Never) {
            Err(Error::KeyInvalid { key: k, rule: r }) => assert_eq!((&*k, r), (key, rule)),
            other => panic!("{key:?}: {other:?}"),
        }
    }
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_face_refuses_the_same_keys() {
    let (_server, client) = server_and_client();
    let cache: MemcachedCache<String, TextCodec> = MemcachedCache::new(client, TextCodec);
    let cache = cache.to_async();
    let cache: &dyn larder::AsyncCache<String> = &cache;
    for bad in ["", "a b", &*"k".repeat(251)] {
        assert!(matches!(
            cache.set(bad, "v".into(), Expiry::Never).await,
            Err(Error::KeyInvalid { .. })
        ));
        assert!(matches!(
            cache.get_multi(&["ok", bad]).await,
            Err(Error::KeyInvalid { .. })
        ));
    }
    cache
        .set(&"k".repeat(250), "v".into(), Expiry::Never)
        .await
        .unwrap();
}
