//! A client's settings as pylibmc's constructor takes them (servers, behaviors, `binary`,
//! `username`/`password`), shared by every client face, and what they make: the larder
//! configuration and the key policy.

use larder::memcache::ClientConfig;
use pyo3::prelude::*;

use crate::behaviors::Behaviors;
use crate::errors;
use crate::keys::KeyPolicy;
use crate::servers::{self, Server};

/// What a client was made with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) servers: Vec<Server>,
    pub(crate) behaviors: Behaviors,
    pub(crate) binary: bool,
}

impl Settings {
    /// pylibmc's constructor arguments, checked. SASL is refused: larder cannot
    /// authenticate yet, and ignoring the credentials would hide that.
    pub(crate) fn new(
        servers: &Bound<'_, PyAny>,
        behaviors: Option<&Bound<'_, PyAny>>,
        binary: bool,
        username: Option<&Bound<'_, PyAny>>,
        password: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let given = |o: Option<&Bound<'_, PyAny>>| o.is_some_and(|o| !o.is_none());
        if given(username) || given(password) {
            return Err(errors::unsupported(
                "SASL authentication (username/password) is not supported by larder yet",
            ));
        }
        let servers = servers::parse(servers)?;
        let behaviors = match behaviors {
            Some(b) if !b.is_none() => Behaviors::default().updated(b)?,
            _ => Behaviors::default(),
        };
        let settings = Settings {
            servers,
            behaviors,
            binary,
        };
        settings.config()?;
        Ok(settings)
    }

    /// These settings with `mapping`'s behaviors applied (checked as a whole: on an error
    /// nothing changes).
    pub(crate) fn with_behaviors(&self, mapping: &Bound<'_, PyAny>) -> PyResult<Self> {
        let next = Settings {
            behaviors: self.behaviors.updated(mapping)?,
            ..self.clone()
        };
        next.config()?;
        Ok(next)
    }

    /// The larder configuration.
    pub(crate) fn config(&self) -> PyResult<ClientConfig> {
        self.behaviors.client_config(&self.servers, self.binary)
    }

    /// Which keys are sent.
    pub(crate) fn key_policy(&self) -> KeyPolicy {
        KeyPolicy {
            binary: self.binary,
            verify: self.behaviors.verify_keys(),
        }
    }
}
