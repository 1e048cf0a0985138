//! The one error type of larder.
//!
//! Every fallible operation in the crate returns [`Result<T>`]. Variants say what went wrong
//! in words a reader of a log line can act on (`key too long: 312 bytes, limit 250`), and
//! carry the underlying cause where there is one.

use std::time::Duration;

/// A boxed error from outside larder (a pool manager, a creator function, a codec library).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for `std::result::Result<T, larder::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in larder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket or file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// An operation did not finish within its bound; the text says which operation.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What was being waited for (`read from 127.0.0.1:11211`, `lock foo`, ...).
        what: String,
        /// The bound that was exceeded.
        after: Duration,
    },

    /// A key breaks a rule of the backend; the message names the key and the rule.
    #[error("invalid key {key:?}: {rule}")]
    KeyInvalid {
        /// The offending key, lossily printed when it is not UTF-8.
        key: String,
        /// The rule it breaks.
        rule: KeyRule,
    },

    /// A value is larger than the backend accepts.
    #[error("value too large: {size} bytes, {}", value_limit(.limit))]
    ValueTooLarge {
        /// The encoded size of the value.
        size: usize,
        /// The largest value the backend takes in its place (for memcached: under this key
        /// and flags, the item header, key and CAS taking the rest of the item limit), or
        /// `None` when the server refused the value without saying its limit.
        limit: Option<usize>,
    },

    /// `incr`/`decr` met a value that is not an unsigned decimal integer.
    #[error("value of key {key:?} is not an unsigned integer")]
    NotANumber {
        /// The key whose value could not be counted.
        key: String,
    },

    /// The server answered `SERVER_ERROR <text>`.
    #[error("server error: {0}")]
    Server(String),

    /// The server answered `CLIENT_ERROR <text>` (it thinks we sent something malformed).
    #[error("server rejected the request: {0}")]
    Client(String),

    /// A reply did not follow the protocol; the connection it came from is dropped.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// No server is configured or alive for the key.
    #[error("no server available: {0}")]
    NoServers(String),

    /// A server was marked dead and the call failed fast without touching the network.
    #[error("server {0} is marked dead")]
    ServerDead(String),

    /// Encoding or decoding a value failed.
    #[error("codec error: {0}")]
    Codec(String),

    /// A pool could not hand out an object within its wait timeout.
    #[error("pool {pool:?} exhausted: no object free within {waited:?}")]
    PoolTimeout {
        /// The pool's name.
        pool: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// A pool's manager failed to create (or recycle) an object.
    #[error("pool {pool:?} could not create an object: {source}")]
    PoolCreate {
        /// The pool's name.
        pool: String,
        /// The manager's error.
        #[source]
        source: BoxError,
    },

    /// A pool or proxy was used after being closed, or a proxy before it was set.
    #[error("{0}")]
    Unavailable(String),

    /// An operation named a namespace that is not configured.
    #[error("unknown namespace {0:?}")]
    UnknownNamespace(String),

    /// A lock could not be acquired within its bound.
    #[error("lock {key:?} not acquired within {waited:?}")]
    LockTimeout {
        /// The lock's key.
        key: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// A user-supplied function (a creator, a weigher, a hook) failed.
    #[error("{0}")]
    User(BoxError),

    /// The configuration is inconsistent (bad address, zero pool size, ...).
    #[error("configuration error: {0}")]
    Config(String),

    /// The backend does not support this operation.
    #[error("unsupported operation: {0}")]
    Unsupported(String),

    /// Code larder ran for the caller (a pool's manager or hook, a lock task) panicked. The
    /// panic was caught: whatever it was working on was dropped and the pool or region goes
    /// on serving.
    #[error("{what} panicked: {message}")]
    Panicked {
        /// What panicked (`pool "db": Manager::create`, ...).
        what: String,
        /// The panic's message (`<no message>` when it was not text).
        message: String,
    },

    /// A task larder ran on the async runtime ended without a result: it was cancelled,
    /// as happens when the runtime shuts down. (A task that panicked is
    /// [`Error::Panicked`].)
    #[error("{what} did not finish: {reason}")]
    TaskFailed {
        /// The task (`the cross-process lock of region "users"`, ...).
        what: String,
        /// Why it has no result.
        reason: String,
    },
}

fn value_limit(limit: &Option<usize>) -> String {
    match limit {
        Some(limit) => format!("limit {limit}"),
        None => "refused by the server".to_owned(),
    }
}

/// The rule a key broke (see [`crate::keys::validate_key`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRule {
    /// The key is empty.
    #[error("key is empty")]
    Empty,
    /// The key is longer than the limit.
    #[error("key too long: {len} bytes, limit {limit}")]
    TooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The key holds a space or a control byte at a position.
    #[error("key holds byte 0x{byte:02x} at offset {offset} (no space or control bytes allowed)")]
    ForbiddenByte {
        /// The forbidden byte.
        byte: u8,
        /// Where it is.
        offset: usize,
    },
}

