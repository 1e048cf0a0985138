//! The sans-IO memcached protocol: request encoders and an incremental reply parser for the
//! meta protocol (`mg`, `ms`, `md`, `ma`, `mn`) and the text protocol (`get`, `set`, ...).
//!
//! Nothing here touches a socket or a clock. Encoders append bytes to a `Vec<u8>`; the
//! [`ReplyParser`] looks at the bytes received so far and returns either one complete
//! [`Reply`] plus how many bytes it used, or `None` when more bytes are needed. A reply split
//! at any byte boundary parses the same. Hostile input yields [`Error::Protocol`], never a
//! panic, and never an allocation larger than the parser's configured maximum value size.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;

use crate::error::KeyRule;
use crate::keys::check_key;
use crate::{Error, Expiry, Result};

/// Exptimes above this many seconds are read by memcached as absolute Unix times.
pub const RELATIVE_EXPTIME_LIMIT: u64 = 2_592_000;
/// memcached's default item size limit (`-I 1m`).
pub const DEFAULT_ITEM_SIZE_LIMIT: usize = 1 << 20;
/// The parser's default largest accepted value: a bit over the default item limit.
pub const DEFAULT_MAX_VALUE_SIZE: usize = (1 << 20) + 4096;
/// The parser's default longest accepted reply line.
pub const DEFAULT_MAX_LINE: usize = 8192;
/// The longest raw key a base64 meta key can hold (its 4/3 encoding must fit 250 chars).
pub const MAX_BINARY_KEY_LEN: usize = 186;

/// The exptime memcached should get for `expiry`, given the current Unix time in seconds.
///
/// `Never` is 0. A TTL is rounded up to whole seconds and is at least 1 (0 would mean "never
/// expire"). A TTL over 30 days is sent as an absolute Unix time (`now_unix + secs`).
pub fn exptime(expiry: Expiry, now_unix: u64) -> u32 {
    match expiry {
        Expiry::Never => 0,
        Expiry::After(d) => {
            let secs = ttl_secs(d);
            let value = if secs > RELATIVE_EXPTIME_LIMIT {
                now_unix.saturating_add(secs)
            } else {
                secs
            };
            u32::try_from(value).unwrap_or(u32::MAX)
        }
    }
}

/// Whole seconds of `d`, rounded up, at least 1.
pub fn ttl_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// A key as it goes on the wire: the key itself when it is a valid memcached key, otherwise
/// its standard base64 form used with the meta `b` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireKey<'a> {
    /// The token written after the command.
    pub token: Cow<'a, [u8]>,
    /// True when `token` is base64 (the meta `b` flag must be sent).
    pub base64: bool,
}

impl<'a> WireKey<'a> {
    /// The wire form of `key` for the meta protocol: as is when valid, base64 otherwise.
    pub fn meta(key: &'a [u8]) -> Result<Self> {
        match check_key(key) {
            Ok(()) => Ok(WireKey {
                token: Cow::Borrowed(key),
                base64: false,
            }),
            Err(KeyRule::ForbiddenByte { .. }) if key.len() > MAX_BINARY_KEY_LEN => Err(key_error(
                key,
                KeyRule::TooLong {
                    len: key.len(),
                    limit: MAX_BINARY_KEY_LEN,
                },
            )),
            Err(rule @ (KeyRule::Empty | KeyRule::TooLong { .. })) => Err(key_error(key, rule)),
            Err(_) => Ok(WireKey {
                token: Cow::Owned(
                    base64::engine::general_purpose::STANDARD
                        .encode(key)
                        .into_bytes(),
                ),
                base64: true,
            }),
        }
    }

    /// The wire form of `key` for the text protocol, which has no binary keys.
    pub fn text(key: &'a [u8]) -> Result<Self> {
        check_key(key).map_err(|rule| key_error(key, rule))?;
        Ok(WireKey {
            token: Cow::Borrowed(key),
            base64: false,
        })
    }
}

fn key_error(key: &[u8], rule: KeyRule) -> Error {
    Error::KeyInvalid {
        key: String::from_utf8_lossy(key).into_owned(),
        rule,
    }
}

/// Decodes a key echoed by the server (`k` flag), base64 when the reply carried `b`.
pub fn decode_echoed_key(token: &[u8], base64: bool) -> Result<Vec<u8>> {
    if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|e| Error::Protocol(format!("echoed key is not base64: {e}")))
    } else {
        Ok(token.to_vec())
    }
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_flag_num(out: &mut Vec<u8>, flag: u8, n: u64) {
    out.push(b' ');
    out.push(flag);
    push_num(out, n);
}

fn push_flag(out: &mut Vec<u8>, flag: u8) {
    out.push(b' ');
    out.push(flag);
}

fn push_opaque(out: &mut Vec<u8>, opaque: Option<u32>) {
    if let Some(o) = opaque {
        push_flag_num(out, b'O', u64::from(o));
    }
}

fn push_key(out: &mut Vec<u8>, cmd: &[u8], key: &WireKey<'_>) {
    out.extend_from_slice(cmd);
    out.push(b' ');
    out.extend_from_slice(&key.token);
    if key.base64 {
        push_flag(out, b'b');
    }
}

/// Flags of a meta get (`mg`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MgFlags {
    /// `v`: return the value.
    pub value: bool,
    /// `f`: return the client flags.
    pub client_flags: bool,
    /// `c`: return the CAS value.
    pub cas: bool,
    /// `t`: return the remaining TTL.
    pub ttl: bool,
    /// `k`: echo the key.
    pub key: bool,
    /// `O`: an opaque token echoed back.
    pub opaque: Option<u32>,
    /// `q`: suppress the `EN` miss reply.
    pub quiet: bool,
    /// `N<ttl>`: on a miss, create a stub with this exptime and hand out the win token.
    pub vivify: Option<u32>,
    /// `R<secs>`: win token when the remaining TTL is below this.
    pub recache: Option<u32>,
    /// `T<ttl>`: update the item's exptime (touch).
    pub touch: Option<u32>,
}

