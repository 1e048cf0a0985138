//! The blocking memcached [`Client`]: std sockets (TCP or Unix), timeouts, one
//! [`Pool`] (queue strategy) of connections per server, keys routed over the ring with
//! failover ([`super::cluster`]), and the operations of [`super::ops`] driven over them.
//! A multi-get sends its first chunk to every server before reading any reply (the servers
//! work in parallel, as with libmemcached); multi-key writes run one scoped thread per server.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cluster::{Cluster, ServerHealth};
use super::multi_get::{self, Chunk, HitRef, MultiGetHits};
use super::ops::{self, keeps_connection, GetsItem, MetaGetOptions, MetaGetResult, Op, ReadBuf};
use super::proto::{self, ReplyParser, SetMode};
use super::{ClientConfig, ServerAddr};
use crate::pool::{Manager, Pool, PoolConfig, Pooled, Strategy};
use crate::{Error, Expiry, Result};

enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write_all(buf),
        }
    }
}

/// One connection to one server.
pub(crate) struct Conn {
    stream: Stream,
    buf: ReadBuf,
    label: String,
    read_timeout: Duration,
    write_timeout: Duration,
    last_used: Instant,
}

fn timeout_error(err: io::Error, what: String, after: Duration) -> Error {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout { what, after },
        _ => Error::Io(err),
    }
}

