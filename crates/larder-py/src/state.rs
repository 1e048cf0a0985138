//! What one configuration makes for a client face ([`State`]: the settings, the larder client
//! of that face, the ring and the key policy) and the slot a Python client object keeps it in
//! ([`Slot`]), replaced whole when behaviors change so each call keeps the state it started
//! with. Also the calls that need no server, so both faces answer them alike.

use std::sync::{Arc, PoisonError, RwLock};

use larder::memcache::ring::Ring;
use larder::memcache::ClientConfig;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::config::Settings;
use crate::errors::{self, Error};
use crate::keys::{KeyPolicy, PyKey};
use crate::values::{self, Codec, Hooks, Payload};

/// A face's larder client, made from a configuration.
pub(crate) type Make<C> = fn(ClientConfig) -> larder::Result<C>;

/// What one configuration makes.
pub(crate) struct State<C> {
    pub(crate) settings: Settings,
    pub(crate) client: C,
    pub(crate) ring: Ring,
    pub(crate) policy: KeyPolicy,
}

impl<C> State<C> {
    fn new(settings: Settings, make: Make<C>) -> PyResult<Self> {
        let config = settings.config()?;
        let ring = config.ring().map_err(errors::to_py)?;
        let client = make(config).map_err(errors::to_py)?;
        Ok(State {
            policy: settings.key_policy(),
            settings,
            client,
            ring,
        })
    }

    /// How the client object `this` (with `hooks`) encodes and decodes values.
    pub(crate) fn codec<'a, 'py>(
        &self,
        this: &'a Bound<'py, PyAny>,
        hooks: Hooks,
    ) -> Codec<'a, 'py> {
        Codec {
            this,
            hooks,
            pickle_protocol: self.settings.behaviors.pickle_protocol(),
        }
    }
}

/// A client object's state: empty until `_configure` runs.
pub(crate) struct Slot<C> {
    state: RwLock<Option<Arc<State<C>>>>,
    make: Make<C>,
}

impl<C> Slot<C> {
    /// An empty slot whose states make their client with `make`.
    pub(crate) fn new(make: Make<C>) -> Self {
        Slot {
            state: RwLock::new(None),
            make,
        }
    }

    /// The current state, or `Error` when the client was never configured.
    pub(crate) fn get(&self) -> PyResult<Arc<State<C>>> {
        self.shared()
            .ok_or_else(|| Error::new_err("client is not configured (__init__ was not run)"))
    }

    /// The current state, if any (a clone shares it).
    pub(crate) fn shared(&self) -> Option<Arc<State<C>>> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `state` in the slot (a clone's, or none).
    pub(crate) fn put(&self, state: Option<Arc<State<C>>>) {
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = state;
    }

    /// Configures the client as pylibmc's constructor does.
    pub(crate) fn configure(
        &self,
        servers: &Bound<'_, PyAny>,
        behaviors: Option<&Bound<'_, PyAny>>,
        binary: bool,
        username: Option<&Bound<'_, PyAny>>,
        password: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let settings = Settings::new(servers, behaviors, binary, username, password)?;
        self.put(Some(Arc::new(State::new(settings, self.make)?)));
        Ok(())
    }

    /// The behaviors as pylibmc's dict (`hash` and `distribution` by name).
    pub(crate) fn behaviors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.get()?.settings.behaviors.to_dict(py)
    }

    /// Applies the behaviors in `behaviors` (all or none of them): a new state, with new
    /// connections; calls already running finish on the old one.
    pub(crate) fn set_behaviors(&self, behaviors: &Bound<'_, PyAny>) -> PyResult<()> {
        let settings = self.get()?.settings.with_behaviors(behaviors)?;
        self.put(Some(Arc::new(State::new(settings, self.make)?)));
        Ok(())
    }

    /// The index of the server that takes `key`.
    pub(crate) fn server_of(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        let st = self.get()?;
        let key = PyKey::new(key)?;
        st.ring
            .server_for(key.as_bytes())
            .ok_or_else(|| errors::to_py(larder::Error::NoServers("no server".into())))
    }

    /// pylibmc's native serialization of `value`, with this client's pickle protocol (the
    /// default one before the client is configured).
    pub(crate) fn serialize<'py>(
        &self,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyBytes>, u32)> {
        let protocol = self
            .shared()
            .map_or(-1, |st| st.settings.behaviors.pickle_protocol());
        let (payload, flags) = values::serialize_native(value, protocol)?;
        let bytes = match payload {
            Payload::Py(b) => b,
            Payload::Owned(v) => PyBytes::new(value.py(), &v),
        };
        Ok((bytes, flags))
    }
}
