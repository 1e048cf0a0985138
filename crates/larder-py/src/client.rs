//! `larder._larder.Client`: pylibmc's client API over ONE [`larder::memcache::Client`], which
//! pools its connections inside, so one Python object is safely shared by threads. Keys and
//! values are read and made with the GIL held; every network wait (and zlib's work) runs
//! with it released.
//!
//! The Python class `larder.Client` subclasses this one and adds what pylibmc writes in
//! Python (the mapping protocol, `behaviors` as a write-through dict, `repr`). `__new__`
//! takes any arguments and `_configure` (called by `__init__`) sets the client up, so a
//! subclass's `__init__` may take its own arguments, as with pylibmc.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};

use larder::memcache::ring::Ring;
use larder::memcache::SetMode;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};

use crate::args;
use crate::config::Settings;
use crate::errors::{self, Error, NotFound, SomeErrors};
use crate::keys::{self, KeyPolicy, PyKey, Refusal};
use crate::multi;
use crate::values::{self, Codec, Compression, Hooks, Inflate};

/// What one configuration makes: the larder client and what its calls read.
struct State {
    settings: Settings,
    client: larder::memcache::Client,
    ring: Ring,
    policy: KeyPolicy,
}

impl State {
    fn new(settings: Settings) -> PyResult<Self> {
        let config = settings.config()?;
        let ring = config.ring().map_err(errors::to_py)?;
        let client = larder::memcache::Client::new(config).map_err(errors::to_py)?;
        Ok(State {
            policy: settings.key_policy(),
            settings,
            client,
            ring,
        })
    }
}

/// A memcached client with pylibmc's API (use `larder.Client`, which adds the rest).
#[pyclass(subclass, frozen, module = "larder._larder", name = "Client")]
pub struct Client {
    /// Replaced whole when behaviors change; each call holds the one it started with.
    state: RwLock<Option<Arc<State>>>,
    hooks: Hooks,
}

