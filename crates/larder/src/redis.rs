//! [`RedisCache`]: the cache contract on Redis (feature `redis`), blocking and async, through
//! the well-kept `redis` crate.
//!
//! Semantics map onto Redis faithfully: `add` = `SET NX`, `replace` = `SET XX`, TTLs as
//! `PX` milliseconds, `get_multi` = `MGET`, multi-key writes go out as one pipeline,
//! `incr`/`decr` run as one Lua script (atomic on the server, `decr` stopping at 0 and
//! `incr` wrapping at 2^64 as memcached does, the entry's TTL kept), and `clear` deletes only
//! keys under this cache's prefix (`SCAN` + `UNLINK`, never `FLUSHALL`/`FLUSHDB`).
//!
//! Stored layout: every value is the codec's 32-bit flags (big-endian) followed by the
//! encoded bytes, so a reader with the wrong codec gets [`Error::Codec`] instead of a wrong
//! value. Keys are `prefix + key`.
//!
//! Connections: the blocking side keeps `redis::Connection`s in a [`crate::pool`] queue (a
//! connection that saw an I/O error or timeout is discarded, never reused); the async side uses the crate's
//! `ConnectionManager`, a multiplexed connection that reconnects by itself, as the crate
//! recommends. Both set connect and response timeouts, so a down server gives typed errors
//! within the bound, and a server that comes back is used again without a restart.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Pipeline, Script};

use crate::codec::{Codec, Encoded};
use crate::invalidation::{InvalidationBus, Stale as Invalidation};
use crate::pool::{Manager, Pool, PoolConfig, QueueConfig};
use crate::{Cache, Error, Expiry, MultiWrite, Result};

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
}

impl RedisConfig {
    /// Defaults: prefix `larder:`, 1 s connect and response timeouts, at most 16 blocking
    /// connections, waiting up to 1 s for a free one.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "larder:".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_connections: 16,
            pool_wait: Duration::from_secs(1),
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
}

/// Makes blocking connections to one server, each with read and write timeouts.
struct RedisManager {
    client: redis::Client,
    config: RedisConfig,
}

impl RedisManager {
    fn open(&self) -> Result<redis::Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.config.connect_timeout)
            .map_err(|e| self.err(&format!("connect to {}", self.config.url), e))?;
        let timeout = Some(self.config.response_timeout);
        con.set_read_timeout(timeout)
            .and_then(|()| con.set_write_timeout(timeout))
            .map_err(|e| self.err("set timeouts", e))?;
        Ok(con)
    }

    fn err(&self, context: &str, e: redis::RedisError) -> Error {
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
struct Connections {
    pool: Pool<RedisManager>,
}

impl Connections {
    fn new(config: RedisConfig) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| Error::Config(format!("redis URL {:?}: {e}", config.url)))?;
        let strategy = QueueConfig::new(config.max_connections.max(1))
            .wait_timeout(config.pool_wait)
            .idle_timeout(Duration::from_secs(300))
            .into();
        let pool_config = PoolConfig::new(format!("redis {}", config.url), strategy);
        let pool = Pool::new_unsync(RedisManager { client, config }, pool_config)?;
        Ok(Self { pool })
    }

    fn config(&self) -> &RedisConfig {
        &self.pool.manager().config
    }

    fn err(&self, context: &str, e: redis::RedisError) -> Error {
        self.pool.manager().err(context, e)
    }

    fn open(&self) -> Result<redis::Connection> {
        self.pool.manager().open()
    }

    /// Runs `f` on a pooled connection; the connection goes back only when `f` succeeded or
    /// failed with a server reply (never after an I/O error or timeout).
    fn with<T>(
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

/// The cache contract on Redis. See the [module docs](self).
pub struct RedisCache<V, C> {
    cons: Connections,
    config: RedisConfig,
    codec: C,
    manager: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    _value: PhantomData<fn(V) -> V>,
}

impl<V, C> std::fmt::Debug for RedisCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("url", &self.config.url)
            .field("prefix", &self.config.prefix)
            .finish()
    }
}

/// The conditions of a `SET`.
#[derive(Clone, Copy)]
enum SetIf {
    Always,
    Absent,
    Present,
}

