//! Keys as pylibmc takes them: a `str` (sent as UTF-8) or `bytes`, at most 250 bytes; and
//! which keys a client refuses ([`KeyPolicy`]).
//!
//! With `binary=True` any key works (larder sends a key holding spaces or control bytes
//! base64 with the meta `b` flag, which reaches the same item as pylibmc's binary protocol).
//! Without it, a key memcached's text protocol cannot carry (a space or control byte) is
//! refused as pylibmc's `verify_keys` refuses it — pylibmc itself would send it and break the
//! connection — and `verify_keys` also refuses bytes outside ASCII's printable range, as
//! libmemcached's check does. How a refused key fails (`False`, a miss or `BadKeyProvided`)
//! is each method's, as in pylibmc.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyString};

use crate::errors::BadKeyProvided;

/// memcached's longest key.
pub(crate) const MAX_KEY_LEN: usize = 250;
/// The longest key that travels base64 (its encoding must fit 250 bytes).
const MAX_BASE64_KEY_LEN: usize = larder::memcache::proto::MAX_BINARY_KEY_LEN;

/// A key's bytes, borrowed from the object passed: a bytes object's own buffer, or the UTF-8
/// form a str caches (encoded once, into a new bytes object, on abi3 builds for Python 3.9,
/// whose limited API cannot borrow it). Held without the GIL's lifetime, so the async face
/// carries it across its I/O uncopied.
pub(crate) struct PyKey {
    bytes: KeyBytes,
}

enum KeyBytes {
    Bytes(PyBackedBytes),
    Str(PyBackedStr),
}

impl PyKey {
    /// `obj` as a key: `TypeError` unless str or bytes, `ValueError` over 250 bytes.
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let key = if let Ok(b) = obj.cast::<PyBytes>() {
            PyKey {
                bytes: KeyBytes::Bytes(PyBackedBytes::from(b.clone())),
            }
        } else if let Ok(s) = obj.cast::<PyString>() {
            PyKey {
                bytes: KeyBytes::Str(PyBackedStr::try_from(s.clone())?),
            }
        } else {
            return Err(not_a_key(obj));
        };
        if key.as_bytes().len() > MAX_KEY_LEN {
            return Err(too_long(key.as_bytes()));
        }
        Ok(key)
    }

    /// The key's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.bytes {
            KeyBytes::Bytes(b) => b,
            KeyBytes::Str(s) => s.as_bytes(),
        }
    }
}

/// A single-key call's key: its bytes as [`key_bytes`] reads them (borrowed from the object
/// passed, which the call holds for its length, GIL released or not).
pub(crate) struct Key<'a>(Cow<'a, [u8]>);

impl<'a> Key<'a> {
    /// `obj` as a key: `TypeError` unless str or bytes, `ValueError` over 250 bytes.
    pub(crate) fn new(obj: &'a Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Key(key_bytes(obj)?.0))
    }

    /// The key's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// `obj`'s bytes as a key, with whether it is a str, as [`PyKey::new`] reads and checks
/// them but borrowed from the object (a bytes object's buffer, a str's cached UTF-8; a copy
/// only on abi3 builds for Python 3.9): for a call that copies them on at once.
pub(crate) fn key_bytes<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<(Cow<'a, [u8]>, bool)> {
    let (bytes, is_str) = if let Ok(b) = obj.cast::<PyBytes>() {
        (Cow::Borrowed(b.as_bytes()), false)
    } else if let Ok(s) = obj.cast::<PyString>() {
        let bytes = match s.to_cow()? {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        };
        (bytes, true)
    } else {
        return Err(not_a_key(obj));
    };
    if bytes.len() > MAX_KEY_LEN {
        return Err(too_long(&bytes));
    }
    Ok((bytes, is_str))
}

/// The `TypeError` of a key that is neither str nor bytes.
fn not_a_key(obj: &Bound<'_, PyAny>) -> PyErr {
    match obj.get_type().name() {
        Ok(name) => PyTypeError::new_err(format!("key must be str or bytes, not {name}")),
        Err(e) => e,
    }
}

/// Whether every byte of `bytes` is printable ASCII (no space), which either key rule
/// passes: one branch-free pass (which the compiler vectorizes), so that only a key that
/// fails it is searched byte by byte.
pub(crate) fn printable(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x21) < 0x5e))
}

