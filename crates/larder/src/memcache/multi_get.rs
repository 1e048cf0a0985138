//! The sans-IO core of a multi-get, shared by the blocking and async clients: one server's
//! keys split into pipelined [`Chunk`]s (a text `get k1 k2 …` when every key of the chunk is
//! a valid text key, quiet meta `mg`s + `mn` otherwise), and the reading of a chunk's replies
//! straight out of the connection's read buffer, each hit handed to a visitor as a
//! [`HitRef`] borrowed from that buffer (no copy unless the visitor makes one).
//!
//! The transports only send a chunk's request and read more bytes while a chunk says it needs
//! them; [`Outcome`] folds the servers' results into the call's result.

use std::collections::HashMap;

use bytes::Bytes;

use super::cluster::{Cluster, ServerGroups};
use super::ops::{self, GetsItem, Handler, Hits, ReadBuf};
use super::proto::Retrieval;
use crate::{Error, Result};

/// Most keys per pipelined multi-get chunk.
pub(crate) const CHUNK_KEYS: usize = 256;
/// Most key bytes per multi-get chunk (keeps a text `get` line well within server buffers).
pub(crate) const CHUNK_BYTES: usize = 8 * 1024;

/// One multi-get hit, borrowed from the connection's read buffer while the visitor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitRef<'a> {
    /// The key, as sent.
    pub key: &'a [u8],
    /// The value bytes.
    pub value: &'a [u8],
    /// The client flags stored with the value.
    pub flags: u32,
    /// The item's CAS value (0 when the server did not send one).
    pub cas: u64,
}

impl HitRef<'_> {
    /// The value, flags and CAS as an owned [`GetsItem`] (a copy of the value).
    pub fn to_item(&self) -> GetsItem {
        GetsItem {
            data: self.value.to_vec(),
            flags: self.flags,
            cas: self.cas,
        }
    }
}

/// One hit of an owning multi-get (`get_multi`).
///
/// The value is a [`Bytes`] view of one buffer shared by all hits of the call (and their
/// keys): collecting a hit costs no allocation of its own. Holding any one value keeps that
/// whole buffer alive; `Bytes::copy_from_slice(&hit.value)` detaches a value kept for long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The value bytes.
    pub value: Bytes,
    /// The client flags stored with the value.
    pub flags: u32,
    /// The item's CAS value (0 when the server did not send one).
    pub cas: u64,
}

/// The hits of an owning multi-get, keyed by key (look up with a `&[u8]`). The hasher is
/// foldhash (seeded per process): SipHash was a measurable share of a 100-key call.
pub type MultiGetHits = HashMap<Bytes, Hit, foldhash::fast::RandomState>;

/// Collects visited hits into one buffer, then hands them out as views of it.
pub(crate) struct Collector {
    buf: Vec<u8>,
    /// Per hit: where its key starts, where its value starts and ends, flags, CAS.
    hits: Vec<(usize, usize, usize, u32, u64)>,
}

impl Collector {
    /// A collector for the hits of up to `keys` keys.
    pub(crate) fn new(keys: usize) -> Self {
        Self {
            buf: Vec::new(),
            hits: Vec::with_capacity(keys),
        }
    }

    /// Copies `hit` into the buffer.
    pub(crate) fn visit(&mut self, hit: HitRef<'_>) {
        let key_at = self.buf.len();
        self.buf.extend_from_slice(hit.key);
        let value_at = self.buf.len();
        self.buf.extend_from_slice(hit.value);
        self.hits
            .push((key_at, value_at, self.buf.len(), hit.flags, hit.cas));
    }

    /// The collected hits keyed by key.
    pub(crate) fn finish(self) -> MultiGetHits {
        let shared = Bytes::from(self.buf);
        let mut out = MultiGetHits::with_capacity_and_hasher(self.hits.len(), Default::default());
        for (key_at, value_at, end, flags, cas) in self.hits {
            let hit = Hit {
                value: shared.slice(value_at..end),
                flags,
                cas,
            };
            out.insert(shared.slice(key_at..value_at), hit);
        }
        out
    }
}

/// A visitor of hits, as the blocking transport passes it around.
pub(crate) type Visit<'v> = dyn FnMut(HitRef<'_>) + 'v;
/// A visitor of hits that an async call may hold across awaits.
#[cfg(feature = "tokio")]
pub(crate) type SendVisit<'v> = dyn FnMut(HitRef<'_>) + Send + 'v;

/// One pipelined request of a server's multi-get and the reading of its replies.
pub(crate) struct Chunk {
    request: Vec<u8>,
    reader: Reader,
    /// Hits visited so far.
    hits: usize,
}

enum Reader {
    /// Text `get`: replies come in request order, skipping misses; `spans` locate each
    /// requested key in the request, `cursor` is the first not yet answered or skipped.
    Text {
        spans: Vec<(usize, usize)>,
        cursor: usize,
    },
    /// Quiet `mg`s + `mn` (binary keys): the generic reply handler.
    Meta(Handler<Hits>),
}

impl Chunk {
    /// The request bytes to send.
    pub(crate) fn request(&self) -> &[u8] {
        &self.request
    }

    /// How many hits this chunk has visited.
    pub(crate) fn hits(&self) -> usize {
        self.hits
    }

