//! The operations both clients run, sans-IO: each builds its request bytes and a reply
//! handler that turns [`Reply`]s into the operation's result. The blocking and async
//! transports only move bytes and feed replies to the handler until it returns a result.

use std::collections::HashMap;

use super::exchange;
use super::proto::{
    self, encode_ma, encode_md, encode_mg, encode_mn, encode_ms, MaFlags, MdFlags, MetaReply,
    MetaStatus, MgFlags, MsFlags, Reply, SetMode, WireKey,
};
use crate::{Error, Result};

/// A value read back with its client flags and (when asked for) its CAS value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetsItem {
    /// The value bytes.
    pub data: Vec<u8>,
    /// The client flags stored with it.
    pub flags: u32,
    /// The item's CAS value (0 when the server did not send one).
    pub cas: u64,
}

impl GetsItem {
    /// The item of a `VA` meta reply (flags and CAS 0 when not sent).
    fn from_meta(m: MetaReply) -> Self {
        Self {
            data: m.value.unwrap_or_default(),
            flags: m.client_flags.unwrap_or(0),
            cas: m.cas.unwrap_or(0),
        }
    }
}

/// Options of [`Client::meta_get`](super::Client::meta_get), the stale-while-revalidate read:
/// [`default`](Self::default) (none), with one setter per option. Non-exhaustive, so a new
/// meta flag is not a breaking change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetaGetOptions {
    /// On a miss, create a placeholder living this many seconds and hand this caller the
    /// win token (`N`); later callers see `winner_elsewhere`.
    pub vivify_ttl: Option<u32>,
    /// Hand out the win token once when the remaining TTL drops below this (`R`).
    pub recache_threshold: Option<u32>,
    /// Also reset the item's exptime to this (`T`).
    pub touch_exptime: Option<u32>,
}

impl MetaGetOptions {
    /// On a miss, create a placeholder living `ttl` seconds and win (`N`).
    pub fn vivify(mut self, ttl: u32) -> Self {
        self.vivify_ttl = Some(ttl);
        self
    }

    /// Win once when the remaining TTL drops below `seconds` (`R`).
    pub fn recache_below(mut self, seconds: u32) -> Self {
        self.recache_threshold = Some(seconds);
        self
    }

    /// Also reset the item's exptime to `exptime` (`T`).
    pub fn touch(mut self, exptime: u32) -> Self {
        self.touch_exptime = Some(exptime);
        self
    }
}

/// The answer of a meta get (non-exhaustive: it may report more of the reply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetaGetResult {
    /// The value, `None` on a miss (a vivified placeholder has an empty value).
    pub value: Option<Vec<u8>>,
    /// The client flags.
    pub flags: u32,
    /// The CAS value, for [`Client::meta_set_cas`](super::Client::meta_set_cas).
    pub cas: u64,
    /// Remaining TTL in seconds; `None` when the item never expires or was not found.
    pub ttl_remaining: Option<u64>,
    /// This caller must (re)create the value (`W`).
    pub won: bool,
    /// The value was invalidated and is stale (`X`).
    pub stale: bool,
    /// Another caller is already recreating it (`Z`).
    pub winner_elsewhere: bool,
}

/// Multi-get hits keyed by key.
pub(crate) type Hits = HashMap<Vec<u8>, GetsItem>;

/// How an op turns replies into its result.
pub(crate) enum Handler<T> {
    /// Every reply, until it returns `Ok(Some)` (`Ok(None)` asks for the next one).
    Replies(Box<dyn FnMut(Reply) -> Result<Option<T>> + Send>),
    /// The one meta reply of a single request, mapped by `map`; any other reply is the
    /// error `other` describes. `map` is most often a closure that captures nothing, which
    /// boxes without allocating (a single op allocates only its request).
    Meta {
        map: Box<dyn Fn(MetaReply) -> Result<T> + Send>,
        other: OtherReply,
    },
}

/// What a single op's error names when its reply is not a meta reply.
pub(crate) struct OtherReply {
    expected: &'static str,
    /// The key of an `ma` (named by a non-numeric-value error).
    arithmetic_key: Option<Vec<u8>>,
    value_size: usize,
}

