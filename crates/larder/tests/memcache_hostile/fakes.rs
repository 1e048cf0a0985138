//! The fake memcached servers: how they read requests, what a correct server answers
//! (every key holds `val:<key>`; keys starting with `miss` miss), and the servers that
//! answer by a plan (at once, later, slowly, or wrongly).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use larder_testing::memcached::{FakeAction, FakeServer};

// ---------------------------------------------------------------------------------------
// The requests a fake reads
// ---------------------------------------------------------------------------------------

/// One meta request (`mg`, `ms`, `md`, `ma`, `mn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaReq {
    /// `mg`, `ms`, `md`, `ma` or `mn`.
    pub(crate) cmd: String,
    /// The key, decoded from base64 when the request carried `b` (empty for `mn`).
    pub(crate) key: Vec<u8>,
    /// The key token as sent.
    pub(crate) wire_key: String,
    /// The opaque token: the text after `O` of the flag token starting with `O`, if any.
    pub(crate) opaque: Option<String>,
    /// The `b` flag: the key token is base64.
    pub(crate) base64: bool,
    /// Every flag token after the key (after the data length for `ms`), in request order.
    pub(crate) flags: Vec<String>,
    /// The data block of an `ms`.
    pub(crate) data: Option<Vec<u8>>,
}

impl MetaReq {
    pub(crate) fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// One request, as the fake parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Meta(MetaReq),
    /// A text `get`/`gets` of these key tokens.
    TextGet {
        cas: bool,
        keys: Vec<Vec<u8>>,
    },
    /// Anything else (`version`, `flush_all`, ...): the request line.
    Other(String),
}

/// The complete requests at the start of `buf` (several when the client pipelined them, e.g.
/// quiet `mg`s and an `mn`), and how many bytes they took; an incomplete last request (a line
/// without its `\r\n`, an `ms` without all of its data) is left for the next read.
pub(crate) fn parse_requests(buf: &[u8]) -> (Vec<Request>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(nl) = buf[at..].windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&buf[at..at + nl]).into_owned();
        let mut next = at + nl + 2;
        let toks: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
        let request = match toks.first().copied() {
            Some(cmd @ ("get" | "gets")) => Request::TextGet {
                cas: cmd == "gets",
                keys: toks[1..].iter().map(|k| k.as_bytes().to_vec()).collect(),
            },
            Some(cmd @ ("mg" | "ms" | "md" | "ma" | "mn")) => {
                let (wire_key, mut rest) = if cmd == "mn" {
                    ("", &toks[1..])
                } else {
                    (
                        toks.get(1).copied().unwrap_or(""),
                        toks.get(2..).unwrap_or(&[]),
                    )
                };
                let mut data = None;
                if cmd == "ms" {
                    let len: usize = rest.first().and_then(|l| l.parse().ok()).unwrap_or(0);
                    if buf.len() < next + len + 2 {
                        break;
                    }
                    data = Some(buf[next..next + len].to_vec());
                    next += len + 2;
                    rest = rest.get(1..).unwrap_or(&[]);
                }
                let flags: Vec<String> = rest.iter().map(|f| (*f).to_owned()).collect();
                let base64 = flags.iter().any(|f| f == "b");
                let opaque = flags
                    .iter()
                    .find_map(|f| f.strip_prefix('O'))
                    .map(str::to_owned);
                let key = if base64 {
                    BASE64
                        .decode(wire_key)
                        .unwrap_or_else(|_| wire_key.as_bytes().to_vec())
                } else {
                    wire_key.as_bytes().to_vec()
                };
                Request::Meta(MetaReq {
                    cmd: cmd.to_owned(),
                    key,
                    wire_key: wire_key.to_owned(),
                    opaque,
                    base64,
                    flags,
                    data,
                })
            }
            _ => Request::Other(line.clone()),
        };
        out.push(request);
        at = next;
    }
    (out, at)
}

