//! `larder._larder`: the Rust half of the `larder` Python package, a pylibmc-compatible
//! memcached client on larder's core. The Python half (`python/larder`) adds what is plainer
//! in Python: the mapping protocol, the behaviors dict, the pools.
//!
//! Modules, by concern: `errors` (the exception hierarchy and the one mapping from
//! `larder::Error`), `values` (pylibmc's value encoding), `keys` (key rules), `servers` and
//! `behaviors` (pylibmc's settings) with `config` (what they make), `args` (shared argument
//! rules), `state` (what a configuration makes), `calls` and `multi` (each method's Python
//! side), then the faces: `client` (blocking) and `async_client` (asyncio, on tokio). Every
//! face builds on the shared modules and does only its own I/O, so they agree by
//! construction.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

mod args;
mod async_client;
mod behaviors;
mod calls;
mod client;
mod config;
mod errors;
mod get_keys;
mod keys;
mod multi;
mod servers;
mod state;
mod values;

#[pymodule(gil_used = false)]
fn _larder(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<client::Client>()?;
    m.add_class::<async_client::AsyncClient>()?;
    let table = |pairs: &[(&str, i64)]| -> PyResult<Bound<'_, PyDict>> {
        let d = PyDict::new(py);
        for (name, value) in pairs {
            d.set_item(name, value)?;
        }
        Ok(d)
    };
    m.add("hashers", table(behaviors::HASHERS)?)?;
    m.add("distributions", table(behaviors::DISTRIBUTIONS)?)?;
    m.add("all_behaviors", PyList::new(py, behaviors::NAMES)?)?;
    m.add("all_callbacks", PyList::new(py, behaviors::CALLBACKS)?)?;
    m.add("server_type_tcp", servers::TYPE_TCP)?;
    m.add("server_type_udp", servers::TYPE_UDP)?;
    m.add("server_type_unix", servers::TYPE_UNIX)?;
    m.add("support_sasl", false)?;
    m.add("support_compression", true)?;
    Ok(())
}
