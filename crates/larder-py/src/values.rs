//! Values as pylibmc 1.6.3 stores them, so a service on pylibmc and one on larder read each
//! other's items: `bytes` → flag 0; `str` → 16 (UTF-8); `bool` → 2 (`1`/`0`, read back as
//! an int); any `int` → 4 (decimal); anything else → 1 (pickled with the client's
//! `pickle_protocol`); zlib adds 8 when asked for and smaller. A subclass's own `serialize`
//! and `deserialize` replace the native ones on every path ([`Hooks`]); `CacheMiss` raised by
//! `deserialize` turns a hit into a miss.
//!
//! Python objects are made and read only here, with the GIL held; zlib work is plain Rust and
//! the clients run it with the GIL released, next to the I/O.

use std::borrow::Cow;
use std::io::{Read as _, Write as _};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString, PyTuple, PyType};

use crate::errors::{CacheMiss, Error};

/// Flag of a pickled value.
pub(crate) const FLAG_PICKLE: u32 = 1;
/// Flag of a bool (and python-memcached's and pymemcache's ints).
pub(crate) const FLAG_INTEGER: u32 = 2;
/// Flag of an int as pylibmc writes it.
pub(crate) const FLAG_LONG: u32 = 4;
/// Flag of a zlib-compressed value, combined with its type's flag.
pub(crate) const FLAG_ZLIB: u32 = 8;
/// Flag of UTF-8 text.
pub(crate) const FLAG_TEXT: u32 = 16;
/// The bits that say a value's type; pylibmc ignores the others (except zlib's).
const FLAG_TYPES: u32 = FLAG_PICKLE | FLAG_INTEGER | FLAG_LONG | FLAG_TEXT;

/// The largest size a compressed value may inflate to: a bound against a zlib bomb from a
/// misbehaving server, far above any item a memcached server accepts.
const MAX_INFLATED: usize = 1 << 30;

/// An encoded value: a Python bytes object borrowed as is (bytes, UTF-8 of a str, a pickle),
/// or bytes made here (ints, bools).
pub(crate) enum Payload<'py> {
    Py(Bound<'py, PyBytes>),
    Owned(Vec<u8>),
}

impl Payload<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Py(b) => b.as_bytes(),
            Payload::Owned(v) => v,
        }
    }
}

/// Whether a client's class overrides `serialize` / `deserialize` (decided once per client,
/// as pylibmc does, so the native path costs no attribute lookup).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hooks {
    pub(crate) user_serialize: bool,
    pub(crate) user_deserialize: bool,
}

impl Hooks {
    /// The hooks of instances of `cls`, whose native methods are those of `base`.
    pub(crate) fn of(cls: &Bound<'_, PyType>, base: &Bound<'_, PyType>) -> PyResult<Self> {
        let overridden =
            |name: &str| -> PyResult<bool> { Ok(!cls.getattr(name)?.is(base.getattr(name)?)) };
        Ok(Hooks {
            user_serialize: overridden("serialize")?,
            user_deserialize: overridden("deserialize")?,
        })
    }
}

fn pickle_fn<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || py.import("pickle")?.getattr(name).map(Bound::unbind))
        .map(|f| f.bind(py))
}

fn dumps(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    pickle_fn(py, &DUMPS, "dumps")
}

fn loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    pickle_fn(py, &LOADS, "loads")
}

