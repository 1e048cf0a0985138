//! The sans-IO core of a multi-get, shared by the blocking and async clients: one server's
//! keys split into pipelined [`Chunk`]s (a text `get k1 k2 …` when every key of the chunk is
//! a valid text key, quiet meta `mg`s + `mn` otherwise), and the reading of a chunk's replies
//! straight out of the connection's read buffer, each hit handed to a visitor as a
//! [`HitRef`] borrowed from that buffer (no copy unless the visitor makes one).
//!
//! The transports only send a chunk's request and read more bytes while a chunk says it needs
//! them; [`Outcome`] folds the servers' results into the call's result.

use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;

use super::cluster::{Cluster, ServerGroups};
use super::exchange::{Exchange, ReadBuf, Step};
use super::ops::{self, GetsItem, Hits, Op};
use super::proto::{extend_short, ItemRef, Retrieval, SHORT};
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

impl<'a> From<ItemRef<'a>> for HitRef<'a> {
    /// A text retrieval's item as a hit (CAS 0 when the server sent none).
    fn from(item: ItemRef<'a>) -> Self {
        HitRef {
            key: item.key,
            value: item.data,
            flags: item.flags,
            cas: item.cas.unwrap_or(0),
        }
    }
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

/// The hits of an owning multi-get (`get_multi`), looked up by key.
///
/// Every hit's key and value are copied into one buffer per call, and a hash index over it
/// finds a key: collecting a hit costs no allocation or reference count of its own (a
/// `HashMap<Bytes, Hit>` of views cost twice the client time of the whole rest of a 100-key
/// call). Keys asked for twice appear once. Iteration order is unspecified.
#[derive(Clone, Default)]
pub struct MultiGetHits {
    buf: Bytes,
    slots: hashbrown::HashTable<Slot>,
    hasher: foldhash::fast::RandomState,
}

/// Where one hit lies in the call's buffer: key at `key_at..value_at`, value at
/// `value_at..end`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key_at: usize,
    value_at: usize,
    end: usize,
    flags: u32,
    cas: u64,
}

impl Slot {
    fn key<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.key_at..self.value_at]
    }

    fn hit<'b>(&self, buf: &'b [u8]) -> HitRef<'b> {
        HitRef {
            key: self.key(buf),
            value: &buf[self.value_at..self.end],
            flags: self.flags,
            cas: self.cas,
        }
    }
}

impl MultiGetHits {
    /// How many distinct keys hit.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no key hit.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Where `key`'s hit lies, if it hit.
    fn slot(&self, key: &[u8]) -> Option<&Slot> {
        self.slots
            .find(key_hash(&self.hasher, key), |s| s.key(&self.buf) == key)
    }

    /// The hit for `key`, borrowed from this result.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<HitRef<'_>> {
        self.slot(key.as_ref()).map(|s| s.hit(&self.buf))
    }

    /// The hit for `key` as an owned [`Hit`] whose value shares this result's buffer.
    pub fn get_owned(&self, key: impl AsRef<[u8]>) -> Option<Hit> {
        self.slot(key.as_ref()).map(|s| Hit::of(&self.buf, s))
    }

    /// Whether `key` hit.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        self.slot(key.as_ref()).is_some()
    }

    /// Every hit, borrowed from this result.
    pub fn iter(&self) -> MultiGetIter<'_> {
        MultiGetIter {
            slots: self.slots.iter(),
            buf: &self.buf,
        }
    }
}

/// The hits of a [`MultiGetHits`], borrowed from it (see [`MultiGetHits::iter`]).
#[derive(Clone)]
pub struct MultiGetIter<'a> {
    slots: hashbrown::hash_table::Iter<'a, Slot>,
    buf: &'a [u8],
}

impl<'a> Iterator for MultiGetIter<'a> {
    type Item = HitRef<'a>;

    fn next(&mut self) -> Option<HitRef<'a>> {
        self.slots.next().map(|s| s.hit(self.buf))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl ExactSizeIterator for MultiGetIter<'_> {}

impl Hit {
    fn of(buf: &Bytes, slot: &Slot) -> Self {
        Hit {
            value: buf.slice(slot.value_at..slot.end),
            flags: slot.flags,
            cas: slot.cas,
        }
    }
}

impl<'a> IntoIterator for &'a MultiGetHits {
    type Item = HitRef<'a>;
    type IntoIter = MultiGetIter<'a>;

    fn into_iter(self) -> MultiGetIter<'a> {
        self.iter()
    }
}

impl IntoIterator for MultiGetHits {
    /// Each key (a view of the call's buffer) with its owned hit.
    type Item = (Bytes, Hit);
    type IntoIter = std::vec::IntoIter<(Bytes, Hit)>;

