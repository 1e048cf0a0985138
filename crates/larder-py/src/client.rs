//! `larder._larder.Client`: pylibmc's client API over ONE [`larder::memcache::Client`], which
//! pools its connections inside, so one Python object is safely shared by threads. Keys and
//! values are read and made with the GIL held; every network wait (and zlib's work) runs
//! with it released.
//!
//! The Python class `larder.Client` subclasses this one and adds what pylibmc writes in
//! Python (the mapping protocol, `behaviors` as a write-through dict, `repr`). `__new__`
//! takes any arguments and `_configure` (called by `__init__`) sets the client up, so a
//! subclass's `__init__` may take its own arguments, as with pylibmc.

use larder::memcache::SetMode;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};

use crate::args;
use crate::calls::{self, arith_io, cas_io, store_io};
use crate::errors;
use crate::get_keys::GetKeys;
use crate::keys;
use crate::multi::{self, incr_multi_io, multi_expired_io};
use crate::state::{Slot, State};
use crate::values::{self, Codec, Compression, Hooks};

/// The blocking face's state.
type St = State<larder::memcache::Client>;

/// A memcached client with pylibmc's API (use `larder.Client`, which adds the rest).
#[pyclass(subclass, frozen, module = "larder._larder", name = "Client")]
pub struct Client {
    slot: Slot<larder::memcache::Client>,
    hooks: Hooks,
}

impl Client {
    fn codec<'a, 'py>(slf: &'a Bound<'py, Self>, st: &St) -> Codec<'a, 'py> {
        st.codec(slf.as_any(), slf.get().hooks)
    }

    /// One store of `val` under `key`; pylibmc's `False` for a key it would not send.
    #[allow(clippy::too_many_arguments)]
    fn store(
        slf: &Bound<'_, Self>,
        mode: SetMode,
        key: &Bound<'_, PyAny>,
        val: &Bound<'_, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<bool> {
        let st = slf.get().slot.get()?;
        let codec = Self::codec(slf, &st);
        let req = calls::store(
            &st,
            &codec,
            mode,
            key,
            val,
            time,
            min_compress_len,
            compress_level,
        )?;
        let Some(req) = req else { return Ok(false) };
        let (k, data) = (req.key.as_bytes(), req.payload.as_bytes());
        let c = &st.client;
        slf.py()
            .detach(|| {
                store_io!(
                    c,
                    req.mode,
                    k,
                    data,
                    req.flags,
                    req.time,
                    req.compression,
                    []
                )
            })
            .map_err(errors::to_py)
    }

    /// `set_multi`/`add_multi`: the keys not stored, as passed.
    #[allow(clippy::too_many_arguments)]
    fn store_multi<'py>(
        slf: &Bound<'py, Self>,
        mode: SetMode,
        mapping: &Bound<'py, PyAny>,
        time: i64,
        key_prefix: Option<&Bound<'py, PyAny>>,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let time = args::time(time)?;
        let compression = Compression::from_args(min_compress_len, compress_level)?;
        let prefix = keys::prefix(key_prefix)?;
        let items =
            multi::write_items(&Self::codec(slf, &st), mapping, prefix.as_ref(), st.policy)?;
        let sent = multi::write_batch(&items);
        let c = &st.client;
        let stored = if sent.is_empty() {
            Vec::new()
        } else {
            py.detach(|| match time {
                args::Time::After(expiry) => {
                    let packed = multi::pack_all(&sent, compression);
                    let batch = multi::packed_batch(&sent, &packed);
                    c.store_multi(mode, &batch, expiry)
                }
                args::Time::Expired => multi_expired_io!(c, mode, &sent, []),
            })
            .map_err(errors::to_py)?
        };
        multi::failed_keys(py, multi::reported_keys(&items), &stored)
    }
}

