//! [`RedisLockStore`]: the distributed mutex of dogpile regions on Redis.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::config::RedisConfig;
use super::connections::Connections;
use super::scripts::RELEASE_SCRIPT;
use crate::Result;

/// A [`LockStore`](crate::dogpile::LockStore) on Redis for dogpile regions' distributed
/// mutex: `SET key token NX PX ttl` to take the lock, and a compare-and-delete script to
/// release it only while it still holds our token (a holder that outlived its TTL cannot
/// release someone else's lock).
#[derive(Clone)]
pub struct RedisLockStore {
    cons: Arc<Connections>,
}

impl std::fmt::Debug for RedisLockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLockStore")
            .field("server", &self.cons.server())
            .finish()
    }
}

impl RedisLockStore {
    /// A lock store on the server of `config` (lock keys are `config.prefix + key`); it
    /// needs blocking connections, so not a configuration built from a `ConnectionManager`.
    pub fn new(config: RedisConfig) -> Result<Self> {
        Ok(Self {
            cons: Arc::new(Connections::new(config, "RedisLockStore")?),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.cons.config().prefix)
    }
}

impl crate::dogpile::LockStore for RedisLockStore {
    fn try_acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let k = self.key(key);
        let reply: Option<String> = self.cons.with(key, |c| {
            redis::cmd("SET")
                .arg(&k)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query(c)
        })?;
        Ok(reply.is_some())
    }

    fn release(&self, key: &str, token: &str) -> Result<bool> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let mut inv = SCRIPT
            .get_or_init(|| Script::new(RELEASE_SCRIPT))
            .prepare_invoke();
        inv.key(self.key(key)).arg(token);
        let deleted: u64 = self.cons.with(key, |c| inv.invoke(c))?;
        Ok(deleted == 1)
    }
}