impl Error {
    /// True when the error came from the transport or the server's health (I/O, timeout,
    /// protocol, dead server) rather than from the request itself; such errors count towards
    /// marking a server dead and drop the connection they happened on.
    pub fn is_transport(&self) -> bool {
        match self {
            Error::Io(_) | Error::Timeout { .. } | Error::Protocol(_) | Error::ServerDead(_) => {
                true
            }
            // A pool that could not connect: transport when the manager's error was.
            Error::PoolCreate { source, .. } => source
                .downcast_ref::<Error>()
                .is_some_and(Error::is_transport),
            _ => false,
        }
    }

    /// Wraps any error from user code (a creator, a weigher) as [`Error::User`].
    pub fn user<E: Into<BoxError>>(err: E) -> Self {
        Error::User(err.into())
    }

    /// [`Error::Panicked`] for a panic caught while running `what`, with the panic's text.
    pub(crate) fn panicked(what: impl Into<String>, payload: &(dyn std::any::Any + Send)) -> Self {
        let message = if let Some(text) = payload.downcast_ref::<&'static str>() {
            (*text).to_owned()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "<no message>".to_owned()
        };
        Error::Panicked {
            what: what.into(),
            message,
        }
    }

    /// The error of a spawned task `what` that ended without a result: [`Error::Panicked`]
    /// when it panicked, else [`Error::TaskFailed`] (it was cancelled).
    #[cfg(feature = "tokio")]
    pub(crate) fn from_join(what: impl Into<String>, err: tokio::task::JoinError) -> Self {
        match err.try_into_panic() {
            Ok(payload) => Error::panicked(what, &*payload),
            Err(err) => Error::TaskFailed {
                what: what.into(),
                reason: if err.is_cancelled() {
                    "cancelled before it finished (the runtime is shutting down)".to_owned()
                } else {
                    err.to_string()
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "tokio")]
    #[test]
    fn a_panicked_task_is_panicked_and_a_cancelled_one_failed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Its message is printed by the default panic hook: the test expects it.
        let panicked = rt.block_on(async {
            tokio::task::spawn_blocking(|| -> u8 { panic!("bad input {} (expected)", 7) }).await
        });
        let err = Error::from_join("the probe task", panicked.unwrap_err());
        assert!(
            matches!(&err, Error::Panicked { what, message }
                if what == "the probe task" && message == "bad input 7 (expected)"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the probe task panicked: bad input 7 (expected)"
        );

        let cancelled = rt.block_on(async {
            let task = tokio::spawn(std::future::pending::<()>());
            task.abort();
            task.await
        });
        let err = Error::from_join("the probe task", cancelled.unwrap_err());
        assert!(
            matches!(&err, Error::TaskFailed { what, reason }
                if what == "the probe task" && reason.contains("cancelled")),
            "{err:?}"
        );
        assert!(!err.is_transport());
    }

    #[test]
    fn a_panic_without_text_still_names_what_panicked() {
        let err = Error::panicked("pool \"p\": Manager::create", &42_u32);
        assert_eq!(
            err.to_string(),
            "pool \"p\": Manager::create panicked: <no message>"
        );
    }
}
