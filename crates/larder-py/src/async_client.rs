//! `larder._larder.AsyncClient`: pylibmc's client API as awaitables, over ONE
//! [`larder::memcache::AsyncClient`] on pyo3-async-runtimes' tokio runtime. Each call reads
//! its arguments and encodes its values at once, with the GIL held (through the shared
//! `calls` and `multi`, so it answers as the blocking face does); its I/O runs on tokio
//! without the GIL; its reply is decoded under the GIL when asyncio is handed it, on the
//! runtime's blocking pool rather than a tokio worker.
//!
//! Cancelling the awaiting task drops the Rust future: a connection whose exchange was cut
//! short is not in step, and larder's pool drops it instead of reusing it.
//!
//! The Python class `larder.AsyncClient` subclasses this one, wrapping each network method
//! in a coroutine and adding the constructor, `repr` and `behaviors`, as `larder.Client`.

use std::future::Future;

use larder::memcache::SetMode;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple, PyType};

use crate::args;
use crate::calls::{self, arith_io, cas_io, store_io};
use crate::errors;
use crate::get_keys::GetKeys;
use crate::keys;
use crate::multi::{self, incr_multi_io, multi_expired_io};
use crate::state::{Slot, State};
use crate::values::{self, Codec, Compression, Hooks};

/// The asyncio face's state.
type St = State<larder::memcache::AsyncClient>;

/// A reply made under the GIL when asyncio receives it (so a subclass's `deserialize` runs
/// there).
struct Reply(Box<dyn MakeReply>);

/// How a [`Reply`] is made.
trait MakeReply: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send {}

impl<F> MakeReply for F where F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send {}

impl Reply {
    fn new(
        make: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send + 'static,
    ) -> Self {
        Reply(Box::new(make))
    }
}

impl<'py> IntoPyObject<'py> for Reply {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        (self.0)(py)
    }
}

/// An awaitable of `fut`'s result, run on tokio.
fn spawn<'py, T>(
    py: Python<'py>,
    fut: impl Future<Output = PyResult<T>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, fut)
}

/// An awaitable of `value`, for an answer given without asking a server.
fn ready<'py, T>(py: Python<'py>, value: T) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    spawn(py, async move { Ok(value) })
}

/// What a reply decodes with: the client object (a subclass's `serialize`/`deserialize`)
/// and its hooks.
struct Decoder {
    this: Py<AsyncClient>,
    hooks: Hooks,
}

impl Decoder {
    fn codec<'a, 'py>(&'a self, py: Python<'py>, st: &St) -> Codec<'a, 'py> {
        st.codec(self.this.bind(py).as_any(), self.hooks)
    }
}

/// An asyncio memcached client with pylibmc's API (use `larder.AsyncClient`).
#[pyclass(subclass, frozen, module = "larder._larder", name = "AsyncClient")]
pub struct AsyncClient {
    slot: Slot<larder::memcache::AsyncClient>,
    hooks: Hooks,
}

impl AsyncClient {
    fn codec<'a, 'py>(slf: &'a Bound<'py, Self>, st: &St) -> Codec<'a, 'py> {
        st.codec(slf.as_any(), slf.get().hooks)
    }