impl Client {
    fn state(&self) -> PyResult<Arc<State>> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::new_err("client is not configured (Client.__init__ was not run)"))
    }

    fn set_state(&self, state: Option<Arc<State>>) {
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = state;
    }

    fn codec<'a, 'py>(slf: &'a Bound<'py, Self>, st: &State) -> Codec<'a, 'py> {
        Codec {
            this: slf.as_any(),
            hooks: slf.get().hooks,
            pickle_protocol: st.settings.behaviors.pickle_protocol(),
        }
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
        let py = slf.py();
        let st = slf.get().state()?;
        let key = PyKey::new(key)?;
        let compression = Compression::from_args(min_compress_len, compress_level)?;
        let expiry = args::expiry(time)?;
        let (payload, flags) = Self::codec(slf, &st).encode(val)?;
        if st.policy.check(key.as_bytes())?.is_some() {
            return Ok(false);
        }
        let (k, data) = (key.as_bytes(), payload.as_bytes());
        let c = &st.client;
        py.detach(|| {
            // Appended bytes join a value whose flags stay the first write's: compressing
            // them alone would corrupt it.
            let (data, flags) = match mode {
                SetMode::Append | SetMode::Prepend => (Cow::Borrowed(data), flags),
                _ => values::pack(data, flags, compression),
            };
            match mode {
                SetMode::Add => c.add(k, &data, flags, expiry),
                SetMode::Replace => c.replace(k, &data, flags, expiry),
                SetMode::Append => c.append(k, &data),
                SetMode::Prepend => c.prepend(k, &data),
                _ => c.set(k, &data, flags, expiry).map(|()| true),
            }
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
        let st = slf.get().state()?;
        let expiry = args::expiry(time)?;
        let compression = Compression::from_args(min_compress_len, compress_level)?;
        let prefix = keys::prefix(key_prefix)?;
        let items =
            multi::write_items(&Self::codec(slf, &st), mapping, prefix.as_ref(), st.policy)?;
        let sent: Vec<(&[u8], &[u8], u32)> = items
            .iter()
            .filter_map(|i| {
                let (payload, flags) = i.value.as_ref()?;
                Some((i.key.wire.as_ref(), payload.as_bytes(), *flags))
            })
            .collect();
        let stored = if sent.is_empty() {
            Vec::new()
        } else {
            py.detach(|| {
                let packed: Vec<(Cow<'_, [u8]>, u32)> = sent
                    .iter()
                    .map(|&(_, data, flags)| values::pack(data, flags, compression))
                    .collect();
                let batch: Vec<(&[u8], &[u8], u32)> = sent
                    .iter()
                    .zip(&packed)
                    .map(|(&(k, _, _), (data, flags))| (k, &data[..], *flags))
                    .collect();
                st.client.store_multi(mode, &batch, expiry)
            })
            .map_err(errors::to_py)?
        };
        multi::failed_keys(py, &items, &stored)
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
            state: RwLock::new(None),
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
        let settings = Settings::new(servers, behaviors, binary, username, password)?;
        self.set_state(Some(Arc::new(State::new(settings)?)));
        Ok(())
    }

    /// The value of `key`, `default` on a miss.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let st = slf.get().state()?;
        let key = PyKey::new(key)?;
        let default = || default.unwrap_or_else(|| py.None().into_bound(py));
        match st.policy.check(key.as_bytes())? {
            None => {}
            Some(Refusal::Empty) => return Ok(default()),
            Some(r) => return Err(r.error(key.as_bytes())),
        }
        let k = key.as_bytes();
        let got = py.detach(|| st.client.get(k).map(values::unpack));
        match got.map_err(errors::to_py)?.map_err(Inflate::into_py)? {
            None => Ok(default()),
            Some((data, flags)) => Ok(Self::codec(slf, &st)
                .decode(&data, flags)?
                .unwrap_or_else(default)),
        }
    }

    /// `(value, cas)` of `key`, `(None, None)` on a miss (needs the `cas` behavior).
    fn gets<'py>(slf: &Bound<'py, Self>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let st = slf.get().state()?;
        let key = PyKey::new(key)?;
        let miss = || PyTuple::new(py, [py.None(), py.None()]);
        // pylibmc's order: an empty key is a miss, then the behavior, then the key's bytes.
        let refusal = st.policy.check(key.as_bytes())?;
        if refusal == Some(Refusal::Empty) {
            return miss();
        }
        if !st.settings.behaviors.cas() {
            return Err(PyValueError::new_err("gets without cas behavior"));
        }
        if let Some(r) = refusal {
            return Err(r.error(key.as_bytes()));
        }
        let k = key.as_bytes();
        let got = py.detach(|| {
            st.client.gets(k).map(|item| {
                let cas = item.as_ref().map_or(0, |i| i.cas);
                (values::unpack(item.map(|i| (i.data, i.flags))), cas)
            })
        });
        let (item, cas) = got.map_err(errors::to_py)?;
        let Some((data, flags)) = item.map_err(Inflate::into_py)? else {
            return miss();
        };
        match Self::codec(slf, &st).decode(&data, flags)? {
            None => miss(),
            Some(v) => PyTuple::new(py, [v, cas.into_pyobject(py)?.into_any()]),
        }
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
        let py = slf.py();
        let st = slf.get().state()?;
        let key = PyKey::new(key)?;
        if !st.settings.behaviors.cas() {
            return Err(PyValueError::new_err("cas without cas behavior"));
        }
        let expiry = args::expiry(time)?;
        let (payload, flags) = Self::codec(slf, &st).encode(val)?;
        if let Some(r) = st.policy.check(key.as_bytes())? {
            return Err(r.error(key.as_bytes()));
        }
        let (k, data) = (key.as_bytes(), payload.as_bytes());
        // larder answers `false` for a changed and a vanished item alike; pylibmc raises
        // for the second, so a refused CAS looks the key up.
        let outcome = py.detach(|| match st.client.cas(k, data, flags, expiry, cas)? {
            true => Ok(Some(true)),
            false => Ok(st.client.get(k)?.map(|_| false)),
        });
        match outcome.map_err(errors::to_py)? {
            Some(stored) => Ok(stored),
            None => Err(NotFound::new_err(format!(
                "cas of {:?}: key not found",
                String::from_utf8_lossy(k)
            ))),
        }
    }

    /// Deletes `key`; `True` when it was present.
    fn delete(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let st = slf.get().state()?;
        let key = PyKey::new(key)?;
        if st.policy.check(key.as_bytes())?.is_some() {
            return Ok(false);
        }
        let k = key.as_bytes();
        slf.py()
            .detach(|| st.client.delete(k))
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
        let st = slf.get().state()?;
        let key = PyKey::new(key)?;
        let expiry = args::expiry(time)?;
        if st.policy.check(key.as_bytes())?.is_some() {
            return Ok(false);
        }
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
        let st = slf.get().state()?;
        let prefix = keys::prefix(key_prefix)?;
        let items = multi::read_keys(keys, prefix.as_ref(), st.policy)?;
        if items.is_empty() {
            return Ok(PyDict::new(py));
        }
        let wire = multi::sent(&items);
        let hits = py
            .detach(|| st.client.get_multi(&wire))
            .map_err(errors::to_py)?;
        multi::hits_dict(&Self::codec(slf, &st), &items, &hits)
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
        let st = slf.get().state()?;
        let prefix = keys::prefix(key_prefix)?;
        let items = multi::delete_keys(keys, prefix.as_ref(), st.policy)?;
        let wire = multi::sent(&items);
        let all_sent = wire.len() == items.len();
        if wire.is_empty() {
            return Ok(all_sent);
        }
        let deleted = slf
            .py()
            .detach(|| st.client.delete_multi(&wire))
            .map_err(errors::to_py)?;
        Ok(all_sent && deleted.iter().all(|&d| d))
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
        let st = slf.get().state()?;
        let delta = args::delta(delta)?;
        let prefix = keys::prefix(key_prefix)?;
        let items = multi::incr_keys(keys, prefix.as_ref(), st.policy)?;
        let mut failures: Vec<PyErr> = items
            .iter()
            .filter_map(|i| i.refused.as_ref().map(|r| r.error(i.wire.as_ref())))
            .collect();
        let wire = multi::sent(&items);
        let (notfound, errors) = py.detach(|| {
            let mut notfound = 0;
            let mut errors = Vec::new();
            for k in wire {
                match st.client.incr(k, delta) {
                    Ok(Some(_)) => {}
                    Ok(None) => notfound += 1,
                    Err(e) => errors.push(e),
                }
            }
            (notfound, errors)
        });
        failures.extend(errors.into_iter().map(errors::to_py));
        multi::incr_multi_result(py, notfound, failures)
    }

    /// Invalidates every item on every server; `True`. A delay (`time` > 0) is not
    /// supported by larder's client.
    #[pyo3(signature = (time=0))]
    fn flush_all(slf: &Bound<'_, Self>, time: i64) -> PyResult<bool> {
        let st = slf.get().state()?;
        if time > 0 {
            return Err(errors::unsupported(
                "flush_all with a delay (time > 0) is not supported by larder's client",
            ));
        }
        slf.py()
            .detach(|| st.client.flush_all())
            .map_err(|e| SomeErrors::new_err(e.to_string()))?;
        Ok(true)
    }

    /// Every server's `stats [arg]`: `[(b"host:port (index)", {name: value bytes})]`.
    #[pyo3(signature = (arg=None))]
    fn get_stats<'py>(slf: &Bound<'py, Self>, arg: Option<String>) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let st = slf.get().state()?;
        multi::check_stats_arg(arg.as_deref())?;
        let stats = py.detach(|| st.client.stats_group(arg.as_deref()));
        multi::stats_list(py, &st.settings.servers, stats)
    }

    /// Closes every idle connection (connections in use finish their call first).
    fn disconnect_all(&self) -> PyResult<()> {
        self.state()?.client.close_idle();
        Ok(())
    }

    /// A client of the same class and settings, sharing this one's connections (each is
    /// thread-safe; changing one's behaviors leaves the other as it was).
    fn clone<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let cls = slf.get_type();
        let twin = cls.call_method1("__new__", (&cls,))?;
        let state = slf
            .get()
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        twin.cast::<Client>()?.get().set_state(state);
        Ok(twin)
    }

    /// The behaviors as pylibmc's dict (`hash` and `distribution` by name).
    fn get_behaviors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.state()?.settings.behaviors.to_dict(py)
    }

    /// Applies the behaviors in `behaviors` (all or none of them).
    fn set_behaviors(&self, behaviors: &Bound<'_, PyAny>) -> PyResult<()> {
        let settings = self.state()?.settings.with_behaviors(behaviors)?;
        self.set_state(Some(Arc::new(State::new(settings)?)));
        Ok(())
    }

    /// The index of the server that takes `key` (pylibmc's `hash`).
    fn hash(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        let st = self.state()?;
        let key = PyKey::new(key)?;
        st.ring
            .server_for(key.as_bytes())
            .ok_or_else(|| errors::to_py(larder::Error::NoServers("no server".into())))
    }

    /// pylibmc's serialization of `value`: `(bytes, flags)`.
    fn serialize<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyBytes>, u32)> {
        let protocol = self
            .state()
            .map_or(-1, |st| st.settings.behaviors.pickle_protocol());
        let (payload, flags) = values::serialize_native(value, protocol)?;
        let bytes = match payload {
            values::Payload::Py(b) => b,
            values::Payload::Owned(v) => PyBytes::new(value.py(), &v),
        };
        Ok((bytes, flags))
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
        let st = slf.get().state()?;
        let key = PyKey::new(key)?;
        let delta = args::delta(delta)?;
        if let Some(r) = st.policy.check(key.as_bytes())? {
            return Err(r.error(key.as_bytes()));
        }
        let k = key.as_bytes();
        let c = &st.client;
        let got = slf
            .py()
            .detach(|| {
                if decr {
                    c.decr(k, delta)
                } else {
                    c.incr(k, delta)
                }
            })
            .map_err(errors::to_py)?;
        got.ok_or_else(|| {
            NotFound::new_err(format!("key {:?} not found", String::from_utf8_lossy(k)))
        })
    }
}