impl Conn {
    fn connect(addr: &ServerAddr, cfg: &ClientConfig, parser: ReplyParser) -> Result<Self> {
        let label = addr.to_string();
        let stream = match addr {
            ServerAddr::Tcp { host, port } => {
                let mut last = None;
                let mut found = None;
                let resolved = (host.as_str(), *port).to_socket_addrs().map_err(|e| {
                    timeout_error(e, format!("resolve {label}"), cfg.connect_timeout)
                })?;
                for sa in resolved {
                    match TcpStream::connect_timeout(&sa, cfg.connect_timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = match (found, last) {
                    (Some(s), _) => s,
                    (None, Some(e)) => {
                        return Err(timeout_error(
                            e,
                            format!("connect to {label}"),
                            cfg.connect_timeout,
                        ))
                    }
                    (None, None) => {
                        return Err(Error::Config(format!("{label} resolves to no address")))
                    }
                };
                s.set_nodelay(cfg.nodelay)?;
                s.set_read_timeout(Some(cfg.read_timeout))?;
                s.set_write_timeout(Some(cfg.write_timeout))?;
                Stream::Tcp(s)
            }
            #[cfg(unix)]
            ServerAddr::Unix(path) => {
                let s = UnixStream::connect(path).map_err(|e| {
                    timeout_error(e, format!("connect to {label}"), cfg.connect_timeout)
                })?;
                s.set_read_timeout(Some(cfg.read_timeout))?;
                s.set_write_timeout(Some(cfg.write_timeout))?;
                Stream::Unix(s)
            }
            #[cfg(not(unix))]
            ServerAddr::Unix(_) => {
                return Err(Error::Config(
                    "Unix sockets are not available on this platform".into(),
                ))
            }
        };
        Ok(Conn {
            stream,
            buf: ReadBuf::new(parser),
            label,
            read_timeout: cfg.read_timeout,
            write_timeout: cfg.write_timeout,
            last_used: Instant::now(),
        })
    }

    /// True when the idle connection is still open and holds no unread bytes (checked with
    /// a non-blocking read; anything read means the connection is out of step anyway).
    fn is_healthy(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut probe = [0u8; 1];
        let alive = matches!(
            self.stream.read(&mut probe),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        alive && self.stream.set_nonblocking(false).is_ok()
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .map_err(|e| timeout_error(e, format!("write to {}", self.label), self.write_timeout))
    }

    fn read_reply(&mut self) -> Result<proto::Reply> {
        loop {
            if let Some(reply) = self.buf.next_reply()? {
                return Ok(reply);
            }
            self.fill()?;
        }
    }

    /// Reads whatever the server has sent next into the buffer (at least one byte).
    fn fill(&mut self) -> Result<()> {
        let n = self.stream.read(self.buf.spare()).map_err(|e| {
            timeout_error(e, format!("read from {}", self.label), self.read_timeout)
        })?;
        if n == 0 {
            return Err(ops::closed_by(&self.label));
        }
        self.buf.filled(n);
        Ok(())
    }

    /// Reads the replies of `chunks` (the first already sent), sending each next chunk
    /// before reading the one ahead of it; the number of hits.
    fn land_chunks<V>(&mut self, chunks: &mut [Chunk<'_>], visit: &mut V) -> Result<usize>
    where
        V: FnMut(HitRef<'_>) + ?Sized,
    {
        for i in 0..chunks.len() {
            if let Some(next) = chunks.get(i + 1) {
                self.send(next.request())?;
            }
            let chunk = &mut chunks[i];
            while !chunk.read(&mut self.buf, visit)? {
                self.fill()?;
            }
        }
        Ok(chunks.iter().map(Chunk::hits).sum())
    }

    fn finish<T>(&mut self, mut op: Op<T>) -> Result<T> {
        loop {
            let reply = self.read_reply()?;
            if let Some(out) = (op.handler)(reply)? {
                return Ok(out);
            }
        }
    }

    /// Sends `op` and reads its replies.
    fn run<T>(&mut self, op: Op<T>) -> Result<T> {
        self.send(&op.request)?;
        self.finish(op)
    }

    /// Runs `ops` as batches: each batch's requests go out in one write, then its replies are
    /// read in order (batches are bounded so the small replies never fill the socket).
    fn run_batches<T>(&mut self, ops: Vec<Op<T>>) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(ops.len());
        for (request, batch) in ops::batches(ops) {
            self.send(&request)?;
            for op in batch {
                out.push(self.finish(op)?);
            }
        }
        Ok(out)
    }
}

/// One server's part of a multi-get in progress: its connection and its chunks (the first
/// already sent); `'k` borrows the keys.
struct Flight<'p, 'k> {
    conn: Pooled<'p, ConnManager>,
    chunks: Vec<Chunk<'k>>,
}

/// Makes the connections of one server's pool.
struct ConnManager {
    addr: ServerAddr,
    config: ClientConfig,
    parser: ReplyParser,
}

impl Manager for ConnManager {
    /// Boxed: the pool moves its objects in and out of its idle list on every checkout,
    /// and moving a pointer instead of the connection took ~8 `memcpy` calls off a get.
    type Object = Box<Conn>;
    type Error = Error;

    fn create(&self) -> Result<Box<Conn>> {
        Conn::connect(&self.addr, &self.config, self.parser).map(Box::new)
    }

    fn recycle(&self, conn: &mut Box<Conn>) -> Result<()> {
        if conn.last_used.elapsed() >= self.config.idle_check_after && !conn.is_healthy() {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!(
                    "idle connection to {} was closed or out of step",
                    conn.label
                ),
            )));
        }
        Ok(())
    }
}

/// A pool's creation error carries our own typed error (timeout, I/O): hand that back.
fn unwrap_create_error(err: Error) -> Error {
    match err {
        Error::PoolCreate { pool, source } => match source.downcast::<Error>() {
            Ok(inner) => *inner,
            Err(source) => Error::PoolCreate { pool, source },
        },
        other => other,
    }
}

struct Inner {
    config: ClientConfig,
    cluster: Arc<Cluster>,
    pools: Vec<Pool<ConnManager>>,
}

/// A blocking memcached client: `Send + Sync`, cheap to clone (clones share connections).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.inner.config.servers)
            .finish()
    }
}

