//! The test harness of larder, kept out of the library so it ships none: what larder's own
//! tests, the CLI's tests and the benchmarks share.
//!
//! - [`contract`]: the one [`Cache`](larder::Cache) contract as checks every backend runs,
//!   and [`contract_tests!`] to generate them as `#[test]`s from a [`Fixture`].
//! - [`memcached`]: [`MemcachedServer`](memcached::MemcachedServer), a real memcached
//!   process on a free loopback port (or a Unix socket); [`FakeServer`](memcached::FakeServer),
//!   a scripted TCP peer for hostile replies.
//! - [`redis`]: [`RedisServer`](redis::RedisServer), a real redis-server without persistence.
//! - [`log`]: [`warnings`](log::warnings), the warnings the library logged.
//!
//! It depends on larder without default features and uses only its public API, so a test
//! built with `--no-default-features` still tests exactly those features.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod contract;
pub mod log;
pub mod memcached;
pub mod redis;

pub use contract::Fixture;
