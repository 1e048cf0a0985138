//! The item limit against a real memcached: the largest value the clients let through is the
//! largest the server stores (the limit bounds the whole item: header, key, flags, CAS), one
//! byte more is refused before sending with that limit, and a value the server itself refuses
//! (a client configured above the server's `-I`) is reported without a limit that would
//! contradict it. Blocking and async clients, `-I 1m` and `-I 2m`, text and base64 keys.
#![cfg(all(feature = "memcached", feature = "tokio"))]

use larder::codec::BytesCodec;
use larder::memcache::{AsyncClient, Client, ClientConfig, MemcachedCache, ServerAddr};
use larder::{Cache, Error, Expiry};
use larder_testing::memcached::MemcachedServer;

const MIB: usize = 1 << 20;

/// A key, its client flags, and the largest value memcached 1.6.18 stores under them with
/// `-I 1m` (found by bisection against the server; the same overhead holds at `-I 2m`).
struct Case {
    key: Vec<u8>,
    flags: u32,
    largest_at_1m: usize,
}

fn cases() -> Vec<Case> {
    let case = |key: &[u8], flags, largest_at_1m| Case {
        key: key.to_vec(),
        flags,
        largest_at_1m,
    };
    vec![
        case(b"k", 0, 1_048_516),
        case(b"k", 16, 1_048_512),
        case(&[b'k'; 250], 0, 1_048_267),
        case(&[b'k'; 100], 7, 1_048_413),
        // Binary keys travel base64; the server keeps (and counts) them decoded.
        case(b"a b", 0, 1_048_514),
        case(&[0; 186], 16, 1_048_327),
    ]
}

fn config(server: &MemcachedServer, item_limit: usize) -> ClientConfig {
    ClientConfig::new(vec![ServerAddr::parse(server.addr()).unwrap()]).item_size_limit(item_limit)
}

fn value(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn start(item_limit: usize) -> MemcachedServer {
    MemcachedServer::start_with(&["-I", &format!("{}m", item_limit / MIB)]).unwrap()
}

fn assert_refused_before_sending(got: larder::Result<()>, size: usize, limit: usize) {
    match got {
        Err(Error::ValueTooLarge { size: s, limit: l }) => {
            assert_eq!((s, l), (size, Some(limit)))
        }
        other => panic!("{size} bytes, limit {limit}: {other:?}"),
    }
}

fn assert_refused_by_server(got: larder::Result<()>, size: usize) {
    match got {
        Err(e @ Error::ValueTooLarge { limit: None, .. }) => {
            let text = e.to_string();
            assert_eq!(
                text,
                format!("value too large: {size} bytes, refused by the server")
            );
        }
        other => panic!("{size} bytes: {other:?}"),
    }
}

#[test]
fn blocking_client_lets_through_exactly_what_the_server_stores() {
    for item_limit in [MIB, 2 * MIB] {
        let server = start(item_limit);
        let exact = Client::new(config(&server, item_limit)).unwrap();
        // Configured above the server's -I: its own check lets one byte too many through.
        let loose = Client::new(config(&server, item_limit + 65_536)).unwrap();
        for case in cases() {
            let largest = case.largest_at_1m + (item_limit - MIB);
            let (key, flags) = (&case.key[..], case.flags);
            let fits = value(largest);
            exact.set(key, &fits, flags, Expiry::Never).unwrap();
            assert_eq!(exact.get(key).unwrap(), Some((fits.clone(), flags)));

            let over = value(largest + 1);
            assert_refused_before_sending(
                exact.set(key, &over, flags, Expiry::Never),
                largest + 1,
                largest,
            );
            assert_eq!(exact.get(key).unwrap(), Some((fits, flags)), "never sent");

            assert_refused_by_server(loose.set(key, &over, flags, Expiry::Never), largest + 1);
            // memcached drops the item a refused set would have replaced.
            assert_eq!(exact.get(key).unwrap(), None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_lets_through_exactly_what_the_server_stores() {
    for item_limit in [MIB, 2 * MIB] {
        let server = start(item_limit);
        let exact = AsyncClient::new(config(&server, item_limit)).unwrap();
        let loose = AsyncClient::new(config(&server, item_limit + 65_536)).unwrap();
        for case in cases() {
            let largest = case.largest_at_1m + (item_limit - MIB);
            let (key, flags) = (&case.key[..], case.flags);
            let fits = value(largest);
            exact.set(key, &fits, flags, Expiry::Never).await.unwrap();
            assert_eq!(exact.get(key).await.unwrap(), Some((fits.clone(), flags)));

            let over = value(largest + 1);
            assert_refused_before_sending(
                exact.set(key, &over, flags, Expiry::Never).await,
                largest + 1,
                largest,
            );
            assert_eq!(exact.get(key).await.unwrap(), Some((fits, flags)));

            assert_refused_by_server(
                loose.set(key, &over, flags, Expiry::Never).await,
                largest + 1,
            );
            assert_eq!(exact.get(key).await.unwrap(), None);
        }
    }
}

/// The case of the report: exactly 1 MiB on `-I 1m` used to pass the check and then be
/// refused with "limit 1048576"; through the cache the message states the real limit.
#[test]
fn one_mib_value_on_dash_i_1m_names_the_real_limit() {
    let server = start(MIB);
    let cache = MemcachedCache::new(Client::new(config(&server, MIB)).unwrap(), BytesCodec);
    let err = cache.set("k", vec![7; MIB], Expiry::Never).unwrap_err();
    assert_eq!(
        err.to_string(),
        "value too large: 1048576 bytes, limit 1048516"
    );
    let largest = vec![7; 1_048_516];
    cache.set("k", largest.clone(), Expiry::Never).unwrap();
    assert_eq!(cache.get("k").unwrap(), Some(largest));
}
