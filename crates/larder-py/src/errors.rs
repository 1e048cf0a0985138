//! The exception hierarchy: `larder.Error` and pylibmc 1.6.3's exception names, each a direct
//! subclass of `Error` (with pylibmc's `retcode` class attribute), and the one mapping from
//! [`larder::Error`] to them. Every client face (blocking, asyncio, dogpile) raises through
//! [`to_py`], so an error means the same thing wherever it comes from.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::PyTypeInfo;

create_exception!(
    larder,
    Error,
    PyException,
    "Base class of every error larder raises (pylibmc's `Error`)."
);
create_exception!(
    larder,
    CacheMiss,
    Error,
    "Raised by a `deserialize` override to make a read a miss."
);

/// Declares pylibmc's exceptions, in pylibmc's order, with their libmemcached return codes.
macro_rules! pylibmc_exceptions {
    ($($name:ident = $rc:expr, $doc:expr;)*) => {
        $(create_exception!(larder, $name, Error, $doc);)*

        /// Every exception with its return code, in pylibmc's order (after `Error`, `CacheMiss`).
        fn coded(py: Python<'_>) -> Vec<(&'static str, Bound<'_, pyo3::types::PyType>, i64)> {
            vec![$((stringify!($name), $name::type_object(py), $rc)),*]
        }
    };
}

pylibmc_exceptions! {
    Failure = 1, "A memcached operation failed.";
    HostLookupError = 2, "A server's host name could not be resolved.";
    ConnectionError = 3, "A server could not be reached or the connection broke.";
    ConnectionBindError = 4, "A socket could not be bound.";
    WriteError = 5, "Writing to a server failed.";
    ReadError = 6, "Reading from a server failed.";
    UnknownReadFailure = 7, "A read failed in an unknown way.";
    ProtocolError = 8, "A server's reply did not follow the protocol.";
    ClientError = 9, "The server rejected the request (`CLIENT_ERROR`).";
    ServerError = 10, "The server failed the request (`SERVER_ERROR`).";
    SocketCreateError = 11, "A socket could not be created.";
    DataExists = 12, "The item exists (CAS mismatch).";
    DataDoesNotExist = 13, "The item does not exist.";
    NotFound = 16, "The key was not found.";
    AllocationError = 17, "Memory could not be allocated.";
    SomeErrors = 19, "Some servers failed a call made on all of them.";
    NoServers = 20, "No server is configured or alive.";
    UnixSocketError = 27, "A Unix socket failed.";
    NotSupportedError = 28, "larder does not support this operation or setting.";
    FetchNotFinished = 30, "A fetch was not finished.";
    BadKeyProvided = 33, "A key breaks memcached's key rules.";
    InvalidHostProtocolError = 34, "A server spec names an unknown protocol.";
    ServerDead = 35, "A server is marked dead.";
    ServerDown = 47, "A server failed and is left alone until its retry time.";
    TooBig = 37, "A value is larger than the server's item size limit.";
    UnknownStatKey = 36, "An unknown stats key was asked for.";
}

/// Adds the exceptions to the module, with `exceptions` (pylibmc's list of `(name, class)`)
/// and `MemcachedError` (pylibmc's old name of `Error`).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let all = PyList::empty(py);
    for (name, ty) in [
        ("Error", Error::type_object(py)),
        ("CacheMiss", CacheMiss::type_object(py)),
    ] {
        m.add(name, &ty)?;
        all.append(PyTuple::new(
            py,
            [name.into_pyobject(py)?.into_any(), ty.into_any()],
        )?)?;
    }
    for (name, ty, rc) in coded(py) {
        ty.setattr("retcode", rc)?;
        m.add(name, &ty)?;
        all.append(PyTuple::new(
            py,
            [name.into_pyobject(py)?.into_any(), ty.into_any()],
        )?)?;
    }
    m.add("MemcachedError", Error::type_object(py))?;
    m.add("exceptions", all)?;
    Ok(())
}

/// The Python exception for a larder error, with larder's message.
pub(crate) fn to_py(err: larder::Error) -> PyErr {
    to_py_prefixed(err, "")
}

/// [`to_py`] with `prefix` before larder's message (a multi-key call naming how many keys
/// failed).
pub(crate) fn to_py_prefixed(err: larder::Error, prefix: &str) -> PyErr {
    use larder::Error as E;
    let msg = format!("{prefix}{err}");
    match err {
        E::Io(_) | E::PoolCreate { .. } => ConnectionError::new_err(msg),
        E::KeyInvalid { .. } => BadKeyProvided::new_err(msg),
        E::ValueTooLarge { .. } => TooBig::new_err(msg),
        E::NotANumber { .. } | E::Client(_) => ClientError::new_err(msg),
        E::Server(_) => ServerError::new_err(msg),
        E::Protocol(_) => ProtocolError::new_err(msg),
        E::NoServers(_) => NoServers::new_err(msg),
        // libmemcached's "disabled until timed retry": the call failed fast, no network.
        E::ServerDead(_) => ServerDown::new_err(msg),
        E::Unsupported(_) => NotSupportedError::new_err(msg),
        // A timeout is libmemcached's MEMCACHED_TIMEOUT, which pylibmc raises as `Error`.
        _ => Error::new_err(msg),
    }
}

/// `NotSupportedError` for something pylibmc does that larder cannot (never a silent no-op).
pub(crate) fn unsupported(what: impl Into<String>) -> PyErr {
    NotSupportedError::new_err(what.into())
}
