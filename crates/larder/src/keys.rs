//! Cache keys: memcached's key rules as a reusable check, the [`KeyPolicy`] every cache
//! backend applies, and key encoders that turn any string into a valid key (utf-8 as is,
//! base64, or a hex digest: SHA-1, SHA-256, or BLAKE3 with feature `blake3`), with an optional
//! prefix.
//!
//! The rules (memcached's text and meta protocols): 1 to 250 bytes, no ASCII space, no
//! control bytes (0x00–0x1f, 0x7f). They are the cache contract's key rule: every backend
//! refuses the same keys unless configured otherwise, so swapping backends does not change
//! which keys are valid. Errors name the key and the rule broken.

use base64::Engine as _;

use crate::error::KeyRule;
use crate::{Error, Result};

/// memcached's maximum key length in bytes.
pub const MAX_KEY_LEN: usize = 250;

/// Checks `key` against memcached's key rules.
pub fn validate_key(key: &[u8]) -> Result<()> {
    check_key(key).map_err(|rule| Error::KeyInvalid {
        key: String::from_utf8_lossy(key).into_owned(),
        rule,
    })
}

/// Checks `key` against memcached's key rules, returning only the rule broken.
#[inline]
pub fn check_key(key: &[u8]) -> Result<(), KeyRule> {
    check_key_within(key, MAX_KEY_LEN)
}

/// [`check_key`] with room for only `limit` bytes (what a prefix leaves of the 250).
#[inline]
pub(crate) fn check_key_within(key: &[u8], limit: usize) -> Result<(), KeyRule> {
    if key_allowed(key, limit) {
        Ok(())
    } else {
        broken_rule(key, limit)
    }
}

/// The common case in one quick pass, inlined where keys are checked; finding which rule a
/// key broke is out of line, so the passing path needs no stack frame.
#[inline]
fn key_allowed(key: &[u8], limit: usize) -> bool {
    !key.is_empty() && key.len() <= limit && key_bytes_allowed(key)
}

#[cold]
#[inline(never)]
fn broken_rule(key: &[u8], limit: usize) -> Result<(), KeyRule> {
    if key.is_empty() {
        return Err(KeyRule::Empty);
    }
    if key.len() > limit {
        return Err(KeyRule::TooLong {
            len: key.len(),
            limit,
        });
    }
    if let Some(offset) = key.iter().position(|&b| b <= b' ' || b == 0x7f) {
        return Err(KeyRule::ForbiddenByte {
            byte: key[offset],
            offset,
        });
    }
    Ok(())
}

/// Whether `key` has no byte that is a space, a control byte or DEL (`b <= 0x20 || b ==
/// 0x7f`), tested eight bytes at a time in a `u64`; a key shorter than eight bytes is one
/// word of overlapping reads. Keys are mostly 5–40 bytes, too short for a vector loop to win
/// over its set-up and scalar tail, and this check runs inline on every memory-cache call.
#[inline]
fn key_bytes_allowed(key: &[u8]) -> bool {
    let word = |at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&key[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let n = key.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if !word_allowed(word(at)) {
                return false;
            }
            at += 8;
        }
        // The last word: the key's last eight bytes (overlapping checked ones).
        return word_allowed(word(n - 8));
    }
    // Two overlapping 4-byte reads, or for 1 to 3 bytes the first, middle and last byte with
    // the rest filled with an allowed byte ('!').
    let w = if n >= 4 {
        let half = |at: usize| {
            let mut w = [0; 4];
            w.copy_from_slice(&key[at..at + 4]);
            u64::from(u32::from_le_bytes(w))
        };
        half(0) | half(n - 4) << 32
    } else if n > 0 {
        u64::from_le_bytes([key[0], key[n / 2], key[n - 1], b'!', b'!', b'!', b'!', b'!'])
    } else {
        return true;
    };
    word_allowed(w)
}

/// Whether every byte of `w` is allowed. Per byte, with `x` its low seven bits, `x + 0x5f`
/// reaches the high bit exactly when `x >= 0x21` and `x + 1` exactly when `x == 0x7f`, and
/// neither carries into the next byte; a byte whose own high bit is set (UTF-8) is allowed.
#[inline]
fn word_allowed(w: u64) -> bool {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let x = w & LOW7;
    let printable =
        x.wrapping_add(u64::from_ne_bytes([0x5f; 8])) & !x.wrapping_add(u64::from_ne_bytes([1; 8]));
    (printable | w) & HIGH == HIGH
}