/// A request and the handler of its replies.
pub(crate) struct Op<T> {
    pub request: Vec<u8>,
    pub handler: Handler<T>,
    /// The opaque token of its one meta request, which the reply must echo (`None` for
    /// text requests and for batches whose handler ties each reply itself).
    pub opaque: Option<u32>,
    /// A read without side effects: it may be sent again on another connection.
    pub idempotent: bool,
}

impl<T> Op<T> {
    /// Hands `reply` to the handler once it is known to answer this request: `Ok(None)`
    /// when more replies are due, `Ok(Some(result))` when the op is complete (an `Err` there
    /// left the connection in step), `Err` when the connection is out of step.
    #[inline]
    pub(crate) fn feed(&mut self, reply: Reply) -> Result<Option<Result<T>>> {
        let Op {
            request,
            handler,
            opaque,
            ..
        } = self;
        feed_op(handler, *opaque, request, reply)
    }

    /// [`feed`](Self::feed) for an op whose request was sent from a batch's buffer:
    /// `request` is its bytes there (the op holds none of its own).
    #[inline]
    pub(crate) fn feed_sent(&mut self, reply: Reply, request: &[u8]) -> Result<Option<Result<T>>> {
        feed_op(&mut self.handler, self.opaque, request, reply)
    }

    /// A text request (no opaque) answered by `handler`.
    fn text(
        request: Vec<u8>,
        idempotent: bool,
        handler: Box<dyn FnMut(Reply) -> Result<Option<T>> + Send>,
    ) -> Self {
        Op {
            request,
            handler: Handler::Replies(handler),
            opaque: None,
            idempotent,
        }
    }
}

/// [`Op::feed`] over the op's parts: `request` is what was sent for it.
#[inline]
fn feed_op<T>(
    handler: &mut Handler<T>,
    opaque: Option<u32>,
    request: &[u8],
    reply: Reply,
) -> Result<Option<Result<T>>> {
    if let (Some(opaque), Reply::Meta(m)) = (opaque, &reply) {
        exchange::check_meta(m, opaque, || exchange::request_key_token(request))?;
    }
    let result = match handler {
        Handler::Replies(handle) => handle(reply),
        Handler::Meta { map, other } => match reply {
            Reply::Meta(m) => map(m).map(Some),
            reply => Err(reply.into_error(
                other.expected,
                other.arithmetic_key.as_deref(),
                other.value_size,
            )),
        },
    };
    match result {
        Ok(None) => Ok(None),
        Ok(Some(v)) => Ok(Some(Ok(v))),
        Err(e) if exchange::keeps_connection(&e) => Ok(Some(Err(e))),
        Err(e) => Err(e),
    }
}

/// The per-key outcomes of a multi-key write gathered from its servers back into key order;
/// the call fails with the first server failure (the other servers' writes still happened).
pub(crate) struct WriteOutcome {
    applied: Vec<bool>,
    first_err: Option<Error>,
}

impl WriteOutcome {
    /// Nothing heard yet about `keys` keys.
    pub(crate) fn new(keys: usize) -> Self {
        Self {
            applied: vec![false; keys],
            first_err: None,
        }
    }

    /// One server's result for the keys at `indices`.
    pub(crate) fn add(&mut self, indices: &[usize], result: Result<Vec<bool>>) {
        match result {
            Ok(applied) => {
                for (&i, a) in indices.iter().zip(applied) {
                    self.applied[i] = a;
                }
            }
            Err(e) => {
                self.first_err.get_or_insert(e);
            }
        }
    }

    /// Whether each key's write was applied, in key order.
    pub(crate) fn finish(self) -> Result<Vec<bool>> {
        match self.first_err {
            Some(e) => Err(e),
            None => Ok(self.applied),
        }
    }
}

fn unexpected(expected: &str, m: &MetaReply) -> Error {
    Error::Protocol(format!("expected {expected}, got {:?}", m.status))
}

/// The op of one meta request answered by one reply, mapped by `map`. `arithmetic_key` is
/// the key of an `ma` (named by a non-numeric-value error); the other ops keep no copy of
/// their key. `value_size` is the size of a stored value, for a too-large error.
fn single<T: 'static>(
    request: Vec<u8>,
    opaque: u32,
    idempotent: bool,
    expected: &'static str,
    arithmetic_key: Option<&[u8]>,
    value_size: usize,
    map: impl Fn(MetaReply) -> Result<T> + Send + 'static,
) -> Op<T> {
    Op {
        request,
        handler: Handler::Meta {
            map: Box::new(map),
            other: OtherReply {
                expected,
                arithmetic_key: arithmetic_key.map(<[u8]>::to_vec),
                value_size,
            },
        },
        opaque: Some(opaque),
        idempotent,
    }
}