/// Atomic `incr`/`decr` over our stored layout (4 flag bytes + ASCII decimal), with
/// memcached's arithmetic: `incr` wraps at 2^64, `decr` stops at 0. Lua numbers are
/// doubles, so the arithmetic is done on decimal strings. Returns nil for a missing key,
/// the new value as a string, or an error reply `NOTNUM`.
const COUNTER_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local digits = string.sub(v, 5)
if #v < 5 or #digits > 20 or not string.find(digits, '^%d+$') then
  return redis.error_reply('NOTNUM value is not an unsigned decimal')
end
local function strip(s) s = string.gsub(s, '^0+', '') if s == '' then return '0' end return s end
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = carry + (i > 0 and tonumber(string.sub(a, i, i)) or 0) + (j > 0 and tonumber(string.sub(b, j, j)) or 0)
    table.insert(out, 1, tostring(s % 10)); carry = math.floor(s / 10); i = i - 1; j = j - 1
  end
  return strip(table.concat(out))
end
local function sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = tonumber(string.sub(a, i, i)) - borrow - (j > 0 and tonumber(string.sub(b, j, j)) or 0)
    if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
    table.insert(out, 1, tostring(d)); i = i - 1; j = j - 1
  end
  return strip(table.concat(out))
end
local n, delta = strip(digits), strip(ARGV[1])
local r
if ARGV[2] == 'incr' then
  r = add(n, delta)
  local wrap = '18446744073709551616'
  if cmp(r, wrap) >= 0 then r = sub(r, wrap) end
else
  if cmp(n, delta) <= 0 then r = '0' else r = sub(n, delta) end
end
redis.call('SET', KEYS[1], string.sub(v, 1, 4) .. r, 'KEEPTTL')
return r
"#;

/// `touch`: a new expiry for an existing key only (PERSIST alone cannot tell "no TTL" from
/// "no key").
const TOUCH_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"#;

fn map_err(context: &str, after: Duration, e: redis::RedisError) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            what: format!("redis {context}"),
            after,
        }
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        Error::Io(std::io::Error::other(format!("redis {context}: {e}")))
    } else if e.to_string().contains("NOTNUM") {
        Error::NotANumber {
            key: context.to_owned(),
        }
    } else {
        Error::Server(format!("redis {context}: {e}"))
    }
}

