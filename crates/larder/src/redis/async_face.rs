//! The async face of [`RedisCache`]: [`AsyncCache`](crate::AsyncCache) over the `redis`
//! crate's `ConnectionManager` (one multiplexed connection that reconnects by itself).

use std::collections::HashMap;

use redis::{Cmd, Pipeline};

use super::cache::{RedisCache, SetIf};
use crate::codec::Codec;
use crate::{Error, Expiry, MultiWrite, Result};

impl<V, C: Codec<V>> RedisCache<V, C> {
    // ---- async transport ----------------------------------------------------------------

    /// Runs one command on the multiplexed connection.
    pub(super) async fn run_async<T: redis::FromRedisValue>(
        &self,
        context: &str,
        cmd: &Cmd,
    ) -> Result<T> {
        let mut con = self.manager().await?;
        cmd.query_async(&mut con)
            .await
            .map_err(|e| self.err(context, e))
    }

    /// Runs one pipeline on the multiplexed connection.
    pub(super) async fn run_pipe_async<T: redis::FromRedisValue>(
        &self,
        context: &str,
        pipe: &Pipeline,
    ) -> Result<T> {
        let mut con = self.manager().await?;
        pipe.query_async(&mut con)
            .await
            .map_err(|e| self.err(context, e))
    }

    /// Runs one script invocation on the multiplexed connection.
    pub(super) async fn invoke_async<T: redis::FromRedisValue>(
        &self,
        key: &str,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut con = self.manager().await?;
        inv.invoke_async(&mut con)
            .await
            .map_err(|e| self.err(key, e))
    }

    /// [`set_if`](Self::set_if) on the async side.
    pub(super) async fn set_if_async(
        &self,
        key: &str,
        value: &V,
        expiry: Expiry,
        cond: SetIf,
    ) -> Result<bool> {
        let cmd = self.set_cmd(key, value, expiry, cond)?;
        Ok(self.run_async::<Option<String>>(key, &cmd).await?.is_some())
    }

    /// The multiplexed connection: the caller's, or one made from the client on first use
    /// (bounded, so a down server gives a typed error in time).
    pub(super) async fn manager(&self) -> Result<redis::aio::ConnectionManager> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                let Some(client) = &self.client else {
                    // Only a cache built from a ConnectionManager has no client, and it was
                    // given its manager at construction.
                    return Err(Error::Unavailable(format!(
                        "redis {}: no connection manager",
                        self.server
                    )));
                };
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.config.connect_timeout))
                    .set_response_timeout(Some(self.config.response_timeout))
                    .set_number_of_retries(1);
                let bound = self.config.connect_timeout * 3;
                let connect = client.get_connection_manager_with_config(config);
                match tokio::time::timeout(bound, connect).await {
                    Ok(r) => r.map_err(|e| self.err(&format!("connect to {}", self.server), e)),
                    Err(_) => Err(Error::Timeout {
                        what: format!("redis connect to {}", self.server),
                        after: bound,
                    }),
                }
            })
            .await?;
        Ok(manager.clone())
    }

    pub(super) async fn write_multi_async(
        &self,
        items: Vec<(&str, V)>,
        expiry: Expiry,
        cond: SetIf,
    ) -> Result<MultiWrite> {
        if items.is_empty() {
            return Ok(MultiWrite::default());
        }
        let pipe = self.set_pipeline(&items, expiry, cond)?;
        let replies: Vec<Option<String>> = self.run_pipe_async("SET", &pipe).await?;
        Ok(Self::outcomes(&items, replies))
    }
}

#[async_trait::async_trait]
impl<V: Send + Sync + 'static, C: Codec<V>> crate::AsyncCache<V> for RedisCache<V, C> {
    async fn get(&self, key: &str) -> Result<Option<V>> {
        let get = self.key_cmd("GET", key)?;
        let stored: Option<Vec<u8>> = self.run_async(key, &get).await?;
        stored.map(|s| self.decode(key, &s)).transpose()
    }

    async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.run_async("MGET", &self.mget_cmd(keys)?).await?;
        self.hits(keys, values)
    }

    async fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        let cmd = self.set_cmd(key, &value, expiry, SetIf::Always)?;
        self.run_async(key, &cmd).await
    }

    async fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi_async(items, expiry, SetIf::Always).await
    }

    async fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.set_if_async(key, &value, expiry, SetIf::Absent).await
    }

    async fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi_async(items, expiry, SetIf::Absent).await
    }

    async fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.set_if_async(key, &value, expiry, SetIf::Present).await
    }

    async fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi_async(items, expiry, SetIf::Present).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let del = self.key_cmd("DEL", key)?;
        let n: u64 = self.run_async(key, &del).await?;
        Ok(n > 0)
    }

    async fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let counts: Vec<u64> = self
            .run_pipe_async("DEL", &self.del_pipeline(keys)?)
            .await?;
        Ok(Self::deleted(keys, counts))
    }

    async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.counter(key, delta, "incr")?;
        Self::parse_counter(key, self.invoke_async(key, inv).await?)
    }

    async fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.counter(key, delta, "decr")?;
        Self::parse_counter(key, self.invoke_async(key, inv).await?)
    }

    async fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        let inv = self.touch_script(key, expiry)?;
        Ok(self.invoke_async::<u64>(key, inv).await? == 1)
    }

    async fn clear(&self) -> Result<()> {
        let pattern = self.clear_pattern()?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run_async("SCAN", &Self::scan_cmd(cursor, &pattern))
                .await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                self.run_async::<u64>("UNLINK", &unlink).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