    fn decoder(slf: &Bound<'_, Self>) -> Decoder {
        Decoder {
            this: slf.clone().unbind(),
            hooks: slf.get().hooks,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn store<'py>(
        slf: &Bound<'py, Self>,
        mode: SetMode,
        key: &Bound<'py, PyAny>,
        val: &Bound<'py, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
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
        let Some(req) = req else {
            return ready(py, false);
        };
        let (k, data) = (req.key.as_bytes().to_vec(), req.payload.as_bytes().to_vec());
        let (flags, time, compression) = (req.flags, req.time, req.compression);
        spawn(py, async move {
            let c = &st.client;
            store_io!(c, mode, &k, &data, flags, time, compression, [.await]).map_err(errors::to_py)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn store_multi<'py>(
        slf: &Bound<'py, Self>,
        mode: SetMode,
        mapping: &Bound<'py, PyAny>,
        time: i64,
        key_prefix: Option<&Bound<'py, PyAny>>,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let time = args::time(time)?;
        let compression = Compression::from_args(min_compress_len, compress_level)?;
        let prefix = keys::prefix(key_prefix)?;
        let items =
            multi::write_items(&Self::codec(slf, &st), mapping, prefix.as_ref(), st.policy)?;
        let sent: Vec<(Vec<u8>, Vec<u8>, u32)> = multi::write_batch(&items)
            .into_iter()
            .map(|(k, data, flags)| (k.to_vec(), data.to_vec(), flags))
            .collect();
        let given: Vec<(Py<PyAny>, bool)> = multi::reported_keys(&items)
            .into_iter()
            .map(|(key, sent)| (key.clone().unbind(), sent))
            .collect();
        spawn(py, async move {
            let c = &st.client;
            let stored = match time {
                _ if sent.is_empty() => Vec::new(),
                args::Time::After(expiry) => {
                    let packed = multi::pack_all(&sent, compression);
                    let batch = multi::packed_batch(&sent, &packed);
                    c.store_multi(mode, &batch, expiry)
                        .await
                        .map_err(errors::to_py)?
                }
                args::Time::Expired => {
                    multi_expired_io!(c, mode, &sent, [.await]).map_err(errors::to_py)?
                }
            };
            Ok(Reply::new(move |py| {
                let given = given.iter().map(|(g, sent)| (g.bind(py), *sent));
                multi::failed_keys(py, given, &stored).map(Bound::into_any)
            }))
        })
    }

    fn arith<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        delta: i64,
        decr: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let st = slf.get().slot.get()?;
        let (key, delta) = calls::arith_key(&st, key, delta)?;
        let k = key.as_bytes().to_vec();
        spawn(slf.py(), async move {
            let c = &st.client;
            let got = arith_io!(c, &k, delta, decr, [.await]);
            calls::arith_result(&k, got)
        })
    }
}

#[pymethods]
impl AsyncClient {
    /// An unconfigured client of `cls` (`__init__` configures it); arguments are `__init__`'s.
    #[new]
    #[classmethod]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        cls: &Bound<'_, PyType>,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let base = cls.py().get_type::<AsyncClient>();
        Ok(AsyncClient {
            slot: Slot::new(larder::memcache::AsyncClient::new),
            hooks: Hooks::of(cls, &base)?,
        })
    }

    /// Configures the client as pylibmc's constructor does (`__init__` calls this).
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
        let default = default.map_or_else(|| py.None(), Bound::unbind);
        let Some(key) = calls::get_key(&st, key)? else {
            return ready(py, default);
        };
        let k = key.as_bytes().to_vec();
        let dec = Self::decoder(slf);
        spawn(py, async move {
            let got = st.client.get(&k).await.map(values::unpack);
            Ok(Reply::new(move |py| {
                calls::get_result(&dec.codec(py, &st), got, default.into_bound(py))
            }))
        })
    }

