//! The Python side of pylibmc's multi-key and all-server calls, shared by every client face:
//! reading the keys (with `key_prefix`), encoding a `set_multi` mapping, and shaping the
//! results as pylibmc returns them (hits keyed by the keys as passed, failed keys unprefixed
//! and of the type passed, `incr_multi`'s errors, `get_stats`' list). The I/O between is the
//! face's own (a `get_multi`'s keys are read by [`GetKeys`]).

use std::borrow::Cow;
use std::collections::HashMap;

use larder::memcache::HitRef;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::errors::{self, Error, NotFound, SomeErrors};
use crate::get_keys::GetKeys;
use crate::keys::{self, KeyPolicy, PyKey, Refusal, Wire, MAX_KEY_LEN};
use crate::servers::Server;
use crate::values::{self, Codec, Compression, Payload};

/// One key of a multi-key call: the object passed, its wire bytes, and why it is not sent.
pub(crate) struct KeyItem<'py> {
    pub(crate) given: Bound<'py, PyAny>,
    pub(crate) wire: Wire,
    pub(crate) refused: Option<Refusal>,
}

/// A key of a multi-key call: what is sent of it.
pub(crate) trait SentKey {
    fn wire(&self) -> &[u8];
    fn is_sent(&self) -> bool;
}

impl SentKey for KeyItem<'_> {
    fn wire(&self) -> &[u8] {
        self.wire.as_ref()
    }
    fn is_sent(&self) -> bool {
        self.refused.is_none()
    }
}

/// What to do with a prefixed key over 250 bytes: pylibmc's `set_multi` and `delete_multi`
/// raise `ValueError`, its `get_multi` and `incr_multi` let libmemcached refuse the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LongKey {
    Raise,
    Refuse,
}

/// The keys of `keys` (any iterable) with `prefix` in front.
pub(crate) fn key_items<'py>(
    keys: impl IntoIterator<Item = PyResult<Bound<'py, PyAny>>>,
    prefix: Option<&PyKey>,
    policy: KeyPolicy,
    long: LongKey,
) -> PyResult<Vec<KeyItem<'py>>> {
    keys.into_iter()
        .map(|given| key_item(given?, prefix, policy, long))
        .collect()
}

/// One key, as [`key_items`] reads it.
pub(crate) fn key_item<'py>(
    given: Bound<'py, PyAny>,
    prefix: Option<&PyKey>,
    policy: KeyPolicy,
    long: LongKey,
) -> PyResult<KeyItem<'py>> {
    let key = PyKey::new(&given)?;
    let wire = keys::prefixed(prefix, key);
    let len = wire.as_ref().len();
    let refused = if len > MAX_KEY_LEN {
        match long {
            LongKey::Raise => return Err(keys::too_long(wire.as_ref())),
            LongKey::Refuse => Some(Refusal::TooLong { len }),
        }
    } else {
        policy.check(wire.as_ref())?
    };
    Ok(KeyItem {
        given,
        wire,
        refused,
    })
}

/// A multi-get's hits by the position of the key each answers (among the sent keys),
/// collected with the GIL released: every value copied into one buffer, a zlib-compressed
/// one inflated first (inflating is plain Rust work, and can be most of a call's). The dict
/// is then built by position, with no key looked up.
pub(crate) struct FetchedHits {
    buf: Vec<u8>,
    slots: Vec<Option<Fetched>>,
}

/// One position's hit.
enum Fetched {
    /// Its value (inflated, if it was compressed) at `buf[start..end]`, and its flags.
    Value {
        start: usize,
        end: usize,
        flags: u32,
    },
    /// A compressed value that did not inflate.
    Broken(values::Inflate),
}

impl FetchedHits {
    /// Most bytes reserved up front from the first hit's size.
    const MAX_GUESS: usize = 4 << 20;

    /// Room for the hits of `keys` sent keys.
    pub(crate) fn new(keys: usize) -> Self {
        let mut slots = Vec::with_capacity(keys);
        slots.resize_with(keys, || None);
        Self {
            buf: Vec::new(),
            slots,
        }
    }

