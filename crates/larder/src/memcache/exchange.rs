//! The exchange engine, sans-IO: what one operation does on one connection, and every rule
//! about that connection's reuse, retry and deadline — once, for both drivers.
//!
//! An [`Exchange`] is a state machine fed the connection's read buffer: each [`step`] says
//! write these bytes, read more, or done. A [`Wire`] is the connection's sans-IO state (its
//! read buffer and whether it is in step with the server) and applies the rules around every
//! step. The drivers (`client.rs` on std sockets, `async_client.rs` on tokio) only move bytes
//! and wait; they read no reply and decide nothing.
//!
//! The rules:
//! - **Every reply is tied to its request.** Meta requests carry an opaque token (`O`) that
//!   the reply must echo, and a reply that names a key (`k`) must name the request's key;
//!   text `VALUE`s must be keys asked for, in order. A mismatch is a protocol error.
//! - **A connection is reused only in step**: the last exchange completed and left no unread
//!   byte, buffered (bytes after the final reply fail the exchange) or waiting on the socket
//!   (known without a syscall when the last read did not fill the space it was given;
//!   otherwise the driver probes). Before reusing a connection idle for `idle_probe_after`
//!   or more, the driver probes the socket without waiting ([`probe_verdict`]): closed, or
//!   bytes waiting, and it is replaced.
//! - **Retry**: a reused connection found closed before any reply byte arrived is replaced and
//!   a read without side effects is sent once more ([`Wire::may_retry`]). A write is not
//!   retried: the server may have applied it before closing, and sending it again could apply
//!   it twice (an `incr`, an `append`) or undo a later write by another client.
//! - **One deadline per call** ([`Deadline`]): connect, write and read of one operation share
//!   `operation_timeout`; each wait is also bounded by its own read/write timeout.
//!
//! [`step`]: Exchange::step

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use super::ops::Op;
use super::proto::{self, MetaReply, Reply};
use crate::{Error, Result};

/// What the driver must do next for an exchange.
pub(crate) enum Step<'a, T> {
    /// Write all of these bytes (bounded by the deadline), then step again.
    Write(&'a [u8]),
    /// Read more bytes into the wire's buffer ([`Wire::spare`], [`Wire::filled`]), then step.
    Read,
    /// The exchange is over. An `Err` here is a reply that left the connection in step (a
    /// `SERVER_ERROR`, a non-numeric counter); a broken exchange fails the step instead.
    Done(Result<T>),
}

/// One operation's state machine on one connection; `V` is what it hands hits to (a
/// multi-get's visitor; `()` for the rest).
pub(crate) trait Exchange<V: ?Sized> {
    /// The operation's result.
    type Output;

    /// Reads what the buffer holds and says what comes next. Returning [`Step::Write`]
    /// counts those bytes as sent: the driver must write them all or fail the exchange.
    fn step(&mut self, buf: &mut ReadBuf, visit: &mut V) -> Result<Step<'_, Self::Output>>;

    /// Starts over, for a retry on another connection: `false` when the operation has side
    /// effects and must not be sent twice. Only called before any reply byte arrived.
    fn rewind(&mut self) -> bool;
}

/// Where a connection stands with its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between exchanges, in step.
    Idle,
    /// An exchange is under way (or was abandoned: a cancelled future, an I/O error).
    Busy {
        /// Some reply byte of this exchange has arrived.
        received: bool,
    },
    /// Out of step for good (a protocol error, stray bytes).
    Broken,
}

/// A connection's sans-IO state: its unparsed bytes and whether it is in step.
pub(crate) struct Wire {
    buf: ReadBuf,
    state: State,
    /// Exchanges completed on this connection.
    completed: u64,
    /// The space the driver was last given to read into.
    offered: usize,
    /// The last read took less than it was offered: the socket held no more bytes then.
    drained: bool,
}

impl Wire {
    /// A fresh connection's state, parsing with `parser`.
    pub(crate) fn new(parser: proto::ReplyParser) -> Self {
        Self {
            buf: ReadBuf::new(parser),
            state: State::Idle,
            completed: 0,
            offered: 0,
            drained: true,
        }
    }

    /// Starts an exchange.
    #[inline]
    pub(crate) fn begin(&mut self) {
        self.state = State::Busy { received: false };
    }

