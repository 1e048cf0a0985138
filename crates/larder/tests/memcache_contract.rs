//! The shared cache contract run against `MemcachedCache<String, TextCodec>` on a fresh
//! memcached per test (real time: `advance` sleeps).
#![cfg(feature = "memcached")]

use std::sync::Arc;

use larder::codec::TextCodec;
use larder::memcache::{Client, MemcachedCache};
use larder::testing::memcached::MemcachedServer;
use larder::testing::Fixture;

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

larder::contract_tests!(make);