    /// Collects `hit`, the answer to the sent key at position `at`.
    pub(crate) fn visit(&mut self, at: usize, hit: HitRef<'_>) {
        let keys = self.slots.len();
        let Some(slot) = self.slots.get_mut(at) else {
            return;
        };
        if self.buf.is_empty() {
            // Room for every key to hit with a value like the first one: values in one
            // multi-get tend to be alike, and growing by doubling copies it all again.
            let guess = hit.value.len().saturating_mul(keys);
            self.buf.reserve(guess.min(Self::MAX_GUESS));
        }
        let plain = match values::inflate_if_flagged(Cow::Borrowed(hit.value), hit.flags) {
            Ok(plain) => plain,
            Err(e) => {
                *slot = Some(Fetched::Broken(e));
                return;
            }
        };
        let start = self.buf.len();
        self.buf.extend_from_slice(&plain);
        *slot = Some(Fetched::Value {
            start,
            end: self.buf.len(),
            flags: hit.flags,
        });
    }
}

/// The hits of a multi-get as pylibmc's dict: keyed by the keys as passed (a str over
/// equal bytes, as pylibmc prefers; a bytes subclass as plain bytes), misses and values
/// whose `deserialize` raised `CacheMiss` left out.
pub(crate) fn hits_dict<'py>(
    codec: &Codec<'_, 'py>,
    keys: &GetKeys<Bound<'py, PyAny>>,
    fetched: FetchedHits,
) -> PyResult<Bound<'py, PyDict>> {
    let FetchedHits { buf, mut slots } = fetched;
    let dict = PyDict::new(codec.this.py());
    let str_keys = if keys.mixed() {
        str_keys_by_wire(keys.iter())
    } else {
        HashMap::new()
    };
    // Positions count the sent keys, in the order `wire` gives them to the I/O.
    for ((given, is_str, wire), slot) in keys.iter().zip(slots.iter_mut()) {
        // The str key of the same bytes has (or will have) the same hit.
        if !is_str && str_keys.contains_key(wire) {
            continue;
        }
        let value = match slot.take() {
            None => continue,
            Some(Fetched::Value { start, end, flags }) => {
                codec.decode(buf.get(start..end).unwrap_or_default(), flags)?
            }
            Some(Fetched::Broken(e)) => return Err(e.into_py()),
        };
        let Some(value) = value else { continue };
        match given.cast::<PyBytes>() {
            // A bytes subclass's key comes back as plain bytes, as pylibmc gives it (a str
            // subclass's stays as passed, as there).
            Ok(b) if !given.is_exact_instance_of::<PyBytes>() => {
                dict.set_item(PyBytes::new(codec.this.py(), b.as_bytes()), value)?;
            }
            _ => dict.set_item(given, value)?,
        }
    }
    Ok(dict)
}

/// One entry of a `set_multi`/`add_multi` mapping.
pub(crate) struct WriteItem<'py> {
    pub(crate) key: KeyItem<'py>,
    /// The encoded value and its flags; `None` for a refused key (never sent, reported as
    /// failed).
    pub(crate) value: Option<(Payload<'py>, u32)>,
}

/// The entries of a `set_multi`/`add_multi` mapping (which must be a dict, as pylibmc's),
/// values encoded. A refused key is kept, unsent, to be reported as failed.
pub(crate) fn write_items<'py>(
    codec: &Codec<'_, 'py>,
    mapping: &Bound<'py, PyAny>,
    prefix: Option<&PyKey>,
    policy: KeyPolicy,
) -> PyResult<Vec<WriteItem<'py>>> {
    let dict = mapping.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "argument 1 must be dict, not {}",
            mapping
                .get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        ))
    })?;
    let mut items = Vec::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        let key = key_item(k, prefix, policy, LongKey::Raise)?;
        let value = match key.refused {
            None => Some(codec.encode(&v)?),
            Some(_) => None,
        };
        items.push(WriteItem { key, value });
    }
    Ok(items)
}

