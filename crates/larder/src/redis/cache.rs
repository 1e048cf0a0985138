//! [`RedisCache`] itself and what both faces share: the stored layout (flags header +
//! encoded bytes, or raw bytes), keys, and the commands and scripts each operation sends.

use std::collections::HashMap;
use std::marker::PhantomData;

use redis::{Cmd, Pipeline, Script};

use super::config::{RedisConfig, ValueFormat};
use super::connections::Connections;
use super::scripts::{COUNTER_SCRIPT, TOUCH_SCRIPT};
use super::{glob_escape, map_err, ttl_ms};
use crate::codec::{Codec, Encoded};
use crate::{Error, Expiry, MultiWrite, Result};

/// The cache contract on Redis. See the [module docs](super).
pub struct RedisCache<V, C> {
    /// The blocking connections; `None` when built from the caller's `ConnectionManager`.
    pub(super) cons: Option<Connections>,
    /// What the async face's `ConnectionManager` is made from, when it is made here.
    pub(super) client: Option<redis::Client>,
    pub(super) config: RedisConfig,
    /// The server as errors name it.
    pub(super) server: String,
    codec: C,
    pub(super) manager: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    _value: PhantomData<fn(V) -> V>,
}

impl<V, C> std::fmt::Debug for RedisCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("server", &self.server)
            .field("prefix", &self.config.prefix)
            .field("value_format", &self.config.value_format)
            .finish()
    }
}

/// The conditions of a `SET`.
#[derive(Clone, Copy)]
pub(super) enum SetIf {
    Always,
    Absent,
    Present,
}

impl<V, C: Codec<V>> RedisCache<V, C> {
    /// A cache on the server of `config` (a URL, or the caller's client or connection
    /// manager), encoding values with `codec`. No connection is made until the first
    /// operation (except by a `ConnectionManager` the caller made).
    ///
    /// Built from a `ConnectionManager`, the cache has only its async face: the blocking
    /// [`Cache`](crate::Cache) calls answer [`Error::Unsupported`].
    pub fn new(config: RedisConfig, codec: C) -> Result<Self> {
        let given = config.given_manager();
        let (cons, client) = match &given {
            Some(_) => (None, None),
            None => (
                Some(Connections::new(config.clone(), "RedisCache")?),
                config.client()?,
            ),
        };
        Ok(Self {
            cons,
            client,
            server: config.server(),
            config,
            codec,
            manager: tokio::sync::OnceCell::new_with(given),
            _value: PhantomData,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    pub(super) fn err(&self, context: &str, e: redis::RedisError) -> Error {
        map_err(context, self.config.response_timeout, e)
    }

    /// The stored key of the caller's `key`, once the key policy accepts it: every command
    /// builder goes through here, so no command with a refused key is ever sent.
    pub(super) fn key(&self, key: &str) -> Result<String> {
        self.config.key_policy.check(key)?;
        let mut k = String::with_capacity(self.config.prefix.len() + key.len());
        k.push_str(&self.config.prefix);
        k.push_str(key);
        Ok(k)
    }

    pub(super) fn encode(&self, value: &V) -> Result<Vec<u8>> {
        let Encoded { data, flags } = self.codec.encode(value)?;
        match self.config.value_format {
            ValueFormat::Raw { flags: raw } if flags == raw => Ok(data),
            ValueFormat::Raw { flags: raw } => Err(Error::Codec(format!(
                "raw Redis values keep no flags: the codec gave flags {flags:#x}, but raw \
                 values are read back with {raw:#x}"
            ))),
            _ => {
                let mut out = Vec::with_capacity(4 + data.len());
                out.extend_from_slice(&flags.to_be_bytes());
                out.extend_from_slice(&data);
                Ok(out)
            }
        }
    }

    pub(super) fn decode(&self, key: &str, stored: &[u8]) -> Result<V> {
        match (self.config.value_format, stored) {
            (ValueFormat::Raw { flags }, _) => self.codec.decode(stored, flags),
            (_, [a, b, c, d, data @ ..]) => self
                .codec
                .decode(data, u32::from_be_bytes([*a, *b, *c, *d])),
            (_, _) => Err(Error::Codec(format!(
                "value under {key:?} is not a larder value ({} bytes, no flags header)",
                stored.len()
            ))),
        }
    }

    /// The bytes before a counter's digits: the flags header, or none for raw values.
    fn header_len(&self) -> usize {
        match self.config.value_format {
            ValueFormat::Raw { .. } => 0,
            _ => 4,
        }
    }

    pub(super) fn set_cmd(&self, key: &str, value: &V, expiry: Expiry, cond: SetIf) -> Result<Cmd> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)?).arg(self.encode(value)?);
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

    pub(super) fn set_pipeline(
        &self,
        items: &[(&str, V)],
        expiry: Expiry,
        cond: SetIf,
    ) -> Result<Pipeline> {
        let mut pipe = redis::pipe();
        for (key, value) in items {
            pipe.add_command(self.set_cmd(key, value, expiry, cond)?);
        }
        Ok(pipe)
    }

    pub(super) fn outcomes(items: &[(&str, V)], replies: Vec<Option<String>>) -> MultiWrite {
        let mut out = MultiWrite::default();
        for ((key, _), reply) in items.iter().zip(replies) {
            out.record(*key, reply.is_some());
        }
        out
    }

    pub(super) fn hits(
        &self,
        keys: &[&str],
        values: Vec<Option<Vec<u8>>>,
    ) -> Result<HashMap<String, V>> {
        let mut out = HashMap::with_capacity(values.len());
        for (key, stored) in keys.iter().zip(values) {
            if let Some(stored) = stored {
                out.insert((*key).to_owned(), self.decode(key, &stored)?);
            }
        }
        Ok(out)
    }

    pub(super) fn counter(
        &self,
        key: &str,
        delta: u64,
        op: &str,
    ) -> Result<redis::ScriptInvocation<'static>> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let mut inv = SCRIPT
            .get_or_init(|| Script::new(COUNTER_SCRIPT))
            .prepare_invoke();
        inv.key(self.key(key)?)
            .arg(delta.to_string())
            .arg(op)
            .arg(self.header_len());
        Ok(inv)
    }

