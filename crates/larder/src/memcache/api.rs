//! The operations of both memcached clients, listed once: [`client_api!`] writes the public
//! methods of [`Client`](super::Client) and `AsyncClient` from one list, so the two faces
//! have the same API by construction (the async face's methods are `async` and await the
//! same calls). Each method builds its [`ops`](super::ops) request and hands it to the
//! face's driver, which only has to provide:
//!
//! - `run_key(key, op)`: one exchange on the server that takes `key`;
//! - `run_on(server, op)`: one exchange on `server` (failing fast while it is dead);
//! - `get_multi_core(keys, visit)` and `write_multi(keys, make_op)`: the multi-key take-off
//!   and landing over every server involved;
//! - `pool_stats()`, `close_idle()`, `inner.cluster`, `inner.config`.
//!
//! Also here: the helpers both faces share.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::cluster::{Cluster, ServerHealth};
use super::exchange::Batches;
use super::ops::Op;
use super::proto;
use crate::{Error, Expiry, Result};

/// The current Unix time in seconds (for exptimes over 30 days).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// memcached's exptime for `expiry`, now.
pub(crate) fn exptime(expiry: Expiry) -> u32 {
    proto::exptime(expiry, unix_now())
}

/// The exptime of a meta invalidation: `Never` keeps the item's own expiry (0).
pub(crate) fn invalidation_exptime(ttl: Expiry) -> u32 {
    match ttl {
        Expiry::Never => 0,
        e => exptime(e),
    }
}

/// A pool's creation error carries our own typed error (timeout, I/O): hand that back.
pub(crate) fn unwrap_create_error(err: Error) -> Error {
    match err {
        Error::PoolCreate { pool, source } => match source.downcast::<Error>() {
            Ok(inner) => *inner,
            Err(source) => Error::PoolCreate { pool, source },
        },
        other => other,
    }
}

/// One server's part of a multi-key write: the server, its keys' indices, its batches.
pub(crate) type ServerWrites = (usize, Vec<usize>, Batches<bool>);

/// The write batches of a multi-key write: one op per key (built by `make_op` from the
/// key's index, its request appended to its batch's buffer, every one before anything is
/// sent), grouped by server with each group's key indices.
pub(crate) fn write_batches(
    cluster: &Cluster,
    keys: &[&[u8]],
    make_op: impl Fn(usize, &mut Vec<u8>) -> Result<Op<bool>>,
) -> Result<Vec<ServerWrites>> {
    cluster
        .group_indices(keys)?
        .iter()
        .map(|(server, indices)| {
            let x = Batches::encoded(indices.len(), |j, buf| make_op(indices[j], buf))?;
            Ok((server, indices.to_vec(), x))
        })
        .collect()
}

/// Per-server stats maps with the `larder:*` health entries added (see `Client::stats`).
pub(crate) fn stats_with_health(
    replies: Vec<Result<HashMap<String, String>>>,
    health: Vec<ServerHealth>,
) -> Result<HashMap<String, HashMap<String, String>>> {
    let mut out = HashMap::new();
    let mut first_err = None;
    let mut any_ok = false;
    for (reply, h) in replies.into_iter().zip(health) {
        let mut map = match reply {
            Ok(map) => {
                any_ok = true;
                map
            }
            Err(e) => {
                let mut map = HashMap::new();
                map.insert("larder:error".to_owned(), e.to_string());
                first_err.get_or_insert(e);
                map
            }
        };
        map.extend(h.stats_entries());
        out.insert(h.addr.to_string(), map);
    }
    match first_err {
        Some(e) if !any_ok => Err(e),
        _ => Ok(out),
    }
}