    fn into_iter(self) -> Self::IntoIter {
        let buf = self.buf;
        self.slots
            .into_iter()
            .map(|s| (buf.slice(s.key_at..s.value_at), Hit::of(&buf, &s)))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl std::fmt::Debug for MultiGetHits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|h| {
                (
                    String::from_utf8_lossy(h.key),
                    (String::from_utf8_lossy(h.value), h.flags, h.cas),
                )
            }))
            .finish()
    }
}

/// The index's hash of `key`: the key's bytes alone, written straight to the hasher (inlined
/// where it is used; `hash_one` also mixes in the length, and was a call per hit).
#[inline(always)]
fn key_hash(hasher: &foldhash::fast::RandomState, key: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(key);
    h.finish()
}

/// Collects visited hits into one buffer and its index, the makings of a [`MultiGetHits`].
pub(crate) struct Collector {
    buf: Vec<u8>,
    slots: hashbrown::HashTable<Slot>,
    hasher: foldhash::fast::RandomState,
}

impl Collector {
    /// Most bytes reserved up front from the first hit's size.
    const MAX_GUESS: usize = 4 << 20;

    /// A collector for the hits of up to `keys` keys.
    pub(crate) fn new(keys: usize) -> Self {
        Self {
            buf: Vec::new(),
            slots: hashbrown::HashTable::with_capacity(keys),
            hasher: Default::default(),
        }
    }

    /// Copies `hit` into the buffer and indexes it (a key seen before now points here).
    pub(crate) fn visit(&mut self, hit: HitRef<'_>) {
        if self.buf.is_empty() {
            // Room for every key to hit with an item like the first one: values in one
            // multi-get tend to be alike, and growing by doubling copies it all again
            // (plus the room `extend_short` writes past a key before it cuts back).
            let guess = (hit.key.len() + hit.value.len()).saturating_mul(self.slots.capacity());
            self.buf
                .reserve(guess.min(Self::MAX_GUESS).saturating_add(SHORT));
        }
        let key_at = self.buf.len();
        extend_short(&mut self.buf, hit.key);
        let value_at = self.buf.len();
        self.buf.extend_from_slice(hit.value);
        let slot = Slot {
            key_at,
            value_at,
            end: self.buf.len(),
            flags: hit.flags,
            cas: hit.cas,
        };
        let (buf, hasher) = (&self.buf, &self.hasher);
        match self.slots.entry(
            key_hash(hasher, hit.key),
            |s| s.key(buf) == hit.key,
            |s| key_hash(hasher, s.key(buf)),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut seen) => *seen.get_mut() = slot,
            hashbrown::hash_table::Entry::Vacant(new) => {
                new.insert(slot);
            }
        }
    }

    /// The collected hits.
    pub(crate) fn finish(self) -> MultiGetHits {
        MultiGetHits {
            buf: Bytes::from(self.buf),
            slots: self.slots,
            hasher: self.hasher,
        }
    }
}

/// One pipelined request of a server's multi-get and the reading of its replies; `'k` is
/// the borrow of the keys it asks for.
pub(crate) struct Chunk<'k> {
    request: Vec<u8>,
    reader: Reader<'k>,
    /// Hits visited so far.
    hits: usize,
}

enum Reader<'k> {
    /// Text `get`: replies come in request order, skipping misses; `keys` are the keys
    /// asked for (each with its position in the call's keys), `cursor` the first not yet
    /// answered or skipped.
    Text {
        keys: &'k [(usize, &'k [u8])],
        cursor: usize,
    },
    /// Quiet `mg`s + `mn` (binary keys): the op whose handler ties replies to keys, and the
    /// keys asked for (a hit is visited at each position of its key).
    Meta {
        op: Op<Hits>,
        keys: &'k [(usize, &'k [u8])],
    },
}

/// How far reading a chunk got.
enum Progress {
    /// More bytes are needed.
    Partial,
    /// Every reply was read.
    Complete,
    /// Every reply was read and one was an error that left the connection in step.
    Failed(Error),
}