/// Which keys a cache backend accepts (`MemoryCacheBuilder::key_policy`,
/// `MemcachedCache::with_key_policy`, `RedisConfig::key_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyPolicy {
    /// The contract's rule, memcached's ([`check_key`]): 1 to 250 bytes, no space or control
    /// bytes. The default of every backend, checked before anything is stored or sent; on
    /// memcached a key prefix takes its share of the 250 bytes.
    #[default]
    Portable,
    /// Only the backend's own limits, chosen explicitly where keys need not move between
    /// backends: any string on the memory cache and Redis (the empty one and long ones
    /// included); on memcached, keys with spaces or control bytes travel base64 (at most 186
    /// bytes), other keys still at most 250.
    Native,
}

impl KeyPolicy {
    /// Checks the caller's `key` (before any prefix); the error names the key and the rule.
    #[inline(always)]
    pub fn check(self, key: &str) -> Result<()> {
        self.check_within(key, MAX_KEY_LEN)
    }

    /// [`check`](Self::check) where a prefix leaves only `limit` of the 250 bytes.
    #[inline(always)]
    pub(crate) fn check_within(self, key: &str, limit: usize) -> Result<()> {
        match self {
            KeyPolicy::Portable if key_allowed(key.as_bytes(), limit) => Ok(()),
            KeyPolicy::Portable => refused(key, limit),
            KeyPolicy::Native => Ok(()),
        }
    }

    /// Checks every key of a batch, so a batch with one bad key does nothing at all.
    pub fn check_all<'k>(self, keys: impl IntoIterator<Item = &'k str>) -> Result<()> {
        keys.into_iter().try_for_each(|key| self.check(key))
    }
}

/// The error naming the rule a key [`key_allowed`] refused broke.
#[cold]
#[inline(never)]
fn refused(key: &str, limit: usize) -> Result<()> {
    broken_rule(key.as_bytes(), limit).map_err(|rule| Error::KeyInvalid {
        key: key.to_owned(),
        rule,
    })
}

/// A digest used by [`KeyEncoding::Hash`]. Non-exhaustive: a feature adds its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-1: 40 hex characters.
    Sha1,
    /// SHA-256: 64 hex characters.
    Sha256,
    /// BLAKE3 (256-bit): 64 hex characters (feature `blake3`).
    #[cfg(feature = "blake3")]
    Blake3,
}

/// How a [`KeyEncoder`] turns a caller's key into a stored key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyEncoding {
    /// The key as UTF-8, validated only (wheezy's `string_encode`).
    #[default]
    Utf8,
    /// URL-safe base64 without padding: any key becomes valid while it stays short enough.
    Base64,
    /// The hex digest of the key: every key becomes a valid fixed-length key.
    Hash(HashAlgorithm),
}

/// Turns caller keys into valid stored keys: `prefix + encode(key)`, then validates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEncoder {
    encoding: KeyEncoding,
    prefix: String,
}

impl KeyEncoder {
    /// An encoder with no prefix.
    pub fn new(encoding: KeyEncoding) -> Self {
        Self {
            encoding,
            prefix: String::new(),
        }
    }

    /// Puts `prefix` before every encoded key (the prefix itself is not encoded).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The prefix put before every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Encodes `key` and checks the result against the key rules.
    pub fn encode(&self, key: &str) -> Result<String> {
        let mut out = String::with_capacity(self.prefix.len() + key.len());
        out.push_str(&self.prefix);
        match self.encoding {
            KeyEncoding::Utf8 => out.push_str(key),
            KeyEncoding::Base64 => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(key, &mut out)
            }
            KeyEncoding::Hash(alg) => out.push_str(&hex_digest(alg, key.as_bytes())),
        }
        check_key(out.as_bytes()).map_err(|rule| Error::KeyInvalid {
            key: key.to_owned(),
            rule,
        })?;
        Ok(out)
    }

    /// Encodes every key, returning `(encoded, original)` pairs in input order
    /// (wheezy's `encode_keys`).
    pub fn encode_all<'k>(&self, keys: &[&'k str]) -> Result<Vec<(String, &'k str)>> {
        keys.iter().map(|k| Ok((self.encode(k)?, *k))).collect()
    }
}