#[pymethods]
impl Client {
    /// An unconfigured client of `cls` (`__init__` configures it); arguments are `__init__`'s.
    #[new]
    #[classmethod]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        cls: &Bound<'_, PyType>,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let base = cls.py().get_type::<Client>();
        Ok(Client {
            slot: Slot::new(larder::memcache::Client::new),
            hooks: Hooks::of(cls, &base)?,
        })
    }

    /// Configures the client as pylibmc's constructor does (`larder.Client.__init__` calls
    /// this).
    #[pyo3(signature = (servers, behaviors=None, binary=false, username=None, password=None))]
    fn _configure(
        &self,
        servers: &Bound<'_, PyAny>,
        behaviors: Option<&Bound<'_, PyAny>>,
        binary: bool,
        username: Option<&Bound<'_, PyAny>>,
        password: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.slot
            .configure(servers, behaviors, binary, username, password)
    }

    /// The value of `key`, `default` on a miss.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let Some(key) = calls::get_key(&st, key)? else {
            return Ok(default);
        };
        let k = key.as_bytes();
        let got = py.detach(|| st.client.get(k).map(values::unpack));
        calls::get_result(&Self::codec(slf, &st), got, default)
    }

    /// `(value, cas)` of `key`, `(None, None)` on a miss (needs the `cas` behavior).
    fn gets<'py>(slf: &Bound<'py, Self>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let Some(key) = calls::gets_key(&st, key)? else {
            return calls::gets_miss(py);
        };
        let k = key.as_bytes();
        let got = py.detach(|| st.client.gets(k).map(calls::gets_fetched));
        calls::gets_result(&Self::codec(slf, &st), got)
    }

    /// Stores `val` under `key`; `True` when stored.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn set(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        val: &Bound<'_, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<bool> {
        Self::store(
            slf,
            SetMode::Set,
            key,
            val,
            time,
            min_compress_len,
            compress_level,
        )
    }

    /// Stores `val` only when `key` is absent; `True` when stored.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn add(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        val: &Bound<'_, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<bool> {
        Self::store(
            slf,
            SetMode::Add,
            key,
            val,
            time,
            min_compress_len,
            compress_level,
        )
    }

    /// Stores `val` only when `key` is present; `True` when stored.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn replace(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        val: &Bound<'_, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<bool> {
        Self::store(
            slf,
            SetMode::Replace,
            key,
            val,
            time,
            min_compress_len,
            compress_level,
        )
    }

    /// Appends `val`'s bytes to `key`'s value; `True` when the key existed.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn append(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        val: &Bound<'_, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<bool> {
        Self::store(
            slf,
            SetMode::Append,
            key,
            val,
            time,
            min_compress_len,
            compress_level,
        )
    }

    /// Prepends `val`'s bytes to `key`'s value; `True` when the key existed.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn prepend(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        val: &Bound<'_, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<bool> {
        Self::store(
            slf,
            SetMode::Prepend,
            key,
            val,
            time,
            min_compress_len,
            compress_level,
        )
    }

    /// Stores `val` only while `key`'s CAS is still `cas`: `True` when stored, `False` when
    /// it changed; `NotFound` when the key is missing (needs the `cas` behavior).
    #[pyo3(signature = (key, val, cas, time=0))]
    fn cas(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        val: &Bound<'_, PyAny>,
        cas: u64,
        time: i64,
    ) -> PyResult<bool> {
        let st = slf.get().slot.get()?;
        let req = calls::cas(&st, &Self::codec(slf, &st), key, val, time)?;
        let (k, data) = (req.key.as_bytes(), req.payload.as_bytes());
        let c = &st.client;
        let outcome = slf
            .py()
            .detach(|| cas_io!(c, k, data, req.flags, req.time, cas, []));
        calls::cas_result(k, outcome)
    }

    /// Deletes `key`; `True` when it was present.
    fn delete(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let st = slf.get().slot.get()?;
        let Some(key) = calls::quiet_key(&st, key)? else {
            return Ok(false);
        };
        let k = key.as_bytes();
        slf.py()
            .detach(|| st.client.delete(k))
            .map_err(errors::to_py)
    }

    /// Deletes `key` only while its CAS is still `cas` (from `gets`): `True` when deleted,
    /// `False` when it is missing or changed since. One atomic step on the server (larder's,
    /// not in pylibmc).
    fn delete_cas(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>, cas: u64) -> PyResult<bool> {
        let st = slf.get().slot.get()?;
        let Some(key) = calls::quiet_key(&st, key)? else {
            return Ok(false);
        };
        let k = key.as_bytes();
        slf.py()
            .detach(|| st.client.delete_cas(k, cas))
            .map_err(errors::to_py)
    }

    /// Adds `delta` to `key`'s number; the new value (`NotFound` when the key is missing).
    #[pyo3(signature = (key, delta=1))]
    fn incr(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>, delta: i64) -> PyResult<u64> {
        Self::arith(slf, key, delta, false)
    }

    /// Subtracts `delta` from `key`'s number, stopping at 0; the new value.
    #[pyo3(signature = (key, delta=1))]
    fn decr(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>, delta: i64) -> PyResult<u64> {
        Self::arith(slf, key, delta, true)
    }

    /// Gives `key` a new expiry `time`; `True` when it exists.
    fn touch(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>, time: i64) -> PyResult<bool> {
        let st = slf.get().slot.get()?;
        let Some((key, expiry)) = calls::touch_key(&st, key, time)? else {
            return Ok(false);
        };
        let k = key.as_bytes();
        slf.py()
            .detach(|| st.client.touch(k, expiry))
            .map_err(errors::to_py)
    }

    /// The hits among `keys`, keyed as passed (`key_prefix` is put in front of each on the
    /// wire and left off in the result).
    #[pyo3(signature = (keys, key_prefix=None))]
    fn get_multi<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
        key_prefix: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let prefix = keys::prefix(key_prefix)?;
        let keys = GetKeys::read(keys, prefix.as_ref(), st.policy)?;
        if keys.is_empty() {
            return Ok(PyDict::new(py));
        }
        let wire = keys.wire();
        let mut hits = multi::FetchedHits::new(wire.len());
        py.detach(|| {
            st.client
                .get_multi_indexed(&wire, |at, hit| hits.visit(at, hit))
        })
        .map_err(errors::to_py)?;
        multi::hits_dict(&Self::codec(slf, &st), &keys, hits)
    }

    /// Stores every item of the dict `keys`; the keys that were not stored (`[]`).
    #[pyo3(signature = (keys, time=0, key_prefix=None, min_compress_len=0, compress_level=-1))]
    fn set_multi<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
        time: i64,
        key_prefix: Option<&Bound<'py, PyAny>>,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyList>> {
        Self::store_multi(
            slf,
            SetMode::Set,
            keys,
            time,
            key_prefix,
            min_compress_len,
            compress_level,
        )
    }

    /// Adds every item of the dict `keys`; the keys that were not added (already present).
    #[pyo3(signature = (keys, time=0, key_prefix=None, min_compress_len=0, compress_level=-1))]
    fn add_multi<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
        time: i64,
        key_prefix: Option<&Bound<'py, PyAny>>,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyList>> {
        Self::store_multi(
            slf,
            SetMode::Add,
            keys,
            time,
            key_prefix,
            min_compress_len,
            compress_level,
        )
    }

    /// Deletes every key; `True` when all were present, `False` when any was missing.
    #[pyo3(signature = (keys, key_prefix=None))]
    fn delete_multi(
        slf: &Bound<'_, Self>,
        keys: &Bound<'_, PyAny>,
        key_prefix: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let st = slf.get().slot.get()?;
        let prefix = keys::prefix(key_prefix)?;
        let items = multi::delete_keys(keys, prefix.as_ref(), st.policy)?;
        let wire = multi::sent(&items);
        let all_sent = wire.len() == items.len();
        if wire.is_empty() {
            return Ok(all_sent);
        }
        let deleted = slf.py().detach(|| st.client.delete_multi(&wire));
        multi::all_deleted(all_sent, deleted)
    }

    /// Adds `delta` to every key's number; `None` (`NotFound` when some keys are missing,
    /// after the others were counted).
    #[pyo3(signature = (keys, key_prefix=None, delta=1))]
    fn incr_multi(
        slf: &Bound<'_, Self>,
        keys: &Bound<'_, PyAny>,
        key_prefix: Option<&Bound<'_, PyAny>>,
        delta: i64,
    ) -> PyResult<()> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let delta = args::delta(delta)?;
        let prefix = keys::prefix(key_prefix)?;
        let items = multi::incr_keys(keys, prefix.as_ref(), st.policy)?;
        let refused = multi::incr_refusals(&items);
        let wire = multi::sent(&items);
        let c = &st.client;
        let tally = py.detach(|| incr_multi_io!(c, wire, delta, []));
        multi::incr_multi_result(py, refused, tally)
    }

    /// Invalidates every item on every server; `True`. A delay (`time` > 0) is not
    /// supported by larder's client.
    #[pyo3(signature = (time=0))]
    fn flush_all(slf: &Bound<'_, Self>, time: i64) -> PyResult<bool> {
        let st = slf.get().slot.get()?;
        calls::flush_delay(time)?;
        calls::flush_result(slf.py().detach(|| st.client.flush_all()))
    }

    /// Every server's `stats [arg]`: `[(b"host:port (index)", {name: value bytes})]`.
    #[pyo3(signature = (arg=None))]
    fn get_stats<'py>(slf: &Bound<'py, Self>, arg: Option<String>) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        multi::check_stats_arg(arg.as_deref())?;
        let stats = py.detach(|| st.client.stats_group(arg.as_deref()));
        multi::stats_list(py, &st.settings.servers, stats)
    }

    /// Closes every idle connection (connections in use finish their call first).
    fn disconnect_all(&self) -> PyResult<()> {
        self.slot.get()?.client.close_idle();
        Ok(())
    }

    /// A client of the same class and settings, sharing this one's connections (each is
    /// thread-safe; changing one's behaviors leaves the other as it was).
    fn clone<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let cls = slf.get_type();
        let twin = cls.call_method1("__new__", (&cls,))?;
        twin.cast::<Client>()?
            .get()
            .slot
            .put(slf.get().slot.shared());
        Ok(twin)
    }

    /// The behaviors as pylibmc's dict (`hash` and `distribution` by name).
    fn get_behaviors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.slot.behaviors(py)
    }

    /// Applies the behaviors in `behaviors` (all or none of them).
    fn set_behaviors(&self, behaviors: &Bound<'_, PyAny>) -> PyResult<()> {
        self.slot.set_behaviors(behaviors)
    }

    /// The index of the server that takes `key` (pylibmc's `hash`).
    fn hash(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.slot.server_of(key)
    }

    /// pylibmc's serialization of `value`: `(bytes, flags)`.
    fn serialize<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyBytes>, u32)> {
        self.slot.serialize(value)
    }

    /// pylibmc's deserialization of `value` stored with `flags`.
    fn deserialize<'py>(
        &self,
        value: &Bound<'py, PyBytes>,
        flags: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        values::deserialize_native(value.py(), value.as_bytes(), flags)
    }
}

impl Client {
    fn arith(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        delta: i64,
        decr: bool,
    ) -> PyResult<u64> {
        let st = slf.get().slot.get()?;
        let (key, delta) = calls::arith_key(&st, key, delta)?;
        let k = key.as_bytes();
        let c = &st.client;
        let got = slf.py().detach(|| arith_io!(c, k, delta, decr, []));
        calls::arith_result(k, got)
    }
}
