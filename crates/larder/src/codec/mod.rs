//! Codecs: turning a value into bytes plus a 32-bit flags word (stored beside the value by
//! memcached, and alongside it in Redis) and back.
//!
//! The memory cache stores `V` as it is and never uses a codec; remote backends do. Flags
//! tell a reader how the bytes were written, so a reader with the wrong codec gets
//! [`Error::Codec`] instead of a wrong value. Our flag layout:
//!
//! | flags | written by | bytes |
//! |---|---|---|
//! | 0 | [`BytesCodec`] | raw bytes |
//! | 4 | [`U64Codec`] | ASCII decimal (memcached `incr`/`decr` work on it; Python's "long" flag) |
//! | 16 | [`TextCodec`] | UTF-8 (Python's `str` flag) |
//! | 0x100 | [`JsonCodec`] | JSON (serde) |
//! | 0x200 | [`PostcardCodec`] | postcard (serde, compact binary) |
//! | + 0x1000 | [`Compressed`] | lz4 block with its size prepended, over any of the above |
//!
//! Python-compatible flags (pickle, zlib) are a separate codec, [`pycompat::PyCompat`], for
//! clusters shared with Python clients.
//!
//! The bytes, text and counter codecs are always there; the others come with the feature of
//! the format they name: `json` ([`JsonCodec`]), `postcard` ([`PostcardCodec`]), `lz4`
//! ([`Compressed`]) and `pycompat` ([`pycompat::PyCompat`]). The flag values are constants
//! whatever the features, so a build without a codec still recognises its values.

#[cfg(any(feature = "json", feature = "postcard"))]
use std::marker::PhantomData;

#[cfg(any(feature = "json", feature = "postcard"))]
use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, Result};

#[cfg(feature = "pycompat")]
pub mod pycompat;

/// Flags of raw bytes.
pub const FLAG_BYTES: u32 = 0;
/// Flags of an unsigned integer in ASCII decimal.
pub const FLAG_U64: u32 = 4;
/// Flags of UTF-8 text.
pub const FLAG_TEXT: u32 = 16;
/// Flags of JSON.
pub const FLAG_JSON: u32 = 0x100;
/// Flags of postcard.
pub const FLAG_POSTCARD: u32 = 0x200;
/// Bit set when the bytes are lz4-compressed.
pub const FLAG_LZ4: u32 = 0x1000;

/// A value's encoded form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The bytes to store.
    pub data: Vec<u8>,
    /// The flags word stored beside them.
    pub flags: u32,
}

/// Turns `V` into [`Encoded`] bytes and back.
pub trait Codec<V>: Send + Sync {
    /// Encodes `value`.
    fn encode(&self, value: &V) -> Result<Encoded>;
    /// Decodes bytes read back with their flags.
    fn decode(&self, data: &[u8], flags: u32) -> Result<V>;
}

fn expect_flags(codec: &str, want: u32, got: u32) -> Result<()> {
    if want == got {
        Ok(())
    } else {
        Err(Error::Codec(format!(
            "{codec} expects flags {want:#x}, the stored value has flags {got:#x}"
        )))
    }
}

/// Raw bytes, unchanged (`Vec<u8>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCodec;

impl Codec<Vec<u8>> for BytesCodec {
    fn encode(&self, value: &Vec<u8>) -> Result<Encoded> {
        Ok(Encoded {
            data: value.clone(),
            flags: FLAG_BYTES,
        })
    }
    fn decode(&self, data: &[u8], flags: u32) -> Result<Vec<u8>> {
        expect_flags("BytesCodec", FLAG_BYTES, flags)?;
        Ok(data.to_vec())
    }
}

/// UTF-8 text (`String`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TextCodec;

impl Codec<String> for TextCodec {
    fn encode(&self, value: &String) -> Result<Encoded> {
        Ok(Encoded {
            data: value.as_bytes().to_vec(),
            flags: FLAG_TEXT,
        })
    }
    fn decode(&self, data: &[u8], flags: u32) -> Result<String> {
        expect_flags("TextCodec", FLAG_TEXT, flags)?;
        String::from_utf8(data.to_vec()).map_err(|e| Error::Codec(format!("not UTF-8: {e}")))
    }
}

/// An unsigned integer as ASCII decimal (`u64`), the form server-side counters use.
#[derive(Debug, Clone, Copy, Default)]
pub struct U64Codec;