fn ttl_ms(expiry: Expiry) -> Option<u64> {
    expiry
        .ttl()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// Escapes glob metacharacters so a prefix matches only itself in `SCAN MATCH`.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

impl<V, C: Codec<V>> RedisCache<V, C> {
    /// A cache on the server at `config.url`, encoding values with `codec`. No connection
    /// is made until the first operation.
    pub fn new(config: RedisConfig, codec: C) -> Result<Self> {
        Ok(Self {
            cons: Connections::new(config.clone())?,
            config,
            codec,
            manager: tokio::sync::OnceCell::new(),
            _value: PhantomData,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
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
        stats.insert("larder:prefix".into(), self.config.prefix.clone());
        Ok(stats)
    }

    fn err(&self, context: &str, e: redis::RedisError) -> Error {
        self.cons.err(context, e)
    }

    fn key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.config.prefix.len() + key.len());
        k.push_str(&self.config.prefix);
        k.push_str(key);
        k
    }

    fn encode(&self, value: &V) -> Result<Vec<u8>> {
        let Encoded { data, flags } = self.codec.encode(value)?;
        let mut out = Vec::with_capacity(4 + data.len());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&data);
        Ok(out)
    }

    fn decode(&self, key: &str, stored: &[u8]) -> Result<V> {
        match stored {
            [a, b, c, d, data @ ..] => self
                .codec
                .decode(data, u32::from_be_bytes([*a, *b, *c, *d])),
            _ => Err(Error::Codec(format!(
                "value under {key:?} is not a larder value ({} bytes, no flags header)",
                stored.len()
            ))),
        }
    }

    fn set_cmd(&self, key: &str, value: &V, expiry: Expiry, cond: SetIf) -> Result<Cmd> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(self.encode(value)?);
        if let Some(ms) = ttl_ms(expiry) {
            cmd.arg("PX").arg(ms);
        }
        match cond {
            SetIf::Always => {}
            SetIf::Absent => {
                cmd.arg("NX");
            }
            SetIf::Present => {
                cmd.arg("XX");
            }
        }
        Ok(cmd)
    }

    fn set_pipeline(&self, items: &[(&str, V)], expiry: Expiry, cond: SetIf) -> Result<Pipeline> {
        let mut pipe = redis::pipe();
        for (key, value) in items {
            pipe.add_command(self.set_cmd(key, value, expiry, cond)?);
        }
        Ok(pipe)
    }

    fn outcomes(items: &[(&str, V)], replies: Vec<Option<String>>) -> MultiWrite {
        let mut out = MultiWrite::default();
        for ((key, _), reply) in items.iter().zip(replies) {
            out.record(*key, reply.is_some());
        }
        out
    }

    fn hits(&self, keys: &[&str], values: Vec<Option<Vec<u8>>>) -> Result<HashMap<String, V>> {
        let mut out = HashMap::with_capacity(values.len());
        for (key, stored) in keys.iter().zip(values) {
            if let Some(stored) = stored {
                out.insert((*key).to_owned(), self.decode(key, &stored)?);
            }
        }
        Ok(out)
    }

    fn counter(&self, key: &str, delta: u64, op: &str) -> redis::ScriptInvocation<'static> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let mut inv = SCRIPT
            .get_or_init(|| Script::new(COUNTER_SCRIPT))
            .prepare_invoke();
        inv.key(self.key(key)).arg(delta.to_string()).arg(op);
        inv
    }

    fn touch_script(&self, key: &str, expiry: Expiry) -> redis::ScriptInvocation<'static> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let mut inv = SCRIPT
            .get_or_init(|| Script::new(TOUCH_SCRIPT))
            .prepare_invoke();
        inv.key(self.key(key))
            .arg(ttl_ms(expiry).map_or_else(String::new, |ms| ms.to_string()));
        inv
    }

    fn parse_counter(key: &str, reply: Option<String>) -> Result<Option<u64>> {
        reply
            .map(|s| {
                s.parse::<u64>().map_err(|_| {
                    Error::Protocol(format!("counter script for {key:?} returned {s:?}"))
                })
            })
            .transpose()
    }

    fn no_prefix_error() -> Error {
        Error::Config(
            "RedisCache::clear needs a non-empty key prefix (it never flushes the whole database)"
                .into(),
        )
    }

    // ---- blocking transport -------------------------------------------------------------

    fn with_con<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.cons.with(context, f)
    }

    fn mget_cmd(&self, keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        cmd
    }

    fn del_pipeline(&self, keys: &[&str]) -> Pipeline {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("DEL").arg(self.key(key));
        }
        pipe
    }

    /// Which keys a `DEL` pipeline found.
    fn deleted(keys: &[&str], counts: Vec<u64>) -> MultiWrite {
        let mut out = MultiWrite::default();
        for (key, n) in keys.iter().zip(counts) {
            out.record(*key, n > 0);
        }
        out
    }

    /// The `SCAN MATCH` pattern of this cache's keys; an empty prefix is refused.
    fn clear_pattern(&self) -> Result<String> {
        if self.config.prefix.is_empty() {
            return Err(Self::no_prefix_error());
        }
        Ok(glob_escape(&self.config.prefix))
    }

    fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        cmd
    }

    /// `SET` with a condition; `true` when the server stored the value.
    fn set_if(&self, key: &str, value: &V, expiry: Expiry, cond: SetIf) -> Result<bool> {
        let cmd = self.set_cmd(key, value, expiry, cond)?;
        Ok(self
            .with_con(key, |c| cmd.query::<Option<String>>(c))?
            .is_some())
    }

    // ---- async transport ----------------------------------------------------------------

    /// Runs one command on the multiplexed connection.
    async fn run_async<T: redis::FromRedisValue>(&self, context: &str, cmd: &Cmd) -> Result<T> {
        let mut con = self.manager().await?;
        cmd.query_async(&mut con)
            .await
            .map_err(|e| self.err(context, e))
    }

    /// Runs one pipeline on the multiplexed connection.
    async fn run_pipe_async<T: redis::FromRedisValue>(
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
    async fn invoke_async<T: redis::FromRedisValue>(
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
    async fn set_if_async(
        &self,
        key: &str,
        value: &V,
        expiry: Expiry,
        cond: SetIf,
    ) -> Result<bool> {
        let cmd = self.set_cmd(key, value, expiry, cond)?;
        Ok(self.run_async::<Option<String>>(key, &cmd).await?.is_some())
    }

    async fn manager(&self) -> Result<redis::aio::ConnectionManager> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.response_timeout))
            .set_number_of_retries(1);
        let bound = self.config.connect_timeout * 3;
        let manager = self
            .manager
            .get_or_try_init(|| async {
                match tokio::time::timeout(
                    bound,
                    self.cons
                        .pool
                        .manager()
                        .client
                        .get_connection_manager_with_config(config),
                )
                .await
                {
                    Ok(r) => r.map_err(|e| self.err(&format!("connect to {}", self.config.url), e)),
                    Err(_) => Err(Error::Timeout {
                        what: format!("redis connect to {}", self.config.url),
                        after: bound,
                    }),
                }
            })
            .await?;
        Ok(manager.clone())
    }
}

