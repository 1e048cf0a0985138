//! The blocking face of [`RedisCache`]: [`Cache`] over the pooled connections.

use std::collections::HashMap;
use std::time::Duration;

use super::cache::{RedisCache, SetIf};
use crate::codec::Codec;
use crate::{Cache, Error, Expiry, MultiWrite, Result};

impl<V, C: Codec<V>> RedisCache<V, C> {
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
        stats.insert("larder:prefix".into(), self.config.prefix.clone());
        Ok(stats)
    }

    // ---- blocking transport -------------------------------------------------------------

    pub(super) fn with_con<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        match &self.cons {
            Some(cons) => cons.with(context, f),
            None => Err(Error::Unsupported(format!(
                "RedisCache on {} was built from a ConnectionManager, which serves only the \
                 async face; build it from a URL or a redis::Client for blocking calls",
                self.server
            ))),
        }
    }

    /// `SET` with a condition; `true` when the server stored the value.
    pub(super) fn set_if(&self, key: &str, value: &V, expiry: Expiry, cond: SetIf) -> Result<bool> {
        let cmd = self.set_cmd(key, value, expiry, cond)?;
        Ok(self
            .with_con(key, |c| cmd.query::<Option<String>>(c))?
            .is_some())
    }

    pub(super) fn write_multi(
        &self,
        items: Vec<(&str, V)>,
        expiry: Expiry,
        cond: SetIf,
    ) -> Result<MultiWrite> {
        if items.is_empty() {
            return Ok(MultiWrite::default());
        }
        let pipe = self.set_pipeline(&items, expiry, cond)?;
        let replies: Vec<Option<String>> = self.with_con("SET", |c| pipe.query(c))?;
        Ok(Self::outcomes(&items, replies))
    }
}

impl<V: Send + Sync, C: Codec<V>> Cache<V> for RedisCache<V, C> {
    fn get(&self, key: &str) -> Result<Option<V>> {
        let get = self.key_cmd("GET", key)?;
        let stored: Option<Vec<u8>> = self.with_con(key, |c| get.query(c))?;
        stored.map(|s| self.decode(key, &s)).transpose()
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        let k = self.key(key)?;
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&k).cmd("PTTL").arg(&k);
        let (stored, pttl): (Option<Vec<u8>>, i64) = self.with_con(key, |c| pipe.query(c))?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let left = match u64::try_from(pttl) {
            Ok(ms) => Expiry::After(Duration::from_millis(ms)),
            // -1: no expiry. (-2, gone between GET and PTTL, cannot happen in one pipeline
            // on one connection without MULTI, but if it does the value is about to vanish.)
            Err(_) if pttl == -1 => Expiry::Never,
            Err(_) => Expiry::After(Duration::ZERO),
        };
        Ok(Some((self.decode(key, &stored)?, left)))
    }

    fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let cmd = self.mget_cmd(keys)?;
        let values: Vec<Option<Vec<u8>>> = self.with_con("MGET", |c| cmd.query(c))?;
        self.hits(keys, values)
    }

    fn set(&self, key: &str, value: V, expiry: Expiry) -> Result<()> {
        let cmd = self.set_cmd(key, &value, expiry, SetIf::Always)?;
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
        let del = self.key_cmd("DEL", key)?;
        let n: u64 = self.with_con(key, |c| del.query(c))?;
        Ok(n > 0)
    }

    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let pipe = self.del_pipeline(keys)?;
        let counts: Vec<u64> = self.with_con("DEL", |c| pipe.query(c))?;
        Ok(Self::deleted(keys, counts))
    }

    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.counter(key, delta, "incr")?;
        Self::parse_counter(key, self.with_con(key, |c| inv.invoke(c))?)
    }

    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.counter(key, delta, "decr")?;
        Self::parse_counter(key, self.with_con(key, |c| inv.invoke(c))?)
    }

    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        let inv = self.touch_script(key, expiry)?;
        Ok(self.with_con(key, |c| inv.invoke::<u64>(c))? == 1)
    }

    fn clear(&self) -> Result<()> {
        let pattern = self.clear_pattern()?;
        let mut cursor: u64 = 0;
        loop {
            let scan = Self::scan_cmd(cursor, &pattern);
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
