//! The sans-IO memcached protocol: request encoders and an incremental reply parser for the
//! meta protocol (`mg`, `ms`, `md`, `ma`, `mn`) and the text protocol (`get`, `set`, ...).
//!
//! Nothing here touches a socket or a clock. Encoders append bytes to a `Vec<u8>`; the
//! [`ReplyParser`](crate::memcache::proto::ReplyParser) looks at the bytes received so far
//! and returns either one complete [`Reply`](crate::memcache::proto::Reply) plus how many
//! bytes it used, or `None` when more bytes are needed. A reply split at any byte boundary
//! parses the same. Hostile input yields [`Error::Protocol`], never a panic, and never an
//! allocation larger than the parser's configured maximum value size.
//!
//! Split by concern: `keys` (wire keys, exptimes, limits), `meta` and `text` (encoders),
//! `reply` (the replies), `parse` (the parser). Not semver surface: the module is hidden
//! from the docs, for fuzzing and tests; the clients are the API. (Its links are written as
//! paths from the crate root, since rustdoc resolves this module's docs from its parent.)

mod keys;
mod meta;
mod parse;
mod reply;
#[cfg(test)]
mod tests;
mod text;

pub use keys::*;
pub use meta::*;
pub use parse::*;
pub use reply::*;
pub use text::*;
