//! The memcached clients over a cluster of real memcached servers: keys land where the ring
//! (pylibmc's ketama) says; a killed server is marked dead after `failure_limit` failures,
//! its keys move to the others (Rehash) or fail fast without network (FailFast), and it
//! rejoins after `retry_interval` once it is back; a SIGSTOPped server times out, is marked
//! dead, and rejoins after SIGCONT; a multi-get returns the live servers' hits.
#![cfg(feature = "memcached")]

use std::sync::Arc;
use std::time::Duration;

use larder::clock::ManualClock;
use larder::memcache::ring::Ring;
use larder::memcache::{
    Client, ClientConfig, Distribution, FailoverConfig, FailoverMode, KeyHash, ServerAddr,
};
use larder::{Error, Expiry};
use larder_testing::memcached::MemcachedServer;

fn start3() -> Vec<MemcachedServer> {
    (0..3).map(|_| MemcachedServer::start().unwrap()).collect()
}

fn specs(servers: &[MemcachedServer]) -> Vec<String> {
    servers.iter().map(|s| s.addr().to_owned()).collect()
}

fn ring(addrs: &[String]) -> Ring {
    Ring::from_specs(addrs, Distribution::Ketama, KeyHash::OneAtATime).unwrap()
}

fn cluster_client(addrs: &[String], mode: FailoverMode, clock: &Arc<ManualClock>) -> Client {
    let config = ClientConfig::from_specs(&addrs.join(","))
        .unwrap()
        .io_timeout(Duration::from_millis(300))
        .failover(
            FailoverConfig::default()
                .failure_limit(2)
                .retry_interval(Duration::from_secs(2))
                .mode(mode),
        )
        .clock(clock.clone())
        .connect_timeout(Duration::from_millis(300));
    Client::new(config).unwrap()
}

/// The first key `key-N` the ring puts on `server`.
fn key_on(ring: &Ring, server: usize) -> String {
    (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| ring.server_for(k.as_bytes()) == Some(server))
        .unwrap()
}

fn is_transport(e: &Error) -> bool {
    e.is_transport()
}

#[test]
fn keys_land_where_the_ketama_ring_says() {
    let servers = start3();
    let addrs = specs(&servers);
    let c = Client::connect(&addrs.join(",")).unwrap();
    let ring = ring(&addrs);
    let singles: Vec<Client> = addrs.iter().map(|a| Client::connect(a).unwrap()).collect();
    let mut per_server = [0; 3];
    for i in 0..200 {
        let key = format!("placed:{i}");
        c.set(&key, key.as_bytes(), 0, Expiry::Never).unwrap();
        let home = ring.server_for(key.as_bytes()).unwrap();
        per_server[home] += 1;
        for (s, single) in singles.iter().enumerate() {
            let found = single.get(&key).unwrap().is_some();
            assert_eq!(found, s == home, "{key}: on server {s}? predicted {home}");
        }
    }
    assert!(per_server.iter().all(|&n| n > 0), "{per_server:?}");
    // get_multi fans out and finds them all.
    let keys: Vec<String> = (0..200).map(|i| format!("placed:{i}")).collect();
    assert_eq!(c.get_multi(&keys).unwrap().len(), 200);
}

