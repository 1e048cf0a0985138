//! The memcached client: sans-IO protocol ([`proto`]), the blocking [`Client`], the async
//! `AsyncClient` (feature `tokio`), key routing ([`Router`]), and [`MemcachedCache`], the
//! [`Cache`](crate::Cache) backend over them.
//!
//! Both clients speak the meta protocol for key operations (binary keys travel base64 with the
//! `b` flag) and the text protocol for `flush_all`, `stats` and `version`. A connection that
//! saw an I/O error, a timeout or a protocol error is dropped, never reused.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

#[cfg(feature = "tokio")]
mod async_client;
mod cache;
mod client;
#[cfg(feature = "tokio")]
mod conn_pool;
mod ops;
pub mod proto;
pub mod ring;

#[cfg(feature = "tokio")]
pub use async_client::AsyncClient;
pub use cache::MemcachedCache;
pub use client::Client;
pub use ops::{GetsItem, MetaGetOptions, MetaGetResult};
pub use proto::SetMode;

/// Where a memcached server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    /// A TCP `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl ServerAddr {
    /// Parses `host:port` or a Unix socket path (anything starting with `/` or `unix:`).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(ServerAddr::Unix(PathBuf::from(path)));
        }
        if text.starts_with('/') {
            return Ok(ServerAddr::Unix(PathBuf::from(text)));
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(ServerAddr::Tcp(text.to_owned()))
            }
            _ => Err(Error::Config(format!(
                "server address {text:?} is neither host:port nor a socket path"
            ))),
        }
    }

    /// Parses a comma-separated list of addresses.
    pub fn parse_list(text: &str) -> Result<Vec<Self>> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse)
            .collect()
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddr::Tcp(a) => f.write_str(a),
            ServerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// How a key picks its server. Pluggable: ketama consistent hashing comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Router {
    /// `hash(key) % servers` with FNV-1a (32-bit); with one server every key goes to it.
    #[default]
    Modula,
}

impl Router {
    /// The index of the server for `key` among `servers` servers (`servers > 0`).
    pub fn route(&self, key: &[u8], servers: usize) -> usize {
        if servers <= 1 {
            return 0;
        }
        match self {
            Router::Modula => (fnv1a32(key) as usize) % servers,
        }
    }
}

fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Configuration of a [`Client`] (and `AsyncClient`).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The servers, in routing order.
    pub servers: Vec<ServerAddr>,
    /// How keys pick a server.
    pub router: Router,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on each read of a reply.
    pub read_timeout: Duration,
    /// Bound on each write of a request.
    pub write_timeout: Duration,
    /// Set `TCP_NODELAY` on TCP connections.
    pub nodelay: bool,
    /// Most connections per server: the blocking client's pool size (a caller beyond it
    /// waits up to `pool_wait_timeout`), and the async client's idle connections kept.
    pub max_connections_per_server: usize,
    /// How long a blocking caller waits for a free pooled connection.
    pub pool_wait_timeout: Duration,
    /// A pooled connection idle at least this long is checked before reuse (a non-blocking
    /// read: closed by the server or holding stray bytes → replaced by a fresh one).
    pub idle_check_after: Duration,
    /// The server's item size limit (`-I`); larger values fail before being sent.
    pub item_size_limit: usize,
    /// The largest value the reply parser accepts.
    pub max_value_size: usize,
}

impl ClientConfig {
    /// A configuration with defaults for `servers`: 1 s connect, 2 s read/write timeouts,
    /// `TCP_NODELAY`, 64 connections per server (5 s pool wait), 1 MiB item limit.
    pub fn new(servers: Vec<ServerAddr>) -> Self {
        Self {
            servers,
            router: Router::default(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            nodelay: true,
            max_connections_per_server: 64,
            pool_wait_timeout: Duration::from_secs(5),
            idle_check_after: Duration::from_secs(1),
            item_size_limit: proto::DEFAULT_ITEM_SIZE_LIMIT,
            max_value_size: proto::DEFAULT_MAX_VALUE_SIZE,
        }
    }

    /// Sets both the read and the write timeout.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self.write_timeout = timeout;
        self
    }

    /// Sets the server's item size limit (and raises the parser limit to match).
    pub fn item_size_limit(mut self, bytes: usize) -> Self {
        self.item_size_limit = bytes;
        self.max_value_size = self.max_value_size.max(bytes + 4096);
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            ServerAddr::parse("127.0.0.1:11211").unwrap(),
            ServerAddr::Tcp("127.0.0.1:11211".into())
        );
        assert_eq!(
            ServerAddr::parse("/tmp/mc.sock").unwrap(),
            ServerAddr::Unix("/tmp/mc.sock".into())
        );
        assert_eq!(ServerAddr::parse_list("a:1, b:2").unwrap().len(), 2);
        assert!(ServerAddr::parse("nope").is_err());
        assert!(ServerAddr::parse("h:99999").is_err());
    }

    #[test]
    fn modula_routes_within_range() {
        let r = Router::Modula;
        assert_eq!(r.route(b"anything", 1), 0);
        let hits: std::collections::HashSet<usize> = (0..100)
            .map(|i| r.route(format!("k{i}").as_bytes(), 3))
            .collect();
        assert_eq!(hits.len(), 3);
    }
}
