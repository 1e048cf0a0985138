//! [`RedisConfig`]: which server a Redis backend talks to, and its timeouts and pool bounds.

use std::time::Duration;

use crate::KeyPolicy;

/// How a [`RedisCache`] reaches its server.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// A `redis://HOST:PORT[/DB]` or `redis+unix:///path` URL.
    pub url: String,
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
}

impl RedisConfig {
    /// Defaults: prefix `larder:`, 1 s connect and response timeouts, at most 16 blocking
    /// connections, waiting up to 1 s for a free one, the contract's key rule
    /// ([`KeyPolicy::Portable`]).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "larder:".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_connections: 16,
            pool_wait: Duration::from_secs(1),
            key_policy: KeyPolicy::default(),
        }
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets which keys the cache accepts: [`KeyPolicy::Native`] lets Redis take any
    /// string, the empty one and keys over 250 bytes included.
    pub fn key_policy(mut self, policy: KeyPolicy) -> Self {
        self.key_policy = policy;
        self
    }

    /// Sets both timeouts.
    pub fn timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }
}
