//! The memcached client: sans-IO protocol ([`proto`]), the blocking [`Client`], the async
//! `AsyncClient` (feature `tokio`), key placement ([`ring`]: ketama and the other Python
//! clients' distributions), server failover ([`FailoverConfig`]), [`MemcachedCache`] /
//! `AsyncMemcachedCache`, the [`Cache`](crate::Cache) / `AsyncCache` backend over them, and
//! dogpile on memcached ([`MemcachedLockStore`], [`MetaRegion`]).
//!
//! Both clients speak the meta protocol for key operations (binary keys travel base64 with the
//! `b` flag) and the text protocol for multi-gets of text keys, `flush_all`, `stats` and
//! `version`. Both drive one engine ([`exchange`](self) below): every reply is tied to its
//! request, a connection is reused only in step with its server, a read found on a closed
//! pooled connection is retried once, and each call has one deadline.
//!
//! Layers, bottom up: `proto` (bytes ↔ requests and replies) → `ops` (each operation's
//! request and reply handler) and `multi_get` → `exchange` (the sans-IO state machine of one
//! operation on one connection, and the rules of reuse, retry and deadline) → the drivers
//! `client` (std) and `async_client` (tokio), which only move bytes and wait, with the
//! public operations listed once in `api`.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::{Error, Result};

mod api;
#[cfg(feature = "tokio")]
mod async_cache;
#[cfg(feature = "tokio")]
mod async_client;
mod cache;
mod client;
mod cluster;
mod dogpile;
mod exchange;
mod multi_get;
mod net;
mod ops;
/// The sans-IO protocol (encoders and the reply parser), for fuzzing and tests: hidden
/// from the docs and not semver surface; the clients are the API.
#[doc(hidden)]
pub mod proto;
pub mod ring;

#[cfg(feature = "tokio")]
pub use async_cache::AsyncMemcachedCache;
#[cfg(feature = "tokio")]
pub use async_client::AsyncClient;
pub use cache::MemcachedCache;
pub use client::Client;
pub use cluster::{FailoverConfig, FailoverMode, ServerHealth};
pub use dogpile::{MemcachedLockStore, MetaRegion};
pub use multi_get::{Hit, HitRef, MultiGetHits, MultiGetIter};
pub use ops::{GetsItem, MetaGetOptions, MetaGetResult};
pub use proto::SetMode;
pub use ring::{Distribution, KeyHash, ServerAddr};

/// Configuration of a [`Client`] (and `AsyncClient`).
///
/// Made by [`new`](Self::new) or [`from_specs`](Self::from_specs) with defaults, then
/// adjusted with one setter per field (the fields stay readable). Non-exhaustive, so a new
/// option is not a breaking change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The servers, in configuration order (the order the ring is built from).
    pub servers: Vec<ServerAddr>,
    /// Per-server weights, parallel to `servers`; empty means every weight is 1.
    pub weights: Vec<u32>,
    /// How keys are spread over the servers (ketama by default, as pylibmc with
    /// `behaviors={"ketama": True}`).
    pub distribution: Distribution,
    /// The key hash of the `Ketama` and `Modula` distributions (one-at-a-time by default).
    pub key_hash: KeyHash,
    /// When a server is marked dead and what happens to its keys then.
    pub failover: FailoverConfig,
    /// The clock that times dead servers' retry intervals (a `ManualClock` in tests).
    pub clock: SharedClock,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on each wait for reply bytes.
    pub read_timeout: Duration,
    /// Bound on each wait to write request bytes.
    pub write_timeout: Duration,
    /// Bound on one whole call: connecting (when a new connection is needed), writing and
    /// reading, however the bytes trickle in; a multi-key call's servers share it.
    pub operation_timeout: Duration,
    /// Set `TCP_NODELAY` on TCP connections.
    pub nodelay: bool,
    /// Most connections per server, for each client (a caller beyond it waits up to
    /// `pool_wait_timeout` for one to come back).
    pub max_connections_per_server: usize,
    /// How long a caller waits for a free pooled connection.
    pub pool_wait_timeout: Duration,
    /// A pooled connection idle this long is closed instead of reused.
    pub idle_timeout: Duration,
    /// A pooled connection idle at least this long is probed before reuse (one non-blocking
    /// peek: closed by the server, or holding bytes nobody asked for, and it is replaced).
    /// Connections reused sooner skip the syscall: stray replies are still caught by the
    /// opaque, key and leftover-byte checks of every exchange, and a read that finds its
    /// connection closed is retried. `Duration::ZERO` probes before every reuse.
    pub idle_probe_after: Duration,
    /// The server's item size limit (`-I`). It bounds the whole item, so the largest value
    /// is smaller by the item's header, key and CAS (59 bytes plus the key, 4 more when the
    /// flags are not 0); a larger value fails before being sent.
    pub item_size_limit: usize,
    /// The largest value the reply parser accepts.
    pub max_value_size: usize,
}