/// `mg` returning value and flags (plus CAS when `with_cas`), optionally touching.
pub(crate) fn get(key: &[u8], with_cas: bool, touch: Option<u32>) -> Result<Op<Option<GetsItem>>> {
    let wk = WireKey::meta(key)?;
    let mut req = Vec::with_capacity(wk.token.len() + 28);
    let opaque = exchange::opaques(1);
    encode_mg(
        &mut req,
        &wk,
        &MgFlags {
            value: true,
            client_flags: true,
            cas: with_cas,
            touch,
            opaque: Some(opaque),
            ..MgFlags::default()
        },
    );
    Ok(single(
        req,
        opaque,
        true,
        "VA or EN",
        None,
        0,
        |m| match m.status {
            Some(MetaStatus::Va) => Ok(Some(GetsItem::from_meta(m))),
            Some(MetaStatus::En) => Ok(None),
            _ => Err(unexpected("VA or EN", &m)),
        },
    ))
}

/// `mg <key> T<exptime>`: touch; `true` when the key exists.
pub(crate) fn touch(key: &[u8], exptime: u32) -> Result<Op<bool>> {
    let wk = WireKey::meta(key)?;
    let mut req = Vec::new();
    let opaque = exchange::opaques(1);
    encode_mg(
        &mut req,
        &wk,
        &MgFlags {
            touch: Some(exptime),
            opaque: Some(opaque),
            ..MgFlags::default()
        },
    );
    Ok(single(
        req,
        opaque,
        true,
        "HD or EN",
        None,
        0,
        |m| match m.status {
            Some(MetaStatus::Hd) => Ok(true),
            Some(MetaStatus::En) => Ok(false),
            _ => Err(unexpected("HD or EN", &m)),
        },
    ))
}

/// The op that `build` makes, with the request it appends kept as the op's own (the
/// `_into` builders append to a batch's buffer instead).
pub(crate) fn owned<T>(build: impl FnOnce(&mut Vec<u8>) -> Result<Op<T>>) -> Result<Op<T>> {
    let mut req = Vec::new();
    let mut op = build(&mut req)?;
    op.request = req;
    Ok(op)
}

/// `ms` in any mode, with an optional CAS, its request appended to `req`; `true` when
/// stored. Nothing is appended when it fails.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_into(
    req: &mut Vec<u8>,
    key: &[u8],
    data: &[u8],
    flags: u32,
    exptime: u32,
    mode: SetMode,
    cas: Option<u64>,
    item_limit: usize,
) -> Result<Op<bool>> {
    let wk = WireKey::meta(key)?;
    // Refused here, the value is never sent: the item already stored under the key stays
    // (a set the server refuses drops it).
    let limit = proto::max_value_len(item_limit, key.len(), flags);
    if data.len() > limit {
        return Err(Error::ValueTooLarge {
            size: data.len(),
            limit: Some(limit),
        });
    }
    // encode_ms reserves the request's size.
    let opaque = exchange::opaques(1);
    encode_ms(
        req,
        &wk,
        data,
        &MsFlags {
            mode,
            client_flags: flags,
            exptime,
            cas,
            opaque: Some(opaque),
            ..MsFlags::default()
        },
    );
    Ok(single(
        Vec::new(),
        opaque,
        false,
        "HD, NS, EX or NF",
        None,
        data.len(),
        |m| match m.status {
            Some(MetaStatus::Hd) => Ok(true),
            Some(MetaStatus::Ns | MetaStatus::Ex | MetaStatus::Nf) => Ok(false),
            _ => Err(unexpected("HD, NS, EX or NF", &m)),
        },
    ))
}

/// `md`: delete (or with `invalidate`, mark stale with that exptime); `true` when it existed.
pub(crate) fn delete(key: &[u8], invalidate: Option<u32>) -> Result<Op<bool>> {
    owned(|req| delete_into(req, key, invalidate))
}