    /// Steps `x`, applying the completion rule: an exchange that ends with bytes left over
    /// is out of step (those bytes answer nothing that was asked), and so is one that fails.
    #[inline]
    pub(crate) fn step<'x, V: ?Sized, X: Exchange<V>>(
        &mut self,
        x: &'x mut X,
        visit: &mut V,
    ) -> Result<Step<'x, X::Output>> {
        match x.step(&mut self.buf, visit) {
            Ok(Step::Done(out)) => {
                if !self.buf.is_empty() {
                    self.state = State::Broken;
                    return Err(Error::Protocol(format!(
                        "{} unexpected bytes after the reply (the connection is out of step)",
                        self.buf.len()
                    )));
                }
                self.state = State::Idle;
                self.completed += 1;
                Ok(Step::Done(out))
            }
            Ok(step) => Ok(step),
            Err(e) => {
                self.state = State::Broken;
                Err(e)
            }
        }
    }

    /// Free space for the driver to read into.
    #[inline]
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        let spare = self.buf.spare();
        self.offered = spare.len();
        spare
    }

    /// Records that the driver read `n` bytes into [`spare`](Self::spare); `n == 0` is the
    /// server closing the connection (`label` names it in the error).
    #[inline]
    pub(crate) fn filled(&mut self, n: usize, label: &str) -> Result<()> {
        if n == 0 {
            return Err(closed_by(label));
        }
        self.buf.filled(n);
        self.drained = n < self.offered;
        if let State::Busy { received } = &mut self.state {
            *received = true;
        }
        Ok(())
    }

    /// Whether the connection may go back to its pool: no exchange under way or abandoned,
    /// nothing unread in the buffer. `probe` is asked (a non-blocking peek) only when the
    /// socket may hold more bytes: the last read filled all the space it was given.
    #[inline]
    pub(crate) fn reusable(&self, probe: impl FnOnce() -> io::Result<usize>) -> bool {
        self.state == State::Idle
            && self.buf.is_empty()
            && (self.drained || probe_verdict(probe(), "").is_ok())
    }

    /// The check-in rule, for the pool's `is_broken`: `true` (drop the connection) unless
    /// it is [`reusable`](Self::reusable).
    pub(crate) fn check_in(&self, probe: impl FnOnce() -> io::Result<usize>) -> bool {
        !self.reusable(probe)
    }

    /// The check-out rule, for the pool's `recycle`: a connection idle for `probe_after` or
    /// more is probed (closed, or bytes waiting, and it must be replaced). `idle` is the
    /// pool's measure of its idle time (the clients' pools keep one for their idle
    /// timeout, so the connection keeps no clock of its own); unknown, it is probed.
    pub(crate) fn check_out(
        &self,
        probe_after: Duration,
        idle: Option<Duration>,
        probe: impl FnOnce() -> io::Result<usize>,
        label: &str,
    ) -> Result<()> {
        match idle {
            Some(idle) if idle < probe_after => Ok(()),
            _ => probe_verdict(probe(), label),
        }
    }

    /// Whether the failure `err` of the exchange under way allows sending it once more on
    /// another connection: this one was reused (a fresh connection that fails is a real
    /// failure), no reply byte had arrived, and the server closed or reset the connection.
    /// The exchange itself decides whether it may be sent twice ([`Exchange::rewind`]).
    pub(crate) fn may_retry(&self, err: &Error) -> bool {
        self.completed > 0
            && self.state == State::Busy { received: false }
            && matches!(err, Error::Io(e) if is_closed(e.kind()))
    }
}

/// Errors of a complete reply after which the connection is still in step with the server.
pub(crate) fn keeps_connection(err: &Error) -> bool {
    matches!(
        err,
        Error::Server(_) | Error::NotANumber { .. } | Error::ValueTooLarge { .. }
    )
}

fn is_closed(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// The error of a connection found closed by `label`.
pub(crate) fn closed_by(label: &str) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{label} closed the connection"),
    ))
}

/// What a non-blocking read of one byte from an idle connection (`Ok(n)`, or the error)
/// says about reusing it: only "nothing to read yet" means it is open and in step.
pub(crate) fn probe_verdict(read: io::Result<usize>, label: &str) -> Result<()> {
    match read {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Ok(0) => Err(closed_by(label)),
        Ok(_) => Err(Error::Protocol(format!(
            "idle connection to {label} received bytes nobody asked for"
        ))),
        Err(e) => Err(Error::Io(e)),
    }
}

/// The one deadline of a call: everything it does on the network ends by `start + limit`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    start: Instant,
    limit: Duration,
}