    pub(super) fn touch_script(
        &self,
        key: &str,
        expiry: Expiry,
    ) -> Result<redis::ScriptInvocation<'static>> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let mut inv = SCRIPT
            .get_or_init(|| Script::new(TOUCH_SCRIPT))
            .prepare_invoke();
        inv.key(self.key(key)?)
            .arg(ttl_ms(expiry).map_or_else(String::new, |ms| ms.to_string()));
        Ok(inv)
    }

    pub(super) fn parse_counter(key: &str, reply: Option<String>) -> Result<Option<u64>> {
        reply
            .map(|s| {
                s.parse::<u64>().map_err(|_| {
                    Error::Protocol(format!("counter script for {key:?} returned {s:?}"))
                })
            })
            .transpose()
    }

    pub(super) fn no_prefix_error() -> Error {
        Error::Config(
            "RedisCache::clear needs a non-empty key prefix (it never flushes the whole database)"
                .into(),
        )
    }

    pub(super) fn mget_cmd(&self, keys: &[&str]) -> Result<Cmd> {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key)?);
        }
        Ok(cmd)
    }

    pub(super) fn del_pipeline(&self, keys: &[&str]) -> Result<Pipeline> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("DEL").arg(self.key(key)?);
        }
        Ok(pipe)
    }

    /// One command on one key (`GET`, `DEL`).
    pub(super) fn key_cmd(&self, name: &str, key: &str) -> Result<Cmd> {
        let mut cmd = redis::cmd(name);
        cmd.arg(self.key(key)?);
        Ok(cmd)
    }

    /// Which keys a `DEL` pipeline found.
    pub(super) fn deleted(keys: &[&str], counts: Vec<u64>) -> MultiWrite {
        let mut out = MultiWrite::default();
        for (key, n) in keys.iter().zip(counts) {
            out.record(*key, n > 0);
        }
        out
    }

    /// The `SCAN MATCH` pattern of this cache's keys; an empty prefix is refused.
    pub(super) fn clear_pattern(&self) -> Result<String> {
        if self.config.prefix.is_empty() {
            return Err(Self::no_prefix_error());
        }
        Ok(glob_escape(&self.config.prefix))
    }

    pub(super) fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        cmd
    }
}
