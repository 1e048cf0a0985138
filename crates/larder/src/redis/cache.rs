//! What both Redis faces share, once: the [`Mapping`] of the caller's keys and values to
//! what is stored (the prefix and key policy; the flags header + encoded bytes, or raw
//! bytes), the commands and scripts each operation sends, and how replies read back. The
//! faces (`blocking`: [`RedisCache`](super::RedisCache), `async_face`:
//! `AsyncRedisCache`) only send these and wait.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

use redis::{Cmd, Pipeline, Script};

use super::config::{RedisConfig, ValueFormat};
use super::scripts::{COUNTER_SCRIPT, TOUCH_SCRIPT};
use super::{glob_escape, ttl_ms};
use crate::codec::{Codec, Encoded};
use crate::{Error, Expiry, MultiWrite, Result};

/// The configuration and codec of one cache, and every rule that turns an operation into
/// commands and replies into results.
pub(super) struct Mapping<V, C> {
    pub(super) config: RedisConfig,
    /// The server as errors and `Debug` name it.
    pub(super) server: String,
    pub(super) codec: C,
    _value: PhantomData<fn(V) -> V>,
}

impl<V, C: Clone> Clone for Mapping<V, C> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            server: self.server.clone(),
            codec: self.codec.clone(),
            _value: PhantomData,
        }
    }
}

impl<V, C> Mapping<V, C> {
    /// `Debug` of a face named `name`: the server and layout, never a password.
    pub(super) fn debug(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(name)
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

impl<V, C: Codec<V>> Mapping<V, C> {
    pub(super) fn new(config: RedisConfig, codec: C) -> Self {
        Self {
            server: config.server(),
            config,
            codec,
            _value: PhantomData,
        }
    }

    /// The client's error, as the async face reports it (the blocking pool maps its own).
    #[cfg(feature = "tokio")]
    pub(super) fn err(&self, context: &str, e: redis::RedisError) -> Error {
        super::map_err(context, self.config.response_timeout, e)
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

    /// `GET` and `PTTL` of one key, in one pipeline.
    pub(super) fn get_with_ttl_pipeline(&self, key: &str) -> Result<Pipeline> {
        let k = self.key(key)?;
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&k).cmd("PTTL").arg(&k);
        Ok(pipe)
    }

    /// The value and remaining life read by [`get_with_ttl_pipeline`](Self::get_with_ttl_pipeline).
    pub(super) fn with_life(
        &self,
        key: &str,
        (stored, pttl): (Option<Vec<u8>>, i64),
    ) -> Result<Option<(V, Expiry)>> {
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

    /// The `SCAN MATCH` pattern of this cache's keys; an empty prefix is refused.
    pub(super) fn clear_pattern(&self) -> Result<String> {
        if self.config.prefix.is_empty() {
            return Err(Error::Config(
                "clear on a Redis cache needs a non-empty key prefix (it never flushes the \
                 whole database)"
                    .into(),
            ));
        }
        Ok(glob_escape(&self.config.prefix))
    }
}

/// Which items a `SET` pipeline stored.
pub(super) fn outcomes<V>(items: &[(&str, V)], replies: Vec<Option<String>>) -> MultiWrite {
    let mut out = MultiWrite::default();
    for ((key, _), reply) in items.iter().zip(replies) {
        out.record(*key, reply.is_some());
    }
    out
}

/// The new value a counter script returned (`None`: the key is missing).
pub(super) fn parse_counter(key: &str, reply: Option<String>) -> Result<Option<u64>> {
    reply
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| Error::Protocol(format!("counter script for {key:?} returned {s:?}")))
        })
        .transpose()
}

/// Which keys a `DEL` pipeline found.
pub(super) fn deleted(keys: &[&str], counts: Vec<u64>) -> MultiWrite {
    let mut out = MultiWrite::default();
    for (key, n) in keys.iter().zip(counts) {
        out.record(*key, n > 0);
    }
    out
}

/// One `SCAN` step over `pattern`.
pub(super) fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::TextCodec;

    #[test]
    fn remaining_life_reads_pttl() {
        let map = Mapping::new(RedisConfig::new("redis://127.0.0.1:1"), TextCodec);
        let stored = || Some(b"\0\0\0\x10v".to_vec());
        let life = |pttl| {
            map.with_life("k", (stored(), pttl))
                .unwrap()
                .map(|(_, e)| e)
        };
        assert_eq!(life(1500), Some(Expiry::After(Duration::from_millis(1500))));
        assert_eq!(life(-1), Some(Expiry::Never));
        assert_eq!(life(-2), Some(Expiry::After(Duration::ZERO)));
        assert_eq!(map.with_life("k", (None, -2)).unwrap(), None);
        assert_eq!(
            map.with_life("k", (stored(), 5))
                .unwrap()
                .map(|(v, _)| v)
                .as_deref(),
            Some("v")
        );
    }
}