/// Encodes `mg <key> <flags>`.
pub fn encode_mg(out: &mut Vec<u8>, key: &WireKey<'_>, f: &MgFlags) {
    push_key(out, b"mg", key);
    for (on, c) in [
        (f.value, b'v'),
        (f.client_flags, b'f'),
        (f.cas, b'c'),
        (f.ttl, b't'),
        (f.key, b'k'),
        (f.quiet, b'q'),
    ] {
        if on {
            push_flag(out, c);
        }
    }
    push_opaque(out, f.opaque);
    for (v, c) in [(f.vivify, b'N'), (f.recache, b'R'), (f.touch, b'T')] {
        if let Some(v) = v {
            push_flag_num(out, c, u64::from(v));
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The mode of a meta set (`ms ... M<mode>`), i.e. which storage command it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SetMode {
    /// Store unconditionally.
    #[default]
    Set,
    /// Store only when absent.
    Add,
    /// Store only when present.
    Replace,
    /// Append to an existing value.
    Append,
    /// Prepend to an existing value.
    Prepend,
}

impl SetMode {
    fn token(self) -> u8 {
        match self {
            SetMode::Set => b'S',
            SetMode::Add => b'E',
            SetMode::Replace => b'R',
            SetMode::Append => b'A',
            SetMode::Prepend => b'P',
        }
    }

    /// The text protocol command of this mode.
    pub fn text_command(self) -> &'static [u8] {
        match self {
            SetMode::Set => b"set",
            SetMode::Add => b"add",
            SetMode::Replace => b"replace",
            SetMode::Append => b"append",
            SetMode::Prepend => b"prepend",
        }
    }
}

/// Flags of a meta set (`ms`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsFlags {
    /// The mode (set, add, replace, append, prepend).
    pub mode: SetMode,
    /// `F`: client flags.
    pub client_flags: u32,
    /// `T`: exptime (0 = never).
    pub exptime: u32,
    /// `C`: compare-and-swap against this CAS value.
    pub cas: Option<u64>,
    /// `I`: with `C`, an older CAS marks the item stale instead of failing.
    pub invalidate: bool,
    /// `c`: return the new CAS value.
    pub return_cas: bool,
    /// `q`: suppress the `HD` success reply.
    pub quiet: bool,
    /// `O`: an opaque token echoed back.
    pub opaque: Option<u32>,
}

/// Encodes `ms <key> <len> <flags>\r\n<data>\r\n`.
pub fn encode_ms(out: &mut Vec<u8>, key: &WireKey<'_>, data: &[u8], f: &MsFlags) {
    out.reserve(data.len() + 64);
    out.extend_from_slice(b"ms ");
    out.extend_from_slice(&key.token);
    out.push(b' ');
    push_num(out, data.len() as u64);
    if key.base64 {
        push_flag(out, b'b');
    }
    if f.client_flags != 0 {
        push_flag_num(out, b'F', u64::from(f.client_flags));
    }
    if f.exptime != 0 {
        push_flag_num(out, b'T', u64::from(f.exptime));
    }
    if let Some(cas) = f.cas {
        push_flag_num(out, b'C', cas);
    }
    if f.mode != SetMode::Set {
        out.extend_from_slice(b" M");
        out.push(f.mode.token());
    }
    for (on, c) in [(f.invalidate, b'I'), (f.return_cas, b'c'), (f.quiet, b'q')] {
        if on {
            push_flag(out, c);
        }
    }
    push_opaque(out, f.opaque);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Flags of a meta delete (`md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MdFlags {
    /// `C`: delete only when the CAS matches.
    pub cas: Option<u64>,
    /// `I`: mark stale instead of deleting.
    pub invalidate: bool,
    /// `T`: with `I`, the stale item's new exptime.
    pub exptime: Option<u32>,
    /// `q`: suppress the `HD` success reply.
    pub quiet: bool,
    /// `O`: an opaque token echoed back.
    pub opaque: Option<u32>,
}

/// Encodes `md <key> <flags>`.
pub fn encode_md(out: &mut Vec<u8>, key: &WireKey<'_>, f: &MdFlags) {
    push_key(out, b"md", key);
    if let Some(cas) = f.cas {
        push_flag_num(out, b'C', cas);
    }
    if f.invalidate {
        push_flag(out, b'I');
    }
    if let Some(t) = f.exptime {
        push_flag_num(out, b'T', u64::from(t));
    }
    if f.quiet {
        push_flag(out, b'q');
    }
    push_opaque(out, f.opaque);
    out.extend_from_slice(b"\r\n");
}

/// Flags of a meta arithmetic (`ma`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaFlags {
    /// `MD`: decrement instead of increment.
    pub decrement: bool,
    /// `D`: the delta (memcached's default is 1).
    pub delta: u64,
    /// `v`: return the new value.
    pub value: bool,
    /// `N<ttl>`: create a missing counter with this exptime (starting at `J`, default 0).
    pub vivify: Option<u32>,
    /// `q`: suppress the `HD` success reply.
    pub quiet: bool,
    /// `O`: an opaque token echoed back.
    pub opaque: Option<u32>,
}

/// Encodes `ma <key> <flags>`.
pub fn encode_ma(out: &mut Vec<u8>, key: &WireKey<'_>, f: &MaFlags) {
    push_key(out, b"ma", key);
    if f.decrement {
        out.extend_from_slice(b" MD");
    }
    push_flag_num(out, b'D', f.delta);
    if f.value {
        push_flag(out, b'v');
    }
    if let Some(n) = f.vivify {
        push_flag_num(out, b'N', u64::from(n));
    }
    if f.quiet {
        push_flag(out, b'q');
    }
    push_opaque(out, f.opaque);
    out.extend_from_slice(b"\r\n");
}

/// Encodes `mn` (meta no-op: its `MN` reply ends a pipelined batch).
pub fn encode_mn(out: &mut Vec<u8>) {
    out.extend_from_slice(b"mn\r\n");
}

/// Encodes a text retrieval: `get|gets k1 k2 ...`.
pub fn encode_get(out: &mut Vec<u8>, with_cas: bool, keys: &[WireKey<'_>]) {
    out.extend_from_slice(if with_cas { b"gets" } else { b"get" });
    for k in keys {
        out.push(b' ');
        out.extend_from_slice(&k.token);
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes a text get-and-touch: `gat|gats <exptime> k1 k2 ...`.
pub fn encode_gat(out: &mut Vec<u8>, with_cas: bool, exptime: u32, keys: &[WireKey<'_>]) {
    out.extend_from_slice(if with_cas { b"gats " } else { b"gat " });
    push_num(out, u64::from(exptime));
    for k in keys {
        out.push(b' ');
        out.extend_from_slice(&k.token);
    }
    out.extend_from_slice(b"\r\n");
}

/// The parameters of a text storage command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextStore {
    /// Which command (`set`, `add`, ...); ignored when `cas` is given.
    pub mode: SetMode,
    /// The client flags.
    pub client_flags: u32,
    /// The exptime (0 = never).
    pub exptime: u32,
    /// Send `cas` with this CAS value instead of `mode`.
    pub cas: Option<u64>,
    /// Ask for no reply.
    pub noreply: bool,
}

/// Encodes a text storage command (`set`, `add`, ..., or `cas` when `cas` is given).
pub fn encode_storage(out: &mut Vec<u8>, key: &WireKey<'_>, data: &[u8], s: &TextStore) {
    out.reserve(data.len() + 64);
    out.extend_from_slice(if s.cas.is_some() {
        b"cas"
    } else {
        s.mode.text_command()
    });
    out.push(b' ');
    out.extend_from_slice(&key.token);
    for n in [
        u64::from(s.client_flags),
        u64::from(s.exptime),
        data.len() as u64,
    ] {
        out.push(b' ');
        push_num(out, n);
    }
    if let Some(cas) = s.cas {
        out.push(b' ');
        push_num(out, cas);
    }
    if s.noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Encodes `delete <key> [noreply]`.
pub fn encode_delete(out: &mut Vec<u8>, key: &WireKey<'_>, noreply: bool) {
    out.extend_from_slice(b"delete ");
    out.extend_from_slice(&key.token);
    if noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes `incr|decr <key> <delta> [noreply]`.
pub fn encode_incr_decr(
    out: &mut Vec<u8>,
    decrement: bool,
    key: &WireKey<'_>,
    delta: u64,
    noreply: bool,
) {
    out.extend_from_slice(if decrement { b"decr " } else { b"incr " });
    out.extend_from_slice(&key.token);
    out.push(b' ');
    push_num(out, delta);
    if noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes `touch <key> <exptime> [noreply]`.
pub fn encode_touch(out: &mut Vec<u8>, key: &WireKey<'_>, exptime: u32, noreply: bool) {
    out.extend_from_slice(b"touch ");
    out.extend_from_slice(&key.token);
    out.push(b' ');
    push_num(out, u64::from(exptime));
    if noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes `flush_all [delay] [noreply]`.
pub fn encode_flush_all(out: &mut Vec<u8>, delay: Option<u32>, noreply: bool) {
    out.extend_from_slice(b"flush_all");
    if let Some(d) = delay {
        out.push(b' ');
        push_num(out, u64::from(d));
    }
    if noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes `stats [group]`. The group must be a single token without spaces or controls.
pub fn encode_stats(out: &mut Vec<u8>, group: Option<&str>) -> Result<()> {
    out.extend_from_slice(b"stats");
    if let Some(g) = group {
        if g.is_empty() || g.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::Config(format!("invalid stats group {g:?}")));
        }
        out.push(b' ');
        out.extend_from_slice(g.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Encodes `version`.
pub fn encode_version(out: &mut Vec<u8>) {
    out.extend_from_slice(b"version\r\n");
}

/// The status code of a meta reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaStatus {
    /// `HD`: success, no value.
    Hd,
    /// `VA`: success with a value.
    Va,
    /// `EN`: miss.
    En,
    /// `NS`: not stored.
    Ns,
    /// `EX`: CAS mismatch (exists).
    Ex,
    /// `NF`: not found.
    Nf,
    /// `MN`: the no-op marking the end of a batch.
    Mn,
}

/// A meta reply: its status, the flags it returned, and its value for `VA`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaReply {
    /// The status (`None` only in a default-constructed reply).
    pub status: Option<MetaStatus>,
    /// The value of a `VA` reply.
    pub value: Option<Vec<u8>>,
    /// `c`: the CAS value.
    pub cas: Option<u64>,
    /// `f`: the client flags.
    pub client_flags: Option<u32>,
    /// `t`: the remaining TTL in seconds (-1 = never expires).
    pub ttl: Option<i64>,
    /// `k`: the echoed key token.
    pub key: Option<Vec<u8>>,
    /// `b`: the echoed key is base64.
    pub key_base64: bool,
    /// `O`: the echoed opaque token (larder sends only 32-bit numbers).
    pub opaque: Option<u32>,
    /// `W`: this client won the right to (re)create the value.
    pub win: bool,
    /// `X`: the item is stale.
    pub stale: bool,
    /// `Z`: another client already holds the win token.
    pub win_elsewhere: bool,
}

/// One item of a text retrieval reply (`VALUE <key> <flags> <bytes> [<cas>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextValue {
    /// The key.
    pub key: Vec<u8>,
    /// The client flags.
    pub client_flags: u32,
    /// The CAS value (`gets`/`gats` only).
    pub cas: Option<u64>,
    /// The value bytes.
    pub data: Vec<u8>,
}

/// One item of a text retrieval reply, borrowed from the bytes it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The client flags.
    pub flags: u32,
    /// The CAS value (`gets`/`gats` only).
    pub cas: Option<u64>,
    /// The value bytes.
    pub data: &'a [u8],
}

impl ItemRef<'_> {
    /// An owned copy.
    pub fn to_text_value(&self) -> TextValue {
        TextValue {
            key: self.key.to_vec(),
            client_flags: self.flags,
            cas: self.cas,
            data: self.data.to_vec(),
        }
    }
}

/// One reply of a text retrieval, as [`ReplyParser::parse_retrieval`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retrieval<'a> {
    /// A `VALUE` line and its data.
    Item(ItemRef<'a>),
    /// `END`: the retrieval is complete.
    End,
    /// Any other reply (an error line, or something out of place).
    Other(Reply),
}

/// One complete reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A meta reply (`HD`, `VA`, `EN`, `NS`, `EX`, `NF`, `MN`).
    Meta(MetaReply),
    /// One item of a text retrieval; more items or `End` follow.
    Value(TextValue),
    /// `END`: end of a retrieval or of `stats`.
    End,
    /// `STORED`.
    Stored,
    /// `NOT_STORED`.
    NotStored,
    /// `EXISTS`.
    Exists,
    /// `NOT_FOUND`.
    NotFound,
    /// `DELETED`.
    Deleted,
    /// `TOUCHED`.
    Touched,
    /// `OK`.
    Ok,
    /// A decimal number (the text `incr`/`decr` reply).
    Number(u64),
    /// `STAT <name> <value>`; more stats or `End` follow.
    Stat(String, String),
    /// `VERSION <text>`.
    Version(String),
    /// `ERROR`: the server did not know the command.
    Error,
    /// `CLIENT_ERROR <text>`.
    ClientError(String),
    /// `SERVER_ERROR <text>`.
    ServerError(String),
}

/// The text memcached sends when a value exceeds its item size limit.
pub const TOO_LARGE_TEXT: &str = "object too large for cache";
/// The text memcached sends when `incr`/`decr` meets a non-numeric value.
pub const NON_NUMERIC_TEXT: &str = "cannot increment or decrement non-numeric value";

impl Reply {
    /// True for the error replies (`ERROR`, `CLIENT_ERROR`, `SERVER_ERROR`).
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Reply::Error | Reply::ClientError(_) | Reply::ServerError(_)
        )
    }

    /// The typed error for an error reply, or a protocol error naming what was expected.
    ///
    /// `value_size` and `limit` fill [`Error::ValueTooLarge`] when the server says the value
    /// was too large. `arithmetic_key` is the key of an `incr`/`decr` (`ma`) request, which
    /// the server's non-numeric-value error names as [`Error::NotANumber`]; for any other
    /// request (`None`) that reply is an [`Error::Client`].
    pub fn into_error(
        self,
        expected: &str,
        arithmetic_key: Option<&[u8]>,
        value_size: usize,
        limit: usize,
    ) -> Error {
        match self {
            Reply::ServerError(t) if t.starts_with(TOO_LARGE_TEXT) => Error::ValueTooLarge {
                size: value_size,
                limit,
            },
            Reply::ServerError(t) => Error::Server(t),
            Reply::ClientError(t) => match arithmetic_key {
                Some(key) if t.starts_with(NON_NUMERIC_TEXT) => Error::NotANumber {
                    key: String::from_utf8_lossy(key).into_owned(),
                },
                _ => Error::Client(t),
            },
            Reply::Error => Error::Client("server answered ERROR (unknown command)".into()),
            other => Error::Protocol(format!("expected {expected}, got {}", other.describe())),
        }
    }

    /// A short description for error messages (never the value bytes).
    pub fn describe(&self) -> String {
        match self {
            Reply::Meta(m) => format!("meta reply {:?}", m.status),
            Reply::Value(v) => format!("VALUE of {} bytes", v.data.len()),
            Reply::Stat(n, _) => format!("STAT {n}"),
            Reply::Version(_) => "VERSION".into(),
            Reply::Number(_) => "a number".into(),
            Reply::ClientError(t) => format!("CLIENT_ERROR {t}"),
            Reply::ServerError(t) => format!("SERVER_ERROR {t}"),
            other => format!("{other:?}"),
        }
    }
}