#[test]
fn killed_server_is_rehashed_around_and_rejoins_after_restart() {
    let mut servers = start3();
    let addrs = specs(&servers);
    let ring = ring(&addrs);
    let clock = Arc::new(ManualClock::new());
    let c = cluster_client(&addrs, FailoverMode::Rehash, &clock);
    let key = key_on(&ring, 1);
    c.set(&key, b"before", 0, Expiry::Never).unwrap();
    let port = servers[1].port().unwrap();
    drop(servers.remove(1));

    // failure_limit (2) transport failures mark it dead.
    for _ in 0..2 {
        let err = c.set(&key, b"x", 0, Expiry::Never).unwrap_err();
        assert!(is_transport(&err), "{err}");
    }
    let health = c.health();
    assert!(!health[1].alive && health[0].alive && health[2].alive);
    assert_eq!(health[1].consecutive_failures, 2);
    assert_eq!(health[1].dead_for, Some(Duration::ZERO));
    let stats = c.stats().unwrap();
    assert_eq!(stats[&addrs[1]]["larder:state"], "dead");
    assert_eq!(stats[&addrs[0]]["larder:state"], "alive");
    assert!(stats[&addrs[0]].contains_key("pid"));

    // Its keys are served by the live servers.
    c.set(&key, b"moved", 0, Expiry::Never).unwrap();
    assert_eq!(c.get(&key).unwrap(), Some((b"moved".to_vec(), 0)));
    let on_live = [&addrs[0], &addrs[2]]
        .iter()
        .filter(|a| Client::connect(a).unwrap().get(&key).unwrap().is_some())
        .count();
    assert_eq!(on_live, 1);

    // Back on the same port; before the interval nothing probes it, after it the next call
    // for its keys does, and it rejoins.
    let revived = MemcachedServer::start_on_port(port, &[]).unwrap();
    clock.advance(Duration::from_millis(1999));
    assert_eq!(c.get(&key).unwrap(), Some((b"moved".to_vec(), 0)));
    assert!(!c.health()[1].alive);
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        c.get(&key).unwrap(),
        None,
        "the probe reads the fresh server"
    );
    let health = c.health();
    assert!(health[1].alive);
    assert_eq!(health[1].consecutive_failures, 0);
    assert_eq!(health[1].total_failures, 2);
    c.set(&key, b"home", 0, Expiry::Never).unwrap();
    let direct = Client::connect(revived.addr()).unwrap();
    assert_eq!(direct.get(&key).unwrap(), Some((b"home".to_vec(), 0)));
}

#[test]
fn killed_server_fails_fast_without_network_in_failfast_mode() {
    let mut servers = start3();
    let addrs = specs(&servers);
    let ring = ring(&addrs);
    let clock = Arc::new(ManualClock::new());
    let c = cluster_client(&addrs, FailoverMode::FailFast, &clock);
    let dead_key = key_on(&ring, 2);
    let live_key = key_on(&ring, 0);
    c.set(&live_key, b"v", 0, Expiry::Never).unwrap();
    let port = servers[2].port().unwrap();
    drop(servers.remove(2));
    for _ in 0..2 {
        assert!(c.get(&dead_key).is_err());
    }
    assert!(!c.health()[2].alive);
    let connects_before = c.pool_stats()[2].created;
    for _ in 0..5 {
        match c.get(&dead_key) {
            Err(Error::ServerDead(addr)) => assert_eq!(addr, addrs[2]),
            other => panic!("expected ServerDead, got {other:?}"),
        }
    }
    // No connection was attempted and no failure counted: nothing touched the network.
    assert_eq!(c.pool_stats()[2].created, connects_before);
    assert_eq!(c.health()[2].total_failures, 2);
    // Other servers' keys are unaffected; a multi-get returns the live servers' hits.
    assert_eq!(c.get(&live_key).unwrap(), Some((b"v".to_vec(), 0)));
    let hits = c.get_multi(&[&live_key, &dead_key]).unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits.contains_key(live_key.as_bytes()));
    assert!(matches!(
        c.get_multi(&[&dead_key]),
        Err(Error::ServerDead(_))
    ));

    // A failed probe keeps it dead for another interval.
    clock.advance(Duration::from_secs(2));
    assert!(is_transport(&c.get(&dead_key).unwrap_err()));
    assert!(matches!(c.get(&dead_key), Err(Error::ServerDead(_))));
    let _revived = MemcachedServer::start_on_port(port, &[]).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.get(&dead_key).unwrap(), None);
    assert!(c.health()[2].alive);
    c.set(&dead_key, b"back", 0, Expiry::Never).unwrap();
}