impl Chunk<'_> {
    /// The request bytes to send.
    fn request(&self) -> &[u8] {
        &self.request
    }

    /// Reads this chunk's replies buffered in `buf`, visiting each hit. Generic over the
    /// visitor so that a small one (`get_multi`'s collector) is inlined into the parsing
    /// loop.
    fn read<V>(&mut self, buf: &mut ReadBuf, visit: &mut V) -> Result<Progress>
    where
        V: FnMut(usize, HitRef<'_>) + ?Sized,
    {
        let Chunk { reader, hits, .. } = self;
        match reader {
            Reader::Text { keys, cursor } => loop {
                // The common case: the next replies are the next keys asked for, in order.
                let (parser, bytes) = buf.parser_and_bytes();
                let mut used = 0;
                while let Some(&(at, key)) = keys.get(*cursor) {
                    let Some((item, n)) = parser.expected_item(&bytes[used..], key) else {
                        break;
                    };
                    used += n;
                    *cursor += 1;
                    *hits += 1;
                    visit(at, HitRef::from(item));
                }
                buf.consume(used);
                // Anything else (a miss skipped, END, an error, an incomplete reply).
                let Some((reply, used)) = buf.peek_retrieval()? else {
                    return Ok(Progress::Partial);
                };
                match reply {
                    Retrieval::Item(item) => {
                        let rest = keys.get(*cursor..).unwrap_or_default();
                        let Some(i) = rest.iter().position(|&(_, k)| k == item.key) else {
                            return Err(Error::Protocol(format!(
                                "VALUE for a key not asked for (or out of order): {:?}",
                                String::from_utf8_lossy(item.key)
                            )));
                        };
                        let at = rest[i].0;
                        *cursor += i + 1;
                        *hits += 1;
                        visit(at, HitRef::from(item));
                    }
                    Retrieval::End => {
                        buf.consume(used);
                        return Ok(Progress::Complete);
                    }
                    Retrieval::Other(reply) => {
                        return Err(reply.into_error("VALUE or END", None, 0))
                    }
                }
                buf.consume(used);
            },
            Reader::Meta { op, keys } => loop {
                let Some(reply) = buf.next_reply()? else {
                    return Ok(Progress::Partial);
                };
                match op.feed(reply)? {
                    None => {}
                    Some(Ok(found)) => {
                        // Each position of a found key (the handler keeps one hit per key).
                        for &(at, key) in keys.iter() {
                            let Some(item) = found.get(key) else { continue };
                            *hits += 1;
                            visit(
                                at,
                                HitRef {
                                    key,
                                    value: &item.data,
                                    flags: item.flags,
                                    cas: item.cas,
                                },
                            );
                        }
                        return Ok(Progress::Complete);
                    }
                    Some(Err(e)) => return Ok(Progress::Failed(e)),
                }
            },
        }
    }
}

/// One server's part of a multi-get, as an exchange: its chunks, pipelined (the next chunk
/// is sent before the one ahead of it is read, so the server always has work).
pub(crate) struct ServerGet<'k> {
    chunks: Vec<Chunk<'k>>,
    /// Chunks sent so far.
    sent: usize,
    /// The chunk whose replies are read now.
    reading: usize,
    first_err: Option<Error>,
}

impl<'k> ServerGet<'k> {
    /// The multi-get of one server's `keys` (each with its position in the call's keys).
    pub(crate) fn new(keys: &'k [(usize, &'k [u8])]) -> Result<Self> {
        Ok(Self {
            chunks: chunks(keys)?,
            sent: 0,
            reading: 0,
            first_err: None,
        })
    }
}

impl<V: FnMut(usize, HitRef<'_>) + ?Sized> Exchange<V> for ServerGet<'_> {
    /// The number of hits visited.
    type Output = usize;

    #[inline]
    fn step(&mut self, buf: &mut ReadBuf, visit: &mut V) -> Result<Step<'_, usize>> {
        loop {
            if self.sent < self.chunks.len() && self.sent <= self.reading + 1 {
                self.sent += 1;
                return Ok(Step::Write(self.chunks[self.sent - 1].request()));
            }
            let Some(chunk) = self.chunks.get_mut(self.reading) else {
                return Ok(Step::Done(match self.first_err.take() {
                    Some(e) => Err(e),
                    None => Ok(self.chunks.iter().map(|c| c.hits).sum()),
                }));
            };
            match chunk.read(buf, visit)? {
                Progress::Partial => return Ok(Step::Read),
                Progress::Complete => {}
                Progress::Failed(e) => {
                    self.first_err.get_or_insert(e);
                }
            }
            self.reading += 1;
        }
    }

    fn rewind(&mut self) -> bool {
        // Only called before any reply byte arrived: no chunk has read anything yet.
        self.sent = 0;
        self.reading = 0;
        true
    }
}