/// Incremental reply parser with size limits. Stateless: feed it the unconsumed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyParser {
    max_value: usize,
    max_line: usize,
}

impl Default for ReplyParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_VALUE_SIZE)
    }
}

fn protocol(msg: impl Into<String>) -> Error {
    Error::Protocol(msg.into())
}

fn lossy_prefix(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(48)];
    String::from_utf8_lossy(cut).into_owned()
}

fn parse_u64(tok: &[u8], what: &str) -> Result<u64> {
    match leading_digits(tok) {
        Some((n, len)) if len == tok.len() => Ok(n),
        // Not all digits, or 20 or more of them: checked digit by digit.
        _ => {
            if tok.is_empty() || tok.len() > 20 {
                return Err(not_a_number(tok, what));
            }
            tok.iter().try_fold(0u64, |acc, &b| {
                let digit = b.wrapping_sub(b'0');
                if digit > 9 {
                    return Err(not_a_number(tok, what));
                }
                acc.checked_mul(10)
                    .and_then(|a| a.checked_add(u64::from(digit)))
                    .ok_or_else(|| protocol(format!("{what} overflows 64 bits")))
            })
        }
    }
}

/// The decimal number at the start of `s`, ended by a space or by the end of `s`, and what
/// follows that space (`None` at the end).
fn number_token<'a>(s: &'a [u8], what: &str) -> Result<(u64, Option<&'a [u8]>)> {
    match leading_digits(s) {
        Some((n, len)) if len == s.len() => Ok((n, None)),
        Some((n, len)) if s[len] == b' ' => Ok((n, Some(&s[len + 1..]))),
        // Not a number, or 20+ digits: the token through the exact checks (and messages).
        _ => {
            let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
            let n = parse_u64(&s[..end], what)?;
            Ok((n, s.get(end + 1..).filter(|_| end < s.len())))
        }
    }
}