    /// Reads this chunk's replies buffered in `buf`, visiting each hit: `Ok(true)` once the
    /// chunk is complete, `Ok(false)` when more bytes must be read first.
    pub(crate) fn read(&mut self, buf: &mut ReadBuf, visit: &mut Visit<'_>) -> Result<bool> {
        let Chunk {
            request,
            reader,
            hits,
        } = self;
        match reader {
            Reader::Text { spans, cursor } => loop {
                let Some((reply, used)) = buf.peek_retrieval()? else {
                    return Ok(false);
                };
                match reply {
                    Retrieval::Item(item) => {
                        let rest = spans.get(*cursor..).unwrap_or_default();
                        let Some(i) = rest.iter().position(|&(a, b)| request[a..b] == *item.key)
                        else {
                            return Err(Error::Protocol(format!(
                                "VALUE for a key not asked for (or out of order): {:?}",
                                String::from_utf8_lossy(item.key)
                            )));
                        };
                        *cursor += i + 1;
                        *hits += 1;
                        visit(HitRef {
                            key: item.key,
                            value: item.data,
                            flags: item.flags,
                            cas: item.cas.unwrap_or(0),
                        });
                    }
                    Retrieval::End => {
                        buf.consume(used);
                        return Ok(true);
                    }
                    Retrieval::Other(reply) => {
                        return Err(reply.into_error("VALUE or END", b"", 0, 0))
                    }
                }
                buf.consume(used);
            },
            Reader::Meta(handler) => loop {
                let Some(reply) = buf.next_reply()? else {
                    return Ok(false);
                };
                if let Some(found) = handler(reply)? {
                    *hits += found.len();
                    for (key, item) in &found {
                        visit(HitRef {
                            key,
                            value: &item.data,
                            flags: item.flags,
                            cas: item.cas,
                        });
                    }
                    return Ok(true);
                }
            },
        }
    }
}

/// Splits one server's keys into pipelined chunks of at most [`CHUNK_KEYS`] keys and about
/// [`CHUNK_BYTES`] key bytes: a text `get` when every key of the chunk is a valid text key
/// (measured ~1.4–2.5× the keys/s of quiet `mg`s on memcached 1.6.18, see the memcache
/// benchmark), quiet meta `mg`s + `mn` (base64 keys) otherwise.
pub(crate) fn chunks(keys: &[&[u8]]) -> Result<Vec<Chunk>> {
    let mut out = Vec::with_capacity(1);
    let mut start = 0;
    let mut bytes = 0;
    for (i, key) in keys.iter().enumerate() {
        if i - start == CHUNK_KEYS || bytes + key.len() > CHUNK_BYTES {
            out.push(chunk(&keys[start..i])?);
            start = i;
            bytes = 0;
        }
        bytes += key.len() + 1;
    }
    if start < keys.len() {
        out.push(chunk(&keys[start..])?);
    }
    Ok(out)
}

fn chunk(keys: &[&[u8]]) -> Result<Chunk> {
    if keys.iter().all(|k| crate::keys::check_key(k).is_ok()) {
        let mut request = Vec::with_capacity(keys.iter().map(|k| k.len() + 1).sum::<usize>() + 5);
        let mut spans = Vec::with_capacity(keys.len());
        request.extend_from_slice(b"get");
        for k in keys {
            request.push(b' ');
            spans.push((request.len(), request.len() + k.len()));
            request.extend_from_slice(k);
        }
        request.extend_from_slice(b"\r\n");
        Ok(Chunk {
            request,
            reader: Reader::Text { spans, cursor: 0 },
            hits: 0,
        })
    } else {
        let op = ops::get_multi(keys.iter().map(|k| k.to_vec()).collect())?;
        Ok(Chunk {
            request: op.request,
            reader: Reader::Meta(op.handler),
            hits: 0,
        })
    }
}

/// The keys of a multi-get grouped by the server that takes each now, with the call's
/// [`Outcome`] so far (the routing refusal of some keys, if any).
pub(crate) fn route<'k, K: AsRef<[u8]>>(
    cluster: &Cluster,
    keys: &'k [K],
) -> (ServerGroups<'k>, Outcome) {
    let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
    let (groups, refused) = cluster.group(&keys);
    (groups, Outcome::new(refused))
}

/// The per-server results of one multi-get folded into the call's result: success when any
/// server answered (a failed server's keys read as misses); otherwise the first failure, or
/// the fail-fast refusal when no server was asked.
pub(crate) struct Outcome {
    hits: usize,
    any_ok: bool,
    first_err: Option<Error>,
    refused: Option<Error>,
}

impl Outcome {
    /// No server heard from yet; `refused` is the routing refusal of some keys, if any.
    fn new(refused: Option<Error>) -> Self {
        Self {
            hits: 0,
            any_ok: false,
            first_err: None,
            refused,
        }
    }

    /// Adds one server's result: how many hits it gave, or its failure.
    pub(crate) fn add(&mut self, result: Result<usize>) {
        match result {
            Ok(hits) => {
                self.any_ok = true;
                self.hits += hits;
            }
            Err(e) => {
                self.first_err.get_or_insert(e);
            }
        }
    }

    /// The call's result: the number of hits.
    pub(crate) fn finish(self) -> Result<usize> {
        if self.any_ok {
            return Ok(self.hits);
        }
        match self.first_err.or(self.refused) {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}