/// pylibmc's native serialization of `value`.
pub(crate) fn serialize_native<'py>(
    value: &Bound<'py, PyAny>,
    pickle_protocol: i64,
) -> PyResult<(Payload<'py>, u32)> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok((Payload::Py(b.clone()), 0));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok((Payload::Py(s.encode_utf8()?), FLAG_TEXT));
    }
    // Before int: bool is an int subclass, and pylibmc gives it its own flag.
    if let Ok(b) = value.cast::<PyBool>() {
        let digit = if b.is_true() { b"1" } else { b"0" };
        return Ok((Payload::Owned(digit.to_vec()), FLAG_INTEGER));
    }
    if value.is_instance_of::<PyInt>() {
        // An exact int within i64 is formatted here; anything else goes through `str()`,
        // as pylibmc does (an int subclass's `__str__` decides its text).
        if value.is_exact_instance_of::<PyInt>() {
            if let Ok(n) = value.extract::<i64>() {
                return Ok((Payload::Owned(n.to_string().into_bytes()), FLAG_LONG));
            }
        }
        let text = value.str()?;
        return Ok((Payload::Py(text.encode_utf8()?), FLAG_LONG));
    }
    let pickled = dumps(value.py())?.call1((value, pickle_protocol))?;
    let pickled = pickled
        .cast_into::<PyBytes>()
        .map_err(|_| PyTypeError::new_err("pickle.dumps did not return bytes"))?;
    Ok((Payload::Py(pickled), FLAG_PICKLE))
}

/// pylibmc's native deserialization of `data` (already inflated) stored with `flags`.
pub(crate) fn deserialize_native<'py>(
    py: Python<'py>,
    data: &[u8],
    flags: u32,
) -> PyResult<Bound<'py, PyAny>> {
    match flags & FLAG_TYPES {
        0 => Ok(PyBytes::new(py, data).into_any()),
        FLAG_TEXT => match std::str::from_utf8(data) {
            Ok(s) => Ok(PyString::new(py, s).into_any()),
            Err(e) => Err(pyo3::exceptions::PyUnicodeDecodeError::new_utf8(py, data, e)?.into()),
        },
        FLAG_INTEGER | FLAG_LONG => parse_int(py, data),
        FLAG_PICKLE => loads(py)?.call1((PyBytes::new(py, data),)),
        other => Err(Error::new_err(format!(
            "unknown memcached key flags {other}"
        ))),
    }
}

/// A decimal int as Python's `int()` reads it (any size, sign, surrounding spaces). Bytes
/// that are not UTF-8 raise `UnicodeDecodeError`, as pylibmc's (a `ValueError` too).
fn parse_int<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => {
            return Err(pyo3::exceptions::PyUnicodeDecodeError::new_utf8(py, data, e)?.into())
        }
    };
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n.into_pyobject(py)?.into_any());
    }
    py.get_type::<PyInt>().call1((PyBytes::new(py, data),))
}

/// How one client turns values into stored bytes and back: the client object (whose
/// `serialize`/`deserialize` a subclass may override), its [`Hooks`] and pickle protocol.
pub(crate) struct Codec<'a, 'py> {
    pub(crate) this: &'a Bound<'py, PyAny>,
    pub(crate) hooks: Hooks,
    pub(crate) pickle_protocol: i64,
}

impl<'py> Codec<'_, 'py> {
    /// Encodes `value` for storage: the subclass's `serialize` when it has one, else native.
    pub(crate) fn encode(&self, value: &Bound<'py, PyAny>) -> PyResult<(Payload<'py>, u32)> {
        if !self.hooks.user_serialize {
            return serialize_native(value, self.pickle_protocol);
        }
        let bad = || PyValueError::new_err("serialize() must return (bytes, flags)");
        let out = self.this.call_method1("serialize", (value,))?;
        // pylibmc reads the first two items of any tuple.
        let pair = out.cast::<PyTuple>().map_err(|_| bad())?;
        if pair.len() < 2 {
            return Err(bad());
        }
        let flags = pair.get_item(1)?;
        if !flags.is_instance_of::<PyInt>() {
            return Err(bad());
        }
        let flags: u32 = flags.extract().map_err(|_| {
            PyValueError::new_err("serialize() returned flags outside 0 to 2**32-1")
        })?;
        let data = pair.get_item(0)?;
        let data = data.cast_into::<PyBytes>().map_err(|e| {
            let name = e.into_inner().get_type().name().map(|n| n.to_string());
            PyTypeError::new_err(format!(
                "serialize() must return bytes as its first item, not {}",
                name.unwrap_or_else(|_| "?".into())
            ))
        })?;
        Ok((Payload::Py(data), flags))
    }

    /// Decodes an item's bytes (already inflated): the subclass's `deserialize` when it has
    /// one, else native. `None` when deserializing raised `CacheMiss`.
    pub(crate) fn decode(&self, data: &[u8], flags: u32) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = self.this.py();
        let result = if self.hooks.user_deserialize {
            self.this
                .call_method1("deserialize", (PyBytes::new(py, data), flags))
        } else {
            deserialize_native(py, data, flags)
        };
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_instance_of::<CacheMiss>(py) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// When values are compressed on the way in (a set's `min_compress_len` and
/// `compress_level`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compression {
    min_len: usize,
    level: u32,
}

