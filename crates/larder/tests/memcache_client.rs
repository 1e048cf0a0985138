//! The blocking memcached `Client` against real memcached servers (every operation, edge
//! values, binary keys, a 10k-key pipelined multi-get, 16 threads, stampede primitives, Unix
//! sockets) and against a scripted `FakeServer` (timeouts, garbage, truncated and oversized
//! replies: typed error, connection dropped, next call works on a new connection).
#![cfg(feature = "memcached")]

use std::collections::HashSet;
use std::time::Duration;

use larder::memcache::{Client, ClientConfig, Hit, MetaGetOptions, ServerAddr};
use larder::{Error, Expiry};
use larder_testing::memcached::{with_opaque, FakeAction, FakeServer, MemcachedServer};

fn client(server: &MemcachedServer) -> Client {
    Client::connect(server.addr()).unwrap()
}

#[test]
fn every_operation() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    assert_eq!(c.get("k").unwrap(), None);
    c.set("k", b"v1", 7, Expiry::Never).unwrap();
    assert_eq!(c.get("k").unwrap(), Some((b"v1".to_vec(), 7)));
    let item = c.gets("k").unwrap().unwrap();
    assert_eq!((item.data.as_slice(), item.flags), (&b"v1"[..], 7));
    assert_ne!(item.cas, 0);

    assert!(!c.add("k", b"x", 0, Expiry::Never).unwrap());
    assert!(c.add("k2", b"a", 0, Expiry::Never).unwrap());
    assert!(c.replace("k2", b"b", 1, Expiry::Never).unwrap());
    assert!(!c.replace("absent", b"b", 1, Expiry::Never).unwrap());
    assert!(c.append("k2", b"c").unwrap());
    assert!(c.prepend("k2", b"a").unwrap());
    assert!(!c.append("absent", b"c").unwrap());
    assert_eq!(c.get("k2").unwrap(), Some((b"abc".to_vec(), 1)));

    // cas: the current CAS wins once, a stale one loses, a missing key loses.
    assert!(c.cas("k", b"v2", 0, Expiry::Never, item.cas).unwrap());
    assert!(!c.cas("k", b"v3", 0, Expiry::Never, item.cas).unwrap());
    assert!(!c.cas("absent", b"v3", 0, Expiry::Never, 1).unwrap());
    assert_eq!(c.get("k").unwrap(), Some((b"v2".to_vec(), 0)));

    assert!(c.delete("k").unwrap());
    assert!(!c.delete("k").unwrap());

    assert_eq!(c.incr("n", 1).unwrap(), None);
    c.set("n", b"41", 0, Expiry::Never).unwrap();
    assert_eq!(c.incr("n", 1).unwrap(), Some(42));
    assert_eq!(c.decr("n", 50).unwrap(), Some(0));
    c.set("n", b"18446744073709551615", 0, Expiry::Never)
        .unwrap();
    assert_eq!(c.incr("n", 2).unwrap(), Some(1), "incr wraps at 2^64");
    c.set("text", b"abc", 0, Expiry::Never).unwrap();
    match c.incr("text", 1) {
        Err(Error::NotANumber { key }) => assert_eq!(key, "text"),
        other => panic!("{other:?}"),
    }
    // The connection is still usable after that error.
    assert_eq!(c.get("text").unwrap(), Some((b"abc".to_vec(), 0)));

    assert!(c.touch("text", Expiry::secs(100)).unwrap());
    assert!(!c.touch("absent", Expiry::secs(100)).unwrap());
    let gat = c.gat("text", Expiry::Never).unwrap().unwrap();
    assert_eq!(gat.data, b"abc");
    assert!(c.gat("absent", Expiry::Never).unwrap().is_none());

    let stats = c.stats().unwrap();
    let mine = &stats[server.addr()];
    assert!(mine["curr_items"].parse::<u64>().unwrap() >= 3);
    assert!(c.stats_group(Some("settings")).unwrap()[server.addr()].contains_key("maxbytes"));
    assert!(c.version().unwrap()[server.addr()].starts_with("1."));

    c.flush_all().unwrap();
    assert_eq!(c.get("text").unwrap(), None);
    assert_eq!(c.get("k2").unwrap(), None);
}

