//! [`PyCompat`]: values read and written with the flags the Python memcached clients use
//! (pylibmc, python-memcached, pymemcache), so a Rust service and Python services read each
//! other's values from one cluster.
//!
//! | flag bit | meaning | [`PyValue`] |
//! |---|---|---|
//! | none (0) | bytes | `Bytes` |
//! | 1 | pickled object | `Pickled` — opaque, never unpickled |
//! | 2 | int, ASCII decimal (python-memcached, pymemcache) | `Int` / `BigInt` |
//! | 4 | "long", ASCII decimal (pylibmc writes every int so) | `Int` / `BigInt` |
//! | 8 | zlib stream (with header), combined with one of the above | — |
//! | 16 | UTF-8 `str` | `Str` |
//!
//! `Bool` is written as pylibmc writes it (flag 2, `1`/`0`); every Python client reads it
//! back as the int 1 or 0, and so do we. Unknown flag bits are an error, as in
//! python-memcached (pylibmc 1.6.3 and pymemcache ignore them and return the raw bytes). A
//! value with two type bits is read in the order python-memcached and pymemcache test them
//! (text, int, pickle); pylibmc refuses it. The flags and how each client treats them are
//! written up in the repository's `docs/memcached-interop.md`.

use std::io::Read as _;
use std::io::Write as _;

use crate::codec::{Codec, Encoded};
use crate::{Error, Result};

/// Flag of a pickled value.
pub const PY_FLAG_PICKLE: u32 = 1;
/// Flag of an int (python-memcached, pymemcache).
pub const PY_FLAG_INTEGER: u32 = 2;
/// Flag of a "long" (pylibmc writes every int with it).
pub const PY_FLAG_LONG: u32 = 4;
/// Flag of a zlib-compressed value.
pub const PY_FLAG_ZLIB: u32 = 8;
/// Flag of UTF-8 text.
pub const PY_FLAG_TEXT: u32 = 16;

/// A value as the Python clients store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyValue {
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `str`.
    Str(String),
    /// `int` within i64.
    Int(i64),
    /// `int` beyond i64, as its decimal text (Python ints are unbounded; nothing is lost).
    BigInt(String),
    /// `bool`; read back as [`PyValue::Int`], as Python clients do.
    Bool(bool),
    /// A pickled Python object: its bytes, never unpickled. Written back unchanged.
    Pickled(Vec<u8>),
}

/// Which flag ints are written with (both are read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntFlag {
    /// Flag 4, as pylibmc writes ints.
    #[default]
    Long,
    /// Flag 2, as python-memcached and pymemcache write ints.
    Integer,
}

/// The Python-compatible codec for [`PyValue`].
#[derive(Debug, Clone)]
pub struct PyCompat {
    int_flag: IntFlag,
    compress_over: Option<usize>,
    max_decompressed: usize,
}

impl Default for PyCompat {
    fn default() -> Self {
        Self::new()
    }
}

impl PyCompat {
    /// Ints written with the pylibmc flag, no compression, decompression bounded at 64 MiB.
    pub fn new() -> Self {
        Self {
            int_flag: IntFlag::Long,
            compress_over: None,
            max_decompressed: 64 << 20,
        }
    }

    /// Chooses the flag ints are written with.
    pub fn int_flag(mut self, flag: IntFlag) -> Self {
        self.int_flag = flag;
        self
    }

    /// zlib-compresses encoded values longer than `threshold` bytes when that makes them
    /// smaller (the Python clients' `min_compress_len`).
    pub fn compress_over(mut self, threshold: usize) -> Self {
        self.compress_over = Some(threshold);
        self
    }

    /// The largest decompressed size accepted; a bigger one is a codec error.
    pub fn max_decompressed(mut self, bytes: usize) -> Self {
        self.max_decompressed = bytes;
        self
    }

    fn compress(&self, mut enc: Encoded) -> Result<Encoded> {
        let Some(threshold) = self.compress_over else {
            return Ok(enc);
        };
        if enc.data.len() <= threshold {
            return Ok(enc);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&enc.data)
            .and_then(|()| z.finish())
            .map(|packed| {
                if packed.len() < enc.data.len() {
                    enc.data = packed;
                    enc.flags |= PY_FLAG_ZLIB;
                }
                enc
            })
            .map_err(|e| Error::Codec(format!("zlib: {e}")))
    }

    fn decompress(&self, data: &[u8]) -> Result<Vec<u8>> {
        let limit = self.max_decompressed as u64;
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(data)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::Codec(format!("zlib: {e}")))?;
        if out.len() as u64 > limit {
            return Err(Error::Codec(format!(
                "zlib value decompresses past the limit of {limit} bytes"
            )));
        }
        Ok(out)
    }
}

fn decimal(data: &[u8]) -> Result<PyValue> {
    let text = std::str::from_utf8(data)
        .ok()
        .map(str::trim)
        .filter(|t| {
            let digits = t.strip_prefix('-').unwrap_or(t);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        })
        .ok_or_else(|| {
            Error::Codec(format!(
                "int flag on a value that is not decimal: {:?}",
                String::from_utf8_lossy(&data[..data.len().min(40)])
            ))
        })?;
    Ok(match text.parse::<i64>() {
        Ok(n) => PyValue::Int(n),
        Err(_) => PyValue::BigInt(text.to_owned()),
    })
}

