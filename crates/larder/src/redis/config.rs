//! [`RedisConfig`]: which server a Redis backend talks to (a URL, or the caller's own
//! `redis::Client` or `ConnectionManager`), how values are laid out, which keys are accepted,
//! and the timeouts and pool bounds.

use std::time::Duration;

use crate::{Error, KeyPolicy, Result};

/// How a [`RedisCache`](super::RedisCache) (and its async face) lays out a value under its
/// key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ValueFormat {
    /// The codec's 32-bit flags (big-endian) before the encoded bytes, so a reader with the
    /// wrong codec gets [`Error::Codec`] instead of a wrong value. The default.
    #[default]
    Flagged,
    /// The encoded bytes alone, as `redis-cli SET` would store them, for keys shared with
    /// other Redis clients. Every value read is decoded as if stored with `flags` (0 for
    /// `BytesCodec` and `U64Codec`, `FLAG_TEXT` for `TextCodec`), and a write whose codec
    /// gives other flags is refused with [`Error::Codec`], since they could not be read back.
    Raw {
        /// The flags every raw value is read with and written values must have.
        flags: u32,
    },
}

impl ValueFormat {
    /// Raw values read with flags 0 (raw bytes, or a decimal counter).
    pub const RAW: ValueFormat = ValueFormat::Raw { flags: 0 };
}

/// Where the connections come from.
#[derive(Clone)]
pub(super) enum Target {
    Url(String),
    Client(redis::Client),
    #[cfg(feature = "tokio")]
    Manager(redis::aio::ConnectionManager),
}

/// How a Redis cache ([`RedisCache`](super::RedisCache), `AsyncRedisCache`) reaches its
/// server and stores its entries.
///
/// Built from a URL ([`new`](Self::new)), the caller's `redis::Client`
/// ([`from_client`](Self::from_client): both faces use it) or, with feature `tokio`, the
/// caller's `ConnectionManager` (`from_connection_manager`: `AsyncRedisCache` only), then
/// adjusted with the setters. `Debug` and errors name the server by address,
/// never with a password.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    pub(super) target: Target,
    /// Put before every key; `clear` deletes only keys under it (so it may not be empty).
    pub prefix: String,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for a reply.
    pub response_timeout: Duration,
    /// Most blocking connections open at once (the async side multiplexes one).
    pub max_connections: usize,
    /// How long a blocking call waits for a free connection when all are busy.
    pub pool_wait: Duration,
    /// Which keys the cache accepts (checked on the caller's key, before the prefix).
    pub key_policy: KeyPolicy,
    /// How values are laid out under their keys.
    pub value_format: ValueFormat,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("server", &self.server())
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_connections", &self.max_connections)
            .field("pool_wait", &self.pool_wait)
            .field("key_policy", &self.key_policy)
            .field("value_format", &self.value_format)
            .finish()
    }
}

impl RedisConfig {
    /// The server at a `redis://[:PASSWORD@]HOST:PORT[/DB]` or `redis+unix:///path` URL.
    ///
    /// Defaults: prefix `larder:`, 1 s connect and response timeouts, at most 16 blocking
    /// connections, waiting up to 1 s for a free one, the contract's key rule
    /// ([`KeyPolicy::Portable`]), flagged values ([`ValueFormat::Flagged`]).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_target(Target::Url(url.into()))
    }

    /// The server the caller's `client` points at, with its settings (TLS, authentication,
    /// protocol); blocking connections and the async face's `ConnectionManager` are made from
    /// it, under this configuration's timeouts. Other defaults as in [`new`](Self::new).
    pub fn from_client(client: redis::Client) -> Self {
        Self::with_target(Target::Client(client))
    }

    /// The caller's `ConnectionManager`, used as it is by
    /// [`AsyncRedisCache`](super::AsyncRedisCache) (its own timeouts and retries apply).
    /// There are then no blocking connections: [`RedisCache`](super::RedisCache), the lock
    /// store and the invalidation bus refuse it with [`Error::Config`]. Other defaults as in
    /// [`new`](Self::new).
    #[cfg(feature = "tokio")]
    pub fn from_connection_manager(manager: redis::aio::ConnectionManager) -> Self {
        Self::with_target(Target::Manager(manager))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            prefix: "larder:".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_connections: 16,
            pool_wait: Duration::from_secs(1),
            key_policy: KeyPolicy::default(),
            value_format: ValueFormat::default(),
        }
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets both timeouts.
    pub fn timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// Sets the most blocking connections open at once (at least 1).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets how long a blocking call waits for a free connection.
    pub fn pool_wait(mut self, wait: Duration) -> Self {
        self.pool_wait = wait;
        self
    }

    /// Sets which keys the cache accepts: [`KeyPolicy::Native`] lets Redis take any
    /// string, the empty one and keys over 250 bytes included.
    pub fn key_policy(mut self, policy: KeyPolicy) -> Self {
        self.key_policy = policy;
        self
    }

    /// Sets how values are laid out ([`ValueFormat::RAW`] for keys shared with other
    /// Redis clients).
    pub fn value_format(mut self, format: ValueFormat) -> Self {
        self.value_format = format;
        self
    }

    /// The server's address as errors and `Debug` name it (`HOST:PORT`, `/DB` when not 0,
    /// or a socket path); never a password.
    pub fn server(&self) -> String {
        match &self.target {
            Target::Url(url) => match redis::Client::open(url.as_str()) {
                Ok(client) => address(&client),
                Err(_) => redact_url(url),
            },
            Target::Client(client) => address(client),
            #[cfg(feature = "tokio")]
            Target::Manager(_) => "the caller's ConnectionManager".into(),
        }
    }

    /// The client blocking connections (and a lazily made `ConnectionManager`) come from;
    /// `None` when the caller gave a `ConnectionManager`.
    pub(super) fn client(&self) -> Result<Option<redis::Client>> {
        match &self.target {
            Target::Url(url) => redis::Client::open(url.as_str())
                .map(Some)
                .map_err(|e| Error::Config(format!("redis URL {:?}: {e}", redact_url(url)))),
            Target::Client(client) => Ok(Some(client.clone())),
            #[cfg(feature = "tokio")]
            Target::Manager(_) => Ok(None),
        }
    }

    /// The caller's `ConnectionManager`, when the configuration was built from one.
    #[cfg(feature = "tokio")]
    pub(super) fn given_manager(&self) -> Option<redis::aio::ConnectionManager> {
        match &self.target {
            Target::Manager(manager) => Some(manager.clone()),
            _ => None,
        }
    }
}

fn address(client: &redis::Client) -> String {
    let info = client.get_connection_info();
    match info.redis_settings().db() {
        0 => info.addr().to_string(),
        db => format!("{}/{db}", info.addr()),
    }
}

/// `url` with whatever sits between `://` and `@` (user and password) replaced by `***`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_password_in_debug_names_or_errors() {
        let config = RedisConfig::new("redis://:hunter2@127.0.0.1:6390/3");
        assert_eq!(config.server(), "127.0.0.1:6390/3");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("127.0.0.1:6390/3"),
            "{debug}"
        );
        let bad = RedisConfig::new("redis://user:hunter2@127.0.0.1:notaport");
        let err = bad.client().unwrap_err().to_string();
        assert!(
            !err.contains("hunter2") && err.contains("redis://***@"),
            "{err}"
        );
        assert!(!bad.server().contains("hunter2"));
        let client = redis::Client::open("redis://:hunter2@localhost:6391").unwrap();
        let debug = format!("{:?}", RedisConfig::from_client(client));
        assert!(
            !debug.contains("hunter2") && debug.contains("localhost:6391"),
            "{debug}"
        );
    }
}