/// The current Unix time in seconds (for exptimes over 30 days).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Client {
    /// A client for `config`; connects lazily.
    pub fn new(config: ClientConfig) -> Result<Self> {
        config.validate()?;
        let parser = ReplyParser::new(config.max_value_size);
        let pools = config
            .servers
            .iter()
            .map(|addr| {
                let strategy = Strategy::Queue {
                    min_size: 0,
                    max_size: config.max_connections_per_server,
                    wait_timeout: config.pool_wait_timeout,
                    max_uses: None,
                    idle_timeout: Some(Duration::from_secs(300)),
                    eager: false,
                };
                let manager = ConnManager {
                    addr: addr.clone(),
                    config: config.clone(),
                    parser,
                };
                Pool::new_unsync(
                    manager,
                    PoolConfig::new(format!("memcached {addr}"), strategy),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let cluster = Arc::new(Cluster::new(&config)?);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                cluster,
                pools,
            }),
        })
    }

    /// A client with default settings for a comma-separated server list
    /// (`host:port[:weight]`, `[v6]:port[:weight]` or Unix socket paths).
    pub fn connect(servers: &str) -> Result<Self> {
        Self::new(ClientConfig::from_specs(servers)?)
    }

    /// The shared health bookkeeping (the cache's async client uses the same).
    #[cfg(feature = "tokio")]
    pub(crate) fn cluster(&self) -> Arc<Cluster> {
        self.inner.cluster.clone()
    }

    /// The health of every server, in configuration order.
    pub fn health(&self) -> Vec<ServerHealth> {
        self.inner.cluster.health()
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Runs `f` on a connection to `server` and records the outcome in its health.
    fn call<T>(&self, server: usize, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let result = self.with_conn(server, f);
        self.inner.cluster.record(server, &result);
        result
    }

    /// Like [`call`](Self::call) for a non-key operation: a dead server (not yet due for a
    /// probe) fails at once with [`Error::ServerDead`].
    fn call_admitted<T>(&self, server: usize, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        self.inner.cluster.admit(server)?;
        self.call(server, f)
    }

    fn exptime(expiry: Expiry) -> u32 {
        proto::exptime(expiry, unix_now())
    }

    /// Runs `f` on a pooled (or new) connection to `server`; the connection goes back to the
    /// pool only when `f` left it in step with the server.
    fn with_conn<T>(&self, server: usize, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let pool = self
            .inner
            .pools
            .get(server)
            .ok_or_else(|| Error::NoServers(format!("no server #{server}")))?;
        let mut conn = pool.get().map_err(unwrap_create_error)?;
        let conn_mut = conn.get_mut()?;
        let result = f(conn_mut);
        conn_mut.last_used = Instant::now();
        match &result {
            Ok(_) => {}
            Err(e) if keeps_connection(e) => {}
            // Out of step with the server (or broken): never reused.
            Err(_) => conn.discard(),
        }
        result
    }

    fn run<T>(&self, key: &[u8], op: Op<T>) -> Result<T> {
        let server = self.inner.cluster.route(key)?;
        self.call(server, |c| c.run(op))
    }

    /// The value and client flags of `key`, `None` on a miss.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<(Vec<u8>, u32)>> {
        let key = key.as_ref();
        Ok(self
            .run(key, ops::get(key, false, None)?)?
            .map(|i| (i.data, i.flags)))
    }

    /// Value, flags and CAS of `key`, `None` on a miss.
    pub fn gets(&self, key: impl AsRef<[u8]>) -> Result<Option<GetsItem>> {
        let key = key.as_ref();
        self.run(key, ops::get(key, true, None)?)
    }

    /// Get-and-touch: the value, flags and CAS of `key`, resetting its expiry.
    pub fn gat(&self, key: impl AsRef<[u8]>, expiry: Expiry) -> Result<Option<GetsItem>> {
        let key = key.as_ref();
        self.run(key, ops::get(key, true, Some(Self::exptime(expiry)))?)
    }

    /// The hits among `keys` (value, flags, CAS 0), pipelined per server and sent to every
    /// server before any reply is read. The hits are copied into one buffer with a hash
    /// index over it ([`MultiGetHits`]): look a key up with `get`, iterate with `iter`;
    /// [`get_multi_with`](Self::get_multi_with) visits them in place instead.
    ///
    /// Partial failure: when some servers fail (or are dead in `FailFast` mode), the hits of
    /// the others are returned and the failed servers' keys count as misses (each failure
    /// counts toward that server's health). Only when every involved server fails is the
    /// call an error (the first failure).
    pub fn get_multi<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<MultiGetHits> {
        let mut hits = multi_get::Collector::new(keys.len());
        self.get_multi_with(keys, |hit| hits.visit(hit))?;
        Ok(hits.finish())
    }

    /// Like [`get_multi`](Self::get_multi), handing each hit to `visit` as it is parsed,
    /// borrowed from the connection's read buffer (nothing is copied unless `visit` copies
    /// it). Returns the number of hits. Hits are visited server by server, in the order each
    /// server answers; on a partial failure the hits already visited of a server that then
    /// failed were real hits.
    pub fn get_multi_with<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        mut visit: impl FnMut(HitRef<'_>),
    ) -> Result<usize> {
        let (groups, mut outcome) = multi_get::route(&self.inner.cluster, keys);
        // In parallel on the wire without threads, as libmemcached does: the first chunk goes
        // to every server before any reply is read, so the servers work at the same time
        // and the call costs about one round trip. (Scoped threads per call cost more than
        // they saved on loopback.) Later chunks of a large multi-get are pipelined per server.
        let mut flights = Vec::with_capacity(groups.len());
        for (server, group) in &groups {
            flights.push((*server, self.take_off(*server, group)));
        }
        for (server, flight) in flights {
            let result = flight.and_then(|f| self.land(f, &mut visit));
            self.inner.cluster.record(server, &result);
            outcome.add(result);
        }
        outcome.finish()
    }

    /// Checks out a connection to `server` and sends the first chunk of `group`.
    fn take_off<'p, 'k>(&'p self, server: usize, group: &'k [&'k [u8]]) -> Result<Flight<'p, 'k>> {
        let chunks = multi_get::chunks(group)?;
        let pool = self
            .inner
            .pools
            .get(server)
            .ok_or_else(|| Error::NoServers(format!("no server #{server}")))?;
        let mut conn = pool.get().map_err(unwrap_create_error)?;
        if let Some(first) = chunks.first() {
            if let Err(e) = conn.get_mut()?.send(first.request()) {
                conn.discard();
                return Err(e);
            }
        }
        Ok(Flight { conn, chunks })
    }

    /// Reads the first chunk's replies and runs the remaining chunks. Any failure drops the
    /// connection (later chunks may already be on the wire).
    fn land<V>(&self, flight: Flight<'_, '_>, visit: &mut V) -> Result<usize>
    where
        V: FnMut(HitRef<'_>) + ?Sized,
    {
        let Flight {
            mut conn,
            mut chunks,
        } = flight;
        let c = conn.get_mut()?;
        let result = c.land_chunks(&mut chunks, visit);
        c.last_used = Instant::now();
        if result.is_err() {
            conn.discard();
        }
        result
    }

    /// Runs one op per key (built by `make_op` from the key's index), grouped by server,
    /// batched per server and fanned out to the servers in parallel; the outcomes in key
    /// order. Every server is tried; the first failure (or fail-fast refusal) is the error.
    fn fan_out_writes(
        &self,
        keys: &[&[u8]],
        make_op: impl Fn(usize) -> Result<Op<bool>> + Sync,
    ) -> Result<Vec<bool>> {
        let groups = self.inner.cluster.group_indices(keys)?;
        let run_group = |server: usize, indices: &[usize]| -> Result<Vec<bool>> {
            let ops = indices
                .iter()
                .map(|&i| make_op(i))
                .collect::<Result<Vec<_>>>()?;
            self.call(server, |c| c.run_batches(ops))
        };
        let results = in_parallel(&groups, |(server, indices)| run_group(*server, indices));
        let mut outcome = ops::WriteOutcome::new(keys.len());
        for ((_, indices), result) in groups.iter().zip(results) {
            outcome.add(indices, result);
        }
        outcome.finish()
    }

    /// Stores every `(key, value, flags)` with `mode` (`Set`, `Add`, `Replace`, ...): grouped
    /// by server, batched (many requests per write), the servers in parallel. Returns, in
    /// item order, whether each was stored. When a server fails the call is an error (the
    /// other servers' items were still written).
    pub fn store_multi(
        &self,
        mode: SetMode,
        items: &[(&[u8], &[u8], u32)],
        expiry: Expiry,
    ) -> Result<Vec<bool>> {
        let exptime = Self::exptime(expiry);
        let limit = self.inner.config.item_size_limit;
        let keys: Vec<&[u8]> = items.iter().map(|(k, _, _)| *k).collect();
        self.fan_out_writes(&keys, |i| {
            let (key, value, flags) = items[i];
            ops::store(key, value, flags, exptime, mode, None, limit)
        })
    }

    /// Deletes every key like [`store_multi`](Self::store_multi) writes; in key order,
    /// whether each was present.
    pub fn delete_multi<K: AsRef<[u8]> + Sync>(&self, keys: &[K]) -> Result<Vec<bool>> {
        let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
        self.fan_out_writes(&keys, |i| ops::delete(keys[i], None))
    }

    fn store(
        &self,
        mode: SetMode,
        key: &[u8],
        value: &[u8],
        flags: u32,
        expiry: Expiry,
        cas: Option<u64>,
    ) -> Result<bool> {
        let op = ops::store(
            key,
            value,
            flags,
            Self::exptime(expiry),
            mode,
            cas,
            self.inner.config.item_size_limit,
        )?;
        self.run(key, op)
    }

    /// Stores `value` with client `flags` unconditionally.
    pub fn set(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
    ) -> Result<()> {
        let key = key.as_ref();
        match self.store(SetMode::Set, key, value, flags, expiry, None)? {
            true => Ok(()),
            false => Err(Error::Server(format!(
                "set of {:?} was not stored",
                String::from_utf8_lossy(key)
            ))),
        }
    }

    /// Stores only when absent; `true` when stored.
    pub fn add(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
    ) -> Result<bool> {
        self.store(SetMode::Add, key.as_ref(), value, flags, expiry, None)
    }

    /// Stores only when present; `true` when stored.
    pub fn replace(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
    ) -> Result<bool> {
        self.store(SetMode::Replace, key.as_ref(), value, flags, expiry, None)
    }

    /// Appends to an existing value; `true` when the key existed.
    pub fn append(&self, key: impl AsRef<[u8]>, value: &[u8]) -> Result<bool> {
        self.store(SetMode::Append, key.as_ref(), value, 0, Expiry::Never, None)
    }

    /// Prepends to an existing value; `true` when the key existed.
    pub fn prepend(&self, key: impl AsRef<[u8]>, value: &[u8]) -> Result<bool> {
        self.store(
            SetMode::Prepend,
            key.as_ref(),
            value,
            0,
            Expiry::Never,
            None,
        )
    }

    /// Stores only when the item's CAS is still `cas`; `false` when it changed or vanished.
    pub fn cas(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
        cas: u64,
    ) -> Result<bool> {
        self.store(SetMode::Set, key.as_ref(), value, flags, expiry, Some(cas))
    }

    /// Deletes `key`; `true` when it was present.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.run(key, ops::delete(key, None)?)
    }

    /// Deletes `key` only while its CAS is still `cas` (from [`gets`](Self::gets)); `false`
    /// when it is missing or was changed meanwhile. One round trip, atomic on the server.
    pub fn delete_cas(&self, key: impl AsRef<[u8]>, cas: u64) -> Result<bool> {
        let key = key.as_ref();
        self.run(key, ops::delete_cas(key, cas)?)
    }

    /// Adds `delta`; the new value, `None` when the key is missing.
    pub fn incr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<Option<u64>> {
        let key = key.as_ref();
        self.run(key, ops::arith(key, false, delta)?)
    }

    /// Subtracts `delta` (stopping at 0); the new value, `None` when the key is missing.
    pub fn decr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<Option<u64>> {
        let key = key.as_ref();
        self.run(key, ops::arith(key, true, delta)?)
    }

    /// Gives `key` a new expiry; `true` when it exists.
    pub fn touch(&self, key: impl AsRef<[u8]>, expiry: Expiry) -> Result<bool> {
        let key = key.as_ref();
        self.run(key, ops::touch(key, Self::exptime(expiry))?)
    }

    /// `flush_all` on every server: invalidates every item on them, not only ours.
    pub fn flush_all(&self) -> Result<()> {
        for server in 0..self.inner.config.servers.len() {
            self.call_admitted(server, |c| c.run(ops::flush_all(None)))?;
        }
        Ok(())
    }

    /// `stats` of every server, keyed by server address, each map with the client's view
    /// of the server added: `larder:state` (`alive`/`dead`), `larder:consecutive_failures`,
    /// `larder:total_failures`, `larder:dead_for_ms` when dead, and `larder:error` when the
    /// server could not be asked (its map then holds only the `larder:*` entries). An error
    /// only when no server answered.
    pub fn stats(&self) -> Result<HashMap<String, HashMap<String, String>>> {
        self.stats_group(None)
    }

    /// `stats <group>` (e.g. `"slabs"`, `"settings"`) of every server, with the `larder:*`
    /// entries of [`stats`](Self::stats).
    pub fn stats_group(
        &self,
        group: Option<&str>,
    ) -> Result<HashMap<String, HashMap<String, String>>> {
        let mut replies = Vec::new();
        for server in 0..self.inner.config.servers.len() {
            let op = ops::stats(group)?;
            replies.push(self.call_admitted(server, |c| c.run(op)));
        }
        stats_with_health(replies, self.health())
    }

    /// The version string of every server, keyed by server address.
    pub fn version(&self) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for (server, addr) in self.inner.config.servers.iter().enumerate() {
            out.insert(
                addr.to_string(),
                self.call_admitted(server, |c| c.run(ops::version()))?,
            );
        }
        Ok(out)
    }

    /// The stale-while-revalidate read (`mg` with `N`/`R`): value, CAS, remaining TTL, and
    /// whether this caller won the right to recreate the value.
    pub fn meta_get(&self, key: impl AsRef<[u8]>, opts: MetaGetOptions) -> Result<MetaGetResult> {
        let key = key.as_ref();
        self.run(key, ops::meta_get(key, opts)?)
    }

    /// Marks `key` stale (`md … I`), giving it `ttl` more life; the next `meta_get` gets the
    /// old value with `won`. `true` when the key existed.
    pub fn meta_invalidate(&self, key: impl AsRef<[u8]>, ttl: Expiry) -> Result<bool> {
        let key = key.as_ref();
        let exptime = match ttl {
            Expiry::Never => 0,
            e => Self::exptime(e),
        };
        self.run(key, ops::delete(key, Some(exptime))?)
    }

    /// Stores `value` only when the item's CAS is still `cas` (the winner's recache);
    /// `false` when it was invalidated or changed meanwhile.
    pub fn meta_set_cas(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
        cas: u64,
    ) -> Result<bool> {
        self.cas(key, value, flags, expiry, cas)
    }

    /// Counters of each server's connection pool, in server order.
    pub fn pool_stats(&self) -> Vec<crate::pool::PoolStats> {
        self.inner.pools.iter().map(Pool::stats).collect()
    }
}

