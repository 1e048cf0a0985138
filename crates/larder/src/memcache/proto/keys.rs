//! Wire keys (text keys as they are, binary keys base64 for the meta `b` flag), exptimes and
//! the protocol's size limits (the item limit counts the item's header and key, not only its
//! value), and [`extend_short`], the copy that appends a key to a request or a hit buffer.

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
/// The size of memcached's item header (`sizeof(item)` on a 64-bit build).
pub const ITEM_HEADER_SIZE: usize = 48;
/// The CAS value every item carries unless memcached runs with `-C`.
pub const ITEM_CAS_SIZE: usize = 8;
/// The parser's default largest accepted value: a bit over the default item limit.
pub const DEFAULT_MAX_VALUE_SIZE: usize = (1 << 20) + 4096;
/// The parser's default longest accepted reply line.
pub const DEFAULT_MAX_LINE: usize = 8192;
/// The longest raw key a base64 meta key can hold (its 4/3 encoding must fit 250 chars).
pub const MAX_BINARY_KEY_LEN: usize = 186;

/// The largest value memcached 1.6 stores under a key of `key_len` bytes (as the server
/// keeps it: a base64 key counts decoded) with client `flags`, when its item limit (`-I`) is
/// `item_limit`.
///
/// An item must fit the limit whole (`item_size_ok` in memcached's `items.c`): the item
/// header, the key and its NUL, the flags when they are not 0 (4 bytes), the value and its
/// `\r\n`, and the CAS value. This is exact for a default 64-bit build; a server started
/// with `-C` (no CAS) takes 8 bytes more, which this bound does not count on.
pub fn max_value_len(item_limit: usize, key_len: usize, flags: u32) -> usize {
    let flag_bytes = if flags == 0 { 0 } else { 4 };
    let overhead = ITEM_HEADER_SIZE + key_len + 1 + flag_bytes + 2 + ITEM_CAS_SIZE;
    item_limit.saturating_sub(overhead)
}

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

pub(super) fn key_error(key: &[u8], rule: KeyRule) -> Error {
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

/// The longest slice [`extend_short`] copies without a `memcpy` call, and how far past the
/// bytes' end it may write before it cuts back (room a caller may reserve).
pub const SHORT: usize = 16;

/// `out.extend_from_slice(bytes)`, for 4 to [`SHORT`] bytes (keys, mostly) in two
/// overlapping fixed-size word copies instead of a `memcpy` call, whose call and size
/// dispatch cost more than copying a key this short. The words are written in place, into
/// room appended zeroed (one fixed-size store), and `out` is cut back to the bytes' end:
/// copying them through a scratch array instead read back 16 bytes just written by two
/// narrower stores, which the CPU cannot forward and waits out on every key. Amortised like
/// any `extend_from_slice` when `out` lacks room for the whole array. (`cargo bench -p
/// larder-bench --bench short_copy` compares it with `extend_from_slice`.)
#[inline(always)]
pub fn extend_short(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len();
    let at = out.len();
    if (8..=SHORT).contains(&n) {
        out.extend_from_slice(&[0; SHORT]);
        let dst = &mut out[at..at + n];
        dst[..8].copy_from_slice(&bytes[..8]);
        dst[n - 8..].copy_from_slice(&bytes[n - 8..]);
    } else if (4..8).contains(&n) {
        out.extend_from_slice(&[0; SHORT]);
        let dst = &mut out[at..at + n];
        dst[..4].copy_from_slice(&bytes[..4]);
        dst[n - 4..].copy_from_slice(&bytes[n - 4..]);
    } else {
        out.extend_from_slice(bytes);
        return;
    }
    out.truncate(at + n);
}