impl Codec<u64> for U64Codec {
    fn encode(&self, value: &u64) -> Result<Encoded> {
        Ok(Encoded {
            data: value.to_string().into_bytes(),
            flags: FLAG_U64,
        })
    }
    fn decode(&self, data: &[u8], flags: u32) -> Result<u64> {
        // A value that `incr` created or modified keeps the flags it was stored with; a
        // counter stored raw (flags 0) is read too.
        if flags != FLAG_U64 && flags != FLAG_BYTES {
            expect_flags("U64Codec", FLAG_U64, flags)?;
        }
        // memcached pads a decremented counter with trailing spaces when it gets shorter.
        let digits = data.trim_ascii_end();
        crate::value::parse_decimal(digits).ok_or_else(|| {
            Error::Codec(format!(
                "not an unsigned decimal: {:?}",
                String::from_utf8_lossy(data)
            ))
        })
    }
}

/// Any serde type as JSON (feature `json`).
#[cfg(feature = "json")]
pub struct JsonCodec<V>(PhantomData<fn() -> V>);

#[cfg(feature = "json")]
impl<V> JsonCodec<V> {
    /// A JSON codec for `V`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}
#[cfg(feature = "json")]
impl<V> Default for JsonCodec<V> {
    fn default() -> Self {
        Self::new()
    }
}
#[cfg(feature = "json")]
impl<V> Clone for JsonCodec<V> {
    fn clone(&self) -> Self {
        Self::new()
    }
}
#[cfg(feature = "json")]
impl<V> std::fmt::Debug for JsonCodec<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonCodec")
    }
}

#[cfg(feature = "json")]
impl<V: Serialize + DeserializeOwned> Codec<V> for JsonCodec<V> {
    fn encode(&self, value: &V) -> Result<Encoded> {
        let data = serde_json::to_vec(value).map_err(|e| Error::Codec(format!("JSON: {e}")))?;
        Ok(Encoded {
            data,
            flags: FLAG_JSON,
        })
    }
    fn decode(&self, data: &[u8], flags: u32) -> Result<V> {
        expect_flags("JsonCodec", FLAG_JSON, flags)?;
        serde_json::from_slice(data).map_err(|e| Error::Codec(format!("JSON: {e}")))
    }
}

/// Any serde type as postcard, a compact binary format (feature `postcard`).
#[cfg(feature = "postcard")]
pub struct PostcardCodec<V>(PhantomData<fn() -> V>);

#[cfg(feature = "postcard")]
impl<V> PostcardCodec<V> {
    /// A postcard codec for `V`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}
#[cfg(feature = "postcard")]
impl<V> Default for PostcardCodec<V> {
    fn default() -> Self {
        Self::new()
    }
}
#[cfg(feature = "postcard")]
impl<V> Clone for PostcardCodec<V> {
    fn clone(&self) -> Self {
        Self::new()
    }
}
#[cfg(feature = "postcard")]
impl<V> std::fmt::Debug for PostcardCodec<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostcardCodec")
    }
}

#[cfg(feature = "postcard")]
impl<V: Serialize + DeserializeOwned> Codec<V> for PostcardCodec<V> {
    fn encode(&self, value: &V) -> Result<Encoded> {
        let data =
            postcard::to_stdvec(value).map_err(|e| Error::Codec(format!("postcard: {e}")))?;
        Ok(Encoded {
            data,
            flags: FLAG_POSTCARD,
        })
    }
    fn decode(&self, data: &[u8], flags: u32) -> Result<V> {
        expect_flags("PostcardCodec", FLAG_POSTCARD, flags)?;
        postcard::from_bytes(data).map_err(|e| Error::Codec(format!("postcard: {e}")))
    }
}

/// Wraps a codec: encoded values of at least `threshold` bytes are lz4-compressed (and
/// flagged with [`FLAG_LZ4`]) when that makes them smaller. Decompression refuses to
/// allocate more than `max_decompressed` bytes, whatever a stored header claims (feature
/// `lz4`).
#[cfg(feature = "lz4")]
#[derive(Debug, Clone)]
pub struct Compressed<C> {
    inner: C,
    threshold: usize,
    max_decompressed: usize,
}

#[cfg(feature = "lz4")]
impl<C> Compressed<C> {
    /// Compresses values of `threshold` bytes or more; decompresses up to 64 MiB.
    pub fn new(inner: C, threshold: usize) -> Self {
        Self {
            inner,
            threshold,
            max_decompressed: 64 << 20,
        }
    }

