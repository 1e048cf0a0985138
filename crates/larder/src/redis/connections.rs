//! The blocking side's connections: a [`crate::pool`] queue of `redis::Connection`s with
//! read and write timeouts, where a connection that saw an I/O error or timeout is dropped.

use std::time::Duration;

use super::config::RedisConfig;
use super::map_err;
use crate::pool::{Manager, Pool, PoolConfig, QueueConfig};
use crate::{Error, Result};

/// Makes blocking connections to one server, each with read and write timeouts.
pub(super) struct RedisManager {
    client: redis::Client,
    config: RedisConfig,
    /// The server as errors name it.
    server: String,
}

impl RedisManager {
    pub(super) fn open(&self) -> Result<redis::Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.config.connect_timeout)
            .map_err(|e| self.err(&format!("connect to {}", self.server), e))?;
        let timeout = Some(self.config.response_timeout);
        con.set_read_timeout(timeout)
            .and_then(|()| con.set_write_timeout(timeout))
            .map_err(|e| self.err("set timeouts", e))?;
        Ok(con)
    }

    pub(super) fn err(&self, context: &str, e: redis::RedisError) -> Error {
        map_err(context, self.config.response_timeout, e)
    }
}

impl Manager for RedisManager {
    type Object = redis::Connection;
    type Error = Error;

    fn create(&self) -> Result<redis::Connection> {
        self.open()
    }
}

/// Blocking connections to one server, in a [`larder::pool`](crate::pool) queue: a
/// connection that saw an I/O error or timeout is discarded, never reused.
pub(super) struct Connections {
    pub(super) pool: Pool<RedisManager>,
}

impl Connections {
    /// The pool of `config`'s server; a configuration built from a `ConnectionManager` has no
    /// blocking connections, and is refused with [`Error::Config`] naming `what` needs them.
    pub(super) fn new(config: RedisConfig, what: &str) -> Result<Self> {
        let Some(client) = config.client()? else {
            return Err(Error::Config(format!(
                "{what} needs blocking connections: build its RedisConfig from a URL or a \
                 redis::Client, not a ConnectionManager"
            )));
        };
        let server = config.server();
        let strategy = QueueConfig::new(config.max_connections.max(1))
            .wait_timeout(config.pool_wait)
            .idle_timeout(Duration::from_secs(300))
            .into();
        let pool_config = PoolConfig::new(format!("redis {server}"), strategy);
        let manager = RedisManager {
            client,
            config,
            server,
        };
        let pool = Pool::new_unsync(manager, pool_config)?;
        Ok(Self { pool })
    }

    pub(super) fn config(&self) -> &RedisConfig {
        &self.pool.manager().config
    }

    /// The client the connections are made from (an async face makes its own from it).
    #[cfg(feature = "tokio")]
    pub(super) fn client(&self) -> &redis::Client {
        &self.pool.manager().client
    }

    /// The server as errors and `Debug` name it.
    pub(super) fn server(&self) -> &str {
        &self.pool.manager().server
    }

    pub(super) fn err(&self, context: &str, e: redis::RedisError) -> Error {
        self.pool.manager().err(context, e)
    }

    pub(super) fn open(&self) -> Result<redis::Connection> {
        self.pool.manager().open()
    }

    /// Runs `f` on a pooled connection; the connection goes back only when `f` succeeded or
    /// failed with a server reply (never after an I/O error or timeout).
    pub(super) fn with<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let mut guard = self.pool.get()?;
        let result = f(guard.get_mut()?);
        if let Err(e) = &result {
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
            {
                guard.discard();
            }
        }
        result.map_err(|e| self.err(context, e))
    }
}