impl<V: Send + Sync, C: Codec<V>> Cache<V> for RedisCache<V, C> {
    fn get(&self, key: &str) -> Result<Option<V>> {
        let k = self.key(key);
        let stored: Option<Vec<u8>> = self.with_con(key, |c| redis::cmd("GET").arg(&k).query(c))?;
        stored.map(|s| self.decode(key, &s)).transpose()
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(V, Expiry)>> {
        let k = self.key(key);
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
        let cmd = self.mget_cmd(keys);
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
        let k = self.key(key);
        let n: u64 = self.with_con(key, |c| redis::cmd("DEL").arg(&k).query(c))?;
        Ok(n > 0)
    }

    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let pipe = self.del_pipeline(keys);
        let counts: Vec<u64> = self.with_con("DEL", |c| pipe.query(c))?;
        Ok(Self::deleted(keys, counts))
    }

    fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.counter(key, delta, "incr");
        Self::parse_counter(key, self.with_con(key, |c| inv.invoke(c))?)
    }

    fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.counter(key, delta, "decr");
        Self::parse_counter(key, self.with_con(key, |c| inv.invoke(c))?)
    }

    fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        let inv = self.touch_script(key, expiry);
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

impl<V, C: Codec<V>> RedisCache<V, C> {
    fn write_multi(
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

    async fn write_multi_async(
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
        let mut get = redis::cmd("GET");
        get.arg(self.key(key));
        let stored: Option<Vec<u8>> = self.run_async(key, &get).await?;
        stored.map(|s| self.decode(key, &s)).transpose()
    }

    async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, V>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.run_async("MGET", &self.mget_cmd(keys)).await?;
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
        let mut del = redis::cmd("DEL");
        del.arg(self.key(key));
        let n: u64 = self.run_async(key, &del).await?;
        Ok(n > 0)
    }

    async fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        let counts: Vec<u64> = self.run_pipe_async("DEL", &self.del_pipeline(keys)).await?;
        Ok(Self::deleted(keys, counts))
    }

    async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.counter(key, delta, "incr");
        Self::parse_counter(key, self.invoke_async(key, inv).await?)
    }

    async fn decr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        let inv = self.counter(key, delta, "decr");
        Self::parse_counter(key, self.invoke_async(key, inv).await?)
    }

    async fn touch(&self, key: &str, expiry: Expiry) -> Result<bool> {
        let inv = self.touch_script(key, expiry);
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

/// Release a lock only when it still holds our token (atomic on the server).
const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

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
            .field("url", &self.cons.config().url)
            .finish()
    }
}