/// [`delete`] with its request appended to `req` (a batch's buffer) instead of its own;
/// nothing is appended when it fails.
pub(crate) fn delete_into(
    req: &mut Vec<u8>,
    key: &[u8],
    invalidate: Option<u32>,
) -> Result<Op<bool>> {
    meta_delete(
        req,
        key,
        MdFlags {
            invalidate: invalidate.is_some(),
            exptime: invalidate.filter(|&t| t != 0),
            ..MdFlags::default()
        },
    )
}

/// `md` with `C<cas>`: deletes only while the item's CAS is still `cas`; `false` when it is
/// missing or changed (`EX`).
pub(crate) fn delete_cas(key: &[u8], cas: u64) -> Result<Op<bool>> {
    let flags = MdFlags {
        cas: Some(cas),
        ..MdFlags::default()
    };
    owned(|req| meta_delete(req, key, flags))
}

/// One `md` with `flags`, its request appended to `req`: `HD` → `true`, `NF` → `false`;
/// `EX` → `false` only when a CAS was sent (otherwise the server cannot send it, and it is a
/// protocol error).
fn meta_delete(req: &mut Vec<u8>, key: &[u8], flags: MdFlags) -> Result<Op<bool>> {
    let wk = WireKey::meta(key)?;
    let opaque = exchange::opaques(1);
    encode_md(
        req,
        &wk,
        &MdFlags {
            opaque: Some(opaque),
            ..flags
        },
    );
    let cas_checked = flags.cas.is_some();
    let expected = if cas_checked {
        "HD, NF or EX"
    } else {
        "HD or NF"
    };
    Ok(single(
        Vec::new(),
        opaque,
        false,
        expected,
        None,
        0,
        move |m| match m.status {
            Some(MetaStatus::Hd) => Ok(true),
            Some(MetaStatus::Nf) => Ok(false),
            Some(MetaStatus::Ex) if cas_checked => Ok(false),
            _ => Err(unexpected(expected, &m)),
        },
    ))
}

/// `ma` incr/decr returning the new value; `None` when the key is missing.
pub(crate) fn arith(key: &[u8], decrement: bool, delta: u64) -> Result<Op<Option<u64>>> {
    let wk = WireKey::meta(key)?;
    let mut req = Vec::new();
    let opaque = exchange::opaques(1);
    encode_ma(
        &mut req,
        &wk,
        &MaFlags {
            decrement,
            delta,
            value: true,
            opaque: Some(opaque),
            ..MaFlags::default()
        },
    );
    Ok(single(
        req,
        opaque,
        false,
        "VA or NF",
        Some(key),
        0,
        |m| match m.status {
            Some(MetaStatus::Va) => {
                let digits = m.value.unwrap_or_default();
                crate::value::parse_decimal(digits.trim_ascii())
                    .map(Some)
                    .ok_or_else(|| Error::Protocol("ma returned a non-numeric value".into()))
            }
            Some(MetaStatus::Nf) => Ok(None),
            _ => Err(unexpected("VA or NF", &m)),
        },
    ))
}

/// `mg` with the stale-while-revalidate flags.
pub(crate) fn meta_get(key: &[u8], opts: MetaGetOptions) -> Result<Op<MetaGetResult>> {
    let wk = WireKey::meta(key)?;
    let mut req = Vec::new();
    let opaque = exchange::opaques(1);
    // Vivifying a missing item or handing out the recache token changes the server's state.
    let idempotent = opts.vivify_ttl.is_none() && opts.recache_threshold.is_none();
    encode_mg(
        &mut req,
        &wk,
        &MgFlags {
            value: true,
            client_flags: true,
            cas: true,
            ttl: true,
            vivify: opts.vivify_ttl,
            recache: opts.recache_threshold,
            touch: opts.touch_exptime,
            opaque: Some(opaque),
            ..MgFlags::default()
        },
    );
    Ok(single(
        req,
        opaque,
        idempotent,
        "VA, HD or EN",
        None,
        0,
        |m| match m.status {
            Some(MetaStatus::Va | MetaStatus::Hd | MetaStatus::En) => Ok(MetaGetResult {
                stale: m.stale,
                won: m.win,
                winner_elsewhere: m.win_elsewhere,
                flags: m.client_flags.unwrap_or(0),
                cas: m.cas.unwrap_or(0),
                ttl_remaining: m.ttl.and_then(|t| u64::try_from(t).ok()),
                value: m.value,
            }),
            _ => Err(unexpected("VA, HD or EN", &m)),
        },
    ))
}