/// The lowercase hex digest of `data`.
pub fn hex_digest(alg: HashAlgorithm, data: &[u8]) -> String {
    use sha2::Digest as _;
    match alg {
        HashAlgorithm::Sha1 => hex(&sha1::Sha1::digest(data)),
        HashAlgorithm::Sha256 => hex(&sha2::Sha256::digest(data)),
        #[cfg(feature = "blake3")]
        HashAlgorithm::Blake3 => hex(blake3::hash(data).as_bytes()),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_at_a_time_check_matches_the_rule_for_every_byte_at_every_place() {
        let allowed = |b: u8| b > b' ' && b != 0x7f;
        for len in 1..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut key = vec![b'k'; len];
                    key[at] = b;
                    assert_eq!(key_bytes_allowed(&key), allowed(b), "{key:?}");
                    // Beside other allowed bytes of every kind, too.
                    key.iter_mut()
                        .filter(|k| **k == b'k')
                        .for_each(|k| *k = 0xff);
                    assert_eq!(key_bytes_allowed(&key), allowed(b), "{key:?}");
                    key.iter_mut()
                        .filter(|k| **k == 0xff)
                        .for_each(|k| *k = b'!');
                    assert_eq!(key_bytes_allowed(&key), allowed(b), "{key:?}");
                }
            }
        }
    }

    #[test]
    fn rules_name_key_and_rule() {
        assert!(validate_key(b"user:42").is_ok());
        let long = "k".repeat(312);
        let err = validate_key(long.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("key too long: 312 bytes, limit 250"), "{err}");
        assert!(validate_key(&[b'k'; 250]).is_ok());
        let err = validate_key(b"a b").unwrap_err().to_string();
        assert!(
            err.contains("\"a b\"") && err.contains("0x20") && err.contains("offset 1"),
            "{err}"
        );
        assert_eq!(
            check_key(b"a\x7f"),
            Err(KeyRule::ForbiddenByte {
                byte: 0x7f,
                offset: 1
            })
        );
        assert_eq!(
            check_key(b"a\nb"),
            Err(KeyRule::ForbiddenByte {
                byte: b'\n',
                offset: 1
            })
        );
        assert_eq!(check_key(b""), Err(KeyRule::Empty));
        // UTF-8 beyond ASCII is allowed by memcached.
        assert!(validate_key("ключ".as_bytes()).is_ok());
    }

    #[test]
    fn policies() {
        let portable = KeyPolicy::default();
        assert_eq!(portable, KeyPolicy::Portable);
        assert!(portable.check(&"k".repeat(250)).is_ok());
        let err = portable.check(&"k".repeat(251)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid key {:?}: key too long: 251 bytes, limit 250",
                "k".repeat(251)
            )
        );
        assert!(matches!(
            portable.check(""),
            Err(Error::KeyInvalid {
                rule: KeyRule::Empty,
                ..
            })
        ));
        assert!(matches!(
            portable.check_within(&"k".repeat(247), 246),
            Err(Error::KeyInvalid {
                rule: KeyRule::TooLong {
                    len: 247,
                    limit: 246
                },
                ..
            })
        ));
        assert!(portable.check_all(["a", "b c"]).is_err());
        for key in ["", "a b", "\n", &"k".repeat(10_000)] {
            assert!(KeyPolicy::Native.check(key).is_ok(), "{key:?}");
        }
    }

    #[test]
    fn encoders() {
        let utf8 = KeyEncoder::new(KeyEncoding::Utf8).with_prefix("app:");
        assert_eq!(utf8.encode("x").unwrap(), "app:x");
        assert!(utf8.encode("has space").is_err());

        let b64 = KeyEncoder::new(KeyEncoding::Base64);
        assert_eq!(b64.encode("has space").unwrap(), "aGFzIHNwYWNl");

        let sha1 = KeyEncoder::new(KeyEncoding::Hash(HashAlgorithm::Sha1));
        assert_eq!(
            sha1.encode("abc").unwrap(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let sha256 = KeyEncoder::new(KeyEncoding::Hash(HashAlgorithm::Sha256));
        assert_eq!(
            sha256.encode("abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        #[cfg(feature = "blake3")]
        assert_eq!(
            KeyEncoder::new(KeyEncoding::Hash(HashAlgorithm::Blake3))
                .encode("")
                .unwrap(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let long = "x".repeat(1000);
        assert_eq!(sha256.encode(&long).unwrap().len(), 64);
        assert!(b64.encode(&long).is_err());
        let all = utf8.encode_all(&["a", "b"]).unwrap();
        assert_eq!(
            all,
            vec![("app:a".to_string(), "a"), ("app:b".to_string(), "b")]
        );
    }
}
