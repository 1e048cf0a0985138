//! Each single-key pylibmc method's Python side, shared by the blocking and the asyncio face:
//! reading the arguments into what is sent (or the answer pylibmc gives without sending), and
//! turning larder's reply into pylibmc's return value or exception. A face only does the I/O
//! in between: with the GIL released, or awaited on tokio. The I/O that is more than one call
//! is written once too, as macros taking the face's `.await` (as larder's `client_api!`).
//! Multi-key calls' counterparts live in `multi`.

use std::borrow::Cow;

use larder::memcache::{GetsItem, SetMode};
use larder::Expiry;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::args;
use crate::errors::{self, NotFound, SomeErrors};
use crate::keys::{Key, Refusal};
use crate::state::State;
use crate::values::{self, Codec, Compression, Inflate, Payload};

/// A fetched value made ready to decode (inflated without the GIL), or why it could not be.
pub(crate) type Fetched = Result<Option<(Vec<u8>, u32)>, Inflate>;

/// A `get`'s key: `None` when pylibmc answers with the default without asking (an empty
/// key); `BadKeyProvided` for a key the client refuses.
pub(crate) fn get_key<'a, C>(
    st: &State<C>,
    key: &'a Bound<'_, PyAny>,
) -> PyResult<Option<Key<'a>>> {
    let key = Key::new(key)?;
    match st.policy.check(key.as_bytes())? {
        None => Ok(Some(key)),
        Some(Refusal::Empty) => Ok(None),
        Some(r) => Err(r.error(key.as_bytes())),
    }
}

/// A `get`'s value: the decoded hit, or `default` on a miss.
pub(crate) fn get_result<'py>(
    codec: &Codec<'_, 'py>,
    got: larder::Result<Fetched>,
    default: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    match got.map_err(errors::to_py)?.map_err(Inflate::into_py)? {
        None => Ok(default),
        Some((data, flags)) => Ok(codec.decode(&data, flags)?.unwrap_or(default)),
    }
}

/// A `gets`'s key: `None` for pylibmc's miss without asking. pylibmc's order: an empty key
/// is a miss, then the `cas` behavior is required, then the key's bytes are checked.
pub(crate) fn gets_key<'a, C>(
    st: &State<C>,
    key: &'a Bound<'_, PyAny>,
) -> PyResult<Option<Key<'a>>> {
    let key = Key::new(key)?;
    let refusal = st.policy.check(key.as_bytes())?;
    if refusal == Some(Refusal::Empty) {
        return Ok(None);
    }
    if !st.settings.behaviors.cas() {
        return Err(PyValueError::new_err("gets without cas behavior"));
    }
    match refusal {
        Some(r) => Err(r.error(key.as_bytes())),
        None => Ok(Some(key)),
    }
}

/// A `gets` reply made ready to decode (run without the GIL): the value and its CAS.
pub(crate) fn gets_fetched(item: Option<GetsItem>) -> (Fetched, u64) {
    let cas = item.as_ref().map_or(0, |i| i.cas);
    (values::unpack(item.map(|i| (i.data, i.flags))), cas)
}

/// pylibmc's `gets` miss, `(None, None)`.
pub(crate) fn gets_miss(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(py, [py.None(), py.None()])
}

/// A `gets`'s value: `(value, cas)`, or `(None, None)` on a miss.
pub(crate) fn gets_result<'py>(
    codec: &Codec<'_, 'py>,
    got: larder::Result<(Fetched, u64)>,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = codec.this.py();
    let (item, cas) = got.map_err(errors::to_py)?;
    let Some((data, flags)) = item.map_err(Inflate::into_py)? else {
        return gets_miss(py);
    };
    match codec.decode(&data, flags)? {
        None => gets_miss(py),
        Some(v) => PyTuple::new(py, [v, cas.into_pyobject(py)?.into_any()]),
    }
}

/// One single-key store, read from its arguments.
pub(crate) struct Store<'a, 'py> {
    pub(crate) mode: SetMode,
    pub(crate) key: Key<'a>,
    pub(crate) payload: Payload<'py>,
    pub(crate) flags: u32,
    pub(crate) time: args::Time,
    pub(crate) compression: Option<Compression>,
}