#[test]
fn stopped_server_times_out_is_marked_dead_and_rejoins_after_sigcont() {
    let servers = start3();
    let addrs = specs(&servers);
    let ring = ring(&addrs);
    let clock = Arc::new(ManualClock::new());
    let c = cluster_client(&addrs, FailoverMode::Rehash, &clock);
    let key = key_on(&ring, 0);
    c.set(&key, b"v", 0, Expiry::Never).unwrap();
    let pid = servers[0].pid().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    // The signal is asynchronous: wait until the process is really stopped (state T).
    let stat = format!("/proc/{pid}/stat");
    while !std::fs::read_to_string(&stat)
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
        .unwrap_or(true)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..2 {
        match c.get(&key) {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(300)),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    assert!(!c.health()[0].alive);
    // Rehashed meanwhile: the key is missing on its stand-in, writes succeed.
    assert_eq!(c.get(&key).unwrap(), None);
    c.set(&key, b"elsewhere", 0, Expiry::Never).unwrap();

    signal("-CONT");
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.get(&key).unwrap(), Some((b"v".to_vec(), 0)));
    assert!(c.health()[0].alive);
}

#[test]
fn multi_get_returns_live_hits_when_one_server_fails() {
    let mut servers = start3();
    let addrs = specs(&servers);
    let ring = ring(&addrs);
    let clock = Arc::new(ManualClock::new());
    let config = ClientConfig::from_specs(&addrs.join(","))
        .unwrap()
        .failover(FailoverConfig::default().failure_limit(5))
        .clock(clock.clone());
    let c = Client::new(config).unwrap();
    let keys: Vec<String> = (0..60).map(|i| format!("mg:{i}")).collect();
    for k in &keys {
        c.set(k, b"v", 0, Expiry::Never).unwrap();
    }
    drop(servers.remove(1));
    let hits = c.get_multi(&keys).unwrap();
    let expected = keys
        .iter()
        .filter(|k| ring.server_for(k.as_bytes()) != Some(1))
        .count();
    assert_eq!(hits.len(), expected);
    assert!(expected < keys.len());
    assert_eq!(c.health()[1].consecutive_failures, 1);
    // Only the dead server's keys: an error.
    let dead_keys: Vec<&String> = keys
        .iter()
        .filter(|k| ring.server_for(k.as_bytes()) == Some(1))
        .collect();
    assert!(c.get_multi(&dead_keys).is_err());
}

#[test]
fn server_addresses_parse_with_weights_and_ipv6() {
    let (addr, weight) = ServerAddr::parse_weighted("[::1]:11212:5").unwrap();
    assert_eq!((addr.to_string(), weight), ("[::1]:11212".to_owned(), 5));
    assert!(
        ServerAddr::parse("127.0.0.1:1:3").is_err(),
        "no weight here"
    );
    let c = ClientConfig::from_specs("127.0.0.1:1:3,127.0.0.1:2").unwrap();
    assert_eq!(c.weights, vec![3, 1]);
}

/// `MemcachedCache` multi-writes go to the ring's servers (batched per server, in parallel)
/// and report per-key outcomes; the blocking and async paths agree.
#[test]
fn cache_multi_writes_land_on_ring_servers_with_per_key_outcomes() {
    use larder::codec::TextCodec;
    use larder::memcache::MemcachedCache;
    use larder::Cache;

    let servers = start3();
    let addrs = specs(&servers);
    let ring = ring(&addrs);
    let cache: MemcachedCache<String, TextCodec> =
        MemcachedCache::new(Client::connect(&addrs.join(",")).unwrap(), TextCodec);
    let names: Vec<String> = (0..300).map(|i| format!("mw:{i}")).collect();
    let items = |from: usize, to: usize, v: &str| -> Vec<(&str, String)> {
        names[from..to]
            .iter()
            .map(|k| (k.as_str(), v.to_owned()))
            .collect()
    };
    let written = cache.set_multi(items(0, 200, "a"), Expiry::Never).unwrap();
    assert_eq!(written.applied.len(), 200);
    let singles: Vec<Client> = addrs.iter().map(|a| Client::connect(a).unwrap()).collect();
    for k in &names[..200] {
        let home = ring.server_for(k.as_bytes()).unwrap();
        for (s, single) in singles.iter().enumerate() {
            assert_eq!(single.get(k).unwrap().is_some(), s == home, "{k}");
        }
    }
    // add: only the new half; replace: only the existing ones; delete: what is there.
    let added = cache
        .add_multi(items(100, 300, "b"), Expiry::Never)
        .unwrap();
    assert_eq!(added.applied, names[200..300].to_vec());
    assert_eq!(added.not_applied, names[100..200].to_vec());
    let missing: Vec<String> = (0..50).map(|i| format!("absent:{i}")).collect();
    let mut replace_items = items(0, 50, "c");
    replace_items.extend(missing.iter().map(|k| (k.as_str(), "c".to_owned())));
    let replaced = cache.replace_multi(replace_items, Expiry::Never).unwrap();
    assert_eq!(replaced.applied, names[..50].to_vec());
    assert_eq!(replaced.not_applied, missing);
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let got = cache.get_multi(&all).unwrap();
    assert_eq!(got.len(), 300);
    assert_eq!(got["mw:0"], "c");
    assert_eq!(got["mw:150"], "a");
    assert_eq!(got["mw:250"], "b");
    let mut del: Vec<&str> = all[..10].to_vec();
    del.push("absent:0");
    let deleted = cache.delete_multi(&del).unwrap();
    assert_eq!(deleted.applied.len(), 10);
    assert_eq!(deleted.not_applied, vec!["absent:0".to_owned()]);
    assert_eq!(cache.get("mw:0").unwrap(), None);

    #[cfg(feature = "tokio")]
    {
        use larder::AsyncCache;
        let async_cache = cache.to_async();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let written = async_cache
                .set_multi(items(0, 100, "d"), Expiry::Never)
                .await
                .unwrap();
            assert_eq!(written.applied.len(), 100);
            let deleted = async_cache.delete_multi(&all[..100]).await.unwrap();
            assert_eq!(deleted.applied.len(), 100);
            let got = async_cache.get_multi(&all).await.unwrap();
            assert_eq!(got.len(), 200);
        });
    }
}