/// How long one wait may last, and the bound a timeout then reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    /// The wait's length: the per-wait timeout or what is left of the deadline.
    pub(crate) wait: Duration,
    /// The bound that `wait` enforces (the per-wait timeout or the operation timeout).
    pub(crate) reported: Duration,
}

impl Deadline {
    /// A deadline `limit` after `start`.
    pub(crate) fn new(start: Instant, limit: Duration) -> Self {
        Self { start, limit }
    }

    /// The bound of a wait starting at `now` whose own timeout is `per_wait`; a timeout
    /// error naming `what` when the deadline has passed.
    pub(crate) fn bound(
        &self,
        now: Instant,
        per_wait: Duration,
        what: impl FnOnce() -> String,
    ) -> Result<Bound> {
        let left = self
            .limit
            .saturating_sub(now.saturating_duration_since(self.start));
        if left.is_zero() {
            return Err(Error::Timeout {
                what: what(),
                after: self.limit,
            });
        }
        Ok(if per_wait <= left {
            Bound {
                wait: per_wait,
                reported: per_wait,
            }
        } else {
            Bound {
                wait: left,
                reported: self.limit,
            }
        })
    }
}

/// The error of an I/O wait that failed: a timeout (named by `what` and its bound) or the
/// I/O error itself.
pub(crate) fn wait_error(err: io::Error, what: impl FnOnce() -> String, bound: Bound) -> Error {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
            what: what(),
            after: bound.reported,
        },
        _ => Error::Io(err),
    }
}

thread_local! {
    /// The next opaque token of this thread's requests. Seeded per thread, so two threads'
    /// requests on one connection (one after the other) do not carry the same tokens.
    static NEXT_OPAQUE: Cell<u32> = Cell::new(opaque_seed());
}

fn opaque_seed() -> u32 {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id());
    (h >> 32) as u32 ^ h as u32
}

/// `n` consecutive opaque tokens for one exchange's meta requests: the first of them.
#[inline]
pub(crate) fn opaques(n: u32) -> u32 {
    NEXT_OPAQUE.with(|next| {
        let first = next.get();
        next.set(first.wrapping_add(n.max(1)));
        first
    })
}

/// Checks that a meta reply answers the request whose key token `key_token` gives (as sent,
/// base64 when `base64`) and whose opaque is `opaque`.
pub(crate) fn check_meta<'k>(
    m: &MetaReply,
    opaque: u32,
    key_token: impl FnOnce() -> &'k [u8],
) -> Result<()> {
    if m.opaque != Some(opaque) {
        return Err(Error::Protocol(match m.opaque {
            Some(got) => format!("meta reply for request O{got}, expected O{opaque}"),
            None => format!("meta reply without the opaque token O{opaque} of the request"),
        }));
    }
    // The request's key token is looked up only when the reply echoes a key.
    let Some(k) = &m.key else { return Ok(()) };
    let key_token = key_token();
    if k.as_slice() != key_token {
        return Err(Error::Protocol(format!(
            "meta reply names key {:?}, the request asked for {:?}",
            String::from_utf8_lossy(k),
            String::from_utf8_lossy(key_token)
        )));
    }
    Ok(())
}

/// The key token of a meta request (`mg <token> …`), as it was sent.
pub(crate) fn request_key_token(request: &[u8]) -> &[u8] {
    let after_cmd = request.get(3..).unwrap_or_default();
    let end = memchr::memchr2(b' ', b'\r', after_cmd).unwrap_or(after_cmd.len());
    &after_cmd[..end]
}

/// One request and the handler of its replies ([`Op`]) as an exchange.
pub(crate) struct Single<T> {
    op: Op<T>,
    sent: bool,
}

impl<T> Single<T> {
    pub(crate) fn new(op: Op<T>) -> Self {
        Self { op, sent: false }
    }
}

impl<T, V: ?Sized> Exchange<V> for Single<T> {
    type Output = T;

    #[inline]
    fn step(&mut self, buf: &mut ReadBuf, _: &mut V) -> Result<Step<'_, T>> {
        if !self.sent {
            self.sent = true;
            return Ok(Step::Write(&self.op.request));
        }
        while let Some(reply) = buf.next_reply()? {
            if let Some(done) = self.op.feed(reply)? {
                return Ok(Step::Done(done));
            }
        }
        Ok(Step::Read)
    }

    fn rewind(&mut self) -> bool {
        self.sent = false;
        self.op.idempotent
    }
}