#[test]
fn expiry_over_thirty_days_is_absolute_and_subsecond_rounds_up() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    // 40 days: sent as an absolute time, so the item lives (a relative 3_456_000 read as an
    // absolute time would be in 1970 and expire at once).
    c.set("long", b"v", 0, Expiry::secs(40 * 86_400)).unwrap();
    assert!(c.get("long").unwrap().is_some());
    let r = c.meta_get("long", MetaGetOptions::default()).unwrap();
    let ttl = r.ttl_remaining.unwrap();
    assert!(ttl > 39 * 86_400 && ttl <= 40 * 86_400, "ttl {ttl}");
    // A sub-second TTL is one second, not "never".
    c.set("short", b"v", 0, Expiry::After(Duration::from_millis(10)))
        .unwrap();
    let r = c.meta_get("short", MetaGetOptions::default()).unwrap();
    assert!(matches!(r.ttl_remaining, Some(0..=1)), "{r:?}");
}

#[test]
fn edge_values_and_item_limit() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    for value in [&b""[..], b"\r\n", b"a\r\nEND\r\nb", b"\0\xff\r"] {
        c.set("e", value, 0, Expiry::Never).unwrap();
        assert_eq!(c.get("e").unwrap().unwrap().0, value);
    }
    // memcached 1.6.18 with -I 1m stores at most 1,048,516 bytes under a 1-byte key
    // (tests/memcache_item_limit.rs has the boundary under other keys and flags).
    let largest: Vec<u8> = (0..1_048_516u32).map(|i| (i % 251) as u8).collect();
    c.set("k", &largest, 0, Expiry::Never).unwrap();
    assert_eq!(c.get("k").unwrap().unwrap().0, largest);
}

#[test]
fn bigger_item_limit_with_dash_i() {
    let server = MemcachedServer::start_with(&["-I", "2m"]).unwrap();
    let c = Client::new(
        ClientConfig::new(vec![ServerAddr::parse(server.addr()).unwrap()]).item_size_limit(2 << 20),
    )
    .unwrap();
    let big = vec![7u8; 1_500_000];
    c.set("big", &big, 0, Expiry::Never).unwrap();
    assert_eq!(c.get("big").unwrap().unwrap().0, big);
}

#[test]
fn binary_keys_travel_base64() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    let keys: Vec<Vec<u8>> = vec![
        b"has space".to_vec(),
        vec![0, 1, 2, 255],
        "ключ с пробелом".as_bytes().to_vec(),
        vec![b'\n'; 186],
    ];
    for (i, k) in keys.iter().enumerate() {
        c.set(k, format!("v{i}").as_bytes(), 0, Expiry::Never)
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.get(k).unwrap().unwrap().0, format!("v{i}").into_bytes());
    }
    let got = c.get_multi(&keys).unwrap();
    assert_eq!(got.len(), keys.len());
    assert!(c.delete(&keys[0]).unwrap());
    assert!(matches!(
        c.get(vec![0u8; 187]),
        Err(Error::KeyInvalid { .. })
    ));
    assert!(matches!(c.get(""), Err(Error::KeyInvalid { .. })));
}

#[test]
fn pipelined_get_multi_of_ten_thousand_keys() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    let keys: Vec<String> = (0..10_000).map(|i| format!("mk:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        if i % 10 != 0 {
            c.set(k, k.as_bytes(), i as u32, Expiry::Never).unwrap();
        }
    }
    let got = c.get_multi(&keys).unwrap();
    assert_eq!(got.len(), 9_000);
    for (i, k) in keys.iter().enumerate() {
        match got.get(k.as_bytes()) {
            Some(item) => {
                assert_ne!(i % 10, 0);
                assert_eq!((item.value, item.flags), (k.as_bytes(), i as u32));
            }
            None => assert_eq!(i % 10, 0, "{k} missing"),
        }
    }
    assert!(c.get_multi::<&str>(&[]).unwrap().is_empty());
}

#[test]
fn sixteen_threads_share_one_client() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    c.set("shared", b"0", 0, Expiry::Never).unwrap();
    std::thread::scope(|s| {
        for t in 0..16 {
            let c = c.clone();
            s.spawn(move || {
                for i in 0..200 {
                    let k = format!("t{t}:{i}");
                    c.set(&k, k.as_bytes(), 0, Expiry::Never).unwrap();
                    assert_eq!(c.get(&k).unwrap().unwrap().0, k.as_bytes());
                    c.incr("shared", 1).unwrap().unwrap();
                }
            });
        }
    });
    assert_eq!(c.get("shared").unwrap().unwrap().0, b"3200");
}