impl Compression {
    /// pylibmc's rules: `compress_level` -1 is zlib's default (6), 0 turns compression off,
    /// anything else outside 0–9 is a `ValueError`; `min_compress_len` 0 turns it off (a
    /// negative one too: pylibmc reads it as a huge unsigned length).
    pub(crate) fn from_args(min_compress_len: i64, compress_level: i32) -> PyResult<Option<Self>> {
        let level = match compress_level {
            -1 => 6,
            0..=9 => compress_level.unsigned_abs(),
            _ => {
                return Err(PyValueError::new_err(
                    "compress_level must be between 0 and 9 inclusive",
                ))
            }
        };
        let min_len = usize::try_from(min_compress_len).unwrap_or(0);
        Ok((level != 0 && min_len != 0).then_some(Compression { min_len, level }))
    }

    /// `data` compressed, when it is long enough and compressing makes it smaller.
    pub(crate) fn apply(self, data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < self.min_len {
            return None;
        }
        let mut z = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(data.len() / 2),
            flate2::Compression::new(self.level),
        );
        let packed = z.write_all(data).and_then(|()| z.finish()).ok()?;
        (packed.len() < data.len()).then_some(packed)
    }
}

/// Compresses `data` under `compression` when that pays: the bytes to send and their flags.
pub(crate) fn pack(
    data: &[u8],
    flags: u32,
    compression: Option<Compression>,
) -> (Cow<'_, [u8]>, u32) {
    match compression.and_then(|c| c.apply(data)) {
        Some(packed) => (Cow::Owned(packed), flags | FLAG_ZLIB),
        None => (Cow::Borrowed(data), flags),
    }
}

/// A stored value that could not be inflated (raised as `larder.Error`).
#[derive(Debug)]
pub(crate) struct Inflate(String);

impl Inflate {
    pub(crate) fn into_py(self) -> PyErr {
        Error::new_err(format!("Failed to decompress value: {}", self.0))
    }
}

/// Whether `flags` says the value is zlib-compressed.
pub(crate) fn is_compressed(flags: u32) -> bool {
    flags & FLAG_ZLIB != 0
}

/// The value to deserialize: `data` itself, or inflated when `flags` has zlib's bit.
pub(crate) fn inflate_if_flagged(
    data: Cow<'_, [u8]>,
    flags: u32,
) -> Result<Cow<'_, [u8]>, Inflate> {
    if !is_compressed(flags) {
        return Ok(data);
    }
    let mut out = Vec::with_capacity(data.len().saturating_mul(3));
    let mut z = flate2::read::ZlibDecoder::new(&data[..]).take(MAX_INFLATED as u64 + 1);
    z.read_to_end(&mut out)
        .map_err(|e| Inflate(e.to_string()))?;
    if out.len() > MAX_INFLATED {
        return Err(Inflate(format!(
            "it inflates to more than {MAX_INFLATED} bytes"
        )));
    }
    Ok(Cow::Owned(out))
}

/// A fetched item made ready to decode, inflated when flagged (the clients run this with the
/// GIL released).
pub(crate) fn unpack(item: Option<(Vec<u8>, u32)>) -> Result<Option<(Vec<u8>, u32)>, Inflate> {
    item.map(|(data, flags)| {
        inflate_if_flagged(Cow::Owned(data), flags).map(|d| (d.into_owned(), flags))
    })
    .transpose()
}
