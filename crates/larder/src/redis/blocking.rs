//! [`RedisCache`], the blocking face: [`Cache`] over pooled `redis::Connection`s, sending
//! what the shared `Mapping` builds.

use std::collections::HashMap;

use super::cache::{deleted, outcomes, parse_counter, scan_cmd, Mapping, SetIf};
use super::config::RedisConfig;
use super::connections::Connections;
use crate::codec::Codec;
use crate::{Cache, Expiry, MultiWrite, Result};

/// The cache contract on Redis, blocking. See the [module docs](super); the async face is
/// `AsyncRedisCache` (feature `tokio`), which [`to_async`](Self::to_async) makes from this
/// one.
pub struct RedisCache<V, C> {
    map: Mapping<V, C>,
    cons: Connections,
}

impl<V, C> std::fmt::Debug for RedisCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.debug("RedisCache", f)
    }
}

impl<V, C: Codec<V>> RedisCache<V, C> {
    /// A cache on the server of `config` (a URL or the caller's `redis::Client`), encoding
    /// values with `codec`. No connection is made until the first operation. A configuration
    /// built from a `ConnectionManager` has no blocking connections and is refused with
    /// [`Error::Config`](crate::Error::Config); it serves `AsyncRedisCache`.
    pub fn new(config: RedisConfig, codec: C) -> Result<Self> {
        Ok(Self {
            cons: Connections::new(config.clone(), "RedisCache")?,
            map: Mapping::new(config, codec),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.map.config
    }

    /// The async face of this cache: the same server, prefix, key policy, value format and
    /// codec, over a `ConnectionManager` of its own, made from this cache's client on first
    /// use.
    #[cfg(feature = "tokio")]
    pub fn to_async(&self) -> super::AsyncRedisCache<V, C>
    where
        C: Clone,
    {
        super::AsyncRedisCache::from_parts(self.map.clone(), Some(self.cons.client().clone()))
    }

    /// The server's `INFO` (every section) as `name → value`, plus `larder:prefix` — for
    /// operators (`larder stats --redis URL`).
    pub fn server_stats(&self) -> Result<HashMap<String, String>> {
        let info: String =
            self.with_con("INFO", |c| redis::cmd("INFO").arg("everything").query(c))?;
        let mut stats: HashMap<String, String> = info
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.trim_end().split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        stats.insert("larder:prefix".into(), self.map.config.prefix.clone());
        Ok(stats)
    }

    fn with_con<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.cons.with(context, f)
    }

    /// `SET` with a condition; `true` when the server stored the value.
    fn set_if(&self, key: &str, value: &V, expiry: Expiry, cond: SetIf) -> Result<bool> {
        let cmd = self.map.set_cmd(key, value, expiry, cond)?;
        Ok(self
            .with_con(key, |c| cmd.query::<Option<String>>(c))?
            .is_some())
    }

    fn write_multi(
        &self,
        items: Vec<(&str, V)>,
        expiry: Expiry,
        cond: SetIf,
    ) -> Result<MultiWrite> {
        if items.is_empty() {
            return Ok(MultiWrite::default());
        }
        let pipe = self.map.set_pipeline(&items, expiry, cond)?;
        let replies: Vec<Option<String>> = self.with_con("SET", |c| pipe.query(c))?;
        Ok(outcomes(&items, replies))
    }
}

impl<V: Send + Sync, C: Codec<V>> Cache<V> for RedisCache<V, C> {
    fn get(&self, key: &str) -> Result<Option<V>> {
        let get = self.map.key_cmd("GET", key)?;
        let stored: Option<Vec<u8>> = self.with_con(key, |c| get.query(c))?;
        stored.map(|s| self.map.decode(key, &s)).transpose()
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        let pipe = self.map.get_with_ttl_pipeline(key)?;
        let reply = self.with_con(key, |c| pipe.query(c))?;
        self.map.with_life(key, reply)
    }

    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let cmd = self.map.mget_cmd(keys)?;
        let values: Vec<Option<Vec<u8>>> = self.with_con("MGET", |c| cmd.query(c))?;
        self.map.hits(keys, values)
    }

    fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        let cmd = self.map.set_cmd(key, &value, expiry, SetIf::Always)?;
        self.with_con(key, |c| cmd.query::<()>(c))
    }

    fn set_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, SetIf::Always)
    }

    fn add(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.set_if(key, &value, expiry, SetIf::Absent)
    }

    fn add_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, SetIf::Absent)
    }

    fn replace(&self, key: &str, value: V, expiry: Expiry) -> Result<bool> {
        self.set_if(key, &value, expiry, SetIf::Present)
    }

    fn replace_multi(&self, items: Vec<(&str, V)>, expiry: Expiry) -> Result<MultiWrite> {
        self.write_multi(items, expiry, SetIf::Present)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let del = self.map.key_cmd("DEL", key)?;
        let n: u64 = self.with_con(key, |c| del.query(c))?;
        Ok(n > 0)
    }

    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let pipe = self.map.del_pipeline(keys)?;
        let counts: Vec<u64> = self.with_con("DEL", |c| pipe.query(c))?;
        Ok(deleted(keys, counts))
    }

    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.map.counter(key, delta, "incr")?;
        parse_counter(key, self.with_con(key, |c| inv.invoke(c))?)
    }

    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.map.counter(key, delta, "decr")?;
        parse_counter(key, self.with_con(key, |c| inv.invoke(c))?)
    }

    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        let inv = self.map.touch_script(key, expiry)?;
        Ok(self.with_con(key, |c| inv.invoke::<u64>(c))? == 1)
    }

    fn clear(&self) -> Result<()> {
        let pattern = self.map.clear_pattern()?;
        let mut cursor: u64 = 0;
        loop {
            let scan = scan_cmd(cursor, &pattern);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.with_con("SCAN", |c| scan.query(c))?;
            if !keys.is_empty() {
                self.with_con("UNLINK", |c| {
                    redis::cmd("UNLINK").arg(&keys).query::<u64>(c)
                })?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