    /// Sets the largest decompressed size accepted.
    pub fn max_decompressed(mut self, bytes: usize) -> Self {
        self.max_decompressed = bytes;
        self
    }
}

#[cfg(feature = "lz4")]
impl<V, C: Codec<V>> Codec<V> for Compressed<C> {
    fn encode(&self, value: &V) -> Result<Encoded> {
        let enc = self.inner.encode(value)?;
        if enc.flags & FLAG_LZ4 != 0 {
            return Err(Error::Codec(format!(
                "inner codec used the compression flag {FLAG_LZ4:#x} itself"
            )));
        }
        if enc.data.len() < self.threshold || enc.data.len() > u32::MAX as usize {
            return Ok(enc);
        }
        let packed = lz4_flex::block::compress_prepend_size(&enc.data);
        if packed.len() >= enc.data.len() {
            return Ok(enc);
        }
        Ok(Encoded {
            data: packed,
            flags: enc.flags | FLAG_LZ4,
        })
    }

    fn decode(&self, data: &[u8], flags: u32) -> Result<V> {
        if flags & FLAG_LZ4 == 0 {
            return self.inner.decode(data, flags);
        }
        let (size, body) = match data {
            [a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, rest),
            _ => {
                return Err(Error::Codec(
                    "lz4 value shorter than its size header".into(),
                ))
            }
        };
        if size > self.max_decompressed {
            return Err(Error::Codec(format!(
                "lz4 value claims {size} bytes decompressed, limit {}",
                self.max_decompressed
            )));
        }
        let raw = lz4_flex::block::decompress(body, size)
            .map_err(|e| Error::Codec(format!("lz4: {e}")))?;
        self.inner.decode(&raw, flags & !FLAG_LZ4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "json", feature = "postcard"))]
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        id: u32,
        name: String,
    }

    #[cfg(all(feature = "json", feature = "postcard"))]
    #[test]
    fn serde_codecs_round_trip_and_check_flags() {
        let u = User {
            id: 7,
            name: "ada".into(),
        };
        for codec in [
            &JsonCodec::<User>::new() as &dyn Codec<User>,
            &PostcardCodec::new(),
        ] {
            let enc = codec.encode(&u).unwrap();
            assert_eq!(codec.decode(&enc.data, enc.flags).unwrap(), u);
        }
        let enc = JsonCodec::<User>::new().encode(&u).unwrap();
        let err = PostcardCodec::<User>::new()
            .decode(&enc.data, enc.flags)
            .unwrap_err();
        assert!(err.to_string().contains("flags"), "{err}");
    }

    #[test]
    fn plain_codecs_round_trip_and_check_flags() {
        assert_eq!(U64Codec.decode(b"12  ", FLAG_U64).unwrap(), 12);
        assert!(U64Codec.decode(b"x", FLAG_U64).is_err());
        assert_eq!(TextCodec.encode(&"é".to_string()).unwrap().flags, FLAG_TEXT);
        assert!(TextCodec.decode(&[0xff], FLAG_TEXT).is_err());
        let bytes = vec![0u8, 13, 10, 255];
        let enc = BytesCodec.encode(&bytes).unwrap();
        assert_eq!(BytesCodec.decode(&enc.data, enc.flags).unwrap(), bytes);
    }

    #[cfg(feature = "lz4")]
    #[test]
    fn compression_threshold_and_hostile_headers() {
        let codec = Compressed::new(TextCodec, 64).max_decompressed(1 << 20);
        let small = "short".to_string();
        assert_eq!(codec.encode(&small).unwrap().flags, FLAG_TEXT);
        let big = "abc".repeat(1000);
        let enc = codec.encode(&big).unwrap();
        assert_eq!(enc.flags, FLAG_TEXT | FLAG_LZ4);
        assert!(enc.data.len() < big.len());
        assert_eq!(codec.decode(&enc.data, enc.flags).unwrap(), big);

        // A header claiming 4 GiB is refused before any allocation.
        let hostile = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = codec.decode(&hostile, FLAG_TEXT | FLAG_LZ4).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        assert!(codec.decode(&[1, 2], FLAG_TEXT | FLAG_LZ4).is_err());
        assert!(codec
            .decode(&[10, 0, 0, 0, 0xf0], FLAG_TEXT | FLAG_LZ4)
            .is_err());
    }
}
