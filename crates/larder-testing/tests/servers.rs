//! The test servers are the processes they started: a second server asked for a port another
//! one holds fails to start instead of handing out the other's address.

use larder_testing::memcached::MemcachedServer;
use larder_testing::redis::RedisServer;

#[test]
fn a_memcached_on_a_taken_port_does_not_pass_for_the_running_one() {
    let first = MemcachedServer::start().unwrap();
    let port = first.port().unwrap();
    let second = MemcachedServer::start_on_port(port, &[]);
    assert!(second.is_err(), "started on a port {} holds", first.pid());
}

#[test]
fn a_memcached_on_a_port_redis_holds_does_not_pass_for_redis() {
    let first = RedisServer::start().unwrap();
    let port: u16 = first.url().rsplit(':').next().unwrap().parse().unwrap();
    assert!(MemcachedServer::start_on_port(port, &[]).is_err());
}
