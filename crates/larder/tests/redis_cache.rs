//! `RedisCache` against a real redis-server started on a free loopback port: the shared
//! contract suite, the async contract, prefix-limited `clear`, and recovery after the
//! server goes down and comes back.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::codec::TextCodec;
use larder::redis::{RedisCache, RedisConfig};
use larder::{Cache, Error, Expiry};
use larder_testing::Fixture;

use larder_testing::redis::RedisServer;

fn cache(server: &RedisServer, prefix: &str) -> RedisCache<String, TextCodec> {
    let config = RedisConfig::new(server.url())
        .prefix(prefix)
        .timeouts(Duration::from_millis(500), Duration::from_millis(500));
    RedisCache::new(config, TextCodec).unwrap()
}

fn make() -> Fixture {
    let server = RedisServer::start().unwrap();
    Fixture {
        cache: Arc::new(cache(&server, "contract:")),
        advance: Box::new(std::thread::sleep),
        guard: Box::new(server),
    }
}

mod contract {
    larder_testing::contract_tests!(super::make);
}

#[test]
fn clear_deletes_only_our_prefix() {
    let server = RedisServer::start().unwrap();
    let ours = cache(&server, "app:[1]*");
    let theirs = cache(&server, "other:");
    ours.set("a", "1".into(), Expiry::Never).unwrap();
    ours.set("b", "2".into(), Expiry::Never).unwrap();
    theirs.set("a", "x".into(), Expiry::Never).unwrap();
    // A key that the unescaped glob `app:[1]*` would match.
    let lookalike = cache(&server, "app:1");
    lookalike.set("z", "y".into(), Expiry::Never).unwrap();
    ours.clear().unwrap();
    assert!(ours.get_multi(&["a", "b"]).unwrap().is_empty());
    assert_eq!(theirs.get("a").unwrap().as_deref(), Some("x"));
    assert_eq!(lookalike.get("z").unwrap().as_deref(), Some("y"));
    let unprefixed = cache(&server, "");
    assert!(matches!(unprefixed.clear(), Err(Error::Config(_))));
}

#[test]
fn counters_wrap_and_keep_ttl_like_memcached() {
    let server = RedisServer::start().unwrap();
    let c = cache(&server, "ctr:");
    c.set("max", u64::MAX.to_string(), Expiry::Never).unwrap();
    assert_eq!(c.incr("max", 2).unwrap(), Some(1));
    c.set("ttl", "5".into(), Expiry::secs(100)).unwrap();
    assert_eq!(c.incr("ttl", 1).unwrap(), Some(6));
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("ctr:ttl").query(&mut raw).unwrap();
    assert!(pttl > 90_000, "TTL kept after incr, got {pttl} ms");
    // A value written by another Redis client is not a larder value.
    redis::cmd("SET")
        .arg("ctr:foreign")
        .arg("x")
        .query::<()>(&mut raw)
        .unwrap();
    assert!(matches!(c.get("foreign"), Err(Error::Codec(_))));
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_contract() {
    let server = RedisServer::start().unwrap();
    let c = cache(&server, "async:").to_async();
    let c: &dyn larder::AsyncCache<String> = &c;
    assert_eq!(c.get("k").await.unwrap(), None);
    c.set("k", "v".into(), Expiry::Never).await.unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some("v"));
    assert!(!c.add("k", "w".into(), Expiry::Never).await.unwrap());
    assert!(c.replace("k", "w".into(), Expiry::Never).await.unwrap());
    assert!(!c.replace("nope", "w".into(), Expiry::Never).await.unwrap());
    let w = c
        .add_multi(vec![("k", "x".into()), ("n", "1".into())], Expiry::Never)
        .await
        .unwrap();
    assert_eq!(
        (w.applied, w.not_applied),
        (vec!["n".to_string()], vec!["k".to_string()])
    );
    let w = c
        .set_multi(vec![("m1", "1".into()), ("m2", "2".into())], Expiry::Never)
        .await
        .unwrap();
    assert!(w.all_applied());
    let w = c
        .replace_multi(vec![("m1", "3".into()), ("m9", "9".into())], Expiry::Never)
        .await
        .unwrap();
    assert_eq!(w.not_applied, vec!["m9".to_string()]);
    let got = c.get_multi(&["k", "m1", "m2", "absent"]).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got["m1"], "3");
    assert_eq!(c.incr("n", 41).await.unwrap(), Some(42));
    assert_eq!(c.decr("n", 100).await.unwrap(), Some(0));
    assert_eq!(c.incr("absent", 1).await.unwrap(), None);
    assert!(matches!(
        c.incr("k", 1).await,
        Err(Error::NotANumber { .. })
    ));
    assert!(c
        .touch("k", Expiry::After(Duration::from_millis(200)))
        .await
        .unwrap());
    assert!(!c.touch("absent", Expiry::Never).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.get("k").await.unwrap(), None);
    let w = c.delete_multi(&["m1", "absent"]).await.unwrap();
    assert_eq!(w.applied, vec!["m1".to_string()]);
    assert!(c.delete("m2").await.unwrap());
    c.clear().await.unwrap();
    assert!(c.get_multi(&["n"]).await.unwrap().is_empty());
}