/// The `ValueError` of a key over 250 bytes: pylibmc's words, then the key (shortened).
pub(crate) fn too_long(key: &[u8]) -> PyErr {
    let shown: String = String::from_utf8_lossy(&key[..key.len().min(40)]).into_owned();
    PyValueError::new_err(format!(
        "key length {} too long, max is {MAX_KEY_LEN} (key {shown:?}…)",
        key.len()
    ))
}

/// Why a key is not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The key is empty (pylibmc treats it as a miss or a failed write).
    Empty,
    /// The key holds a byte the client's rules refuse.
    Bad { byte: u8, offset: usize },
    /// The key with its prefix is longer than 250 bytes.
    TooLong { len: usize },
}

impl Refusal {
    /// The `BadKeyProvided` a raising method raises for `key`.
    pub(crate) fn error(&self, key: &[u8]) -> PyErr {
        let shown = String::from_utf8_lossy(key);
        match self {
            Refusal::Empty => BadKeyProvided::new_err("key is empty"),
            Refusal::TooLong { len } => BadKeyProvided::new_err(format!(
                "key {shown:?} is {len} bytes with its prefix, max is {MAX_KEY_LEN}"
            )),
            Refusal::Bad { byte, offset } => BadKeyProvided::new_err(format!(
                "invalid key {shown:?}: byte 0x{byte:02x} at offset {offset} is not allowed \
                 (use binary=True for keys with spaces or control bytes)"
            )),
        }
    }
}

/// Which keys a client sends (from `binary` and the `verify_keys` behavior).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyPolicy {
    pub(crate) binary: bool,
    pub(crate) verify: bool,
}

impl KeyPolicy {
    /// `Ok(None)` when `key` is sent; `Ok(Some)` when refused; `ValueError` when it is too
    /// long to travel at all.
    pub(crate) fn check(self, key: &[u8]) -> PyResult<Option<Refusal>> {
        if key.is_empty() {
            return Ok(Some(Refusal::Empty));
        }
        if printable(key) {
            return Ok(None);
        }
        let forbidden = |b: u8| b <= b' ' || b == 0x7f || (self.verify && b > 0x7e);
        let Some(offset) = key.iter().position(|&b| forbidden(b)) else {
            return Ok(None);
        };
        if !self.binary {
            return Ok(Some(Refusal::Bad {
                byte: key[offset],
                offset,
            }));
        }
        if key.len() > MAX_BASE64_KEY_LEN {
            return Err(PyValueError::new_err(format!(
                "key length {} too long for a key holding spaces or control bytes, max is \
                 {MAX_BASE64_KEY_LEN} (it travels base64)",
                key.len()
            )));
        }
        Ok(None)
    }
}

/// A key's bytes for the wire: the key's own, or a prefixed copy.
pub(crate) enum Wire {
    Key(PyKey),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Wire {
    fn as_ref(&self) -> &[u8] {
        match self {
            Wire::Key(k) => k.as_bytes(),
            Wire::Owned(v) => v,
        }
    }
}

/// The optional `key_prefix` of a multi-key call (`None` when absent or empty).
pub(crate) fn prefix(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<PyKey>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => {
            let p = PyKey::new(o)?;
            Ok((!p.as_bytes().is_empty()).then_some(p))
        }
    }
}

/// `key` with `prefix` in front, for the wire.
pub(crate) fn prefixed(prefix: Option<&PyKey>, key: PyKey) -> Wire {
    match prefix {
        None => Wire::Key(key),
        Some(p) => {
            let mut v = Vec::with_capacity(p.as_bytes().len() + key.as_bytes().len());
            v.extend_from_slice(p.as_bytes());
            v.extend_from_slice(key.as_bytes());
            Wire::Owned(v)
        }
    }
}