/// Many ops to one server in bounded batches: each batch's requests in one write, then its
/// replies in order; every reply is read even when one is an error (the first error is the
/// result), so the connection stays in step.
pub(crate) struct Batches<T> {
    ops: Vec<Op<T>>,
    /// Where each op's request lies in its batch's bytes (an op keeps no request of its own).
    sent: Vec<std::ops::Range<usize>>,
    /// `(end of the batch in ops, its request bytes)`.
    batches: Vec<(usize, Vec<u8>)>,
    /// The next batch to send.
    next_batch: usize,
    /// The next op whose replies are read, and the batch it is in.
    reading: usize,
    reading_batch: usize,
    out: Vec<T>,
    first_err: Option<Error>,
}

/// Most requests per batch of a multi-key write (sent in one write, replies read after).
pub(crate) const WRITE_BATCH_OPS: usize = 128;
/// Most request bytes per batch of a multi-key write.
pub(crate) const WRITE_BATCH_BYTES: usize = 256 * 1024;

impl<T> Batches<T> {
    /// The batches of `n` ops that `make(i, buf)` builds, each appending its request to
    /// `buf`, its batch's buffer (so no op allocates a request of its own), and returning
    /// the op; `make`'s first error is the result. Batches are bounded so the small replies
    /// never fill the socket while the client is still writing.
    pub(crate) fn encoded(
        n: usize,
        mut make: impl FnMut(usize, &mut Vec<u8>) -> Result<Op<T>>,
    ) -> Result<Self> {
        let mut ops = Vec::with_capacity(n);
        let mut sent = Vec::with_capacity(n);
        let mut batches = Vec::new();
        let mut request = Vec::new();
        for i in 0..n {
            let at = request.len();
            ops.push(make(i, &mut request)?);
            let in_batch = i - batches.last().map_or(0, |&(end, _)| end);
            let full = in_batch == WRITE_BATCH_OPS || request.len() > WRITE_BATCH_BYTES;
            let start = if in_batch > 0 && full {
                // This op starts the next batch, in a buffer sized like the one it closes.
                let mut next = Vec::with_capacity(request.capacity());
                next.extend_from_slice(request.get(at..).unwrap_or_default());
                request.truncate(at);
                batches.push((i, std::mem::replace(&mut request, next)));
                0
            } else {
                at
            };
            if i == 0 {
                // Room for every op of the batch at the first one's size.
                request.reserve((request.len() * n.min(WRITE_BATCH_OPS)).min(WRITE_BATCH_BYTES));
            }
            sent.push(start..request.len());
        }
        if n > batches.last().map_or(0, |&(end, _)| end) {
            batches.push((n, request));
        }
        Ok(Self {
            out: Vec::with_capacity(n),
            ops,
            sent,
            batches,
            next_batch: 0,
            reading: 0,
            reading_batch: 0,
            first_err: None,
        })
    }
}

impl<T, V: ?Sized> Exchange<V> for Batches<T> {
    type Output = Vec<T>;

    fn step(&mut self, buf: &mut ReadBuf, _: &mut V) -> Result<Step<'_, Vec<T>>> {
        loop {
            let sent_end = match self.next_batch {
                0 => 0,
                n => self.batches[n - 1].0,
            };
            if self.reading == sent_end {
                if self.next_batch == self.batches.len() {
                    let out = std::mem::take(&mut self.out);
                    return Ok(Step::Done(match self.first_err.take() {
                        Some(e) => Err(e),
                        None => Ok(out),
                    }));
                }
                self.next_batch += 1;
                return Ok(Step::Write(&self.batches[self.next_batch - 1].1));
            }
            let Some(reply) = buf.next_reply()? else {
                return Ok(Step::Read);
            };
            while (self.batches.get(self.reading_batch))
                .is_some_and(|&(end, _)| end <= self.reading)
            {
                self.reading_batch += 1;
            }
            // The op's request, from the bytes of its batch that were sent.
            let bytes = self
                .batches
                .get(self.reading_batch)
                .map_or(&[][..], |(_, b)| b);
            let request = (self.sent.get(self.reading))
                .and_then(|r| bytes.get(r.clone()))
                .unwrap_or_default();
            match self.ops[self.reading].feed_sent(reply, request)? {
                None => {}
                Some(Ok(v)) => {
                    self.out.push(v);
                    self.reading += 1;
                }
                Some(Err(e)) => {
                    self.first_err.get_or_insert(e);
                    self.reading += 1;
                }
            }
        }
    }

    fn rewind(&mut self) -> bool {
        false
    }
}

