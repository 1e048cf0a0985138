//! `RedisCache` beside other Redis clients, against a real redis-server: raw values (no flags
//! header) shared with plain `GET`/`SET`/`INCR` users, and caches built from the caller's own
//! `redis::Client` and `ConnectionManager`. The contract suite runs in raw mode and on a
//! caller's client.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use larder::codec::{BytesCodec, TextCodec, FLAG_TEXT};
use larder::redis::{RedisCache, RedisConfig, ValueFormat};
use larder::{Cache, Error, Expiry};
use larder_testing::redis::RedisServer;
use larder_testing::Fixture;

const TIMEOUT: Duration = Duration::from_millis(500);

/// A plain connection, standing for any other Redis client.
fn other_client(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn raw_text(server: &RedisServer, prefix: &str) -> RedisCache<String, TextCodec> {
    let config = RedisConfig::new(server.url())
        .prefix(prefix)
        .timeouts(TIMEOUT, TIMEOUT)
        .value_format(ValueFormat::Raw { flags: FLAG_TEXT });
    RedisCache::new(config, TextCodec).unwrap()
}

fn raw_fixture() -> Fixture {
    let server = RedisServer::start().unwrap();
    Fixture {
        cache: Arc::new(raw_text(&server, "raw:")),
        advance: Box::new(std::thread::sleep),
        guard: Box::new(server),
    }
}

mod raw_contract {
    larder_testing::contract_tests!(super::raw_fixture);
}

fn client_fixture() -> Fixture {
    let server = RedisServer::start().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let config = RedisConfig::from_client(client)
        .prefix("own:")
        .timeouts(TIMEOUT, TIMEOUT);
    Fixture {
        cache: Arc::new(RedisCache::new(config, TextCodec).unwrap()),
        advance: Box::new(std::thread::sleep),
        guard: Box::new(server),
    }
}

mod own_client_contract {
    larder_testing::contract_tests!(super::client_fixture);
}

#[test]
fn raw_values_are_the_plain_bytes_other_clients_see() {
    let server = RedisServer::start().unwrap();
    let mut other = other_client(&server);
    let bytes: RedisCache<Vec<u8>, BytesCodec> = RedisCache::new(
        RedisConfig::new(server.url())
            .prefix("shared:")
            .value_format(ValueFormat::RAW),
        BytesCodec,
    )
    .unwrap();

    // Written by another client, read by larder (flags 0: BytesCodec's).
    redis::cmd("SET")
        .arg("shared:theirs")
        .arg(b"\x00hello\r\n")
        .query::<()>(&mut other)
        .unwrap();
    assert_eq!(
        bytes.get("theirs").unwrap(),
        Some(b"\x00hello\r\n".to_vec())
    );
    // Written by larder, read by another client: exactly the value, no header.
    bytes.set("ours", b"abc".to_vec(), Expiry::Never).unwrap();
    let seen: Vec<u8> = redis::cmd("GET")
        .arg("shared:ours")
        .query(&mut other)
        .unwrap();
    assert_eq!(seen, b"abc");

    // Text read with the flags the configuration names.
    let text = raw_text(&server, "shared:");
    assert_eq!(text.get("ours").unwrap().as_deref(), Some("abc"));
    text.set("t", "ünï".into(), Expiry::Never).unwrap();
    let seen: String = redis::cmd("GET").arg("shared:t").query(&mut other).unwrap();
    assert_eq!(seen, "ünï");

    // A codec whose flags differ from the configured ones could not be read back: refused,
    // nothing stored.
    let mismatched: RedisCache<String, TextCodec> = RedisCache::new(
        RedisConfig::new(server.url())
            .prefix("shared:")
            .value_format(ValueFormat::RAW),
        TextCodec,
    )
    .unwrap();
    match mismatched.set("never", "v".into(), Expiry::Never) {
        Err(Error::Codec(text)) => assert!(text.contains("0x10"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(bytes.get("never").unwrap(), None);

    // The flagged default still tells a foreign value from its own.
    let flagged: RedisCache<Vec<u8>, BytesCodec> =
        RedisCache::new(RedisConfig::new(server.url()).prefix("shared:"), BytesCodec).unwrap();
    assert!(matches!(flagged.get("ours"), Err(Error::Codec(_))));
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_counters_are_shared_with_redis_incr() {
    use larder::codec::U64Codec;
    let server = RedisServer::start().unwrap();
    let mut other = other_client(&server);
    let config = RedisConfig::new(server.url())
        .prefix("n:")
        .value_format(ValueFormat::RAW);
    let c: RedisCache<u64, U64Codec> = RedisCache::new(config, U64Codec).unwrap();
    redis::cmd("SET")
        .arg("n:hits")
        .arg("41")
        .query::<()>(&mut other)
        .unwrap();
    assert_eq!(Cache::incr(&c, "hits", 1).unwrap(), Some(42));
    let n: u64 = redis::cmd("INCR").arg("n:hits").query(&mut other).unwrap();
    assert_eq!(n, 43, "Redis's own INCR reads larder's counter");
    let a = c.to_async();
    assert_eq!(larder::AsyncCache::get(&a, "hits").await.unwrap(), Some(43));
    assert_eq!(
        larder::AsyncCache::decr(&a, "hits", 50).await.unwrap(),
        Some(0)
    );
    redis::cmd("SET")
        .arg("n:big")
        .arg("18446744073709551616")
        .query::<()>(&mut other)
        .unwrap();
    assert!(matches!(
        larder::AsyncCache::incr(&a, "big", 1).await,
        Err(Error::NotANumber { .. })
    ));
}

#[test]
fn own_client_with_a_password_never_shows_it() {
    let server = RedisServer::start().unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret-pw")
        .query::<()>(&mut other_client(&server))
        .unwrap();
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let client = redis::Client::open(format!("redis://:s3cret-pw@127.0.0.1:{port}/2")).unwrap();
    let c: RedisCache<String, TextCodec> =
        RedisCache::new(RedisConfig::from_client(client), TextCodec).unwrap();
    c.set("k", "v".into(), Expiry::Never).unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some("v"));
    let debug = format!("{c:?} {:?}", c.config());
    assert!(debug.contains(&format!("127.0.0.1:{port}/2")), "{debug}");
    assert!(!debug.contains("s3cret"), "{debug}");

    // A wrong password: the error names the server, not the password.
    let wrong = redis::Client::open(format!("redis://:wrong-pw@127.0.0.1:{port}")).unwrap();
    let c: RedisCache<String, TextCodec> =
        RedisCache::new(RedisConfig::from_client(wrong), TextCodec).unwrap();
    let err = c.get("k").unwrap_err().to_string();
    assert!(!err.contains("wrong-pw"), "{err}");
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_connection_manager_serves_the_async_face() {
    use larder::redis::{AsyncRedisCache, RedisLockStore};
    let server = RedisServer::start().unwrap();
    let manager = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let config = RedisConfig::from_connection_manager(manager).prefix("mgr:");
    let c: AsyncRedisCache<String, TextCodec> =
        AsyncRedisCache::new(config.clone(), TextCodec).unwrap();
    let a: &dyn larder::AsyncCache<String> = &c;
    assert_eq!(a.get("k").await.unwrap(), None);
    a.set("k", "v".into(), Expiry::Never).await.unwrap();
    assert!(a.add("n", "1".into(), Expiry::Never).await.unwrap());
    assert_eq!(a.incr("n", 41).await.unwrap(), Some(42));
    let got = a.get_multi(&["k", "n", "absent"]).await.unwrap();
    assert_eq!((got["k"].as_str(), got["n"].as_str()), ("v", "42"));
    assert!(a.touch("k", Expiry::secs(60)).await.unwrap());
    let w = a.delete_multi(&["k", "absent"]).await.unwrap();
    assert_eq!(w.applied, vec!["k".to_string()]);
    a.clear().await.unwrap();
    assert_eq!(a.get("n").await.unwrap(), None);
    let pttl: i64 = redis::cmd("PTTL")
        .arg("mgr:n")
        .query(&mut other_client(&server))
        .unwrap();
    assert_eq!(pttl, -2, "cleared on the server");

    // No blocking connections come with a ConnectionManager: typed errors, no panic.
    assert!(matches!(
        RedisCache::new(config.clone(), TextCodec),
        Err(Error::Config(text)) if text.contains("RedisCache") && text.contains("ConnectionManager")
    ));
    assert!(matches!(
        RedisLockStore::new(config),
        Err(Error::Config(text)) if text.contains("RedisLockStore")
    ));
}