#[test]
fn server_down_gives_typed_errors_in_bound_then_recovers() {
    let mut server = RedisServer::start().unwrap();
    let c = cache(&server, "down:");
    c.set("k", "v".into(), Expiry::Never).unwrap();
    server.stop();
    let started = Instant::now();
    let err = c.get("k").unwrap_err();
    assert!(err.is_transport(), "want a transport error, got {err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    server.restart().unwrap();
    // The restarted server is empty (no persistence); the client works again by itself.
    c.set("k", "again".into(), Expiry::Never).unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some("again"));
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_server_down_then_recovers() {
    let mut server = RedisServer::start().unwrap();
    let c = cache(&server, "adown:").to_async();
    larder::AsyncCache::set(&c, "k", "v".into(), Expiry::Never)
        .await
        .unwrap();
    server.stop();
    let started = Instant::now();
    let err = larder::AsyncCache::get(&c, "k").await.unwrap_err();
    assert!(err.is_transport(), "want a transport error, got {err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    server.restart().unwrap();
    let mut last = None;
    for _ in 0..50 {
        match larder::AsyncCache::set(&c, "k", "again".into(), Expiry::Never).await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last.is_none(), "never recovered: {last:?}");
    assert_eq!(
        larder::AsyncCache::get(&c, "k").await.unwrap().as_deref(),
        Some("again")
    );
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_key_policy_takes_any_string_on_both_faces() {
    use larder::{AsyncCache, KeyPolicy};
    let server = RedisServer::start().unwrap();
    let config = RedisConfig::new(server.url())
        .prefix("native:")
        .key_policy(KeyPolicy::Native);
    let c: RedisCache<String, TextCodec> = RedisCache::new(config, TextCodec).unwrap();
    let a = c.to_async();
    let long = "k".repeat(251);
    for key in ["", &*long, "a b", "a\r\nb"] {
        Cache::set(&c, key, key.to_owned(), Expiry::Never).unwrap();
        assert_eq!(
            AsyncCache::get(&a, key).await.unwrap().as_deref(),
            Some(key)
        );
    }
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let exists: u64 = redis::cmd("EXISTS")
        .arg(format!("native:{long}"))
        .arg("native:")
        .query(&mut raw)
        .unwrap();
    assert_eq!(exists, 2, "the long and the empty key are stored as given");

    // The default refuses them on the async face as on the blocking one.
    let portable = cache(&server, "portable:").to_async();
    for bad in ["", &*long, "a b"] {
        assert!(matches!(
            AsyncCache::set(&portable, bad, "v".into(), Expiry::Never).await,
            Err(Error::KeyInvalid { .. })
        ));
        assert!(matches!(
            AsyncCache::delete_multi(&portable, &["ok", bad]).await,
            Err(Error::KeyInvalid { .. })
        ));
    }
}