/// The bytes received on a connection and not yet parsed. The driver reads into
/// [`ReadBuf::spare`] and reports how much it read with [`ReadBuf::filled`].
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    parser: proto::ReplyParser,
}

impl ReadBuf {
    /// An empty buffer parsing with `parser`.
    pub(crate) fn new(parser: proto::ReplyParser) -> Self {
        Self {
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            parser,
        }
    }

    /// How many bytes are buffered and not yet consumed.
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether every buffered byte was consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The next complete reply, if the buffered bytes hold one.
    #[inline]
    pub(crate) fn next_reply(&mut self) -> Result<Option<Reply>> {
        // A driver steps its exchange before each read, mostly with nothing buffered yet:
        // that step costs no parse.
        if self.start == self.end {
            return Ok(None);
        }
        match self.parser.parse(&self.buf[self.start..self.end])? {
            Some((reply, used)) => {
                self.consume(used);
                Ok(Some(reply))
            }
            None => Ok(None),
        }
    }

    /// The next complete reply of a text retrieval, borrowed from the buffer; the caller
    /// then [`consume`](Self::consume)s the bytes it used.
    pub(crate) fn peek_retrieval(&self) -> Result<Option<(proto::Retrieval<'_>, usize)>> {
        self.parser.parse_retrieval(&self.buf[self.start..self.end])
    }

    /// The parser and the buffered reply bytes, for a reader that parses several replies
    /// before it [`consume`](Self::consume)s them all at once.
    pub(crate) fn parser_and_bytes(&self) -> (&proto::ReplyParser, &[u8]) {
        (&self.parser, &self.buf[self.start..self.end])
    }