/// The sent items of a `set_multi`/`add_multi`: `(wire key, payload, flags)`.
pub(crate) fn write_batch<'a>(items: &'a [WriteItem<'_>]) -> Vec<(&'a [u8], &'a [u8], u32)> {
    items
        .iter()
        .filter_map(|i| {
            let (payload, flags) = i.value.as_ref()?;
            Some((i.key.wire.as_ref(), payload.as_bytes(), *flags))
        })
        .collect()
}

/// The bytes each sent item sends (compressed when that pays), in order; run without the
/// GIL.
pub(crate) fn pack_all<K, D>(
    sent: &[(K, D, u32)],
    compression: Option<Compression>,
) -> Vec<(Cow<'_, [u8]>, u32)>
where
    D: AsRef<[u8]>,
{
    sent.iter()
        .map(|(_, data, flags)| values::pack(data.as_ref(), *flags, compression))
        .collect()
}

/// The batch larder's `store_multi` takes: each sent key with its packed bytes.
pub(crate) fn packed_batch<'a, K, D>(
    sent: &'a [(K, D, u32)],
    packed: &'a [(Cow<'_, [u8]>, u32)],
) -> Vec<(&'a [u8], &'a [u8], u32)>
where
    K: AsRef<[u8]>,
{
    sent.iter()
        .zip(packed)
        .map(|((k, _, _), (data, flags))| (k.as_ref(), &data[..], *flags))
        .collect()
}

/// The I/O of an already expired `set_multi` (`$mode` `Set`) or `add_multi` (`Add`) of the
/// `(key, data, flags)` items `$sent` (see `args::Time::Expired`): whether each was
/// "stored". memcached acknowledges every set and leaves the keys absent, and acknowledges
/// an add only for a key that was absent.
macro_rules! multi_expired_io {
    ($c:expr, $mode:expr, $sent:expr, [$($aw:tt)*]) => {{
        let keys: Vec<&[u8]> = $sent.iter().map(|(k, _, _)| k.as_ref()).collect();
        match $mode {
            // One get a key: a multi-get reads a failed server's keys as misses, which
            // would report its adds as done.
            ::larder::memcache::SetMode::Add => {
                let mut added = Vec::with_capacity(keys.len());
                let mut failed = None;
                for k in &keys {
                    match $c.get(k)$($aw)* {
                        Ok(hit) => added.push(hit.is_none()),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => Ok(added),
                }
            }
            _ => $c.delete_multi(&keys)$($aw)*.map(|deleted| vec![true; deleted.len()]),
        }
    }};
}
pub(crate) use multi_expired_io;

/// What pylibmc reports for each item of a `set_multi`/`add_multi` that is not stored, and
/// whether the item is sent: the key as passed, except a bytes key equal to a str key of
/// the same mapping (once encoded), which pylibmc reports as that str (it maps every key
/// back through the str keys' encoded forms, as `get_multi` does).
pub(crate) fn reported_keys<'a, 'py>(
    items: &'a [WriteItem<'py>],
) -> Vec<(&'a Bound<'py, PyAny>, bool)> {
    let keys = || {
        items.iter().map(|i| {
            let given = &i.key.given;
            (
                given,
                given.is_instance_of::<PyString>(),
                i.key.wire.as_ref(),
            )
        })
    };
    let mixed = keys().any(|(_, is_str, _)| is_str) && keys().any(|(_, is_str, _)| !is_str);
    let str_keys = if mixed {
        str_keys_by_wire(keys())
    } else {
        HashMap::new()
    };
    keys()
        .zip(items)
        .map(|((given, _, wire), i)| {
            (
                str_keys.get(wire).copied().unwrap_or(given),
                i.value.is_some(),
            )
        })
        .collect()
}

/// The str keys among a call's `(key, is str, wire bytes)`, by their wire bytes: pylibmc
/// maps every key back through them, so a bytes key equal to a str key (once encoded)
/// comes back as that str. Built only for a call that mixes str and bytes keys.
fn str_keys_by_wire<'a, 'py: 'a>(
    keys: impl Iterator<Item = (&'a Bound<'py, PyAny>, bool, &'a [u8])>,
) -> HashMap<&'a [u8], &'a Bound<'py, PyAny>> {
    keys.filter(|&(_, is_str, _)| is_str)
        .map(|(given, _, wire)| (wire, given))
        .collect()
}

