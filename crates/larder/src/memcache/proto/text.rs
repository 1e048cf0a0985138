//! Encoders of the text protocol's requests (`get`, `set`, `delete`, `incr`, `stats`, ...).

use super::keys::*;
use super::meta::*;
use crate::{Error, Result};

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
    out.reserve(key.token.len() + data.len() + 64);
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