impl Codec<PyValue> for PyCompat {
    fn encode(&self, value: &PyValue) -> Result<Encoded> {
        let int_flag = match self.int_flag {
            IntFlag::Long => PY_FLAG_LONG,
            IntFlag::Integer => PY_FLAG_INTEGER,
        };
        let (data, flags) = match value {
            PyValue::Bytes(b) => (b.clone(), 0),
            PyValue::Str(s) => (s.as_bytes().to_vec(), PY_FLAG_TEXT),
            PyValue::Int(n) => (n.to_string().into_bytes(), int_flag),
            PyValue::BigInt(text) => {
                decimal(text.as_bytes())?;
                (text.trim().as_bytes().to_vec(), int_flag)
            }
            PyValue::Bool(b) => (
                if *b { b"1".to_vec() } else { b"0".to_vec() },
                PY_FLAG_INTEGER,
            ),
            PyValue::Pickled(p) => (p.clone(), PY_FLAG_PICKLE),
        };
        self.compress(Encoded { data, flags })
    }

    fn decode(&self, data: &[u8], flags: u32) -> Result<PyValue> {
        let known = PY_FLAG_PICKLE | PY_FLAG_INTEGER | PY_FLAG_LONG | PY_FLAG_ZLIB | PY_FLAG_TEXT;
        if flags & !known != 0 {
            return Err(Error::Codec(format!(
                "unknown Python client flags {flags:#x} (known bits: {known:#x})"
            )));
        }
        let raw;
        let data = if flags & PY_FLAG_ZLIB != 0 {
            raw = self.decompress(data)?;
            &raw[..]
        } else {
            data
        };
        // The order the Python clients test the bits in.
        if flags & PY_FLAG_TEXT != 0 {
            String::from_utf8(data.to_vec())
                .map(PyValue::Str)
                .map_err(|e| Error::Codec(format!("str flag on a value that is not UTF-8: {e}")))
        } else if flags & (PY_FLAG_INTEGER | PY_FLAG_LONG) != 0 {
            decimal(data)
        } else if flags & PY_FLAG_PICKLE != 0 {
            Ok(PyValue::Pickled(data.to_vec()))
        } else {
            Ok(PyValue::Bytes(data.to_vec()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(codec: &PyCompat, v: PyValue) -> (PyValue, u32) {
        let enc = codec.encode(&v).unwrap();
        (codec.decode(&enc.data, enc.flags).unwrap(), enc.flags)
    }

    #[test]
    fn flags_as_python_writes_them() {
        let c = PyCompat::new();
        assert_eq!(
            round_trip(&c, PyValue::Bytes(b"\x00\r\n".to_vec())),
            (PyValue::Bytes(b"\x00\r\n".to_vec()), 0)
        );
        assert_eq!(
            round_trip(&c, PyValue::Str("é".into())),
            (PyValue::Str("é".into()), 16)
        );
        assert_eq!(round_trip(&c, PyValue::Int(-42)), (PyValue::Int(-42), 4));
        let c2 = PyCompat::new().int_flag(IntFlag::Integer);
        assert_eq!(round_trip(&c2, PyValue::Int(7)), (PyValue::Int(7), 2));
        assert_eq!(round_trip(&c, PyValue::Bool(true)), (PyValue::Int(1), 2));
        let big = "123456789012345678901234567890".to_string();
        assert_eq!(
            round_trip(&c, PyValue::BigInt(big.clone())),
            (PyValue::BigInt(big), 4)
        );
        assert!(c.encode(&PyValue::BigInt("12a".into())).is_err());
        let pickle = vec![0x80, 4, 0x95, 1, 2, 3];
        assert_eq!(
            round_trip(&c, PyValue::Pickled(pickle.clone())),
            (PyValue::Pickled(pickle), 1)
        );
    }

    #[test]
    fn zlib_over_threshold_only_when_smaller() {
        let c = PyCompat::new().compress_over(100);
        let long = "ab".repeat(500);
        let (v, flags) = round_trip(&c, PyValue::Str(long.clone()));
        assert_eq!((v, flags), (PyValue::Str(long), 16 | 8));
        assert_eq!(round_trip(&c, PyValue::Str("short".into())).1, 16);
        // Incompressible bytes stay raw.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(round_trip(&c, PyValue::Bytes(noise)).1, 0);
    }

    #[test]
    fn hostile_values_are_errors() {
        let c = PyCompat::new().max_decompressed(1000);
        assert!(c.decode(b"x", 0x40).is_err(), "unknown flag");
        assert!(c.decode(b"12x", PY_FLAG_LONG).is_err());
        assert!(c.decode(&[0xff], PY_FLAG_TEXT).is_err());
        assert!(c.decode(b"not zlib", PY_FLAG_ZLIB).is_err());
        // A zlib bomb: 1 MB of zeros is refused past the 1000-byte limit.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = z.finish().unwrap();
        let err = c.decode(&bomb, PY_FLAG_ZLIB).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        assert_eq!(
            c.decode(b" 12 ", PY_FLAG_INTEGER).unwrap(),
            PyValue::Int(12)
        );
    }
}
