//! Server lists as pylibmc takes them: `"host"`, `"host:port"`, `"host:port:weight"`,
//! `"[v6]:port[:weight]"`, a Unix socket path (`"/..."`), a `(type, host, port)` tuple, or
//! bytes holding libmemcached's comma-separated list. UDP (`"udp:..."`) is refused: larder
//! speaks TCP and Unix sockets only.

use larder::memcache::ServerAddr;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::errors::{self, Error};

/// pylibmc's server type codes (`server_type_tcp`, `_udp`, `_unix`).
pub(crate) const TYPE_TCP: u8 = 1;
pub(crate) const TYPE_UDP: u8 = 2;
pub(crate) const TYPE_UNIX: u8 = 4;

/// One configured server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) addr: ServerAddr,
    pub(crate) weight: u32,
}

impl Server {
    /// pylibmc's name of the server in `get_stats`: `host:port`, a Unix socket `path:0`.
    pub(crate) fn stats_name(&self) -> String {
        match &self.addr {
            ServerAddr::Tcp { host, port } => format!("{host}:{port}"),
            ServerAddr::Unix(path) => format!("{path}:0"),
        }
    }
}

/// The servers of `servers` (any iterable of specs); `Error` when there are none.
pub(crate) fn parse(servers: &Bound<'_, PyAny>) -> PyResult<Vec<Server>> {
    if servers.is_instance_of::<PyString>() {
        return Err(PyValueError::new_err(
            "servers must be a list of server specs, not a str",
        ));
    }
    let mut out = Vec::new();
    let mut kind = None;
    for spec in servers.try_iter()? {
        let spec = spec?;
        for (server, unix) in parse_one(&spec)? {
            if kind.is_some_and(|k| k != unix) {
                return Err(PyValueError::new_err("can't mix transport types"));
            }
            kind = Some(unix);
            out.push(server);
        }
    }
    if out.is_empty() {
        return Err(Error::new_err("empty server list"));
    }
    Ok(out)
}

/// One spec: its servers (bytes may hold several), each with whether it is a Unix socket.
fn parse_one(spec: &Bound<'_, PyAny>) -> PyResult<Vec<(Server, bool)>> {
    if let Ok(b) = spec.cast::<PyBytes>() {
        let text = std::str::from_utf8(b.as_bytes())
            .map_err(|_| PyValueError::new_err("server list is not UTF-8"))?;
        return ServerAddr::parse_list(text)
            .map_err(errors::to_py)?
            .into_iter()
            .map(|(addr, weight)| {
                let unix = matches!(addr, ServerAddr::Unix(_));
                Ok((Server { addr, weight }, unix))
            })
            .collect();
    }
    if let Ok(t) = spec.cast::<PyTuple>() {
        return tuple_spec(t).map(|s| vec![s]);
    }
    let text: String = spec.extract().map_err(|_| {
        let kind = spec
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string());
        PyValueError::new_err(format!(
            "bad server spec of type {kind}: expected str, bytes or tuple"
        ))
    })?;
    text_spec(&text).map(|s| vec![s])
}

/// `(type, host, port[, weight])`, pylibmc's internal form.
fn tuple_spec(t: &Bound<'_, PyTuple>) -> PyResult<(Server, bool)> {
    if !(3..=4).contains(&t.len()) {
        return Err(PyValueError::new_err(
            "a server tuple is (type, host, port) or (type, host, port, weight)",
        ));
    }
    let kind: u8 = t.get_item(0)?.extract()?;
    let host: String = t.get_item(1)?.extract()?;
    let port: u16 = t.get_item(2)?.extract()?;
    let weight: u16 = if t.len() == 4 {
        t.get_item(3)?.extract()?
    } else {
        1
    };
    let addr = match kind {
        TYPE_TCP => ServerAddr::Tcp { host, port },
        TYPE_UNIX if port != 0 => {
            return Err(PyValueError::new_err("can't set port on unix sockets"))
        }
        TYPE_UNIX => ServerAddr::Unix(host),
        TYPE_UDP => return Err(udp()),
        other => return Err(PyValueError::new_err(format!("bad type: {other}"))),
    };
    server(addr, u32::from(weight))
}

fn udp() -> PyErr {
    errors::unsupported("UDP servers are not supported: larder speaks TCP and Unix sockets")
}

/// A text spec, read as pylibmc's `translate_server_spec` reads it.
fn text_spec(spec: &str) -> PyResult<(Server, bool)> {
    if spec.starts_with('/') {
        return server(ServerAddr::Unix(spec.to_owned()), 1);
    }
    if spec.starts_with("udp:") {
        return Err(udp());
    }
    let bad = |why: &str| PyValueError::new_err(format!("bad server spec {spec:?}: {why}"));
    let (host, rest) = if let Some(inner) = spec.strip_prefix('[') {
        match inner.split_once(']') {
            None => return Err(bad("missing ']'")),
            Some((host, "")) => (host, None),
            Some((host, tail)) => match tail.strip_prefix(':') {
                Some(rest) => (host, Some(rest)),
                None => return Err(bad("expected ':' after ']'")),
            },
        }
    } else {
        match spec.split_once(':') {
            Some((host, rest)) => (host, Some(rest)),
            None => (spec, None),
        }
    };
    let (port, weight) = match rest {
        None => (11211, 1),
        Some(rest) => {
            let (port, weight) = match rest.split_once(':') {
                Some((p, w)) => (p, Some(w)),
                None => (rest, None),
            };
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number 0-65535"))?;
            let weight = match weight {
                None => 1,
                Some(w) => w
                    .parse::<u16>()
                    .map_err(|_| bad("the weight is not a number 0-65535"))?,
            };
            (port, weight)
        }
    };
    let addr = ServerAddr::Tcp {
        host: host.to_owned(),
        port,
    };
    server(addr, u32::from(weight))
}

fn server(addr: ServerAddr, weight: u32) -> PyResult<(Server, bool)> {
    if weight == 0 {
        return Err(PyValueError::new_err(format!(
            "server {addr} has weight 0 (weights start at 1)"
        )));
    }
    let unix = matches!(addr, ServerAddr::Unix(_));
    Ok((Server { addr, weight }, unix))
}