impl RedisLockStore {
    /// A lock store on the server of `config` (lock keys are `config.prefix + key`).
    pub fn new(config: RedisConfig) -> Result<Self> {
        Ok(Self {
            cons: Arc::new(Connections::new(config)?),
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

/// Cross-instance L1 invalidation for [`Tiered`](crate::tiered::Tiered) over Redis pub/sub.
///
/// Each instance gets a random id; messages are `id` + `\n` + `K<key>` or `*`, and an
/// instance ignores its own. A background thread per subscriber reads the channel (with a
/// short read timeout so it notices shutdown, and reconnects after errors); it stops when
/// the bus is dropped. Delivery is as reliable as Redis pub/sub: a message published while
/// a subscriber is disconnected is lost, so keep the L1 cap short.
pub struct RedisInvalidation {
    cons: Connections,
    channel: String,
    id: String,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisInvalidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisInvalidation")
            .field("channel", &self.channel)
            .field("id", &self.id)
            .finish()
    }
}

impl RedisInvalidation {
    /// A bus on `channel` of the server of `config`.
    pub fn new(config: RedisConfig, channel: impl Into<String>) -> Result<Self> {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(crate::clock::Clock::unix_time(&crate::clock::SystemClock).as_nanos());
        h.write_u32(std::process::id());
        Ok(Self {
            cons: Connections::new(config)?,
            channel: channel.into(),
            id: format!("{:016x}", h.finish()),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Drop for RedisInvalidation {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl InvalidationBus for RedisInvalidation {
    fn publish(&self, what: &Invalidation) -> Result<()> {
        let message = match what {
            Invalidation::Key(key) => format!("{}\nK{key}", self.id),
            Invalidation::All => format!("{}\n*", self.id),
        };
        self.cons.with("PUBLISH", |c| {
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(&message)
                .query::<u64>(c)
        })?;
        Ok(())
    }

    fn subscribe(&self, on_remote: Box<dyn Fn(Invalidation) + Send + Sync>) -> Result<()> {
        let subscriber = Subscriber {
            cons: Connections::new(self.cons.config().clone())?,
            channel: self.channel.clone(),
            id: self.id.clone(),
            stop: Arc::clone(&self.stop),
        };
        // The thread reports once it is subscribed, so nothing published after `subscribe`
        // returns is missed.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("larder-invalidation-{}", self.channel))
            .spawn(move || subscriber.run(ready_tx, on_remote))
            .map_err(Error::Io)?;
        let bound = self.cons.config().connect_timeout + self.cons.config().response_timeout;
        match ready_rx.recv_timeout(bound) {
            Ok(result) => result,
            Err(_) => {
                self.stop.store(true, Ordering::SeqCst);
                Err(Error::Timeout {
                    what: format!("redis SUBSCRIBE {}", self.channel),
                    after: bound,
                })
            }
        }
    }
}

/// What the subscriber thread owns (no reference back to the bus, so dropping the bus
/// stops the thread within one read timeout).
struct Subscriber {
    cons: Connections,
    channel: String,
    id: String,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    fn parse(&self, payload: &[u8]) -> Option<Invalidation> {
        let text = std::str::from_utf8(payload).ok()?;
        let (from, what) = text.split_once('\n')?;
        if from == self.id {
            return None;
        }
        match what.strip_prefix('K') {
            Some(key) => Some(Invalidation::Key(key.to_owned())),
            None if what == "*" => Some(Invalidation::All),
            None => None,
        }
    }

    fn run(
        self,
        ready: std::sync::mpsc::SyncSender<Result<()>>,
        on_remote: Box<dyn Fn(Invalidation) + Send + Sync>,
    ) {
        let mut ready = Some(ready);
        while !self.stop.load(Ordering::SeqCst) {
            let subscribed = self.cons.open().and_then(|con| {
                con.set_read_timeout(Some(Duration::from_millis(100)))
                    .map_err(|e| self.cons.err("set timeouts", e))?;
                Ok(con)
            });
            let mut con = match subscribed {
                Ok(con) => con,
                Err(e) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(e));
                        return;
                    }
                    log::warn!("invalidation channel {}: {e}", self.channel);
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            let mut pubsub = con.as_pubsub();
            if let Err(e) = pubsub.subscribe(&self.channel) {
                let e = self.cons.err("SUBSCRIBE", e);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                log::warn!("invalidation channel {}: {e}", self.channel);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Ok(()));
                }
                // Whatever was published while we were away is lost: evict everything.
                None => on_remote(Invalidation::All),
            }
            while !self.stop.load(Ordering::SeqCst) {
                match pubsub.get_message() {
                    Ok(msg) => {
                        if let Some(what) = msg
                            .get_payload::<Vec<u8>>()
                            .ok()
                            .and_then(|p| self.parse(&p))
                        {
                            on_remote(what);
                        }
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(e) => {
                        log::warn!("invalidation channel {}: {e}; reconnecting", self.channel);
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_escaping_and_ttls() {
        assert_eq!(glob_escape("app:[x]*?\\"), "app:\\[x\\]\\*\\?\\\\*");
        assert_eq!(ttl_ms(Expiry::Never), None);
        assert_eq!(ttl_ms(Expiry::After(Duration::ZERO)), Some(1));
        assert_eq!(ttl_ms(Expiry::secs(2)), Some(2000));
    }
}
