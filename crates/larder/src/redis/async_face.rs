//! [`AsyncRedisCache`], the async face: [`AsyncCache`] over the `redis` crate's
//! `ConnectionManager` (one multiplexed connection that reconnects by itself), sending what
//! the shared `Mapping` builds.

use std::collections::HashMap;

use redis::{Cmd, Pipeline};

use super::cache::{deleted, outcomes, parse_counter, scan_cmd, Mapping, SetIf};
use super::config::RedisConfig;
use crate::codec::Codec;
use crate::{AsyncCache, Error, Expiry, MultiWrite, Result};

/// The cache contract on Redis, async (feature `tokio`): the async face of
/// [`RedisCache`](super::RedisCache), with the same stored layout, so both faces read each
/// other's entries (build one from the other with
/// [`RedisCache::to_async`](super::RedisCache::to_async)). See the [module docs](super).
pub struct AsyncRedisCache<V, C> {
    map: Mapping<V, C>,
    /// What the `ConnectionManager` is made from, when it is made here.
    client: Option<redis::Client>,
    manager: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
}

impl<V, C> std::fmt::Debug for AsyncRedisCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.debug("AsyncRedisCache", f)
    }
}

impl<V, C: Codec<V>> AsyncRedisCache<V, C> {
    /// A cache on the server of `config` (a URL, the caller's `redis::Client`, or the
    /// caller's `ConnectionManager`, used as it is), encoding values with `codec`. No
    /// connection is made until the first operation (except by a `ConnectionManager` the
    /// caller made).
    pub fn new(config: RedisConfig, codec: C) -> Result<Self> {
        let client = config.client()?;
        let manager = config.given_manager();
        let mut cache = Self::from_parts(Mapping::new(config, codec), client);
        cache.manager = tokio::sync::OnceCell::new_with(manager);
        Ok(cache)
    }

    pub(super) fn from_parts(map: Mapping<V, C>, client: Option<redis::Client>) -> Self {
        Self {
            map,
            client,
            manager: tokio::sync::OnceCell::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.map.config
    }

    /// Runs one command on the multiplexed connection.
    async fn run<T: redis::FromRedisValue>(&self, context: &str, cmd: &Cmd) -> Result<T> {
        let mut con = self.manager().await?;
        cmd.query_async(&mut con)
            .await
            .map_err(|e| self.map.err(context, e))
    }

    /// Runs one pipeline on the multiplexed connection.
    async fn run_pipe<T: redis::FromRedisValue>(
        &self,
        context: &str,
        pipe: &Pipeline,
    ) -> Result<T> {
        let mut con = self.manager().await?;
        pipe.query_async(&mut con)
            .await
            .map_err(|e| self.map.err(context, e))
    }

    /// Runs one script invocation on the multiplexed connection.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        key: &str,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut con = self.manager().await?;
        inv.invoke_async(&mut con)
            .await
            .map_err(|e| self.map.err(key, e))
    }

    /// `SET` with a condition; `true` when the server stored the value.
    async fn set_if(&self, key: &str, value: &V, expiry: Expiry, cond: SetIf) -> Result<bool> {
        let cmd = self.map.set_cmd(key, value, expiry, cond)?;
        Ok(self.run::<Option<String>>(key, &cmd).await?.is_some())
    }

    /// The multiplexed connection: the caller's, or one made from the client on first use
    /// (bounded, so a down server gives a typed error in time).
    async fn manager(&self) -> Result<redis::aio::ConnectionManager> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                let Some(client) = &self.client else {
                    // Only a cache built from a ConnectionManager has no client, and it was
                    // given its manager at construction.
                    return Err(Error::Unavailable(format!(
                        "redis {}: no connection manager",
                        self.map.server
                    )));
                };
                let config = &self.map.config;
                let manager_config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    .set_number_of_retries(1);
                let bound = config.connect_timeout * 3;
                let connect = client.get_connection_manager_with_config(manager_config);
                let what = || format!("connect to {}", self.map.server);
                match tokio::time::timeout(bound, connect).await {
                    Ok(r) => r.map_err(|e| self.map.err(&what(), e)),
                    Err(_) => Err(Error::Timeout {
                        what: format!("redis {}", what()),
                        after: bound,
                    }),
                }
            })
            .await?;
        Ok(manager.clone())
    }

    async fn write_multi(
        &self,
        items: Vec<(&str, V)>,
        expiry: Expiry,
        cond: SetIf,
    ) -> Result<MultiWrite> {
        if items.is_empty() {
            return Ok(MultiWrite::default());
        }
        let pipe = self.map.set_pipeline(&items, expiry, cond)?;
        let replies: Vec<Option<String>> = self.run_pipe("SET", &pipe).await?;
        Ok(outcomes(&items, replies))
    }
}

#[async_trait::async_trait]
impl<V: Send + Sync + 'static, C: Codec<V>> AsyncCache<V> for AsyncRedisCache<V, C> {
    async fn get(&self, key: &str) -> Result<Option<V>> {
        let get = self.map.key_cmd("GET", key)?;
        let stored: Option<Vec<u8>> = self.run(key, &get).await?;
        stored.map(|s| self.map.decode(key, &s)).transpose()
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        let pipe = self.map.get_with_ttl_pipeline(key)?;
        let reply = self.run_pipe(key, &pipe).await?;
        self.map.with_life(key, reply)
    }

    async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.run("MGET", &self.map.mget_cmd(keys)?).await?;
        self.map.hits(keys, values)
    }

    async fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        let cmd = self.map.set_cmd(key, &value, expiry, SetIf::Always)?;
        self.run(key, &cmd).await
    }

    async fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, SetIf::Always).await
    }

    async fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.set_if(key, &value, expiry, SetIf::Absent).await
    }

    async fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, SetIf::Absent).await
    }

    async fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.set_if(key, &value, expiry, SetIf::Present).await
    }

    async fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, SetIf::Present).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let del = self.map.key_cmd("DEL", key)?;
        let n: u64 = self.run(key, &del).await?;
        Ok(n > 0)
    }

    async fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let counts: Vec<u64> = self.run_pipe("DEL", &self.map.del_pipeline(keys)?).await?;
        Ok(deleted(keys, counts))
    }

    async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.map.counter(key, delta, "incr")?;
        parse_counter(key, self.invoke(key, inv).await?)
    }

    async fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.map.counter(key, delta, "decr")?;
        parse_counter(key, self.invoke(key, inv).await?)
    }

    async fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        let inv = self.map.touch_script(key, expiry)?;
        Ok(self.invoke::<u64>(key, inv).await? == 1)
    }

    async fn clear(&self) -> Result<()> {
        let pattern = self.map.clear_pattern()?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                self.run("SCAN", &scan_cmd(cursor, &pattern)).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                self.run::<u64>("UNLINK", &unlink).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
