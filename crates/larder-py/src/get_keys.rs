//! The keys of a `get_multi`, read in one pass: each sent key's object (the result dict is
//! keyed by it), whether it was a str, and the wire bytes of all of them (prefix included)
//! back to back in one buffer. A key's bytes are copied once, straight from the object
//! passed, so no reference or allocation is held per key for them, and the async face
//! carries the whole set across its I/O as plain data.
//!
//! pylibmc's rules, in pylibmc's order: the sequence must have a length; an empty key is
//! skipped; reading the keys, the first that is not str or bytes, or over 250 bytes, fails
//! the call (`TypeError`, `ValueError`); then the first key, in order, that is refused (a
//! byte the key rules refuse, or over 250 bytes with the prefix) fails it with
//! `BadKeyProvided`.

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::keys::{self, KeyPolicy, PyKey, Refusal, MAX_KEY_LEN};

/// The sent keys of a `get_multi`; `G` is how each key's object is held (`Bound` under the
/// GIL, `Py` across an async call's I/O).
pub(crate) struct GetKeys<G> {
    given: Vec<G>,
    is_str: Vec<bool>,
    /// Every key's wire bytes, back to back; key `i` ends at `ends[i]`.
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Some key is over 250 bytes with its prefix.
    too_long: bool,
}

impl<G> GetKeys<G> {
    /// Whether no key is sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.given.is_empty()
    }

    /// The wire keys in order, for the I/O (which runs without the GIL).
    pub(crate) fn wire(&self) -> Vec<&[u8]> {
        self.keys().collect()
    }

    /// Each key's wire bytes, in order.
    fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let key = self.bytes.get(start..end).unwrap_or_default();
            start = end;
            key
        })
    }

    /// Each key's object, whether it was a str, and its wire bytes, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&G, bool, &[u8])> {
        self.given
            .iter()
            .zip(self.is_str.iter().copied())
            .zip(self.keys())
            .map(|((given, is_str), key)| (given, is_str, key))
    }

    /// Whether some keys were str and others bytes.
    pub(crate) fn mixed(&self) -> bool {
        self.is_str.contains(&true) && self.is_str.contains(&false)
    }

    /// The first key, in order, that is refused: over 250 bytes with its prefix, or by
    /// `policy` (`Err`: a key too long to travel at all).
    fn first_refused(&self, policy: KeyPolicy) -> PyResult<Option<PyErr>> {
        if !self.too_long && keys::printable(&self.bytes) {
            return Ok(None);
        }
        for key in self.keys() {
            let refusal = match key.len() {
                len if len > MAX_KEY_LEN => Some(Refusal::TooLong { len }),
                _ => policy.check(key)?,
            };
            if let Some(refusal) = refusal {
                return Ok(Some(refusal.error(key)));
            }
        }
        Ok(None)
    }

    fn with_given<H>(self, f: impl FnMut(G) -> H) -> GetKeys<H> {
        GetKeys {
            given: self.given.into_iter().map(f).collect(),
            is_str: self.is_str,
            bytes: self.bytes,
            ends: self.ends,
            too_long: self.too_long,
        }
    }
}

impl<'py> GetKeys<Bound<'py, PyAny>> {
    /// Reads `keys` (any sequence) with `prefix` in front of each.
    pub(crate) fn read(
        keys: &Bound<'py, PyAny>,
        prefix: Option<&PyKey>,
        policy: KeyPolicy,
    ) -> PyResult<Self> {
        let n = keys.len()?;
        let mut out = Self {
            given: Vec::with_capacity(n),
            is_str: Vec::with_capacity(n),
            bytes: Vec::new(),
            ends: Vec::with_capacity(n),
            too_long: false,
        };
        let prefix = prefix.map_or(&[][..], PyKey::as_bytes);
        // A list (the common argument) is read by index, without the iterator protocol.
        if let Ok(list) = keys.cast::<PyList>() {
            for given in list.iter() {
                out.push(given, prefix)?;
            }
        } else {
            for given in keys.try_iter()? {
                out.push(given?, prefix)?;
            }
        }
        match out.first_refused(policy)? {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Adds one key (`TypeError`, `ValueError`: not a key).
    fn push(&mut self, given: Bound<'py, PyAny>, prefix: &[u8]) -> PyResult<()> {
        let (key, is_str) = keys::key_bytes(&given)?;
        if key.is_empty() && prefix.is_empty() {
            return Ok(());
        }
        let len = prefix.len() + key.len();
        if self.bytes.capacity() == 0 {
            // Room for every key at this one's length.
            self.bytes.reserve(len * self.ends.capacity());
        }
        self.bytes.extend_from_slice(prefix);
        self.bytes.extend_from_slice(&key);
        self.ends.push(self.bytes.len());
        self.is_str.push(is_str);
        self.given.push(given);
        self.too_long |= len > MAX_KEY_LEN;
        Ok(())
    }

    /// The keys held without the GIL.
    pub(crate) fn detach(self) -> GetKeys<Py<PyAny>> {
        self.with_given(Bound::unbind)
    }
}

impl GetKeys<Py<PyAny>> {
    /// The keys under the GIL again.
    pub(crate) fn attach(self, py: Python<'_>) -> GetKeys<Bound<'_, PyAny>> {
        self.with_given(|given| given.into_bound(py))
    }
}