    /// Drops `used` bytes from the front of the buffered reply bytes.
    pub(crate) fn consume(&mut self, used: usize) {
        self.start = (self.start + used).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space to read into: compacts, or grows up to what the parser's limits need.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // The parser errors out before a reply needs more than this, so growth is
                // bounded by the configured limits.
                let cap = self.parser.max_value() + proto::DEFAULT_MAX_LINE + 2;
                let new_len = (self.buf.len() * 2).min(cap.max(self.buf.len() + 1));
                self.buf.resize(new_len, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into the slice [`ReadBuf::spare`] returned.
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memcache::ops;

    /// Feeds `bytes` to a fresh wire running `x` from its start; the exchange's result,
    /// or the error that broke the connection.
    fn feed<X: Exchange<()>>(x: &mut X, bytes: &[u8]) -> Result<Result<X::Output>> {
        let mut wire = Wire::new(proto::ReplyParser::default());
        wire.begin();
        let mut left = bytes;
        loop {
            match wire.step(x, &mut ())? {
                Step::Write(_) => {}
                Step::Read if left.is_empty() => {
                    return Err(Error::Protocol("needs more bytes".into()))
                }
                Step::Read => {
                    let spare = wire.spare();
                    let n = spare.len().min(left.len());
                    spare[..n].copy_from_slice(&left[..n]);
                    wire.filled(n, "test")?;
                    left = &left[n..];
                }
                Step::Done(out) => return Ok(out),
            }
        }
    }

    fn get_op(key: &str) -> (Single<Option<ops::GetsItem>>, u32) {
        let op = ops::get(key.as_bytes(), false, None).unwrap();
        let opaque = op.opaque.unwrap();
        (Single::new(op), opaque)
    }

    #[test]
    fn a_meta_reply_must_echo_its_request() {
        let (mut x, o) = get_op("k1");
        let ok = format!("VA 2 f3 O{o}\r\nhi\r\n");
        let item = feed(&mut x, ok.as_bytes()).unwrap().unwrap().unwrap();
        assert_eq!((item.data, item.flags), (b"hi".to_vec(), 3));
        let wrong: [fn(u32) -> String; 4] = [
            |_| "VA 5 f0\r\nevil!\r\n".into(),
            |o| format!("VA 5 f0 O{}\r\nevil!\r\n", o.wrapping_add(1)),
            |o| format!("VA 5 f0 O{o} kOTHER\r\nevil!\r\n"),
            |o| format!("EN O{}\r\n", o.wrapping_sub(1)),
        ];
        for reply in wrong {
            let (mut x, o) = get_op("k1");
            let bad = reply(o);
            match feed(&mut x, bad.as_bytes()) {
                Err(Error::Protocol(_)) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        // The key echo, when sent, must be the request's.
        let (mut x, o) = get_op("k1");
        let named = format!("VA 2 f0 O{o} kk1\r\nhi\r\n");
        assert!(feed(&mut x, named.as_bytes()).unwrap().unwrap().is_some());
    }

    #[test]
    fn bytes_after_the_final_reply_break_the_exchange() {
        let (mut x, o) = get_op("k1");
        let reply = format!("VA 6 f0 O{o}\r\ngood-1\r\nVA 5 f0\r\nevil!\r\n");
        assert!(matches!(
            feed(&mut x, reply.as_bytes()),
            Err(Error::Protocol(m)) if m.contains("unexpected bytes")
        ));
    }

    #[test]
    fn server_errors_complete_the_exchange_in_step() {
        let (mut x, _) = get_op("k1");
        assert!(matches!(
            feed(&mut x, b"SERVER_ERROR out of memory\r\n"),
            Ok(Err(Error::Server(_)))
        ));
    }

    /// Drives `x` to its end, answering each batch it writes with `answer(first op, ops)`;
    /// the ops each write held (counted by `cmd`) and the result.
    fn run_batches(
        x: &mut Batches<bool>,
        cmd: &str,
        mut answer: impl FnMut(usize, usize) -> String,
    ) -> (Vec<usize>, Result<Result<Vec<bool>>>) {
        let mut wire = Wire::new(proto::ReplyParser::default());
        wire.begin();
        let (mut written, mut answered) = (Vec::new(), 0);
        loop {
            match wire.step(x, &mut ()) {
                Ok(Step::Write(bytes)) => {
                    let ops = bytes
                        .windows(cmd.len())
                        .filter(|w| *w == cmd.as_bytes())
                        .count();
                    written.push(ops);
                }
                Ok(Step::Read) => {
                    let sent: usize = written.iter().sum();
                    let reply = answer(answered, sent - answered);
                    answered = sent;
                    let spare = wire.spare();
                    spare[..reply.len()].copy_from_slice(reply.as_bytes());
                    if let Err(e) = wire.filled(reply.len(), "test") {
                        return (written, Err(e));
                    }
                }
                Ok(Step::Done(out)) => return (written, Ok(out)),
                Err(e) => return (written, Err(e)),
            }
        }
    }

    #[test]
    fn batches_are_bounded_and_each_reply_is_checked_against_its_own_request() {
        let keys: Vec<String> = (0..300).map(|i| format!("key{i}")).collect();
        let batches = || {
            let mut opaques = Vec::new();
            let x = Batches::encoded(keys.len(), |i, buf| {
                let op = ops::delete_into(buf, keys[i].as_bytes(), None)?;
                opaques.push(op.opaque.unwrap());
                Ok(op)
            })
            .unwrap();
            (x, opaques)
        };
        // Each reply echoes the key of the request it answers, which every op checks
        // against its own request's bytes in its batch.
        let (mut x, opaques) = batches();
        let (written, out) = run_batches(&mut x, "md ", |first, n| {
            (first..first + n)
                .map(|i| format!("HD O{} k{}\r\n", opaques[i], keys[i]))
                .collect()
        });
        assert_eq!(
            written,
            [WRITE_BATCH_OPS, WRITE_BATCH_OPS, 300 - 2 * WRITE_BATCH_OPS]
        );
        assert_eq!(out.unwrap().unwrap(), vec![true; 300]);
        // The second batch's first reply naming the key before it breaks the exchange.
        let (mut x, opaques) = batches();
        let (_, out) = run_batches(&mut x, "md ", |first, n| {
            (first..first + n)
                .map(|i| {
                    let named = if i == WRITE_BATCH_OPS { i - 1 } else { i };
                    format!("HD O{} k{}\r\n", opaques[i], keys[named])
                })
                .collect()
        });
        assert!(
            matches!(&out, Err(Error::Protocol(m)) if m.contains("key127")),
            "{out:?}"
        );
    }

    #[test]
    fn batches_split_at_their_byte_bound() {
        let value = vec![b'v'; WRITE_BATCH_BYTES * 2 / 5];
        let mut opaques = Vec::new();
        let mut x = Batches::encoded(3, |i, buf| {
            let key = format!("big{i}");
            let op = ops::store_into(
                buf,
                key.as_bytes(),
                &value,
                0,
                0,
                crate::memcache::SetMode::Set,
                None,
                1 << 30,
            )?;
            opaques.push(op.opaque.unwrap());
            Ok(op)
        })
        .unwrap();
        let (written, out) = run_batches(&mut x, "ms ", |first, n| {
            (first..first + n)
                .map(|i| format!("HD O{}\r\n", opaques[i]))
                .collect()
        });
        assert_eq!(
            written,
            [2, 1],
            "two values fit a batch's bytes, three do not"
        );
        assert_eq!(out.unwrap().unwrap(), vec![true; 3]);
    }

    #[test]
    fn batches_read_every_reply_and_report_the_first_error() {
        let mut opaques = Vec::new();
        let mut x = Batches::encoded(3, |i, buf| {
            let op = ops::delete_into(buf, format!("k{i}").as_bytes(), None)?;
            opaques.push(op.opaque.unwrap());
            Ok(op)
        })
        .unwrap();
        let reply = format!(
            "HD O{}\r\nSERVER_ERROR busy\r\nNF O{}\r\n",
            opaques[0], opaques[2]
        );
        assert!(matches!(
            feed(&mut x, reply.as_bytes()),
            Ok(Err(Error::Server(_)))
        ));
        assert!(
            !Exchange::<()>::rewind(&mut x),
            "writes are never sent twice"
        );
    }

    #[test]
    fn only_a_reused_connection_closed_before_any_reply_byte_may_retry() {
        let closed = || closed_by("s");
        let mut wire = Wire::new(proto::ReplyParser::default());
        wire.begin();
        assert!(
            !wire.may_retry(&closed()),
            "a fresh connection's failure is real"
        );
        let (mut x, o) = get_op("k");
        wire.step(&mut x, &mut ()).unwrap();
        let reply = format!("EN O{o}\r\n");
        wire.spare()[..reply.len()].copy_from_slice(reply.as_bytes());
        wire.filled(reply.len(), "s").unwrap();
        assert!(matches!(
            wire.step(&mut x, &mut ()),
            Ok(Step::Done(Ok(None)))
        ));
        let quiet = || Err(io::ErrorKind::WouldBlock.into());
        assert!(wire.reusable(|| panic!("the last read was short: no probe")));
        wire.begin();
        assert!(
            !wire.reusable(quiet),
            "an exchange under way is not in step"
        );
        assert!(wire.may_retry(&closed()));
        assert!(!wire.may_retry(&Error::Timeout {
            what: "read".into(),
            after: Duration::from_secs(1)
        }));
        wire.spare()[0] = b'E';
        wire.filled(1, "s").unwrap();
        assert!(!wire.may_retry(&closed()), "a reply had started");
        assert!(matches!(wire.filled(0, "s"), Err(Error::Io(_))));
    }

    #[test]
    fn deadline_bounds_each_wait_by_what_is_left() {
        let start = Instant::now();
        let d = Deadline::new(start, Duration::from_millis(500));
        let what = || "read".to_string();
        let b = d.bound(start, Duration::from_millis(200), what).unwrap();
        assert_eq!(b.wait, Duration::from_millis(200));
        assert_eq!(b.reported, Duration::from_millis(200));
        let later = start + Duration::from_millis(400);
        let b = d.bound(later, Duration::from_millis(200), what).unwrap();
        assert_eq!(b.wait, Duration::from_millis(100));
        assert_eq!(b.reported, Duration::from_millis(500));
        match d.bound(
            start + Duration::from_millis(500),
            Duration::from_millis(200),
            what,
        ) {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(500)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn probe_verdicts() {
        assert!(probe_verdict(Err(io::ErrorKind::WouldBlock.into()), "s").is_ok());
        assert!(matches!(probe_verdict(Ok(0), "s"), Err(Error::Io(_))));
        assert!(matches!(probe_verdict(Ok(1), "s"), Err(Error::Protocol(_))));
        assert!(matches!(
            probe_verdict(Err(io::ErrorKind::ConnectionReset.into()), "s"),
            Err(Error::Io(_))
        ));
    }

    #[test]
    fn request_key_tokens() {
        assert_eq!(request_key_token(b"mg k1 v f O1\r\n"), b"k1");
        assert_eq!(request_key_token(b"md abc\r\n"), b"abc");
        assert_eq!(request_key_token(b"mg"), b"");
    }
}