#[test]
fn stampede_primitives() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    let vivify = MetaGetOptions::default().vivify(30);
    // A miss with vivify: the first caller wins, the next sees a winner elsewhere.
    let first = c.meta_get("sw", vivify).unwrap();
    assert!(first.won && !first.winner_elsewhere, "{first:?}");
    let second = c.meta_get("sw", vivify).unwrap();
    assert!(!second.won && second.winner_elsewhere, "{second:?}");
    // The winner stores with the CAS it got.
    assert!(c
        .meta_set_cas("sw", b"fresh", 3, Expiry::secs(300), first.cas)
        .unwrap());
    let hit = c.meta_get("sw", vivify).unwrap();
    assert_eq!(hit.value.as_deref(), Some(&b"fresh"[..]));
    assert!(!hit.won && !hit.stale && !hit.winner_elsewhere);
    assert_eq!(hit.flags, 3);

    // Invalidation: the next reader gets the old value, stale, and wins; later ones wait.
    assert!(c.meta_invalidate("sw", Expiry::secs(30)).unwrap());
    let stale = c.meta_get("sw", vivify).unwrap();
    assert_eq!(stale.value.as_deref(), Some(&b"fresh"[..]));
    assert!(stale.stale && stale.won, "{stale:?}");
    let later = c.meta_get("sw", vivify).unwrap();
    assert!(
        later.stale && later.winner_elsewhere && !later.won,
        "{later:?}"
    );
    // A CAS from before the invalidation no longer matches.
    assert!(!c
        .meta_set_cas("sw", b"old", 0, Expiry::Never, hit.cas)
        .unwrap());
    assert!(c
        .meta_set_cas("sw", b"new", 0, Expiry::Never, stale.cas)
        .unwrap());
    assert!(!c.meta_invalidate("absent", Expiry::secs(30)).unwrap());

    // Early recache: below the threshold, exactly one caller wins.
    c.set("rc", b"v", 0, Expiry::secs(20)).unwrap();
    let opts = MetaGetOptions::default().recache_below(30);
    let a = c.meta_get("rc", opts).unwrap();
    let b = c.meta_get("rc", opts).unwrap();
    assert!(a.won && !a.winner_elsewhere, "{a:?}");
    assert!(!b.won && b.winner_elsewhere, "{b:?}");
}