/// The number written by the 1 to 19 decimal digits at the start of `s` (19 digits cannot
/// overflow 64 bits) and how many digits that is; `None` when `s` starts with no digit or
/// with 20 or more.
#[inline(always)]
fn leading_digits(s: &[u8]) -> Option<(u64, usize)> {
    let mut acc: u64 = 0;
    for (i, &b) in s.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return (i > 0).then_some((acc, i));
        }
        if i == 19 {
            return None;
        }
        acc = acc * 10 + u64::from(digit);
    }
    (!s.is_empty() && s.len() <= 19).then_some((acc, s.len()))
}

#[cold]
fn not_a_number(tok: &[u8], what: &str) -> Error {
    protocol(format!(
        "{what} is not a decimal number: {:?}",
        lossy_prefix(tok)
    ))
}

fn parse_u32(tok: &[u8], what: &str) -> Result<u32> {
    u32::try_from(parse_u64(tok, what)?).map_err(|_| protocol(format!("{what} exceeds 32 bits")))
}

fn parse_i64(tok: &[u8], what: &str) -> Result<i64> {
    if tok == b"-1" {
        return Ok(-1);
    }
    i64::try_from(parse_u64(tok, what)?).map_err(|_| protocol(format!("{what} out of range")))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl ReplyParser {
    /// A parser that rejects values longer than `max_value` bytes (before allocating).
    pub fn new(max_value: usize) -> Self {
        Self {
            max_value,
            max_line: DEFAULT_MAX_LINE,
        }
    }

    /// The largest value accepted.
    pub fn max_value(&self) -> usize {
        self.max_value
    }

    /// Sets the longest reply line accepted (at least 64 bytes).
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line.max(64);
        self
    }

    /// Parses one reply from the start of `buf`.
    ///
    /// `Ok(Some((reply, used)))` when a complete reply is there (`used <= buf.len()`),
    /// `Ok(None)` when more bytes are needed, `Err(Error::Protocol)` when the bytes cannot be
    /// a valid reply (the connection must then be dropped).
    pub fn parse(&self, buf: &[u8]) -> Result<Option<(Reply, usize)>> {
        let window = &buf[..buf.len().min(self.max_line)];
        let nl = match memchr::memchr(b'\n', window) {
            Some(i) => i,
            None if buf.len() >= self.max_line => {
                return Err(protocol(format!(
                    "reply line longer than {} bytes",
                    self.max_line
                )))
            }
            None => return Ok(None),
        };
        if nl == 0 || buf[nl - 1] != b'\r' {
            return Err(protocol(format!(
                "reply line not ended by \\r\\n: {:?}",
                lossy_prefix(&buf[..nl])
            )));
        }
        let line = &buf[..nl - 1];
        let header_len = nl + 1;
        let (head, rest) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[line.len()..]),
        };
        let single = |reply: Reply| -> Result<Option<(Reply, usize)>> {
            if rest.is_empty() && head.len() == line.len() {
                Ok(Some((reply, header_len)))
            } else {
                Err(protocol(format!(
                    "unexpected text after reply: {:?}",
                    lossy_prefix(line)
                )))
            }
        };
        match head {
            b"VA" => {
                let mut toks = rest.split(|&b| b == b' ');
                let len = parse_u64(toks.next().unwrap_or(&[]), "VA length")?;
                let len = self.check_len(len)?;
                let mut meta = parse_meta_flags(MetaStatus::Va, toks)?;
                match self.data(buf, header_len, len)? {
                    None => Ok(None),
                    Some((data, used)) => {
                        meta.value = Some(data);
                        Ok(Some((Reply::Meta(meta), used)))
                    }
                }
            }
            b"HD" | b"EN" | b"NS" | b"EX" | b"NF" | b"MN" => {
                let status = match head {
                    b"HD" => MetaStatus::Hd,
                    b"EN" => MetaStatus::En,
                    b"NS" => MetaStatus::Ns,
                    b"EX" => MetaStatus::Ex,
                    b"NF" => MetaStatus::Nf,
                    _ => MetaStatus::Mn,
                };
                let toks = rest.split(|&b| b == b' ').filter(move |_| !rest.is_empty());
                let meta = parse_meta_flags(status, toks)?;
                Ok(Some((Reply::Meta(meta), header_len)))
            }
            b"VALUE" => Ok(self
                .text_item(buf, line, rest, header_len)?
                .map(|(item, used)| (Reply::Value(item.to_text_value()), used))),
            b"END" => single(Reply::End),
            b"STORED" => single(Reply::Stored),
            b"NOT_STORED" => single(Reply::NotStored),
            b"EXISTS" => single(Reply::Exists),
            b"NOT_FOUND" => single(Reply::NotFound),
            b"DELETED" => single(Reply::Deleted),
            b"TOUCHED" => single(Reply::Touched),
            b"OK" => single(Reply::Ok),
            b"ERROR" => single(Reply::Error),
            b"CLIENT_ERROR" => Ok(Some((Reply::ClientError(text(rest)), header_len))),
            b"SERVER_ERROR" => Ok(Some((Reply::ServerError(text(rest)), header_len))),
            b"VERSION" => Ok(Some((Reply::Version(text(rest)), header_len))),
            b"STAT" => {
                let (name, value) = match rest.iter().position(|&b| b == b' ') {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, &rest[rest.len()..]),
                };
                if name.is_empty() {
                    return Err(protocol("STAT line without a name"));
                }
                Ok(Some((Reply::Stat(text(name), text(value)), header_len)))
            }
            _ if !head.is_empty() && head.iter().all(u8::is_ascii_digit) => {
                // memcached pads nothing here, but tolerate trailing spaces.
                if rest.iter().any(|&b| b != b' ') {
                    return Err(protocol(format!(
                        "unexpected text after number: {:?}",
                        lossy_prefix(line)
                    )));
                }
                let n = parse_u64(head, "counter value")?;
                Ok(Some((Reply::Number(n), header_len)))
            }
            _ => Err(protocol(format!(
                "unexpected reply line: {:?}",
                lossy_prefix(line)
            ))),
        }
    }

    /// Parses one reply of a text retrieval (`get`/`gets`) from the start of `buf` without
    /// copying: a `VALUE` item borrowed from `buf`, `END`, or any other reply (parsed by
    /// [`parse`](Self::parse), e.g. a `SERVER_ERROR`). Same contract as `parse` otherwise.
    pub fn parse_retrieval<'a>(&self, buf: &'a [u8]) -> Result<Option<(Retrieval<'a>, usize)>> {
        if let Some(found) = self.plain_item(buf) {
            return Ok(Some((Retrieval::Item(found.0), found.1)));
        }
        let window = &buf[..buf.len().min(self.max_line)];
        if let Some(nl) = memchr::memchr(b'\n', window) {
            if nl > 0 && buf[nl - 1] == b'\r' {
                let line = &buf[..nl - 1];
                if let Some(rest) = line.strip_prefix(b"VALUE ") {
                    return Ok(self
                        .text_item(buf, line, rest, nl + 1)?
                        .map(|(item, used)| (Retrieval::Item(item), used)));
                }
                if line == b"END" {
                    return Ok(Some((Retrieval::End, nl + 1)));
                }
            }
        }
        Ok(self
            .parse(buf)?
            .map(|(reply, used)| (Retrieval::Other(reply), used)))
    }

    /// The fast path of [`parse_retrieval`](Self::parse_retrieval): a complete, well-formed
    /// `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n` read in one forward pass, without
    /// first searching for the end of the line. `None` for anything else (another reply, an
    /// incomplete one, any irregularity), which the general path then parses or rejects: both
    /// paths accept exactly the same well-formed items.
    fn plain_item<'a>(&self, buf: &'a [u8]) -> Option<(ItemRef<'a>, usize)> {
        let rest = buf.strip_prefix(b"VALUE ")?;
        let key_len = rest[..rest.len().min(crate::keys::MAX_KEY_LEN + 1)]
            .iter()
            .position(|&b| b <= b' ' || b == 0x7f)?;
        self.plain_item_after_key(buf, key_len)
    }

    /// [`plain_item`](Self::plain_item) for an item the caller expects next: `Some` only
    /// when `buf` starts with a complete, well-formed `VALUE` item whose key is exactly
    /// `key`, found by comparing instead of scanning. `key` must be a valid text key (see
    /// [`check_key`](crate::keys::check_key)); then the result is exactly `plain_item`'s
    /// whenever that item's key is `key`, and `None` otherwise. Inlined: returning the item
    /// through memory stalled the caller's loop on every item.
    #[inline(always)]
    pub(crate) fn expected_item<'a>(
        &self,
        buf: &'a [u8],
        key: &[u8],
    ) -> Option<(ItemRef<'a>, usize)> {
        let rest = buf.strip_prefix(b"VALUE ")?;
        if !rest.starts_with(key) {
            return None;
        }
        self.plain_item_after_key(buf, key.len())
    }

    /// The rest of [`plain_item`](Self::plain_item) once the key is known to be the
    /// `key_len` bytes after `VALUE ` (none of them a space or control byte).
    #[inline(always)]
    fn plain_item_after_key<'a>(
        &self,
        buf: &'a [u8],
        key_len: usize,
    ) -> Option<(ItemRef<'a>, usize)> {
        const PREFIX: usize = b"VALUE ".len();
        let rest = &buf[PREFIX..];
        if key_len == 0 || rest.get(key_len) != Some(&b' ') {
            return None;
        }
        let mut at = key_len + 1;
        let (flags, n) = leading_digits(&rest[at..])?;
        at += n;
        if rest.get(at) != Some(&b' ') {
            return None;
        }
        let (len, n) = leading_digits(&rest[at + 1..])?;
        at += 1 + n;
        let cas = match rest.get(at) {
            Some(b' ') => {
                let (cas, n) = leading_digits(&rest[at + 1..])?;
                at += 1 + n;
                Some(cas)
            }
            _ => None,
        };
        if rest.get(at..at + 2) != Some(b"\r\n") {
            return None;
        }
        let header_len = PREFIX + at + 2;
        let flags = u32::try_from(flags).ok()?;
        let len = usize::try_from(len).ok().filter(|&n| n <= self.max_value)?;
        if header_len > self.max_line {
            return None;
        }
        let end = header_len.checked_add(len)?;
        if buf.get(end..end.checked_add(2)?) != Some(b"\r\n") {
            return None;
        }
        Some((
            ItemRef {
                key: &rest[..key_len],
                flags,
                cas,
                data: &buf[header_len..end],
            },
            end + 2,
        ))
    }

    /// The item of a `VALUE` line (`rest` is the line after `VALUE `) and its data block,
    /// which starts at `header_len` in `buf`.
    fn text_item<'a>(
        &self,
        buf: &'a [u8],
        line: &[u8],
        rest: &'a [u8],
        header_len: usize,
    ) -> Result<Option<(ItemRef<'a>, usize)>> {
        // One pass over `<key> <flags> <bytes>[ <cas>]`: the key up to the first space, then
        // each number read up to the space after it.
        let malformed = || protocol(format!("malformed VALUE line: {:?}", lossy_prefix(line)));
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(malformed)?;
        let key = &rest[..space];
        if check_key(key).is_err() {
            return Err(protocol("VALUE line with an invalid key"));
        }
        let (flags, after) = number_token(&rest[space + 1..], "VALUE flags")?;
        let flags = u32::try_from(flags).map_err(|_| protocol("VALUE flags exceed 32 bits"))?;
        let (len, after) = number_token(after.ok_or_else(malformed)?, "VALUE length")?;
        let len = self.check_len(len)?;
        let cas = match after {
            None => None,
            Some(tok) => match number_token(tok, "VALUE cas")? {
                (cas, None) => Some(cas),
                (_, Some(_)) => return Err(malformed()),
            },
        };
        Ok(self.data_range(buf, header_len, len)?.map(|(data, used)| {
            (
                ItemRef {
                    key,
                    flags,
                    cas,
                    data,
                },
                used,
            )
        }))
    }

    fn check_len(&self, len: u64) -> Result<usize> {
        match usize::try_from(len) {
            Ok(n) if n <= self.max_value => Ok(n),
            _ => Err(protocol(format!(
                "reply announces a value of {len} bytes, limit {}",
                self.max_value
            ))),
        }
    }

    /// The data block of `len` bytes after the header, checked for its `\r\n` terminator.
    fn data(&self, buf: &[u8], start: usize, len: usize) -> Result<Option<(Vec<u8>, usize)>> {
        Ok(self
            .data_range(buf, start, len)?
            .map(|(data, used)| (data.to_vec(), used)))
    }

    /// Like [`data`](Self::data), borrowing the block from `buf`.
    fn data_range<'a>(
        &self,
        buf: &'a [u8],
        start: usize,
        len: usize,
    ) -> Result<Option<(&'a [u8], usize)>> {
        let end = start + len;
        if buf.len() < end + 2 {
            // Catch a bad terminator early when the bytes are already there.
            if buf.len() > end && buf[end] != b'\r' {
                return Err(protocol("value data not followed by \\r\\n"));
            }
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(protocol(
                "value data not followed by \\r\\n (length mismatch)",
            ));
        }
        Ok(Some((&buf[start..end], end + 2)))
    }

    /// Parses every complete reply in `buf`, returning them with the bytes used in total.
    pub fn parse_all(&self, buf: &[u8]) -> Result<(Vec<Reply>, usize)> {
        let mut out = Vec::new();
        let mut used = 0;
        while let Some((reply, n)) = self.parse(&buf[used..])? {
            out.push(reply);
            used += n;
        }
        Ok((out, used))
    }
}

