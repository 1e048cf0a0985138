//! Encoders of the meta protocol's requests (`mg`, `ms`, `md`, `ma`, `mn`) and the writing
//! helpers the text encoders share.

use super::keys::*;

pub(super) fn push_num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

pub(super) fn push_flag_num(out: &mut Vec<u8>, flag: u8, n: u64) {
    out.push(b' ');
    out.push(flag);
    push_num(out, n);
}

pub(super) fn push_flag(out: &mut Vec<u8>, flag: u8) {
    out.push(b' ');
    out.push(flag);
}

pub(super) fn push_opaque(out: &mut Vec<u8>, opaque: Option<u32>) {
    if let Some(o) = opaque {
        push_flag_num(out, b'O', u64::from(o));
    }
}

pub(super) fn push_key(out: &mut Vec<u8>, cmd: &[u8], key: &WireKey<'_>) {
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
    // The whole request at once: the key, the value and room for every flag.
    out.reserve(key.token.len() + data.len() + 112);
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