/// The keys pylibmc's `set_multi`/`add_multi` return: those not stored. `items` are `(key
/// as reported, whether it was sent)` (see [`reported_keys`]); `stored` holds one entry per
/// sent item, in order.
pub(crate) fn failed_keys<'a, 'py: 'a>(
    py: Python<'py>,
    items: impl IntoIterator<Item = (&'a Bound<'py, PyAny>, bool)>,
    stored: &[bool],
) -> PyResult<Bound<'py, PyList>> {
    let failed = PyList::empty(py);
    let mut stored = stored.iter();
    for (given, sent) in items {
        let ok = sent && stored.next().copied().unwrap_or(false);
        if !ok {
            failed.append(given)?;
        }
    }
    Ok(failed)
}

/// The keys of a `delete_multi`: any iterable but a mapping (pylibmc would read a mapping's
/// values as extra arguments).
pub(crate) fn delete_keys<'py>(
    keys: &Bound<'py, PyAny>,
    prefix: Option<&PyKey>,
    policy: KeyPolicy,
) -> PyResult<Vec<KeyItem<'py>>> {
    if keys.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(
            "keys must be a sequence, not a mapping",
        ));
    }
    key_items(keys.try_iter()?, prefix, policy, LongKey::Raise)
}

/// The keys of an `incr_multi` (a sequence with a length, as pylibmc's).
pub(crate) fn incr_keys<'py>(
    keys: &Bound<'py, PyAny>,
    prefix: Option<&PyKey>,
    policy: KeyPolicy,
) -> PyResult<Vec<KeyItem<'py>>> {
    keys.len()?;
    key_items(keys.try_iter()?, prefix, policy, LongKey::Refuse)
}

/// The sent keys' wire bytes, for the I/O (which runs without the GIL).
pub(crate) fn sent<K: SentKey>(items: &[K]) -> Vec<&[u8]> {
    items
        .iter()
        .filter(|i| i.is_sent())
        .map(SentKey::wire)
        .collect()
}

/// A `delete_multi`'s value: `True` when every key was sent and present.
pub(crate) fn all_deleted(all_sent: bool, deleted: larder::Result<Vec<bool>>) -> PyResult<bool> {
    let deleted = deleted.map_err(errors::to_py)?;
    Ok(all_sent && deleted.iter().all(|&d| d))
}

/// The keys of an `incr_multi` that are not sent: each one's `BadKeyProvided`, and whether
/// the last key passed is one of them (see [`incr_multi_result`]).
pub(crate) struct IncrRefusals {
    errors: Vec<PyErr>,
    last: bool,
}

/// The refused keys of an `incr_multi`'s `items`.
pub(crate) fn incr_refusals(items: &[KeyItem<'_>]) -> IncrRefusals {
    IncrRefusals {
        errors: items
            .iter()
            .filter_map(|i| i.refused.as_ref().map(|r| r.error(i.wire.as_ref())))
            .collect(),
        last: items.last().is_some_and(|i| i.refused.is_some()),
    }
}

/// How the last key counted by an `incr_multi` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastIncr {
    Counted,
    Missing,
    Failed,
}

/// What [`incr_multi_io`] tells: missing keys, errors, how the last key sent ended.
pub(crate) type IncrTally = (usize, Vec<larder::Error>, Option<LastIncr>);

/// The I/O of an `incr_multi` on client `$c`: each key counted in turn (pylibmc counts them
/// one by one too), returning an [`IncrTally`].
macro_rules! incr_multi_io {
    ($c:expr, $keys:expr, $delta:expr, [$($aw:tt)*]) => {{
        let mut notfound = 0_usize;
        let mut errors = Vec::new();
        let mut last = None;
        for k in $keys {
            last = Some(match $c.incr(k, $delta)$($aw)* {
                Ok(Some(_)) => $crate::multi::LastIncr::Counted,
                Ok(None) => {
                    notfound += 1;
                    $crate::multi::LastIncr::Missing
                }
                Err(e) => {
                    errors.push(e);
                    $crate::multi::LastIncr::Failed
                }
            });
        }
        (notfound, errors, last)
    }};
}
pub(crate) use incr_multi_io;