    /// `(value, cas)` of `key`, `(None, None)` on a miss (needs the `cas` behavior).
    fn gets<'py>(slf: &Bound<'py, Self>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let Some(key) = calls::gets_key(&st, key)? else {
            return ready(py, calls::gets_miss(py)?.unbind());
        };
        let k = key.as_bytes().to_vec();
        let dec = Self::decoder(slf);
        spawn(py, async move {
            let got = st.client.gets(&k).await.map(calls::gets_fetched);
            Ok(Reply::new(move |py| {
                calls::gets_result(&dec.codec(py, &st), got).map(Bound::into_any)
            }))
        })
    }

    /// Stores `val` under `key`; `True` when stored.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn set<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        val: &Bound<'py, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (mode, mcl, level) = (SetMode::Set, min_compress_len, compress_level);
        Self::store(slf, mode, key, val, time, mcl, level)
    }

    /// Stores `val` only when `key` is absent; `True` when stored.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn add<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        val: &Bound<'py, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (mode, mcl, level) = (SetMode::Add, min_compress_len, compress_level);
        Self::store(slf, mode, key, val, time, mcl, level)
    }

    /// Stores `val` only when `key` is present; `True` when stored.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn replace<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        val: &Bound<'py, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (mode, mcl, level) = (SetMode::Replace, min_compress_len, compress_level);
        Self::store(slf, mode, key, val, time, mcl, level)
    }

    /// Appends `val`'s bytes to `key`'s value; `True` when the key existed.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn append<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        val: &Bound<'py, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (mode, mcl, level) = (SetMode::Append, min_compress_len, compress_level);
        Self::store(slf, mode, key, val, time, mcl, level)
    }

    /// Prepends `val`'s bytes to `key`'s value; `True` when the key existed.
    #[pyo3(signature = (key, val, time=0, min_compress_len=0, compress_level=-1))]
    fn prepend<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        val: &Bound<'py, PyAny>,
        time: i64,
        min_compress_len: i64,
        compress_level: i32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (mode, mcl, level) = (SetMode::Prepend, min_compress_len, compress_level);
        Self::store(slf, mode, key, val, time, mcl, level)
    }

    /// Stores `val` only while `key`'s CAS is still `cas`: `True` when stored, `False` when
    /// it changed; `NotFound` when the key is missing (needs the `cas` behavior).
    #[pyo3(signature = (key, val, cas, time=0))]
    fn cas<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        val: &Bound<'py, PyAny>,
        cas: u64,
        time: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let st = slf.get().slot.get()?;
        let req = calls::cas(&st, &Self::codec(slf, &st), key, val, time)?;
        let (k, data) = (req.key.as_bytes().to_vec(), req.payload.as_bytes().to_vec());
        let (flags, time) = (req.flags, req.time);
        spawn(slf.py(), async move {
            let c = &st.client;
            let outcome = cas_io!(c, &k, &data, flags, time, cas, [.await]);
            calls::cas_result(&k, outcome)
        })
    }

    /// Deletes `key`; `True` when it was present.
    fn delete<'py>(slf: &Bound<'py, Self>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let Some(key) = calls::quiet_key(&st, key)? else {
            return ready(py, false);
        };
        let k = key.as_bytes().to_vec();
        spawn(py, async move {
            st.client.delete(&k).await.map_err(errors::to_py)
        })
    }

    /// Deletes `key` only while its CAS is still `cas` (from `gets`): `True` when deleted,
    /// `False` when it is missing or changed since. One atomic step on the server (larder's,
    /// not in pylibmc).
    fn delete_cas<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        cas: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let Some(key) = calls::quiet_key(&st, key)? else {
            return ready(py, false);
        };
        let k = key.as_bytes().to_vec();
        spawn(py, async move {
            st.client.delete_cas(&k, cas).await.map_err(errors::to_py)
        })
    }

    /// Adds `delta` to `key`'s number; the new value (`NotFound` when the key is missing).
    #[pyo3(signature = (key, delta=1))]
    fn incr<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        delta: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::arith(slf, key, delta, false)
    }

    /// Subtracts `delta` from `key`'s number, stopping at 0; the new value.
    #[pyo3(signature = (key, delta=1))]
    fn decr<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        delta: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::arith(slf, key, delta, true)
    }

    /// Gives `key` a new expiry `time`; `True` when it exists.
    fn touch<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        time: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let Some((key, expiry)) = calls::touch_key(&st, key, time)? else {
            return ready(py, false);
        };
        let k = key.as_bytes().to_vec();
        spawn(py, async move {
            st.client.touch(&k, expiry).await.map_err(errors::to_py)
        })
    }

    /// The hits among `keys`, keyed as passed (`key_prefix` is put in front of each on the
    /// wire and left off in the result).
    #[pyo3(signature = (keys, key_prefix=None))]
    fn get_multi<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
        key_prefix: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let prefix = keys::prefix(key_prefix)?;
        let keys = GetKeys::read(keys, prefix.as_ref(), st.policy)?;
        if keys.is_empty() {
            return ready(py, PyDict::new(py).unbind());
        }
        let keys = keys.detach();
        let dec = Self::decoder(slf);
        spawn(py, async move {
            let hits = {
                let wire = keys.wire();
                let mut hits = multi::FetchedHits::new(wire.len());
                st.client
                    .get_multi_indexed(&wire, |at, hit| hits.visit(at, hit))
                    .await
                    .map_err(errors::to_py)?;
                hits
            };
            Ok(Reply::new(move |py| {
                multi::hits_dict(&dec.codec(py, &st), &keys.attach(py), hits).map(Bound::into_any)
            }))
        })
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
    ) -> PyResult<Bound<'py, PyAny>> {
        let (mode, mcl, level) = (SetMode::Set, min_compress_len, compress_level);
        Self::store_multi(slf, mode, keys, time, key_prefix, mcl, level)
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
    ) -> PyResult<Bound<'py, PyAny>> {
        let (mode, mcl, level) = (SetMode::Add, min_compress_len, compress_level);
        Self::store_multi(slf, mode, keys, time, key_prefix, mcl, level)
    }

    /// Deletes every key; `True` when all were present, `False` when any was missing.
    #[pyo3(signature = (keys, key_prefix=None))]
    fn delete_multi<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
        key_prefix: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().slot.get()?;
        let prefix = keys::prefix(key_prefix)?;
        let items = multi::delete_keys(keys, prefix.as_ref(), st.policy)?;
        let wire: Vec<Vec<u8>> = multi::sent(&items)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let all_sent = wire.len() == items.len();
        if wire.is_empty() {
            return ready(py, all_sent);
        }
        spawn(py, async move {
            multi::all_deleted(all_sent, st.client.delete_multi(&wire).await)
        })
    }

    /// Adds `delta` to every key's number; `None` (`NotFound` when some keys are missing,
    /// after the others were counted).
    #[pyo3(signature = (keys, key_prefix=None, delta=1))]
    fn incr_multi<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
        key_prefix: Option<&Bound<'py, PyAny>>,
        delta: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let st = slf.get().slot.get()?;
        let delta = args::delta(delta)?;
        let prefix = keys::prefix(key_prefix)?;
        let items = multi::incr_keys(keys, prefix.as_ref(), st.policy)?;
        let refused = multi::incr_refusals(&items);
        let wire: Vec<Vec<u8>> = multi::sent(&items)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        spawn(slf.py(), async move {
            let c = &st.client;
            let tally = incr_multi_io!(c, &wire, delta, [.await]);
            Ok(Reply::new(move |py| {
                multi::incr_multi_result(py, refused, tally).map(|()| py.None().into_bound(py))
            }))
        })
    }

    /// Invalidates every item on every server; `True`. A delay (`time` > 0) is not
    /// supported by larder's client.
    #[pyo3(signature = (time=0))]
    fn flush_all<'py>(slf: &Bound<'py, Self>, time: i64) -> PyResult<Bound<'py, PyAny>> {
        let st = slf.get().slot.get()?;
        calls::flush_delay(time)?;
        spawn(slf.py(), async move {
            calls::flush_result(st.client.flush_all().await)
        })
    }

    /// Every server's `stats [arg]`: `[(b"host:port (index)", {name: value bytes})]`.
    #[pyo3(signature = (arg=None))]
    fn get_stats<'py>(slf: &Bound<'py, Self>, arg: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let st = slf.get().slot.get()?;
        multi::check_stats_arg(arg.as_deref())?;
        spawn(slf.py(), async move {
            let stats = st.client.stats_group(arg.as_deref()).await;
            Ok(Reply::new(move |py| {
                multi::stats_list(py, &st.settings.servers, stats).map(Bound::into_any)
            }))
        })
    }

    /// Closes every idle connection (connections in use finish their call first).
    fn disconnect_all(&self) -> PyResult<()> {
        self.slot.get()?.client.close_idle();
        Ok(())
    }

    /// A client of the same class and settings, sharing this one's connections (changing
    /// one's behaviors leaves the other as it was).
    fn clone<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let cls = slf.get_type();
        let twin = cls.call_method1("__new__", (&cls,))?;
        twin.cast::<AsyncClient>()?
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