/// Writes the public operations of a client face: `client_api!(Type, [async], [.await],
/// [+ Send])` for the async face, `client_api!(Type, [], [], [])` for the blocking one (the
/// last list bounds the multi-get visitor).
macro_rules! client_api {
    ($client:ident, [$($asy:tt)*], [$($aw:tt)*], [$($send:tt)*]) => {
        impl $client {
            /// The value and client flags of `key`, `None` on a miss.
            pub $($asy)* fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<(Vec<u8>, u32)>> {
                let key = key.as_ref();
                Ok(self
                    .run_key(key, ops::get(key, false, None)?)$($aw)*?
                    .map(|i| (i.data, i.flags)))
            }

            /// Value, flags and CAS of `key`, `None` on a miss.
            pub $($asy)* fn gets(&self, key: impl AsRef<[u8]>) -> Result<Option<GetsItem>> {
                let key = key.as_ref();
                self.run_key(key, ops::get(key, true, None)?)$($aw)*
            }

            /// Get-and-touch: the value, flags and CAS of `key`, resetting its expiry.
            pub $($asy)* fn gat(
                &self,
                key: impl AsRef<[u8]>,
                expiry: Expiry,
            ) -> Result<Option<GetsItem>> {
                let key = key.as_ref();
                self.run_key(key, ops::get(key, true, Some(api::exptime(expiry)))?)$($aw)*
            }

            /// The hits among `keys` (value, flags, CAS 0), pipelined per server and sent to
            /// every server before any reply is read. The hits are copied into one buffer
            /// with a hash index over it ([`MultiGetHits`]): look a key up with `get`,
            /// iterate with `iter`; [`get_multi_with`](Self::get_multi_with) visits them in
            /// place instead.
            ///
            /// Partial failure: when some servers fail (or are dead in `FailFast` mode), the
            /// hits of the others are returned and the failed servers' keys count as misses
            /// (each failure counts toward that server's health). Only when every involved
            /// server fails is the call an error (the first failure).
            pub $($asy)* fn get_multi<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<MultiGetHits> {
                let mut hits = multi_get::Collector::new(keys.len());
                self.get_multi_core(keys, &mut |_, hit: HitRef<'_>| hits.visit(hit))$($aw)*?;
                Ok(hits.finish())
            }

            /// Like [`get_multi`](Self::get_multi), handing each hit to `visit` as it is
            /// parsed, borrowed from the connection's read buffer (nothing is copied unless
            /// `visit` copies it). Returns the number of hits. Hits are visited server by
            /// server, in the order each server answers; on a partial failure the hits
            /// already visited of a server that then failed were real hits.
            pub $($asy)* fn get_multi_with<K: AsRef<[u8]>>(
                &self,
                keys: &[K],
                mut visit: impl FnMut(HitRef<'_>) $($send)*,
            ) -> Result<usize> {
                self.get_multi_core(keys, &mut |_, hit: HitRef<'_>| visit(hit))$($aw)*
            }

            /// [`get_multi_with`](Self::get_multi_with), also handing `visit` the position
            /// in `keys` of the key each hit answers, so the caller finds what it asked for
            /// without looking the key up. A key passed more than once is visited at each
            /// of its positions.
            pub $($asy)* fn get_multi_indexed<K: AsRef<[u8]>>(
                &self,
                keys: &[K],
                mut visit: impl FnMut(usize, HitRef<'_>) $($send)*,
            ) -> Result<usize> {
                self.get_multi_core(keys, &mut visit)$($aw)*
            }

            /// Stores every `(key, value, flags)` with `mode` (`Set`, `Add`, `Replace`,
            /// ...): grouped by server, batched (many requests per write), every server's
            /// first batch sent before any reply is read. Returns, in item order, whether
            /// each was stored. When a server fails the call is an error (the other servers'
            /// items were still written).
            pub $($asy)* fn store_multi(
                &self,
                mode: SetMode,
                items: &[(&[u8], &[u8], u32)],
                expiry: Expiry,
            ) -> Result<Vec<bool>> {
                let exptime = api::exptime(expiry);
                let limit = self.inner.config.item_size_limit;
                let keys: Vec<&[u8]> = items.iter().map(|(k, _, _)| *k).collect();
                self.write_multi(&keys, |i, buf| {
                    let (key, value, flags) = items[i];
                    ops::store_into(buf, key, value, flags, exptime, mode, None, limit)
                })$($aw)*
            }

            /// Deletes every key like [`store_multi`](Self::store_multi) writes; in key
            /// order, whether each was present.
            pub $($asy)* fn delete_multi<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<bool>> {
                let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
                self.write_multi(&keys, |i, buf| ops::delete_into(buf, keys[i], None))$($aw)*
            }

            $($asy)* fn store(
                &self,
                mode: SetMode,
                key: &[u8],
                value: &[u8],
                flags: u32,
                expiry: Expiry,
                cas: Option<u64>,
            ) -> Result<bool> {
                let (exptime, limit) = (api::exptime(expiry), self.inner.config.item_size_limit);
                let op = ops::owned(|req| {
                    ops::store_into(req, key, value, flags, exptime, mode, cas, limit)
                })?;
                self.run_key(key, op)$($aw)*
            }

            /// Stores `value` with client `flags` unconditionally.
            pub $($asy)* fn set(
                &self,
                key: impl AsRef<[u8]>,
                value: &[u8],
                flags: u32,
                expiry: Expiry,
            ) -> Result<()> {
                let key = key.as_ref();
                match self.store(SetMode::Set, key, value, flags, expiry, None)$($aw)*? {
                    true => Ok(()),
                    false => Err(Error::Server(format!(
                        "set of {:?} was not stored",
                        String::from_utf8_lossy(key)
                    ))),
                }
            }

            /// Stores only when absent; `true` when stored.
            pub $($asy)* fn add(
                &self,
                key: impl AsRef<[u8]>,
                value: &[u8],
                flags: u32,
                expiry: Expiry,
            ) -> Result<bool> {
                self.store(SetMode::Add, key.as_ref(), value, flags, expiry, None)$($aw)*
            }

            /// Stores only when present; `true` when stored.
            pub $($asy)* fn replace(
                &self,
                key: impl AsRef<[u8]>,
                value: &[u8],
                flags: u32,
                expiry: Expiry,
            ) -> Result<bool> {
                self.store(SetMode::Replace, key.as_ref(), value, flags, expiry, None)$($aw)*
            }

            /// Appends to an existing value; `true` when the key existed.
            pub $($asy)* fn append(&self, key: impl AsRef<[u8]>, value: &[u8]) -> Result<bool> {
                self.store(SetMode::Append, key.as_ref(), value, 0, Expiry::Never, None)$($aw)*
            }

            /// Prepends to an existing value; `true` when the key existed.
            pub $($asy)* fn prepend(&self, key: impl AsRef<[u8]>, value: &[u8]) -> Result<bool> {
                self.store(SetMode::Prepend, key.as_ref(), value, 0, Expiry::Never, None)$($aw)*
            }

            /// Stores only when the item's CAS is still `cas`; `false` when it changed or
            /// vanished.
            pub $($asy)* fn cas(
                &self,
                key: impl AsRef<[u8]>,
                value: &[u8],
                flags: u32,
                expiry: Expiry,
                cas: u64,
            ) -> Result<bool> {
                self.store(SetMode::Set, key.as_ref(), value, flags, expiry, Some(cas))$($aw)*
            }

            /// Deletes `key`; `true` when it was present.
            pub $($asy)* fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
                let key = key.as_ref();
                self.run_key(key, ops::delete(key, None)?)$($aw)*
            }

            /// Deletes `key` only while its CAS is still `cas` (from `gets`); `false` when it
            /// is missing or was changed meanwhile. One round trip, atomic on the server.
            pub $($asy)* fn delete_cas(&self, key: impl AsRef<[u8]>, cas: u64) -> Result<bool> {
                let key = key.as_ref();
                self.run_key(key, ops::delete_cas(key, cas)?)$($aw)*
            }

            /// Adds `delta`; the new value, `None` when the key is missing.
            pub $($asy)* fn incr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<Option<u64>> {
                let key = key.as_ref();
                self.run_key(key, ops::arith(key, false, delta)?)$($aw)*
            }

            /// Subtracts `delta` (stopping at 0); the new value, `None` when the key is
            /// missing.
            pub $($asy)* fn decr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<Option<u64>> {
                let key = key.as_ref();
                self.run_key(key, ops::arith(key, true, delta)?)$($aw)*
            }

            /// Gives `key` a new expiry; `true` when it exists.
            pub $($asy)* fn touch(&self, key: impl AsRef<[u8]>, expiry: Expiry) -> Result<bool> {
                let key = key.as_ref();
                self.run_key(key, ops::touch(key, api::exptime(expiry))?)$($aw)*
            }

            /// `flush_all` on every server: invalidates every item on them, not only ours.
            pub $($asy)* fn flush_all(&self) -> Result<()> {
                for server in 0..self.inner.config.servers.len() {
                    self.run_on(server, ops::flush_all(None))$($aw)*?;
                }
                Ok(())
            }

            /// `stats` of every server, keyed by server address, each map with the client's
            /// view of the server added: `larder:state` (`alive`/`dead`),
            /// `larder:consecutive_failures`, `larder:total_failures`, `larder:dead_for_ms`
            /// when dead, and `larder:error` when the server could not be asked (its map
            /// then holds only the `larder:*` entries). An error only when no server
            /// answered.
            pub $($asy)* fn stats(&self) -> Result<HashMap<String, HashMap<String, String>>> {
                self.stats_group(None)$($aw)*
            }

            /// `stats <group>` (e.g. `"slabs"`, `"settings"`) of every server, with the
            /// `larder:*` entries of [`stats`](Self::stats).
            pub $($asy)* fn stats_group(
                &self,
                group: Option<&str>,
            ) -> Result<HashMap<String, HashMap<String, String>>> {
                let mut replies = Vec::new();
                for server in 0..self.inner.config.servers.len() {
                    let op = ops::stats(group)?;
                    replies.push(self.run_on(server, op)$($aw)*);
                }
                api::stats_with_health(replies, self.health())
            }

            /// The version string of every server, keyed by server address.
            pub $($asy)* fn version(&self) -> Result<HashMap<String, String>> {
                let mut out = HashMap::new();
                for (server, addr) in self.inner.config.servers.iter().enumerate() {
                    out.insert(addr.to_string(), self.run_on(server, ops::version())$($aw)*?);
                }
                Ok(out)
            }

            /// The stale-while-revalidate read (`mg` with `N`/`R`): value, CAS, remaining
            /// TTL, and whether this caller won the right to recreate the value.
            pub $($asy)* fn meta_get(
                &self,
                key: impl AsRef<[u8]>,
                opts: MetaGetOptions,
            ) -> Result<MetaGetResult> {
                let key = key.as_ref();
                self.run_key(key, ops::meta_get(key, opts)?)$($aw)*
            }

            /// Marks `key` stale (`md … I`), giving it `ttl` more life; the next `meta_get`
            /// gets the old value with `won`. `true` when the key existed.
            pub $($asy)* fn meta_invalidate(&self, key: impl AsRef<[u8]>, ttl: Expiry) -> Result<bool> {
                let key = key.as_ref();
                let op = ops::delete(key, Some(api::invalidation_exptime(ttl)))?;
                self.run_key(key, op)$($aw)*
            }

            /// Stores `value` only when the item's CAS is still `cas` (the winner's
            /// recache); `false` when it was invalidated or changed meanwhile.
            pub $($asy)* fn meta_set_cas(
                &self,
                key: impl AsRef<[u8]>,
                value: &[u8],
                flags: u32,
                expiry: Expiry,
                cas: u64,
            ) -> Result<bool> {
                self.cas(key, value, flags, expiry, cas)$($aw)*
            }

            /// The health of every server, in configuration order.
            pub fn health(&self) -> Vec<ServerHealth> {
                self.inner.cluster.health()
            }

            /// The configuration.
            pub fn config(&self) -> &ClientConfig {
                &self.inner.config
            }

            /// Counters of each server's connection pool, in server order.
            pub fn pool_stats(&self) -> Vec<crate::pool::PoolStats> {
                self.inner.pools.iter().map(|p| p.stats()).collect()
            }

            /// Closes every idle pooled connection now (connections in use are kept; new
            /// ones are opened as needed).
            pub fn close_idle(&self) {
                for pool in &self.inner.pools {
                    pool.close_idle();
                }
            }
        }
    };
}

pub(crate) use client_api;
