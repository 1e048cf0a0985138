//! pylibmc's behaviors: their names, defaults and integer values as pylibmc 1.6.3 (on
//! libmemcached 1.0) reads and writes them, and their translation into a
//! [`larder::memcache::ClientConfig`].
//!
//! Every behavior is either honoured or refused: a value larder cannot honour raises
//! `NotSupportedError` naming the behavior, never a silent no-op. The values pylibmc itself
//! ignores (`ketama_hash` does not move keys in libmemcached 1.0) are accepted as there.

use std::time::Duration;

use larder::memcache::{ClientConfig, Distribution, FailoverConfig, FailoverMode, KeyHash};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString};

use crate::errors::{self, Error};
use crate::servers::Server;

/// Declares the behaviors in pylibmc's order (the order they are applied and listed in) with
/// their defaults.
macro_rules! behaviors {
    ($($id:ident = $name:literal, $default:expr;)*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum B { $($id),* }

        /// Every behavior name, in pylibmc's order (`all_behaviors`).
        pub(crate) const NAMES: &[&str] = &[$($name),*];
        const ALL: &[B] = &[$(B::$id),*];
        const DEFAULTS: &[i64] = &[$($default),*];
    };
}

behaviors! {
    no_block = "no_block", 0;
    tcp_nodelay = "tcp_nodelay", 0;
    tcp_keepalive = "tcp_keepalive", 0;
    hash = "hash", 0;
    ketama_hash = "ketama_hash", 0;
    ketama = "ketama", 0;
    ketama_weighted = "ketama_weighted", 0;
    distribution = "distribution", 0;
    cas = "cas", 0;
    buffer_requests = "buffer_requests", 0;
    verify_keys = "verify_keys", 0;
    connect_timeout = "connect_timeout", 4000;
    send_timeout = "send_timeout", 0;
    receive_timeout = "receive_timeout", 0;
    num_replicas = "num_replicas", 0;
    auto_eject = "auto_eject", 0;
    retry_timeout = "retry_timeout", 2;
    remove_failed = "remove_failed", 5;
    failure_limit = "failure_limit", 5;
    io_msg_watermark = "_io_msg_watermark", 500;
    io_bytes_watermark = "_io_bytes_watermark", 66560;
    io_key_prefetch = "_io_key_prefetch", 0;
    hash_with_prefix_key = "_hash_with_prefix_key", 0;
    noreply = "_noreply", 0;
    sort_hosts = "_sort_hosts", 0;
    poll_timeout = "_poll_timeout", 5000;
    socket_send_size = "_socket_send_size", 0;
    socket_recv_size = "_socket_recv_size", 0;
    dead_timeout = "dead_timeout", 0;
    pickle_protocol = "pickle_protocol", -1;
}

/// pylibmc's callback names (`all_callbacks`), accepted in a behaviors mapping.
pub(crate) const CALLBACKS: &[&str] = &["namespace"];

/// libmemcached's hash names and values (pylibmc's `hashers`).
pub(crate) const HASHERS: &[(&str, i64)] = &[
    ("default", 0),
    ("md5", 1),
    ("crc", 2),
    ("fnv1_64", 3),
    ("fnv1a_64", 4),
    ("fnv1_32", 5),
    ("fnv1a_32", 6),
    ("hsieh", 7),
    ("murmur", 8),
    ("jenkins", 9),
];

/// libmemcached's distribution names and values (pylibmc's `distributions`).
pub(crate) const DISTRIBUTIONS: &[(&str, i64)] = &[
    ("modula", 0),
    ("consistent", 1),
    ("consistent ketama", 2),
    ("random", 3),
    ("consistent ketama spy", 4),
    ("consistent weighted", 5),
    ("virtual bucket", 6),
    ("consistent max", 7),
];

const DIST_MODULA: i64 = 0;
const DIST_CONSISTENT: i64 = 1;
const DIST_KETAMA: i64 = 2;
const DIST_KETAMA_SPY: i64 = 4;
const DIST_WEIGHTED: i64 = 5;
const HASH_DEFAULT: i64 = 0;
const HASH_MD5: i64 = 1;
const HASH_CRC: i64 = 2;

/// The behaviors that are flags: libmemcached stores any true value as 1.
const FLAGS: &[B] = &[
    B::no_block,
    B::tcp_nodelay,
    B::tcp_keepalive,
    B::cas,
    B::buffer_requests,
    B::verify_keys,
    B::auto_eject,
    B::hash_with_prefix_key,
    B::noreply,
    B::sort_hosts,
];

