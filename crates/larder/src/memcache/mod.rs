//! The memcached client: sans-IO protocol, blocking and async clients, routing, pools.

pub mod ring;