fn parse_meta_flags<'a>(
    status: MetaStatus,
    toks: impl Iterator<Item = &'a [u8]>,
) -> Result<MetaReply> {
    let mut m = MetaReply {
        status: Some(status),
        ..MetaReply::default()
    };
    for tok in toks {
        let (flag, val) = match tok.split_first() {
            Some((f, v)) => (*f, v),
            None => return Err(protocol("empty meta flag (double space)")),
        };
        match flag {
            b'c' => m.cas = Some(parse_u64(val, "meta c flag")?),
            b'f' => m.client_flags = Some(parse_u32(val, "meta f flag")?),
            b't' => m.ttl = Some(parse_i64(val, "meta t flag")?),
            b'k' => m.key = Some(val.to_vec()),
            b'b' => m.key_base64 = true,
            b'O' => m.opaque = Some(parse_u32(val, "meta O flag")?),
            b'W' => m.win = true,
            b'X' => m.stale = true,
            b'Z' => m.win_elsewhere = true,
            b if b.is_ascii_alphabetic() => {}
            _ => {
                return Err(protocol(format!(
                    "invalid meta flag {:?}",
                    lossy_prefix(tok)
                )))
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn numbers_parse_exactly_to_the_64_bit_edge() {
        assert_eq!(parse_u64(b"0", "n").unwrap(), 0);
        assert_eq!(parse_u64(b"007", "n").unwrap(), 7);
        assert_eq!(
            parse_u64(b"9999999999999999999", "n").unwrap(),
            9_999_999_999_999_999_999
        );
        assert_eq!(parse_u64(b"18446744073709551615", "n").unwrap(), u64::MAX);
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"100000000000000000000",
            b"1x",
            b"-1",
            b" 1",
        ] {
            assert!(
                parse_u64(bad, "n").is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            number_token(b"12 rest", "n").unwrap(),
            (12, Some(&b"rest"[..]))
        );
        assert_eq!(number_token(b"12", "n").unwrap(), (12, None));
        assert_eq!(
            number_token(b"18446744073709551615 x", "n").unwrap(),
            (u64::MAX, Some(&b"x"[..]))
        );
        assert_eq!(number_token(b"5 ", "n").unwrap(), (5, Some(&b""[..])));
        assert!(number_token(b"1x 2", "n").is_err());
        assert!(number_token(b" 2", "n").is_err());
        assert_eq!(leading_digits(b"123abc"), Some((123, 3)));
        assert_eq!(leading_digits(b"12345678901234567890"), None);
        assert_eq!(leading_digits(b""), None);
    }

    #[test]
    fn exptime_rules() {
        assert_eq!(exptime(Expiry::Never, 1_000), 0);
        assert_eq!(exptime(Expiry::After(Duration::from_millis(1)), 1_000), 1);
        assert_eq!(exptime(Expiry::After(Duration::ZERO), 1_000), 1);
        assert_eq!(exptime(Expiry::After(Duration::from_millis(1500)), 0), 2);
        assert_eq!(exptime(Expiry::secs(2_592_000), 1_000), 2_592_000);
        assert_eq!(
            exptime(Expiry::secs(2_592_001), 1_700_000_000),
            1_702_592_001
        );
        assert_eq!(exptime(Expiry::secs(u64::MAX), 1), u32::MAX);
    }

    #[test]
    fn keys_on_the_wire() {
        let k = WireKey::meta(b"user:1").unwrap();
        assert!(!k.base64);
        let k = WireKey::meta(b"has space").unwrap();
        assert!(k.base64);
        assert_eq!(&*k.token, b"aGFzIHNwYWNl");
        assert!(WireKey::meta(&[0u8; 186]).is_ok());
        assert!(WireKey::meta(&[0u8; 187]).is_err());
        assert!(WireKey::meta(b"").is_err());
        let long = WireKey::meta(&[b'k'; 251]).unwrap_err().to_string();
        assert!(long.contains("251 bytes, limit 250"), "{long}");
        assert!(WireKey::text(b"has space").is_err());
        assert_eq!(
            decode_echoed_key(b"aGFzIHNwYWNl", true).unwrap(),
            b"has space"
        );
    }

    #[test]
    fn encoders() {
        let k = WireKey::meta(b"foo").unwrap();
        let b = WireKey::meta(b"a b").unwrap();
        let mg = MgFlags {
            value: true,
            client_flags: true,
            cas: true,
            quiet: true,
            opaque: Some(7),
            vivify: Some(30),
            ..MgFlags::default()
        };
        assert_eq!(enc(|o| encode_mg(o, &k, &mg)), "mg foo v f c q O7 N30\r\n");
        assert_eq!(
            enc(|o| encode_mg(o, &b, &MgFlags::default())),
            "mg YSBi b\r\n"
        );
        let ms = MsFlags {
            mode: SetMode::Add,
            client_flags: 16,
            exptime: 60,
            cas: Some(9),
            ..MsFlags::default()
        };
        assert_eq!(
            enc(|o| encode_ms(o, &k, b"a\r\nb", &ms)),
            "ms foo 4 F16 T60 C9 ME\r\na\r\nb\r\n"
        );
        let md = MdFlags {
            invalidate: true,
            exptime: Some(30),
            ..MdFlags::default()
        };
        assert_eq!(enc(|o| encode_md(o, &k, &md)), "md foo I T30\r\n");
        let ma = MaFlags {
            decrement: true,
            delta: 5,
            value: true,
            ..MaFlags::default()
        };
        assert_eq!(enc(|o| encode_ma(o, &k, &ma)), "ma foo MD D5 v\r\n");
        assert_eq!(enc(encode_mn), "mn\r\n");
        assert_eq!(
            enc(|o| encode_get(o, true, &[k.clone(), k.clone()])),
            "gets foo foo\r\n"
        );
        assert_eq!(
            enc(|o| encode_gat(o, false, 10, std::slice::from_ref(&k))),
            "gat 10 foo\r\n"
        );
        assert_eq!(
            enc(|o| encode_storage(
                o,
                &k,
                b"xy",
                &TextStore {
                    mode: SetMode::Append,
                    client_flags: 1,
                    exptime: 2,
                    cas: None,
                    noreply: true
                }
            )),
            "append foo 1 2 2 noreply\r\nxy\r\n"
        );
        assert_eq!(
            enc(|o| encode_storage(
                o,
                &k,
                b"",
                &TextStore {
                    cas: Some(77),
                    ..TextStore::default()
                }
            )),
            "cas foo 0 0 0 77\r\n\r\n"
        );
        assert_eq!(enc(|o| encode_delete(o, &k, false)), "delete foo\r\n");
        assert_eq!(
            enc(|o| encode_incr_decr(o, false, &k, 3, false)),
            "incr foo 3\r\n"
        );
        assert_eq!(
            enc(|o| encode_touch(o, &k, 5, true)),
            "touch foo 5 noreply\r\n"
        );
        assert_eq!(enc(|o| encode_flush_all(o, None, false)), "flush_all\r\n");
        assert_eq!(
            enc(|o| encode_stats(o, Some("slabs")).unwrap()),
            "stats slabs\r\n"
        );
        assert!(encode_stats(&mut Vec::new(), Some("a b")).is_err());
        assert_eq!(enc(encode_version), "version\r\n");
    }

    #[test]
    fn parses_meta_replies() {
        let p = ReplyParser::default();
        let (r, n) = p
            .parse(b"VA 4 f16 c99 t-1 W kfoo O7\r\na\r\nb\r\nHD\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(n, 34);
        let Reply::Meta(m) = r else { panic!() };
        assert_eq!(m.status, Some(MetaStatus::Va));
        assert_eq!(m.value.as_deref(), Some(&b"a\r\nb"[..]));
        assert_eq!(
            (m.client_flags, m.cas, m.ttl, m.win),
            (Some(16), Some(99), Some(-1), true)
        );
        assert_eq!(m.key.as_deref(), Some(&b"foo"[..]));
        assert_eq!(m.opaque, Some(7));
        let (r, _) = p.parse(b"EN\r\n").unwrap().unwrap();
        assert!(matches!(
            r,
            Reply::Meta(MetaReply {
                status: Some(MetaStatus::En),
                ..
            })
        ));
        let (r, _) = p.parse(b"HD X Z\r\n").unwrap().unwrap();
        let Reply::Meta(m) = r else { panic!() };
        assert!(m.stale && m.win_elsewhere && !m.win);
        assert_eq!(p.parse(b"VA 4\r\nab").unwrap(), None);
        assert_eq!(p.parse(b"VA 0\r\n").unwrap(), None);
        let (r, n) = p.parse(b"VA 0\r\n\r\n").unwrap().unwrap();
        assert_eq!(n, 8);
        assert!(matches!(r, Reply::Meta(MetaReply { value: Some(ref v), .. }) if v.is_empty()));
    }

    #[test]
    fn parses_text_replies() {
        let p = ReplyParser::default();
        let (all, used) = p
            .parse_all(
                b"VALUE k 5 3 12\r\nabc\r\nEND\r\nSTORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\n\
DELETED\r\nTOUCHED\r\nOK\r\n42\r\nSTAT pid 12\r\nVERSION 1.6.18\r\nERROR\r\n\
CLIENT_ERROR bad\r\nSERVER_ERROR out of memory\r\n",
            )
            .unwrap();
        assert_eq!(used, 173);
        assert_eq!(
            all[0],
            Reply::Value(TextValue {
                key: b"k".to_vec(),
                client_flags: 5,
                cas: Some(12),
                data: b"abc".to_vec()
            })
        );
        assert_eq!(
            &all[1..],
            &[
                Reply::End,
                Reply::Stored,
                Reply::NotStored,
                Reply::Exists,
                Reply::NotFound,
                Reply::Deleted,
                Reply::Touched,
                Reply::Ok,
                Reply::Number(42),
                Reply::Stat("pid".into(), "12".into()),
                Reply::Version("1.6.18".into()),
                Reply::Error,
                Reply::ClientError("bad".into()),
                Reply::ServerError("out of memory".into()),
            ]
        );
    }

    #[test]
    fn hostile_replies_are_protocol_errors() {
        let p = ReplyParser::new(1 << 20);
        for bad in [
            &b"VALUE k 0 999999999999\r\n"[..],
            b"VA 99999999999999999999999\r\n",
            b"VA 3\r\nabcd\r\n",
            b"VA 3\r\nabXY",
            b"VALUE k 0 2\r\nabc\r\nEND\r\n",
            b"VALUE k 0 1 2 3\r\na\r\n",
            b"VALUE k 0\r\n",
            b"VALUE k 4294967296 1\r\na\r\n",
            b"HD\n",
            b"\r\n",
            b"BOGUS\r\n",
            b"STORED extra\r\n",
            b"HD c12x\r\n",
            b"HD  c1\r\n",
            b"99999999999999999999999\r\n",
        ] {
            match p.parse(bad) {
                Err(Error::Protocol(_)) => {}
                other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(bad)),
            }
        }
        let long = vec![b'a'; DEFAULT_MAX_LINE + 1];
        assert!(matches!(p.parse(&long), Err(Error::Protocol(_))));
    }

    #[test]
    fn error_replies_map_to_typed_errors() {
        let too_large = Reply::ServerError(TOO_LARGE_TEXT.into());
        assert!(matches!(
            too_large.into_error("HD", Some(b"k"), 2_000_000, 1 << 20),
            Error::ValueTooLarge {
                size: 2_000_000,
                limit: 1_048_576
            }
        ));
        let nan = Reply::ClientError(NON_NUMERIC_TEXT.into());
        assert!(matches!(
            nan.clone().into_error("VA", Some(b"k"), 0, 0),
            Error::NotANumber { key } if key == "k"
        ));
        assert!(matches!(
            nan.into_error("VA", None, 0, 0),
            Error::Client(t) if t == NON_NUMERIC_TEXT
        ));
        assert!(matches!(
            Reply::ServerError("x".into()).into_error("HD", Some(b"k"), 0, 0),
            Error::Server(t) if t == "x"
        ));
        assert!(matches!(
            Reply::ClientError("y".into()).into_error("HD", Some(b"k"), 0, 0),
            Error::Client(t) if t == "y"
        ));
        assert!(matches!(
            Reply::Stored.into_error("HD", Some(b"k"), 0, 0),
            Error::Protocol(_)
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Looking for an expected key gives exactly the scanning fast path's item when its
        /// key is the one expected, and nothing otherwise, on items that almost parse.
        #[test]
        fn expected_item_is_plain_item_for_that_key(
            key in proptest::sample::select(vec!["k", "kk", "k\u{1}", "", "kk k"]),
            expected in proptest::sample::select(vec!["k", "kk", "kkk"]),
            flags in proptest::sample::select(vec!["0", "4294967296", "x", ""]),
            len in 0usize..6,
            cas in proptest::option::of(proptest::sample::select(vec!["7", ""])),
            line_end in proptest::sample::select(vec!["\r\n", " \r\n", "\n"]),
            data_skew in -1isize..2,
            data_end in proptest::sample::select(vec!["\r\n", "\r", "", "xx"]),
            max_value in 0usize..8,
        ) {
            let mut bytes = format!("VALUE {key} {flags} {len}").into_bytes();
            if let Some(cas) = cas {
                bytes.extend_from_slice(format!(" {cas}").as_bytes());
            }
            bytes.extend_from_slice(line_end.as_bytes());
            bytes.extend(std::iter::repeat_n(b'd', len.saturating_add_signed(data_skew)));
            bytes.extend_from_slice(data_end.as_bytes());
            let parser = ReplyParser::new(max_value);
            let scanned = parser
                .plain_item(&bytes)
                .filter(|(item, _)| item.key == expected.as_bytes());
            proptest::prop_assert_eq!(parser.expected_item(&bytes, expected.as_bytes()), scanned);
        }
    }
}