/// Splits one server's keys into pipelined chunks of at most [`CHUNK_KEYS`] keys and about
/// [`CHUNK_BYTES`] key bytes: a text `get` when every key of the chunk is a valid text key
/// (measured ~1.4–2.5× the keys/s of quiet `mg`s on memcached 1.6.18, see the memcache
/// benchmark), quiet meta `mg`s + `mn` (base64 keys) otherwise.
fn chunks<'k>(keys: &'k [(usize, &'k [u8])]) -> Result<Vec<Chunk<'k>>> {
    if keys.len() <= CHUNK_KEYS {
        // The common case, one chunk, told by a sum instead of the boundary checks per key.
        let bytes = keys.iter().map(|(_, k)| k.len() + 1).sum::<usize>();
        if bytes <= CHUNK_BYTES + 1 {
            return Ok(if keys.is_empty() {
                Vec::new()
            } else {
                vec![chunk(keys, bytes)?]
            });
        }
    }
    split_chunks(keys)
}

/// [`chunks`] by checking the limits at every key.
fn split_chunks<'k>(keys: &'k [(usize, &'k [u8])]) -> Result<Vec<Chunk<'k>>> {
    let mut out = Vec::with_capacity(1);
    let mut start = 0;
    let mut bytes = 0;
    for (i, (_, key)) in keys.iter().enumerate() {
        if i > start && (i - start == CHUNK_KEYS || bytes + key.len() > CHUNK_BYTES) {
            out.push(chunk(&keys[start..i], bytes)?);
            start = i;
            bytes = 0;
        }
        bytes += key.len() + 1;
    }
    if start < keys.len() {
        out.push(chunk(&keys[start..], bytes)?);
    }
    Ok(out)
}

/// The chunk of `keys`, whose lengths plus one sum to `bytes`: built as a text `get` in one
/// pass that checks each key on the way, or as quiet `mg`s when some key is not a text key.
fn chunk<'k>(keys: &'k [(usize, &'k [u8])], bytes: usize) -> Result<Chunk<'k>> {
    // `extend_short` may write up to SHORT bytes past a key before it cuts back.
    let mut request = Vec::with_capacity(bytes + b"get\r\n".len() + SHORT);
    request.extend_from_slice(b"get");
    for &(_, k) in keys {
        if crate::keys::check_key(k).is_err() {
            let mut op = ops::get_multi(keys.iter().map(|(_, k)| k.to_vec()).collect())?;
            return Ok(Chunk {
                request: std::mem::take(&mut op.request),
                reader: Reader::Meta { op, keys },
                hits: 0,
            });
        }
        request.push(b' ');
        extend_short(&mut request, k);
    }
    request.extend_from_slice(b"\r\n");
    Ok(Chunk {
        request,
        reader: Reader::Text { keys, cursor: 0 },
        hits: 0,
    })
}

/// The keys of a multi-get grouped by the server that takes each now, with the call's
/// [`Outcome`] so far (the routing refusal of some keys, if any).
pub(crate) fn route<'k, K: AsRef<[u8]>>(
    cluster: &Cluster,
    keys: &'k [K],
) -> (ServerGroups<'k>, Outcome) {
    let (groups, refused) = cluster.group(keys);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each chunk's request; a meta chunk's only as "meta" (its opaques count up per call).
    fn requests(chunks: &[Chunk<'_>]) -> Vec<Vec<u8>> {
        chunks
            .iter()
            .map(|c| match c.reader {
                Reader::Text { .. } => c.request.clone(),
                Reader::Meta { .. } => b"meta".to_vec(),
            })
            .collect()
    }

    #[test]
    fn one_chunk_shortcut_splits_as_the_limits_do() {
        let owned: Vec<Vec<u8>> = (0..600).map(|i| format!("key:{i}").into_bytes()).collect();
        let long: Vec<Vec<u8>> = (0..40).map(|i| vec![b'a' + (i % 26) as u8; 250]).collect();
        // A key of 32 bytes, 250 of them: the byte limit falls inside the key count limit.
        let mid: Vec<Vec<u8>> = (0..250).map(|i| format!("{i:032}").into_bytes()).collect();
        let binary = [b"ok".to_vec(), b"not ok".to_vec()];
        let sets: Vec<Vec<(usize, &[u8])>> = [
            &owned[..0],
            &owned[..1],
            &owned[..CHUNK_KEYS - 1],
            &owned[..CHUNK_KEYS],
            &owned[..CHUNK_KEYS + 1],
            &owned[..],
            &long[..32],
            &long[..33],
            &long[..],
            &mid[..],
            &binary[..],
        ]
        .iter()
        .map(|set| set.iter().map(Vec::as_slice).enumerate().collect())
        .collect();
        for keys in &sets {
            let fast = chunks(keys).unwrap();
            let slow = split_chunks(keys).unwrap();
            assert_eq!(requests(&fast), requests(&slow), "{} keys", keys.len());
        }
        // Just under, at and just over the byte limit, by one key's length.
        for extra in 0..4 {
            let mut keys: Vec<Vec<u8>> = (0..32).map(|_| vec![b'k'; 250]).collect();
            keys.push(vec![b'k'; 29 + extra]);
            let keys: Vec<(usize, &[u8])> = keys.iter().map(Vec::as_slice).enumerate().collect();
            let fast = chunks(&keys).unwrap();
            let slow = split_chunks(&keys).unwrap();
            assert_eq!(requests(&fast), requests(&slow), "extra {extra}");
        }
    }
}