/// The async client fails over and rejoins like the blocking one, and its multi-get keeps
/// the live servers' hits.
#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_client_fails_over_and_rejoins() {
    use larder::memcache::AsyncClient;

    let mut servers = start3();
    let addrs = specs(&servers);
    let ring = ring(&addrs);
    let clock = Arc::new(ManualClock::new());
    let config = ClientConfig::from_specs(&addrs.join(","))
        .unwrap()
        .io_timeout(Duration::from_millis(300))
        .clock(clock.clone())
        .connect_timeout(Duration::from_millis(300));
    let c = AsyncClient::new(config).unwrap();
    let key = key_on(&ring, 1);
    let other = key_on(&ring, 0);
    c.set(&key, b"v", 0, Expiry::Never).await.unwrap();
    c.set(&other, b"o", 0, Expiry::Never).await.unwrap();
    let port = servers[1].port().unwrap();
    drop(servers.remove(1));

    // A multi-get with the failing server keeps the other's hit (1st failure)...
    let hits = c.get_multi(&[&key, &other]).await.unwrap();
    assert_eq!(hits.len(), 1);
    // ...and a single get is the 2nd: dead.
    assert!(c.get(&key).await.unwrap_err().is_transport());
    let h = c.health();
    assert!(!h[1].alive && h[0].alive);
    assert_eq!(c.stats().await.unwrap()[&addrs[1]]["larder:state"], "dead");
    c.set(&key, b"moved", 0, Expiry::Never).await.unwrap();
    assert_eq!(c.get(&key).await.unwrap().unwrap().0, b"moved");

    let _revived = MemcachedServer::start_on_port(port, &[]).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.get(&key).await.unwrap(), None);
    assert!(c.health()[1].alive);
}

/// `restart()` brings a server back on the same port: the client's pooled connection fails
/// once (not enough to mark it dead), the next call reconnects.
#[test]
fn restarted_server_costs_one_failure_not_a_dead_mark() {
    let mut server = MemcachedServer::start().unwrap();
    let addr = server.addr().to_owned();
    let c = Client::connect(&addr).unwrap();
    c.set("k", b"v", 0, Expiry::Never).unwrap();
    server.restart().unwrap();
    assert_eq!(server.addr(), addr);
    // The pooled connection is gone: either this call fails once or the idle check
    // replaced it; either way the server stays alive and the next call works.
    let first = c.get("k");
    assert!(matches!(first, Ok(None)) || first.as_ref().is_err_and(Error::is_transport));
    assert_eq!(c.get("k").unwrap(), None);
    let h = c.health();
    assert!(h[0].alive);
    assert_eq!(h[0].consecutive_failures, 0);
}