/// A `set`/`add`/`replace`/`append`/`prepend`: `None` for a key pylibmc would not send (the
/// call returns `False`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn store<'a, 'py, C>(
    st: &State<C>,
    codec: &Codec<'_, 'py>,
    mode: SetMode,
    key: &'a Bound<'py, PyAny>,
    val: &Bound<'py, PyAny>,
    time: i64,
    min_compress_len: i64,
    compress_level: i32,
) -> PyResult<Option<Store<'a, 'py>>> {
    let key = Key::new(key)?;
    let compression = Compression::from_args(min_compress_len, compress_level)?;
    let time = args::time(time)?;
    let (payload, flags) = codec.encode(val)?;
    if st.policy.check(key.as_bytes())?.is_some() {
        return Ok(None);
    }
    Ok(Some(Store {
        mode,
        key,
        payload,
        flags,
        time,
        compression,
    }))
}

/// The bytes a store sends and their flags: compressed when that pays, except appended and
/// prepended bytes, which join a value whose flags stay the first write's (compressing them
/// alone would corrupt it).
pub(crate) fn packed(
    mode: SetMode,
    data: &[u8],
    flags: u32,
    compression: Option<Compression>,
) -> (Cow<'_, [u8]>, u32) {
    match mode {
        SetMode::Append | SetMode::Prepend => (Cow::Borrowed(data), flags),
        _ => values::pack(data, flags, compression),
    }
}

/// The I/O of one store on client `$c` (`[.await]` for the async face): `Ok(true)` when
/// stored. An already expired write (a negative time) gives memcached's outcome without
/// storing: a set is acknowledged and leaves the key absent, an add is acknowledged when
/// the key was absent, a replace when it was present (and removes it); appended and
/// prepended bytes keep the item's own expiry, as memcached ignores their time.
macro_rules! store_io {
    ($c:expr, $mode:expr, $key:expr, $data:expr, $flags:expr, $time:expr, $compression:expr,
     [$($aw:tt)*]) => {{
        use ::larder::memcache::SetMode;
        use $crate::args::Time;
        // Packed (compressed) only for a write that sends its value.
        let packed = || $crate::calls::packed($mode, $data, $flags, $compression);
        match ($mode, $time) {
            (SetMode::Append, _) => $c.append($key, &packed().0)$($aw)*,
            (SetMode::Prepend, _) => $c.prepend($key, &packed().0)$($aw)*,
            (SetMode::Add, Time::Expired) => $c.get($key)$($aw)*.map(|hit| hit.is_none()),
            (SetMode::Replace, Time::Expired) => $c.delete($key)$($aw)*,
            (_, Time::Expired) => $c.delete($key)$($aw)*.map(|_| true),
            (mode, Time::After(expiry)) => {
                let (data, flags) = packed();
                match mode {
                    SetMode::Add => $c.add($key, &data, flags, expiry)$($aw)*,
                    SetMode::Replace => $c.replace($key, &data, flags, expiry)$($aw)*,
                    _ => $c.set($key, &data, flags, expiry)$($aw)*.map(|()| true),
                }
            }
        }
    }};
}
pub(crate) use store_io;

/// A `cas`, read from its arguments (pylibmc raises for any key it would not send).
pub(crate) fn cas<'a, 'py, C>(
    st: &State<C>,
    codec: &Codec<'_, 'py>,
    key: &'a Bound<'py, PyAny>,
    val: &Bound<'py, PyAny>,
    time: i64,
) -> PyResult<Store<'a, 'py>> {
    let key = Key::new(key)?;
    if !st.settings.behaviors.cas() {
        return Err(PyValueError::new_err("cas without cas behavior"));
    }
    let time = args::time(time)?;
    let (payload, flags) = codec.encode(val)?;
    if let Some(r) = st.policy.check(key.as_bytes())? {
        return Err(r.error(key.as_bytes()));
    }
    Ok(Store {
        mode: SetMode::Set,
        key,
        payload,
        flags,
        time,
        compression: None,
    })
}