#[test]
fn unix_socket_server() {
    let dir = std::env::temp_dir().join(format!("larder-mc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = MemcachedServer::start_unix(dir.join("mc.sock")).unwrap();
    let c = Client::connect(server.addr()).unwrap();
    c.set("u", b"unix", 0, Expiry::Never).unwrap();
    assert_eq!(c.get("u").unwrap().unwrap().0, b"unix");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

fn fake_client(fake: &FakeServer, timeout: Duration) -> Client {
    Client::new(
        ClientConfig::new(vec![ServerAddr::parse(fake.addr()).unwrap()]).io_timeout(timeout),
    )
    .unwrap()
}

/// A fake whose first connection answers with `first`, and every later one answers each
/// `mg` with a miss.
fn fake_bad_then_good(first: FakeAction) -> FakeServer {
    FakeServer::start(move |conn, req| {
        if conn == 0 {
            first.clone()
        } else {
            FakeAction::Reply(with_opaque(req, b"EN\r\n"))
        }
    })
    .unwrap()
}

#[test]
fn silent_server_times_out() {
    let fake = FakeServer::start(|_, _| FakeAction::Silent).unwrap();
    let c = fake_client(&fake, Duration::from_millis(200));
    match c.get("k") {
        Err(Error::Timeout { what, after }) => {
            assert_eq!(after, Duration::from_millis(200));
            assert!(what.contains(fake.addr()), "{what}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_replies_give_typed_errors_and_drop_the_connection() {
    type Check = fn(&Error) -> bool;
    let cases: Vec<(FakeAction, Check)> = vec![
        (FakeAction::Reply(b"GARBAGE\r\n".to_vec()), |e| {
            matches!(e, Error::Protocol(_))
        }),
        (
            FakeAction::Reply(b"VA 999999999999\r\n".to_vec()),
            |e| matches!(e, Error::Protocol(m) if m.contains("999999999999")),
        ),
        (FakeAction::Reply(b"VA 3\r\nabcdef\r\n".to_vec()), |e| {
            matches!(e, Error::Protocol(_))
        }),
        (FakeAction::ReplyAndClose(b"VA 10\r\nabc".to_vec()), |e| {
            matches!(e, Error::Io(_))
        }),
        (FakeAction::Reply(b"STORED\r\n".to_vec()), |e| {
            matches!(e, Error::Protocol(_))
        }),
        (
            FakeAction::Reply(b"CLIENT_ERROR bad command line format\r\n".to_vec()),
            |e| matches!(e, Error::Client(m) if m == "bad command line format"),
        ),
    ];
    for (action, is_expected) in cases {
        let fake = fake_bad_then_good(action.clone());
        let c = fake_client(&fake, Duration::from_secs(2));
        let err = c.get("k").unwrap_err();
        assert!(is_expected(&err), "{action:?} gave {err:?}");
        assert_eq!(c.get("k").unwrap(), None, "next call after {action:?}");
        assert_eq!(fake.connections(), 2, "a new connection after {action:?}");
        let stats = c.pool_stats()[0];
        assert_eq!(
            (stats.created, stats.closed),
            (2, 1),
            "{action:?}: {stats:?}"
        );
    }
}

#[test]
fn server_errors_keep_the_connection() {
    let fake = FakeServer::start(|_, req| {
        if req.starts_with(b"ms") {
            FakeAction::Reply(b"SERVER_ERROR object too large for cache\r\n".to_vec())
        } else {
            FakeAction::Reply(with_opaque(req, b"EN\r\n"))
        }
    })
    .unwrap();
    let c = fake_client(&fake, Duration::from_secs(2));
    match c.set("k", &[1; 100], 0, Expiry::Never) {
        Err(Error::ValueTooLarge { size, limit }) => assert_eq!((size, limit), (100, None)),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get("k").unwrap(), None);
    assert_eq!(fake.connections(), 1);
    assert_eq!(c.pool_stats()[0].closed, 0);
}

#[test]
fn routing_spreads_keys_over_servers() {
    let servers: Vec<MemcachedServer> = (0..3).map(|_| MemcachedServer::start().unwrap()).collect();
    let list = servers
        .iter()
        .map(|s| s.addr())
        .collect::<Vec<_>>()
        .join(",");
    let c = Client::connect(&list).unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    for k in &keys {
        c.set(k, k.as_bytes(), 0, Expiry::Never).unwrap();
    }
    assert_eq!(c.get_multi(&keys).unwrap().len(), 300);
    let used: HashSet<String> = servers
        .iter()
        .filter(|s| {
            let one = client(s);
            one.stats().unwrap()[s.addr()]["curr_items"] != "0"
        })
        .map(|s| s.addr().to_owned())
        .collect();
    assert_eq!(used.len(), 3, "every server holds some keys");
}

#[test]
fn multi_get_mixes_text_and_binary_chunks() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    // 600 keys: text-protocol chunks for valid keys, meta base64 chunks where a key is binary.
    let mut keys: Vec<Vec<u8>> = (0..600).map(|i| format!("x{i}").into_bytes()).collect();
    keys[300] = b"with space".to_vec();
    keys.push(b"x1".to_vec()); // a repeated key
    for k in keys.iter().step_by(3) {
        c.set(k, k, 9, Expiry::Never).unwrap();
    }
    let got = c.get_multi(&keys).unwrap();
    // Every third of the 600 keys, plus "x1" stored through its repeat at index 600.
    assert_eq!(got.len(), 201);
    assert!(got.contains_key(&b"with space"[..]) && got.contains_key(&b"x1"[..]));
    for hit in &got {
        assert_eq!((hit.value, hit.flags), (hit.key, 9));
    }
}

#[test]
fn get_multi_with_visits_every_hit_once_in_place() {
    let server = MemcachedServer::start().unwrap();
    let c = client(&server);
    // Text chunks (over 256 keys: several, pipelined) and one binary key (a meta chunk).
    let mut keys: Vec<Vec<u8>> = (0..700).map(|i| format!("w{i}").into_bytes()).collect();
    keys[5] = vec![0, 159, 146, 150];
    for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 4 != 1) {
        c.set(k, format!("value {i}").as_bytes(), i as u32, Expiry::Never)
            .unwrap();
    }
    let mut seen = std::collections::HashMap::new();
    let hits = c
        .get_multi_with(&keys, |hit| {
            let before = seen.insert(hit.key.to_vec(), (hit.value.to_vec(), hit.flags));
            assert!(before.is_none(), "{:?} visited twice", hit.key);
        })
        .unwrap();
    assert_eq!((hits, seen.len()), (525, 525));
    for (i, k) in keys.iter().enumerate() {
        let expected = (i % 4 != 1).then(|| (format!("value {i}").into_bytes(), i as u32));
        assert_eq!(seen.get(k).cloned(), expected, "key #{i}");
    }
    // The owning form sees the same.
    let owned = c.get_multi(&keys).unwrap();
    assert_eq!(owned.len(), 525);
    assert!(owned
        .iter()
        .all(|hit| seen.get(hit.key) == Some(&(hit.value.to_vec(), hit.flags))));
    let found = owned.get_owned(&keys[6]).expect("key #6 hit");
    assert_eq!((&found.value[..], found.flags), (&b"value 6"[..], 6));
    assert!(owned.get(&keys[4]).is_some() && owned.get(&keys[5]).is_none());
    let detached: Vec<(bytes::Bytes, Hit)> = owned.into_iter().collect();
    assert_eq!(detached.len(), 525);
    assert!(detached
        .iter()
        .all(|(k, hit)| seen.get(&k[..]) == Some(&(hit.value.to_vec(), hit.flags))));
    assert_eq!(
        c.get_multi_with::<&str>(&[], |_| panic!("no keys"))
            .unwrap(),
        0
    );
}

#[test]
fn text_multi_get_rejects_values_for_keys_not_asked() {
    let fake = FakeServer::start(|conn, req| {
        if conn == 0 && req.starts_with(b"get ") {
            FakeAction::Reply(b"VALUE zzz 0 1\r\na\r\nEND\r\n".to_vec())
        } else {
            FakeAction::Reply(b"END\r\n".to_vec())
        }
    })
    .unwrap();
    let c = fake_client(&fake, Duration::from_secs(2));
    assert!(matches!(c.get_multi(&["a", "b"]), Err(Error::Protocol(_))));
    assert!(c.get_multi(&["a", "b"]).unwrap().is_empty());
    assert_eq!(fake.connections(), 2);
}

#[test]
fn idle_connection_closed_by_the_server_is_replaced_before_use() {
    let fake = FakeServer::start(|conn, req| {
        if conn == 0 {
            FakeAction::ReplyAndClose(with_opaque(req, b"EN\r\n"))
        } else {
            FakeAction::Reply(with_opaque(req, b"EN\r\n"))
        }
    })
    .unwrap();
    let c = Client::new(ClientConfig::new(vec![
        ServerAddr::parse(fake.addr()).unwrap()
    ]))
    .unwrap();
    assert_eq!(c.get("k").unwrap(), None);
    // Give the fake a moment to finish closing its side after the reply.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        c.get("k").unwrap(),
        None,
        "the dead idle connection was not used"
    );
    assert_eq!(fake.connections(), 2);
    assert_eq!(c.pool_stats()[0].recycle_failures, 1);
}

#[test]
fn clients_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Client>();
    #[cfg(feature = "tokio")]
    check::<larder::memcache::AsyncClient>();
}

#[test]
fn delete_cas_deletes_only_an_unchanged_item() {
    let server = larder_testing::memcached::MemcachedServer::start().unwrap();
    let client = larder::memcache::Client::connect(server.addr()).unwrap();
    client
        .set("lock", b"mine", 0, larder::Expiry::Never)
        .unwrap();
    let seen = client.gets("lock").unwrap().unwrap();
    client
        .set("lock", b"theirs", 0, larder::Expiry::Never)
        .unwrap();
    assert!(
        !client.delete_cas("lock", seen.cas).unwrap(),
        "changed since read: kept"
    );
    assert_eq!(client.get("lock").unwrap().unwrap().0, b"theirs");
    let now = client.gets("lock").unwrap().unwrap();
    assert!(client.delete_cas("lock", now.cas).unwrap());
    assert!(client.get("lock").unwrap().is_none());
    assert!(!client.delete_cas("lock", now.cas).unwrap(), "missing");
}
