//! The replies the parser produces, and how an error reply becomes a typed [`Error`].

use crate::Error;

/// The status code of a meta reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaStatus {
    /// `HD`: success, no value.
    Hd,
    /// `VA`: success with a value.
    Va,
    /// `EN`: miss.
    En,
    /// `NS`: not stored.
    Ns,
    /// `EX`: CAS mismatch (exists).
    Ex,
    /// `NF`: not found.
    Nf,
    /// `MN`: the no-op marking the end of a batch.
    Mn,
}

/// A meta reply: its status, the flags it returned, and its value for `VA`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaReply {
    /// The status (`None` only in a default-constructed reply).
    pub status: Option<MetaStatus>,
    /// The value of a `VA` reply.
    pub value: Option<Vec<u8>>,
    /// `c`: the CAS value.
    pub cas: Option<u64>,
    /// `f`: the client flags.
    pub client_flags: Option<u32>,
    /// `t`: the remaining TTL in seconds (-1 = never expires).
    pub ttl: Option<i64>,
    /// `k`: the echoed key token.
    pub key: Option<Vec<u8>>,
    /// `b`: the echoed key is base64.
    pub key_base64: bool,
    /// `O`: the echoed opaque token (larder sends only 32-bit numbers).
    pub opaque: Option<u32>,
    /// `W`: this client won the right to (re)create the value.
    pub win: bool,
    /// `X`: the item is stale.
    pub stale: bool,
    /// `Z`: another client already holds the win token.
    pub win_elsewhere: bool,
}

/// One item of a text retrieval reply (`VALUE <key> <flags> <bytes> [<cas>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextValue {
    /// The key.
    pub key: Vec<u8>,
    /// The client flags.
    pub client_flags: u32,
    /// The CAS value (`gets`/`gats` only).
    pub cas: Option<u64>,
    /// The value bytes.
    pub data: Vec<u8>,
}

/// One item of a text retrieval reply, borrowed from the bytes it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The client flags.
    pub flags: u32,
    /// The CAS value (`gets`/`gats` only).
    pub cas: Option<u64>,
    /// The value bytes.
    pub data: &'a [u8],
}

impl ItemRef<'_> {
    /// An owned copy.
    pub fn to_text_value(&self) -> TextValue {
        TextValue {
            key: self.key.to_vec(),
            client_flags: self.flags,
            cas: self.cas,
            data: self.data.to_vec(),
        }
    }
}

/// One reply of a text retrieval, as
/// [`ReplyParser::parse_retrieval`](super::ReplyParser::parse_retrieval) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retrieval<'a> {
    /// A `VALUE` line and its data.
    Item(ItemRef<'a>),
    /// `END`: the retrieval is complete.
    End,
    /// Any other reply (an error line, or something out of place).
    Other(Reply),
}

/// One complete reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A meta reply (`HD`, `VA`, `EN`, `NS`, `EX`, `NF`, `MN`).
    Meta(MetaReply),
    /// One item of a text retrieval; more items or `End` follow.
    Value(TextValue),
    /// `END`: end of a retrieval or of `stats`.
    End,
    /// `STORED`.
    Stored,
    /// `NOT_STORED`.
    NotStored,
    /// `EXISTS`.
    Exists,
    /// `NOT_FOUND`.
    NotFound,
    /// `DELETED`.
    Deleted,
    /// `TOUCHED`.
    Touched,
    /// `OK`.
    Ok,
    /// A decimal number (the text `incr`/`decr` reply).
    Number(u64),
    /// `STAT <name> <value>`; more stats or `End` follow.
    Stat(String, String),
    /// `VERSION <text>`.
    Version(String),
    /// `ERROR`: the server did not know the command.
    Error,
    /// `CLIENT_ERROR <text>`.
    ClientError(String),
    /// `SERVER_ERROR <text>`.
    ServerError(String),
}

/// The text memcached sends when a value exceeds its item size limit.
pub const TOO_LARGE_TEXT: &str = "object too large for cache";
/// The text memcached sends when `incr`/`decr` meets a non-numeric value.
pub const NON_NUMERIC_TEXT: &str = "cannot increment or decrement non-numeric value";

impl Reply {
    /// True for the error replies (`ERROR`, `CLIENT_ERROR`, `SERVER_ERROR`).
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Reply::Error | Reply::ClientError(_) | Reply::ServerError(_)
        )
    }

    /// The typed error for an error reply, or a protocol error naming what was expected.
    ///
    /// `value_size` fills [`Error::ValueTooLarge`] when the server says the item was too
    /// large; its limit is left unknown, since the server's answer does not say it (the
    /// client's own check, which does know it, let this value through). `arithmetic_key` is
    /// the key of an `incr`/`decr` (`ma`) request, which the server's non-numeric-value error
    /// names as [`Error::NotANumber`]; for any other request (`None`) that reply is an
    /// [`Error::Client`].
    pub fn into_error(
        self,
        expected: &str,
        arithmetic_key: Option<&[u8]>,
        value_size: usize,
    ) -> Error {
        match self {
            Reply::ServerError(t) if t.starts_with(TOO_LARGE_TEXT) => Error::ValueTooLarge {
                size: value_size,
                limit: None,
            },
            Reply::ServerError(t) => Error::Server(t),
            Reply::ClientError(t) => match arithmetic_key {
                Some(key) if t.starts_with(NON_NUMERIC_TEXT) => Error::NotANumber {
                    key: String::from_utf8_lossy(key).into_owned(),
                },
                _ => Error::Client(t),
            },
            Reply::Error => Error::Client("server answered ERROR (unknown command)".into()),
            other => Error::Protocol(format!("expected {expected}, got {}", other.describe())),
        }
    }

    /// A short description for error messages (never the value bytes).
    pub fn describe(&self) -> String {
        match self {
            Reply::Meta(m) => format!("meta reply {:?}", m.status),
            Reply::Value(v) => format!("VALUE of {} bytes", v.data.len()),
            Reply::Stat(n, _) => format!("STAT {n}"),
            Reply::Version(_) => "VERSION".into(),
            Reply::Number(_) => "a number".into(),
            Reply::ClientError(t) => format!("CLIENT_ERROR {t}"),
            Reply::ServerError(t) => format!("SERVER_ERROR {t}"),
            other => format!("{other:?}"),
        }
    }
}