/// The I/O of a `cas`: `Some(stored)`, or `None` when the key is missing. larder answers
/// `false` for a changed and a vanished item alike; pylibmc raises for the second, so a
/// refused CAS looks the key up. An already expired `cas` (a negative time) removes the
/// item where it would have stored it, as memcached's outcome is.
macro_rules! cas_io {
    ($c:expr, $key:expr, $data:expr, $flags:expr, $time:expr, $cas:expr, [$($aw:tt)*]) => {{
        let done = match $time {
            $crate::args::Time::After(expiry) => {
                $c.cas($key, $data, $flags, expiry, $cas)$($aw)*
            }
            $crate::args::Time::Expired => $c.delete_cas($key, $cas)$($aw)*,
        };
        match done {
            Ok(true) => Ok(Some(true)),
            Ok(false) => $c.get($key)$($aw)*.map(|hit| hit.map(|_| false)),
            Err(e) => Err(e),
        }
    }};
}
pub(crate) use cas_io;

/// A `cas`'s value: whether it stored, `NotFound` for a missing key.
pub(crate) fn cas_result(key: &[u8], outcome: larder::Result<Option<bool>>) -> PyResult<bool> {
    match outcome.map_err(errors::to_py)? {
        Some(stored) => Ok(stored),
        None => Err(NotFound::new_err(format!(
            "cas of {:?}: key not found",
            String::from_utf8_lossy(key)
        ))),
    }
}

/// The key of a `delete` or `delete_cas`: `None` for a key pylibmc would not send
/// (the call returns `False`).
pub(crate) fn quiet_key<'a, C>(
    st: &State<C>,
    key: &'a Bound<'_, PyAny>,
) -> PyResult<Option<Key<'a>>> {
    let key = Key::new(key)?;
    Ok(st.policy.check(key.as_bytes())?.is_none().then_some(key))
}

/// The key and expiry of a `touch`: `None` for a key pylibmc would not send (`False`).
pub(crate) fn touch_key<'a, C>(
    st: &State<C>,
    key: &'a Bound<'_, PyAny>,
    time: i64,
) -> PyResult<Option<(Key<'a>, Expiry)>> {
    let key = Key::new(key)?;
    if time < 0 {
        // libmemcached refuses it, and pylibmc raises this class for it.
        return Err(crate::errors::AllocationError::new_err(format!(
            "touch with a negative time ({time}) is refused, as by pylibmc"
        )));
    }
    let expiry = args::expiry(time)?;
    Ok(st
        .policy
        .check(key.as_bytes())?
        .is_none()
        .then_some((key, expiry)))
}

/// The key and delta of an `incr`/`decr` (pylibmc raises for any key it would not send).
pub(crate) fn arith_key<'a, C>(
    st: &State<C>,
    key: &'a Bound<'_, PyAny>,
    delta: i64,
) -> PyResult<(Key<'a>, u64)> {
    let key = Key::new(key)?;
    let delta = args::delta(delta)?;
    if let Some(r) = st.policy.check(key.as_bytes())? {
        return Err(r.error(key.as_bytes()));
    }
    Ok((key, delta))
}

/// The I/O of an `incr` (`$decr` false) or `decr`.
macro_rules! arith_io {
    ($c:expr, $key:expr, $delta:expr, $decr:expr, [$($aw:tt)*]) => {
        if $decr {
            $c.decr($key, $delta)$($aw)*
        } else {
            $c.incr($key, $delta)$($aw)*
        }
    };
}
pub(crate) use arith_io;

/// An `incr`/`decr`'s value: the new number, `NotFound` for a missing key.
pub(crate) fn arith_result(key: &[u8], got: larder::Result<Option<u64>>) -> PyResult<u64> {
    got.map_err(errors::to_py)?.ok_or_else(|| {
        NotFound::new_err(format!("key {:?} not found", String::from_utf8_lossy(key)))
    })
}

/// `flush_all`'s delay: larder's client flushes at once only.
pub(crate) fn flush_delay(time: i64) -> PyResult<()> {
    if time > 0 {
        return Err(errors::unsupported(
            "flush_all with a delay (time > 0) is not supported by larder's client",
        ));
    }
    Ok(())
}

/// `flush_all`'s value: `True`, or `SomeErrors` as pylibmc raises for a failed server.
pub(crate) fn flush_result(done: larder::Result<()>) -> PyResult<bool> {
    done.map_err(|e| SomeErrors::new_err(e.to_string()))?;
    Ok(true)
}