/// The meta requests among the complete requests in `buf`.
pub(crate) fn meta_requests(buf: &[u8]) -> Vec<MetaReq> {
    parse_requests(buf)
        .0
        .into_iter()
        .filter_map(|r| match r {
            Request::Meta(m) => Some(m),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The true answers
// ---------------------------------------------------------------------------------------

/// The value every key holds: `val:<key>` (self-identifying); keys starting with `miss` are
/// absent.
pub(crate) fn value_of(key: &[u8]) -> Vec<u8> {
    [b"val:".as_slice(), key].concat()
}

pub(crate) fn stored(key: &[u8]) -> Option<Vec<u8>> {
    (!key.starts_with(b"miss")).then(|| value_of(key))
}

/// ` O<token>` when the request carried an opaque, else nothing.
pub(crate) fn echo_opaque(m: &MetaReq) -> String {
    m.opaque
        .as_ref()
        .map_or_else(String::new, |o| format!(" O{o}"))
}

/// The return flags of a meta reply, in request order as memcached sends them: `f`, `c`,
/// `t`, `s` only for a hit; `k` (followed by `b` for a base64 key) and `O` always.
pub(crate) fn return_flags(m: &MetaReq, hit: Option<&[u8]>) -> String {
    let mut out = String::new();
    for flag in &m.flags {
        let tok = match (flag.as_bytes().first(), hit) {
            (Some(b'O'), _) => flag.clone(),
            (Some(b'k'), _) if m.base64 => format!("k{} b", m.wire_key),
            (Some(b'k'), _) => format!("k{}", m.wire_key),
            (Some(b'f'), Some(_)) => "f0".to_owned(),
            (Some(b'c'), Some(_)) => "c42".to_owned(),
            (Some(b't'), Some(_)) => "t-1".to_owned(),
            (Some(b's'), Some(v)) => format!("s{}", v.len()),
            _ => continue,
        };
        out.push(' ');
        out.push_str(&tok);
    }
    out
}

/// What a correct memcached answers to `req` (every key holding [`value_of`] it).
pub(crate) fn answer(req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    match req {
        Request::TextGet { cas, keys } => {
            for key in keys {
                if let Some(v) = stored(key) {
                    out.extend_from_slice(b"VALUE ");
                    out.extend_from_slice(key);
                    let cas = if *cas { " 42" } else { "" };
                    out.extend_from_slice(format!(" 0 {}{cas}\r\n", v.len()).as_bytes());
                    out.extend_from_slice(&v);
                    out.extend_from_slice(b"\r\n");
                }
            }
            out.extend_from_slice(b"END\r\n");
        }
        Request::Meta(m) => {
            let quiet = m.has("q");
            match m.cmd.as_str() {
                "mg" => match stored(&m.key) {
                    Some(v) if m.has("v") => {
                        out.extend_from_slice(
                            format!("VA {}{}\r\n", v.len(), return_flags(m, Some(&v))).as_bytes(),
                        );
                        out.extend_from_slice(&v);
                        out.extend_from_slice(b"\r\n");
                    }
                    Some(v) => out.extend_from_slice(
                        format!("HD{}\r\n", return_flags(m, Some(&v))).as_bytes(),
                    ),
                    None if quiet => {}
                    None => {
                        out.extend_from_slice(format!("EN{}\r\n", return_flags(m, None)).as_bytes())
                    }
                },
                "ms" | "md" if quiet => {}
                "ms" | "md" => {
                    out.extend_from_slice(format!("HD{}\r\n", return_flags(m, None)).as_bytes())
                }
                "ma" => {
                    out.extend_from_slice(format!("NF{}\r\n", return_flags(m, None)).as_bytes())
                }
                // memcached 1.6 answers `mn` with a bare `MN`, whatever flags it carried.
                _ => out.extend_from_slice(b"MN\r\n"),
            }
        }
        Request::Other(line) if line.starts_with("version") => {
            out.extend_from_slice(b"VERSION 1.6.18\r\n")
        }
        Request::Other(line) if line.starts_with("flush_all") => out.extend_from_slice(b"OK\r\n"),
        Request::Other(_) => out.extend_from_slice(b"ERROR\r\n"),
    }
    out
}

/// True the first time it is asked (a plan's "only the first such request").
#[derive(Default)]
pub(crate) struct Once(AtomicBool);

impl Once {
    pub(crate) fn first(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }
}

/// A `VA` reply carrying `data` with `flags` (e.g. `" f0"`) on its line.
pub(crate) fn va(data: &[u8], flags: &str) -> Vec<u8> {
    let mut out = format!("VA {}{flags}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

// ---------------------------------------------------------------------------------------
// Fake servers
// ---------------------------------------------------------------------------------------

/// What a [`fake`] does with one request.
pub(crate) enum Answer {
    /// The true answer.
    Honest,
    /// These bytes instead.
    Bytes(Vec<u8>),
    /// These bytes, then close the connection (the rest of the read is ignored).
    Close(Vec<u8>),
}

/// A [`FakeServer`] that parses each read into requests and asks `plan(connection, n,
/// request)` (`n` counting requests over all connections) what to do with each; the
/// answers of one read go out in one write.
pub(crate) fn fake(
    plan: impl Fn(usize, usize, &Request) -> Answer + Send + Sync + 'static,
) -> FakeServer {
    let seen = AtomicUsize::new(0);
    FakeServer::start(move |conn, bytes| {
        let mut out = Vec::new();
        for req in parse_requests(bytes).0 {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            match plan(conn, n, &req) {
                Answer::Honest => out.extend(answer(&req)),
                Answer::Bytes(b) => out.extend(b),
                Answer::Close(b) => {
                    out.extend(b);
                    return FakeAction::ReplyAndClose(out);
                }
            }
        }
        if out.is_empty() {
            FakeAction::Silent
        } else {
            FakeAction::Reply(out)
        }
    })
    .unwrap()
}

/// One step of a [`Scripted`] server's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Bytes to write; consecutive writes (also across the requests of one read) go out in
    /// one write.
    Write(Vec<u8>),
    /// Writes what is pending, then waits (the next write is a segment of its own).
    Pause(Duration),
    /// Writes what is pending, then these bytes one at a time, waiting after each.
    Trickle(Vec<u8>, Duration),
}

pub(crate) type Plan = dyn Fn(usize, usize, &Request) -> Vec<Step> + Send + Sync;

/// A fake that can write later or slowly: for each request it reads (buffered, so a request
/// split over reads is whole) it runs the [`Step`]s `plan(connection, n, request)` returns.
/// 127.0.0.1 only; every thread stops (and is joined) when it is dropped, and no
/// connection lives longer than 30 s.
pub(crate) struct Scripted {
    pub(crate) addr: String,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) connections: Arc<AtomicUsize>,
    pub(crate) acceptor: Option<JoinHandle<()>>,
}

impl Scripted {
    pub(crate) fn start(
        plan: impl Fn(usize, usize, &Request) -> Vec<Step> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let plan: Arc<Plan> = Arc::new(plan);
        let requests = Arc::new(AtomicUsize::new(0));
        let (stop2, conns2) = (stop.clone(), connections.clone());
        let acceptor = std::thread::spawn(move || {
            let mut served = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let n = conns2.fetch_add(1, Ordering::SeqCst);
                        let (plan, stop, requests) =
                            (plan.clone(), stop2.clone(), requests.clone());
                        served.push(std::thread::spawn(move || {
                            serve_steps(stream, n, &*plan, &requests, &stop)
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for t in served {
                let _ = t.join();
            }
        });
        Self {
            addr,
            stop,
            connections,
            acceptor: Some(acceptor),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Writes `pending` (emptying it); false when the connection is gone.
pub(crate) fn flush(stream: &mut TcpStream, pending: &mut Vec<u8>) -> bool {
    let ok = pending.is_empty() || stream.write_all(pending).is_ok();
    pending.clear();
    ok
}

pub(crate) fn serve_steps(
    mut stream: TcpStream,
    conn: usize,
    plan: &Plan,
    requests: &AtomicUsize,
    stop: &AtomicBool,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) && Instant::now() < give_up {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        let (reqs, used) = parse_requests(&buf);
        buf.drain(..used);
        let mut pending = Vec::new();
        for req in &reqs {
            let n = requests.fetch_add(1, Ordering::SeqCst);
            for step in plan(conn, n, req) {
                match step {
                    Step::Write(bytes) => pending.extend(bytes),
                    Step::Pause(d) => {
                        if !flush(&mut stream, &mut pending) {
                            return;
                        }
                        std::thread::sleep(d);
                    }
                    Step::Trickle(bytes, every) => {
                        if !flush(&mut stream, &mut pending) {
                            return;
                        }
                        for b in bytes {
                            if stop.load(Ordering::SeqCst) || stream.write_all(&[b]).is_err() {
                                return;
                            }
                            std::thread::sleep(every);
                        }
                    }
                }
            }
        }
        if !flush(&mut stream, &mut pending) {
            return;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}