/// How many keys of an `incr_multi` failed, raised as pylibmc raises it: `NotFound` when
/// only missing keys failed, `Error` when more than one key failed otherwise. When one key
/// failed, pylibmc raises the class of the *last* key's return code, whichever key failed:
/// the refused key's `BadKeyProvided` when the last key was refused, `NotFound` when it was
/// missing, its own error's class when it failed, and `Error` when it was counted.
pub(crate) fn incr_multi_result(
    py: Python<'_>,
    refused: IncrRefusals,
    tally: IncrTally,
) -> PyResult<()> {
    let (notfound, errors, last) = tally;
    let mut failures = refused.errors;
    failures.extend(errors.into_iter().map(errors::to_py));
    let total = notfound + failures.len();
    match failures.len() {
        0 if notfound == 0 => Ok(()),
        0 => Err(NotFound::new_err(format!("{total} keys not found"))),
        1 => {
            let Some(e) = failures.into_iter().next() else {
                return Err(Error::new_err(format!("{total} keys failed")));
            };
            let msg = e
                .value(py)
                .str()
                .map_or_else(|_| String::new(), |s| s.to_string());
            let msg = format!("{total} keys failed: {msg}");
            Err(match (refused.last, last) {
                (false, Some(LastIncr::Counted)) => Error::new_err(msg),
                (false, Some(LastIncr::Missing)) => NotFound::new_err(msg),
                _ => PyErr::from_type(e.get_type(py), msg),
            })
        }
        n => Err(Error::new_err(format!("{total} keys failed ({n} errors)"))),
    }
}

/// The longest `get_stats` argument sent: memcached drops a connection whose command line
/// is too long, which would count as the server failing.
const MAX_STATS_ARG: usize = 1024;

/// `ValueError` for a `get_stats` argument too long to send.
pub(crate) fn check_stats_arg(arg: Option<&str>) -> PyResult<()> {
    match arg {
        Some(a) if a.len() > MAX_STATS_ARG => Err(PyValueError::new_err(format!(
            "stats argument too long: {} bytes, max is {MAX_STATS_ARG}",
            a.len()
        ))),
        _ => Ok(()),
    }
}

/// Every server's stats as pylibmc's `get_stats` returns them:
/// `[(b"host:port (index)", {name: value bytes})]` in server order. Any server that could
/// not be asked makes it `SomeErrors`, as in pylibmc.
pub(crate) fn stats_list<'py>(
    py: Python<'py>,
    servers: &[Server],
    stats: larder::Result<HashMap<String, HashMap<String, String>>>,
) -> PyResult<Bound<'py, PyList>> {
    let stats = stats.map_err(|e| {
        if e.is_transport() || matches!(e, larder::Error::NoServers(_)) {
            SomeErrors::new_err(e.to_string())
        } else {
            errors::to_py(e)
        }
    })?;
    let out = PyList::empty(py);
    for (i, server) in servers.iter().enumerate() {
        let addr = server.addr.to_string();
        let Some(map) = stats.get(&addr) else {
            return Err(SomeErrors::new_err(format!("no stats from {addr}")));
        };
        if let Some(err) = map.get("larder:error") {
            return Err(SomeErrors::new_err(format!("stats from {addr}: {err}")));
        }
        let d = PyDict::new(py);
        for (name, value) in map.iter().filter(|(n, _)| !n.starts_with("larder:")) {
            d.set_item(name, PyBytes::new(py, value.as_bytes()))?;
        }
        let label = format!("{} ({i})", server.stats_name());
        out.append((PyBytes::new(py, label.as_bytes()), d))?;
    }
    Ok(out)
}