/// Tuning knobs of libmemcached's own buffering with no counterpart in larder: only their
/// defaults are accepted.
const DEFAULT_ONLY: &[B] = &[
    B::io_msg_watermark,
    B::io_bytes_watermark,
    B::io_key_prefetch,
    B::hash_with_prefix_key,
    B::sort_hosts,
    B::socket_send_size,
    B::socket_recv_size,
];

fn name_of(v: i64, table: &[(&'static str, i64)]) -> Option<&'static str> {
    table.iter().find(|(_, x)| *x == v).map(|(n, _)| *n)
}

/// A client's behaviors, as integers (pylibmc's numeric form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Behaviors {
    values: Vec<i64>,
}

impl Default for Behaviors {
    fn default() -> Self {
        Behaviors {
            values: DEFAULTS.to_vec(),
        }
    }
}

impl Behaviors {
    fn raw(&self, b: B) -> i64 {
        self.values[b as usize]
    }

    fn put(&mut self, b: B, v: i64) {
        self.values[b as usize] = v;
    }

    /// A behavior's value as pylibmc reads it back (`ketama`, `ketama_weighted` and
    /// `remove_failed` are views of other settings, as in libmemcached).
    fn read(&self, b: B) -> i64 {
        let dist = self.raw(B::distribution);
        match b {
            B::ketama => i64::from(matches!(
                dist,
                DIST_CONSISTENT | DIST_KETAMA | DIST_KETAMA_SPY | DIST_WEIGHTED
            )),
            B::ketama_weighted => i64::from(dist == DIST_WEIGHTED),
            B::remove_failed => self.raw(B::failure_limit),
            // libmemcached 1.0 reads the continuum hash back as the key hash.
            B::ketama_hash => self.raw(B::hash),
            other => self.raw(other),
        }
    }

    /// Whether `gets` and `cas` are allowed (pylibmc refuses them without the `cas` behavior).
    pub(crate) fn cas(&self) -> bool {
        self.raw(B::cas) != 0
    }

    /// Whether keys are checked as libmemcached's `verify_keys` does.
    pub(crate) fn verify_keys(&self) -> bool {
        self.raw(B::verify_keys) != 0
    }

    /// The protocol values that are pickled with.
    pub(crate) fn pickle_protocol(&self) -> i64 {
        self.raw(B::pickle_protocol)
    }

    /// These behaviors with `mapping` applied (names in pylibmc's order, as pylibmc applies
    /// them): `ValueError` for an unknown name, `TypeError` for a value that is not an int,
    /// `KeyError` for an unknown hash or distribution name, `Error` for a value libmemcached
    /// rejects.
    pub(crate) fn updated(&self, mapping: &Bound<'_, PyAny>) -> PyResult<Behaviors> {
        let items = mapping_items(mapping)?;
        let mut unknown: Vec<String> = Vec::new();
        let mut given: Vec<Option<Bound<'_, PyAny>>> = vec![None; NAMES.len()];
        let mut alias = None;
        for (key, value) in items {
            let name = match key.cast::<PyString>() {
                Ok(s) => s.to_cow()?.into_owned(),
                Err(_) => {
                    unknown.push(key.str()?.to_cow()?.into_owned());
                    continue;
                }
            };
            if let Some(i) = NAMES.iter().position(|n| *n == name) {
                given[i] = Some(value);
            } else if name == "_retry_timeout" {
                alias = Some(value);
            } else if CALLBACKS.contains(&name.as_str()) {
                return Err(errors::unsupported(format!(
                    "the {name:?} callback (a key prefix hashed apart from the key) is not \
                     supported; prefix keys yourself"
                )));
            } else {
                unknown.push(name);
            }
        }
        if !unknown.is_empty() {
            unknown.sort();
            return Err(PyValueError::new_err(format!(
                "unknown behavior names: {}",
                unknown.join(", ")
            )));
        }
        let retry = B::retry_timeout as usize;
        if given[retry].is_none() {
            given[retry] = alias;
        }
        let mut next = self.clone();
        for (&b, value) in ALL.iter().zip(given) {
            if let Some(value) = value {
                next.apply(b, &value)?;
            }
        }
        Ok(next)
    }

    /// Sets one behavior as libmemcached does.
    fn apply(&mut self, b: B, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = NAMES[b as usize];
        // pylibmc's Python layer turns `hash` and `distribution` names into numbers (any
        // other value but None is a `KeyError` there); a `ketama_hash` name too, but an
        // unknown one reaches its C layer, which wants an int (a `TypeError`).
        let value = match (b, value.cast::<PyString>()) {
            (B::ketama_hash, Ok(s)) => {
                let hash = s.to_cow()?;
                symbol(name, &hash, HASHERS).map_err(|_| {
                    PyTypeError::new_err(format!(
                        "{name} must be an int or a hash name, not {hash:?}"
                    ))
                })?
            }
            (B::hash, Ok(s)) => symbol(name, &s.to_cow()?, HASHERS)?,
            (B::distribution, Ok(s)) => symbol(name, &s.to_cow()?, DISTRIBUTIONS)?,
            (B::hash | B::distribution, Err(_)) if !value.is_none() => {
                return Err(PyKeyError::new_err(format!(
                    "{name} must be given by name, not {}",
                    value.get_type().name()?
                )))
            }
            _ => int_value(name, value)?,
        };
        let invalid = || Error::new_err(format!("invalid value {value} for behavior {name:?}"));
        match b {
            _ if FLAGS.contains(&b) => self.put(b, i64::from(value != 0)),
            B::ketama => self.put(
                B::distribution,
                if value != 0 { DIST_KETAMA } else { DIST_MODULA },
            ),
            B::ketama_weighted if value != 0 => {
                self.put(B::hash, HASH_MD5);
                self.put(B::distribution, DIST_WEIGHTED);
            }
            B::ketama_weighted => self.put(B::distribution, DIST_KETAMA),
            // libmemcached 1.0 accepts a continuum hash but places keys as before.
            B::ketama_hash => {}
            B::distribution if name_of(value, DISTRIBUTIONS).is_none() || value == 7 => {
                return Err(invalid())
            }
            B::remove_failed | B::failure_limit if value <= 0 => return Err(invalid()),
            B::remove_failed => {
                self.put(B::failure_limit, value);
                self.put(B::auto_eject, 1);
            }
            _ => self.put(b, value),
        }
        Ok(())
    }

    /// pylibmc's `behaviors` dict: every behavior, `hash` and `distribution` by name.
    pub(crate) fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for &b in ALL {
            let name = NAMES[b as usize];
            let v = self.read(b);
            match b {
                B::hash => d.set_item(name, name_of(v, HASHERS).unwrap_or("default"))?,
                B::distribution => {
                    d.set_item(name, name_of(v, DISTRIBUTIONS).unwrap_or("modula"))?
                }
                _ => d.set_item(name, v)?,
            }
        }
        Ok(d)
    }

    /// The larder configuration for `servers` under these behaviors, or `NotSupportedError`
    /// naming the first behavior larder cannot honour.
    pub(crate) fn client_config(&self, servers: &[Server], binary: bool) -> PyResult<ClientConfig> {
        let refuse = |b: B, why: &str| {
            errors::unsupported(format!(
                "behavior {:?} = {} is not supported: {why}",
                NAMES[b as usize],
                self.read(b)
            ))
        };
        for &b in DEFAULT_ONLY {
            if self.raw(b) != DEFAULTS[b as usize] {
                return Err(refuse(
                    b,
                    "larder has no such tuning knob (only the default is accepted)",
                ));
            }
        }
        for (b, why) in [
            (B::tcp_keepalive, "larder does not set SO_KEEPALIVE"),
            (
                B::buffer_requests,
                "larder sends every write when it is made",
            ),
            (B::noreply, "larder waits for every reply"),
            (B::num_replicas, "larder does not replicate writes"),
        ] {
            if self.raw(b) != 0 {
                return Err(refuse(b, why));
            }
        }
        if binary && self.verify_keys() {
            return Err(Error::new_err(
                "behavior \"verify_keys\" cannot be set with binary=True (libmemcached refuses it too)",
            ));
        }
        let single = servers.len() == 1;
        let key_hash = match self.raw(B::hash) {
            HASH_DEFAULT => KeyHash::OneAtATime,
            HASH_MD5 => KeyHash::Md5,
            HASH_CRC => KeyHash::Crc,
            // One server takes every key: libmemcached hashes nothing then.
            _ if single => KeyHash::OneAtATime,
            _ => {
                return Err(refuse(
                    B::hash,
                    "larder's key hashes are default, md5 and crc",
                ))
            }
        };
        let weighted = servers.iter().any(|s| s.weight > 1);
        let distribution = match self.raw(B::distribution) {
            DIST_MODULA => Distribution::Modula,
            DIST_CONSISTENT | DIST_KETAMA => Distribution::Ketama,
            DIST_WEIGHTED if key_hash == KeyHash::Md5 => Distribution::KetamaWeighted,
            // Weighted points with the configured key hash: larder's ketama with weights.
            DIST_WEIGHTED if weighted => Distribution::Ketama,
            _ if single => Distribution::Modula,
            DIST_WEIGHTED => {
                return Err(refuse(
                    B::distribution,
                    "weighted ketama with equal weights needs hash md5 (set ketama_weighted)",
                ))
            }
            _ => {
                return Err(refuse(
                    B::distribution,
                    "larder places keys by modula or ketama",
                ))
            }
        };
        let ms = |b: B| -> PyResult<Duration> {
            match u64::try_from(self.raw(b)) {
                Ok(v) if v > 0 => Ok(Duration::from_millis(v)),
                _ => Err(refuse(b, "larder needs a bound of at least 1 ms")),
            }
        };
        let connect = ms(B::connect_timeout)?;
        let poll = ms(B::poll_timeout)?;
        // libmemcached waits on its sockets with poll(), so `_poll_timeout` bounds every
        // wait; the socket timeouts (microseconds, 0 = unset) can only make it shorter.
        let io = |b: B| -> PyResult<Duration> {
            match u64::try_from(self.raw(b)) {
                Ok(0) => Ok(poll),
                Ok(us) => Ok(Duration::from_micros(us).min(poll)),
                Err(_) => Err(refuse(b, "a timeout cannot be negative")),
            }
        };
        let (read, write) = (io(B::receive_timeout)?, io(B::send_timeout)?);
        let secs = |b: B| -> PyResult<Duration> {
            match u64::try_from(self.raw(b)) {
                Ok(s) => Ok(Duration::from_secs(s)),
                Err(_) => Err(refuse(b, "a retry time cannot be negative")),
            }
        };
        let (retry, dead) = (secs(B::retry_timeout)?, secs(B::dead_timeout)?);
        let failover = if self.raw(B::auto_eject) != 0 {
            // remove_failed: after `failure_limit` failures the server leaves the ring
            // until `dead_timeout` (or `retry_timeout`) passes.
            FailoverConfig::default()
                .failure_limit(u32::try_from(self.raw(B::failure_limit)).unwrap_or(u32::MAX))
                .retry_interval(if dead.is_zero() { retry } else { dead })
                .mode(FailoverMode::Rehash)
        } else {
            // libmemcached without auto-eject: one failure disables the server (calls fail
            // at once, `ServerDown`) until `retry_timeout` passes; its keys never move.
            FailoverConfig::default()
                .failure_limit(1)
                .retry_interval(retry)
                .mode(FailoverMode::FailFast)
        };
        let weights = if weighted {
            servers.iter().map(|s| s.weight).collect()
        } else {
            Vec::new()
        };
        Ok(
            ClientConfig::new(servers.iter().map(|s| s.addr.clone()).collect())
                .distribution(distribution)
                .key_hash(key_hash)
                .failover(failover)
                .weights(weights)
                .connect_timeout(connect)
                .read_timeout(read)
                .write_timeout(write)
                // pylibmc bounds each wait, not a whole call: the call's bound is all three.
                .operation_timeout(connect + read + write)
                .nodelay(self.raw(B::tcp_nodelay) != 0),
        )
    }
}

/// The `(name, value)` pairs of a dict or any mapping.
fn mapping_items<'py>(
    mapping: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    if let Ok(d) = mapping.cast::<PyDict>() {
        return Ok(d.iter().collect());
    }
    let items = mapping
        .call_method0("items")
        .map_err(|_| PyTypeError::new_err("behaviors must be a mapping"))?;
    let list = PyList::new(
        mapping.py(),
        items.try_iter()?.collect::<PyResult<Vec<_>>>()?,
    )?;
    list.iter().map(|pair| pair.extract()).collect()
}

fn symbol(behavior: &str, name: &str, table: &[(&str, i64)]) -> PyResult<i64> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            PyKeyError::new_err(format!(
                "unknown {behavior} {name:?} (one of: {})",
                known.join(", ")
            ))
        })
}

fn int_value(name: &str, value: &Bound<'_, PyAny>) -> PyResult<i64> {
    if !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyBool>()) {
        return Err(PyTypeError::new_err(format!(
            "behavior {name} must be int, not {}",
            value.get_type().name()?
        )));
    }
    value.extract()
}