/// Per-server stats maps with the `larder:*` health entries added (see [`Client::stats`]).
pub(crate) fn stats_with_health(
    replies: Vec<Result<HashMap<String, String>>>,
    health: Vec<ServerHealth>,
) -> Result<HashMap<String, HashMap<String, String>>> {
    let mut out = HashMap::new();
    let mut first_err = None;
    let mut any_ok = false;
    for (reply, h) in replies.into_iter().zip(health) {
        let mut map = match reply {
            Ok(map) => {
                any_ok = true;
                map
            }
            Err(e) => {
                let mut map = HashMap::new();
                map.insert("larder:error".to_owned(), e.to_string());
                first_err.get_or_insert(e);
                map
            }
        };
        map.extend(h.stats_entries());
        out.insert(h.addr.to_string(), map);
    }
    match first_err {
        Some(e) if !any_ok => Err(e),
        _ => Ok(out),
    }
}

/// Runs `work` on every group, the first on the calling thread and each other on a scoped
/// thread of its own (so the servers' round trips overlap); results in group order.
fn in_parallel<G: Sync, T: Send>(
    groups: &[G],
    work: impl Fn(&G) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    match groups {
        [] => Vec::new(),
        [only] => vec![work(only)],
        [first, rest @ ..] => std::thread::scope(|scope| {
            let work = &work;
            let handles: Vec<_> = rest
                .iter()
                .map(|group| scope.spawn(move || work(group)))
                .collect();
            let mut out = Vec::with_capacity(groups.len());
            out.push(work(first));
            out.extend(handles.into_iter().map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Client("multi-key worker thread panicked".into()))
                })
            }));
            out
        }),
    }
}
