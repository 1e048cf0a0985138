//! The cache contract on Redis (feature `redis`), through the well-kept `redis` crate: one
//! type per face, [`RedisCache`] (blocking) and `AsyncRedisCache` (with feature `tokio`), as
//! for memcached (see [`crate::cache`] on why), over one shared mapping, so both read and
//! write the same entries.
//!
//! Semantics map onto Redis faithfully: `add` = `SET NX`, `replace` = `SET XX`, TTLs as
//! `PX` milliseconds, `get_multi` = `MGET`, multi-key writes go out as one pipeline,
//! `incr`/`decr` run as one Lua script (atomic on the server, `decr` stopping at 0 and
//! `incr` wrapping at 2^64 as memcached does, a value that is not a `u64` in decimal refused
//! as [`Error::NotANumber`], the entry's TTL kept), and `clear` deletes only
//! keys under this cache's prefix (`SCAN` + `UNLINK`, never `FLUSHALL`/`FLUSHDB`).
//!
//! Stored layout: by default every value is the codec's 32-bit flags (big-endian) followed
//! by the encoded bytes, so a reader with the wrong codec gets [`Error::Codec`] instead of a
//! wrong value; [`ValueFormat::Raw`] stores the encoded bytes alone, as other Redis clients
//! read and write them. Keys are `prefix + key`, the caller's key checked first by the
//! configured [`KeyPolicy`](crate::KeyPolicy) (the contract's rule by default).
//!
//! Connections: the blocking side keeps `redis::Connection`s in a [`crate::pool`] queue (a
//! connection that saw an I/O error or timeout is discarded, never reused); the async side
//! uses the crate's `ConnectionManager`, a multiplexed connection that reconnects by itself,
//! as the crate recommends. Both set connect and response timeouts, so a down server gives
//! typed errors within the bound, and a server that comes back is used again without a
//! restart. A cache can also be built from the caller's own `redis::Client` (both faces) or
//! `ConnectionManager` (the async face): see [`RedisConfig`]. Both faces report remaining
//! life (`get_with_ttl`: `GET` + `PTTL` in one pipeline), so a tiered cache over either
//! never keeps an L1 copy longer than the Redis entry lives.
//!
//! Only the blocking face and its scripts come with feature `redis` (the `redis` crate's
//! `script` feature); feature `tokio` adds its tokio support and `ConnectionManager`.
//!
//! Files: `config` (what to connect to and how), `connections` (the blocking pool),
//! `scripts` (the Lua scripts), `cache` (the mapping both faces share: stored layout, keys,
//! commands, replies), `blocking` ([`RedisCache`]) and `async_face` (`AsyncRedisCache`),
//! `lock` and `invalidation` (the dogpile lock store and the tiered invalidation bus).

#[cfg(feature = "tokio")]
mod async_face;
mod blocking;
mod cache;
mod config;
mod connections;
mod invalidation;
mod lock;
mod scripts;

use std::time::Duration;

use crate::{Error, Expiry};

#[cfg(feature = "tokio")]
pub use self::async_face::AsyncRedisCache;
pub use self::blocking::RedisCache;
pub use self::config::{RedisConfig, ValueFormat};
pub use self::invalidation::RedisInvalidation;
pub use self::lock::RedisLockStore;

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