/// One pipelined batch of quiet `mg`s ended by `mn`, for keys on one server. Replies are
/// matched to keys by opaque index. The batch is always read to its `MN`, so the connection
/// stays in step even when one key's reply is an error (the first error is returned).
pub(crate) fn get_multi(keys: Vec<Vec<u8>>) -> Result<Op<Hits>> {
    let mut req = Vec::with_capacity(keys.len() * 36 + 4);
    let count = u32::try_from(keys.len()).map_err(|_| Error::Config("too many keys".into()))?;
    let first = exchange::opaques(count);
    for (i, key) in (0u32..).zip(&keys) {
        let wk = WireKey::meta(key)?;
        let opaque = first.wrapping_add(i);
        encode_mg(
            &mut req,
            &wk,
            &MgFlags {
                value: true,
                client_flags: true,
                quiet: true,
                opaque: Some(opaque),
                ..MgFlags::default()
            },
        );
    }
    encode_mn(&mut req);
    let mut out = HashMap::with_capacity(keys.len());
    let mut keys: Vec<Option<Vec<u8>>> = keys.into_iter().map(Some).collect();
    let mut first_error: Option<Error> = None;
    let handler = move |reply: Reply| -> Result<Option<Hits>> {
        match reply {
            Reply::Meta(m) if m.status == Some(MetaStatus::Mn) => {
                return match first_error.take() {
                    Some(e) => Err(e),
                    None => Ok(Some(std::mem::take(&mut out))),
                };
            }
            Reply::Meta(m) if m.status == Some(MetaStatus::Va) => {
                let idx = m.opaque.map(|o| o.wrapping_sub(first) as usize);
                let key = match idx.and_then(|i| keys.get_mut(i)).and_then(Option::take) {
                    Some(k) => k,
                    None => {
                        return Err(Error::Protocol(
                            "multi-get reply with an unknown or repeated opaque".into(),
                        ))
                    }
                };
                if let Some(named) = &m.key {
                    let sent = WireKey::meta(&key)?;
                    if named.as_slice() != sent.token.as_ref() {
                        return Err(Error::Protocol(format!(
                            "multi-get reply names key {:?}, its opaque is that of {:?}",
                            String::from_utf8_lossy(named),
                            String::from_utf8_lossy(&key)
                        )));
                    }
                }
                out.insert(key, GetsItem::from_meta(m));
            }
            Reply::Meta(MetaReply {
                status: Some(MetaStatus::En),
                ..
            }) => {}
            Reply::Meta(m) => return Err(unexpected("VA or MN", &m)),
            other if other.is_error() => {
                let err = other.into_error("VA", None, 0);
                if !exchange::keeps_connection(&err) {
                    return Err(err);
                }
                first_error.get_or_insert(err);
            }
            other => {
                return Err(Error::Protocol(format!(
                    "expected VA or MN, got {}",
                    other.describe()
                )))
            }
        }
        Ok(None)
    };
    // Replies are tied to keys by their opaques here, not by one opaque for the whole op.
    Ok(Op::text(req, true, Box::new(handler)))
}

/// `flush_all`.
pub(crate) fn flush_all(delay: Option<u32>) -> Op<()> {
    let mut req = Vec::new();
    proto::encode_flush_all(&mut req, delay, false);
    Op::text(
        req,
        false,
        Box::new(|reply| match reply {
            Reply::Ok => Ok(Some(())),
            other => Err(other.into_error("OK", None, 0)),
        }),
    )
}

/// `stats [group]`.
pub(crate) fn stats(group: Option<&str>) -> Result<Op<HashMap<String, String>>> {
    let mut req = Vec::new();
    proto::encode_stats(&mut req, group)?;
    let mut out = HashMap::new();
    Ok(Op::text(
        req,
        true,
        Box::new(move |reply| match reply {
            Reply::Stat(name, value) => {
                out.insert(name, value);
                Ok(None)
            }
            Reply::End => Ok(Some(std::mem::take(&mut out))),
            other => Err(other.into_error("STAT or END", None, 0)),
        }),
    ))
}

/// `version`.
pub(crate) fn version() -> Op<String> {
    let mut req = Vec::new();
    proto::encode_version(&mut req);
    Op::text(
        req,
        true,
        Box::new(|reply| match reply {
            Reply::Version(v) => Ok(Some(v)),
            other => Err(other.into_error("VERSION", None, 0)),
        }),
    )
}