impl ClientConfig {
    /// A configuration with defaults for `servers`: 1 s connect, 2 s read/write timeouts,
    /// 4 s per call, `TCP_NODELAY`, 64 connections per server (5 s pool wait, closed after
    /// 5 min idle), 1 MiB item limit.
    pub fn new(servers: Vec<ServerAddr>) -> Self {
        Self {
            servers,
            weights: Vec::new(),
            distribution: Distribution::default(),
            key_hash: KeyHash::default(),
            failover: FailoverConfig::default(),
            clock: Arc::new(SystemClock),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(4),
            nodelay: true,
            max_connections_per_server: 64,
            pool_wait_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            idle_probe_after: Duration::from_millis(1),
            item_size_limit: proto::DEFAULT_ITEM_SIZE_LIMIT,
            max_value_size: proto::DEFAULT_MAX_VALUE_SIZE,
        }
    }

    /// A configuration with defaults for a comma-separated list of `HOST:PORT[:WEIGHT]`,
    /// `[IPv6]:PORT[:WEIGHT]` or Unix socket paths (`/path` or `unix:/path`).
    pub fn from_specs(servers: &str) -> Result<Self> {
        let (servers, weights): (Vec<ServerAddr>, Vec<u32>) =
            ServerAddr::parse_list(servers)?.into_iter().unzip();
        let mut config = Self::new(servers);
        if weights.iter().any(|&w| w != 1) {
            config.weights = weights;
        }
        Ok(config)
    }

    /// Sets the per-server weights, parallel to the servers (empty: every weight is 1).
    pub fn weights(mut self, weights: Vec<u32>) -> Self {
        self.weights = weights;
        self
    }

    /// Sets the distribution.
    pub fn distribution(mut self, distribution: Distribution) -> Self {
        self.distribution = distribution;
        self
    }

    /// Sets the key hash.
    pub fn key_hash(mut self, key_hash: KeyHash) -> Self {
        self.key_hash = key_hash;
        self
    }

    /// Sets the failover behaviour.
    pub fn failover(mut self, failover: FailoverConfig) -> Self {
        self.failover = failover;
        self
    }

    /// Sets the clock that times retry intervals.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The ring over all configured servers (all live).
    pub fn ring(&self) -> Result<ring::Ring> {
        if !self.weights.is_empty() && self.weights.len() != self.servers.len() {
            return Err(Error::Config(format!(
                "{} weights for {} servers",
                self.weights.len(),
                self.servers.len()
            )));
        }
        let servers = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, addr)| ring::RingServer {
                addr: addr.clone(),
                weight: self.weights.get(i).copied().unwrap_or(1),
            })
            .collect();
        ring::Ring::new(servers, self.distribution, self.key_hash)
    }

    /// Sets the bound on establishing a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the bound on each wait for reply bytes.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Sets the bound on each wait to write request bytes.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets both the read and the write timeout.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self.write_timeout = timeout;
        self
    }

    /// Sets the bound on one whole call.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets whether TCP connections use `TCP_NODELAY`.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Sets the most connections per server (at least 1).
    pub fn max_connections_per_server(mut self, max: usize) -> Self {
        self.max_connections_per_server = max;
        self
    }

    /// Sets how long a caller waits for a free pooled connection.
    pub fn pool_wait_timeout(mut self, wait: Duration) -> Self {
        self.pool_wait_timeout = wait;
        self
    }

    /// Sets how long an idle pooled connection is kept.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Sets how long a pooled connection may sit idle before it is probed on reuse.
    pub fn idle_probe_after(mut self, idle: Duration) -> Self {
        self.idle_probe_after = idle;
        self
    }

    /// The pool configuration of one server's connections (both clients).
    pub(crate) fn server_pool_config(&self, addr: &ServerAddr) -> crate::pool::PoolConfig {
        let strategy = crate::pool::QueueConfig::new(self.max_connections_per_server)
            .wait_timeout(self.pool_wait_timeout)
            .idle_timeout(self.idle_timeout);
        crate::pool::PoolConfig::new(format!("memcached {addr}"), strategy.into())
    }

    /// Sets the server's item size limit (and raises the parser limit to match).
    pub fn item_size_limit(mut self, bytes: usize) -> Self {
        self.item_size_limit = bytes;
        self.max_value_size = self.max_value_size.max(bytes + 4096);
        self
    }

    /// Sets the largest value the reply parser accepts.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_connections_per_server == 0 {
            return Err(Error::Config(
                "max_connections_per_server must be at least 1".into(),
            ));
        }
        if self.servers.is_empty() {
            return Err(Error::Config("no memcached servers configured".into()));
        }
        if self.operation_timeout.is_zero() {
            return Err(Error::Config(
                "operation_timeout must be more than zero".into(),
            ));
        }
        if self.failover.failure_limit == 0 {
            return Err(Error::Config(
                "failover.failure_limit must be at least 1".into(),
            ));
        }
        self.ring().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_weighted_server_lists() {
        let c =
            ClientConfig::from_specs("127.0.0.1:11211, [::1]:11212:3,unix:/tmp/mc.sock").unwrap();
        assert_eq!(
            c.servers[1],
            ServerAddr::Tcp {
                host: "::1".into(),
                port: 11212
            }
        );
        assert_eq!(c.servers[2], ServerAddr::Unix("/tmp/mc.sock".into()));
        assert_eq!(c.weights, vec![1, 3, 1]);
        assert!(ClientConfig::from_specs("127.0.0.1:11211")
            .unwrap()
            .weights
            .is_empty());
        assert!(ClientConfig::from_specs("h:99999").is_err());
        assert!(ClientConfig::from_specs("").unwrap().validate().is_err());
    }

    #[test]
    fn rejects_mismatched_weights() {
        let c = ClientConfig::from_specs("a:1,b:2")
            .unwrap()
            .weights(vec![1]);
        assert!(c.validate().is_err());
        let c = ClientConfig::from_specs("a:1,b:2")
            .unwrap()
            .weights(vec![1, 5]);
        assert_eq!(c.ring().unwrap().servers()[1].weight, 5);
    }

    #[test]
    fn setters_set_their_own_field() {
        let ms = Duration::from_millis;
        let c = ClientConfig::from_specs("a:1")
            .unwrap()
            .connect_timeout(ms(1))
            .read_timeout(ms(2))
            .write_timeout(ms(3))
            .operation_timeout(ms(4))
            .nodelay(false)
            .max_connections_per_server(5)
            .pool_wait_timeout(ms(6))
            .idle_timeout(ms(7))
            .idle_probe_after(ms(8))
            .max_value_size(9);
        assert_eq!(
            (c.connect_timeout, c.read_timeout, c.write_timeout),
            (ms(1), ms(2), ms(3))
        );
        assert_eq!((c.operation_timeout, c.nodelay), (ms(4), false));
        assert_eq!(
            (
                c.max_connections_per_server,
                c.pool_wait_timeout,
                c.idle_timeout
            ),
            (5, ms(6), ms(7))
        );
        assert_eq!((c.idle_probe_after, c.max_value_size), (ms(8), 9));
        let c = c.item_size_limit(1 << 20);
        assert_eq!(
            (c.item_size_limit, c.max_value_size),
            (1 << 20, (1 << 20) + 4096)
        );
        assert!(c.max_connections_per_server(0).validate().is_err());
    }
}
