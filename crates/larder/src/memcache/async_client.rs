//! The async memcached [`AsyncClient`] on tokio: the same operations and wire protocol as the
//! blocking [`Client`](super::Client), driving the same sans-IO [`proto`](super::proto).
//!
//! Keys are routed over the ring with failover as in the blocking client; a multi-get sends
//! its first chunk to every server before reading any reply, within the caller's task (see
//! [`multi_get`](super::multi_get)); multi-key writes run one task per server on a `JoinSet`.
//!
//! Every read and write is first tried without waiting; only one that must wait is bounded
//! by its timeout (a per-connection timer for reads, pushed forward before each wait;
//! `tokio::time::timeout` for writes and connects). A connection is taken out of the idle
//! stack for one exchange; when the caller's future is cancelled the connection is dropped
//! with it, never returned half-read.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use super::client::{stats_with_health, unix_now};
use super::cluster::{Cluster, ServerHealth};
use super::conn_pool::IdleStack;
use super::multi_get::{self, Chunk, HitRef, MultiGetHits};
use super::ops::{self, keeps_connection, GetsItem, MetaGetOptions, MetaGetResult, Op, ReadBuf};
use super::proto::{self, Reply, ReplyParser, SetMode};
use super::{ClientConfig, ServerAddr};
use crate::{Error, Expiry, Result};

enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// Writes what the socket takes now, without waiting (`WouldBlock` when nothing).
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(bytes),
            #[cfg(unix)]
            Stream::Unix(s) => s.try_write(bytes),
        }
    }

    /// Reads what has arrived, without waiting (`WouldBlock` when nothing).
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.try_read(buf),
        }
    }

    /// Writes all of `bytes`, waiting for the socket as needed.
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(bytes).await,
            #[cfg(unix)]
            Stream::Unix(s) => s.write_all(bytes).await,
        }
    }

    /// Reads what arrives next, waiting for it.
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf).await,
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf).await,
        }
    }
}

async fn bounded<T>(
    after: Duration,
    what: impl FnOnce() -> String,
    fut: impl Future<Output = io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Io(e)),
        Err(_) => Err(Error::Timeout {
            what: what(),
            after,
        }),
    }
}

struct Conn {
    stream: Stream,
    buf: ReadBuf,
    label: String,
    read_timeout: Duration,
    /// The read timeout's timer, kept for the connection's life and pushed forward before
    /// each wait: moving a registered deadline later costs no timer-wheel work, where a new
    /// `tokio::time::timeout` per read registered and removed an entry every time.
    read_timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    write_timeout: Duration,
}

impl Conn {
    async fn connect(addr: &ServerAddr, cfg: &ClientConfig, parser: ReplyParser) -> Result<Self> {
        let label = addr.to_string();
        let what = || format!("connect to {label}");
        let stream = match addr {
            ServerAddr::Tcp { host, port } => {
                let s = bounded(
                    cfg.connect_timeout,
                    what,
                    TcpStream::connect((host.as_str(), *port)),
                )
                .await?;
                s.set_nodelay(cfg.nodelay)?;
                Stream::Tcp(s)
            }
            #[cfg(unix)]
            ServerAddr::Unix(path) => {
                Stream::Unix(bounded(cfg.connect_timeout, what, UnixStream::connect(path)).await?)
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
            read_timer: Box::pin(tokio::time::sleep(cfg.read_timeout)),
            write_timeout: cfg.write_timeout,
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        // Most requests fit the socket's send buffer at once: try that first, so the timer
        // is only set up when the write has to wait.
        let sent = match self.stream.try_write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(Error::Io(e)),
        };
        let Some(rest) = bytes.get(sent..).filter(|rest| !rest.is_empty()) else {
            return Ok(());
        };
        let label = &self.label;
        let what = || format!("write to {label}");
        bounded(self.write_timeout, what, self.stream.write_all(rest)).await
    }

    async fn read_reply(&mut self) -> Result<Reply> {
        loop {
            if let Some(reply) = self.buf.next_reply()? {
                return Ok(reply);
            }
            self.fill().await?;
        }
    }

    /// Reads whatever the server has sent next into the buffer (at least one byte). Bytes
    /// already received are taken without setting up the read timeout's timer.
    async fn fill(&mut self) -> Result<()> {
        let label = &self.label;
        let what = || format!("read from {label}");
        let spare = self.buf.spare();
        let n = match self.stream.try_read(spare) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let timer = &mut self.read_timer;
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + self.read_timeout);
                tokio::select! {
                    biased;
                    read = self.stream.read(spare) => read.map_err(Error::Io)?,
                    () = timer.as_mut() => {
                        return Err(Error::Timeout {
                            what: what(),
                            after: self.read_timeout,
                        })
                    }
                }
            }
            Err(e) => return Err(Error::Io(e)),
        };
        if n == 0 {
            return Err(ops::closed_by(&self.label));
        }
        self.buf.filled(n);
        Ok(())
    }

    /// See the blocking client's `land_chunks`.
    async fn land_chunks<V>(&mut self, chunks: &mut [Chunk<'_>], visit: &mut V) -> Result<usize>
    where
        V: FnMut(HitRef<'_>) + Send + ?Sized,
    {
        for i in 0..chunks.len() {
            if let Some(next) = chunks.get(i + 1) {
                self.send(next.request()).await?;
            }
            let chunk = &mut chunks[i];
            while !chunk.read(&mut self.buf, visit)? {
                self.fill().await?;
            }
        }
        Ok(chunks.iter().map(Chunk::hits).sum())
    }

    async fn finish<T>(&mut self, mut op: Op<T>) -> Result<T> {
        loop {
            let reply = self.read_reply().await?;
            if let Some(out) = (op.handler)(reply)? {
                return Ok(out);
            }
        }
    }

    async fn run<T>(&mut self, op: Op<T>) -> Result<T> {
        self.send(&op.request).await?;
        self.finish(op).await
    }

    /// Runs `ops` in [`ops::batches`]: each batch in one write, then its replies in order.
    async fn run_batches<T>(&mut self, ops: Vec<Op<T>>) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(ops.len());
        for (request, batch) in ops::batches(ops) {
            self.send(&request).await?;
            for op in batch {
                out.push(self.finish(op).await?);
            }
        }
        Ok(out)
    }
}

struct Inner {
    config: ClientConfig,
    cluster: Arc<Cluster>,
    parser: ReplyParser,
    /// Boxed connections: one moves in and out of its stack on every call.
    idle: Vec<IdleStack<Box<Conn>>>,
}

/// An async memcached client for tokio: `Send + Sync`, cheap to clone.
///
/// Its idle connections are registered with the runtime that opened them: use one client
/// per runtime (a connection whose runtime has shut down fails with an I/O error and is
/// dropped, so only that one call fails).
#[derive(Clone)]
pub struct AsyncClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("servers", &self.inner.config.servers)
            .finish()
    }
}

/// Takes a connection, runs `$body` with it bound to `$conn`, and returns it to the idle stack
/// only when the result leaves it in step (a cancelled future drops it).
macro_rules! with_conn {
    ($self:ident, $server:expr, |$conn:ident| $body:expr) => {{
        let server: usize = $server;
        let mut conn = $self.check_out(server).await?;
        let result = {
            let $conn = &mut conn;
            $body.await
        };
        match &result {
            Ok(_) => $self.check_in(server, conn),
            Err(e) if keeps_connection(e) => $self.check_in(server, conn),
            Err(_) => drop(conn),
        }
        result
    }};
}

impl AsyncClient {
    /// A client for `config`; connects lazily (no runtime needed to build it).
    pub fn new(config: ClientConfig) -> Result<Self> {
        config.validate()?;
        let cluster = Arc::new(Cluster::new(&config)?);
        Ok(Self::from_validated(config, cluster))
    }

    /// A client for a configuration that was already validated, sharing `cluster`'s health.
    pub(crate) fn from_validated(config: ClientConfig, cluster: Arc<Cluster>) -> Self {
        let parser = ReplyParser::new(config.max_value_size);
        let idle = config
            .servers
            .iter()
            .map(|_| IdleStack::new(config.max_connections_per_server))
            .collect();
        Self {
            inner: Arc::new(Inner {
                config,
                cluster,
                parser,
                idle,
            }),
        }
    }

    /// A client with default settings for a comma-separated server list.
    pub fn connect(servers: &str) -> Result<Self> {
        Self::new(ClientConfig::from_specs(servers)?)
    }

    /// See [`Client::health`](super::Client::health).
    pub fn health(&self) -> Vec<ServerHealth> {
        self.inner.cluster.health()
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn exptime(expiry: Expiry) -> u32 {
        proto::exptime(expiry, unix_now())
    }

    async fn run<T>(&self, key: &[u8], op: Op<T>) -> Result<T> {
        let server = self.inner.cluster.route(key)?;
        let result = self.raw_run_on(server, op).await;
        self.inner.cluster.record(server, &result);
        result
    }

    /// Runs a non-key operation on `server` (failing fast while it is dead).
    async fn run_on<T>(&self, server: usize, op: Op<T>) -> Result<T> {
        self.inner.cluster.admit(server)?;
        let result = self.raw_run_on(server, op).await;
        self.inner.cluster.record(server, &result);
        result
    }

    async fn raw_run_on<T>(&self, server: usize, op: Op<T>) -> Result<T> {
        with_conn!(self, server, |c| c.run(op))
    }

    /// See [`Client::get`](super::Client::get).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<(Vec<u8>, u32)>> {
        let key = key.as_ref();
        Ok(self
            .run(key, ops::get(key, false, None)?)
            .await?
            .map(|i| (i.data, i.flags)))
    }

    /// See [`Client::gets`](super::Client::gets).
    pub async fn gets(&self, key: impl AsRef<[u8]>) -> Result<Option<GetsItem>> {
        let key = key.as_ref();
        self.run(key, ops::get(key, true, None)?).await
    }

    /// See [`Client::gat`](super::Client::gat).
    pub async fn gat(&self, key: impl AsRef<[u8]>, expiry: Expiry) -> Result<Option<GetsItem>> {
        let key = key.as_ref();
        self.run(key, ops::get(key, true, Some(Self::exptime(expiry)))?)
            .await
    }

    /// See [`Client::get_multi`](super::Client::get_multi).
    pub async fn get_multi<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<MultiGetHits> {
        let mut hits = multi_get::Collector::new(keys.len());
        self.get_multi_with(keys, |hit| hits.visit(hit)).await?;
        Ok(hits.finish())
    }

    /// See [`Client::get_multi_with`](super::Client::get_multi_with). The servers work in
    /// parallel as in the blocking client (every first chunk is sent before any reply is
    /// read), within the caller's task.
    pub async fn get_multi_with<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        mut visit: impl FnMut(HitRef<'_>) + Send,
    ) -> Result<usize> {
        let (groups, mut outcome) = multi_get::route(&self.inner.cluster, keys);
        let mut flights = Vec::with_capacity(groups.len());
        for (server, group) in &groups {
            flights.push((*server, self.take_off(*server, group).await));
        }
        for (server, flight) in flights {
            let result = match flight {
                Ok((mut conn, mut chunks)) => {
                    let landed = conn.land_chunks(&mut chunks, &mut visit).await;
                    if landed.is_ok() {
                        self.check_in(server, conn);
                    }
                    landed
                }
                Err(e) => Err(e),
            };
            self.inner.cluster.record(server, &result);
            outcome.add(result);
        }
        outcome.finish()
    }

    /// Checks out a connection to `server` and sends the first chunk of `group`.
    async fn take_off<'k>(
        &self,
        server: usize,
        group: &'k [&'k [u8]],
    ) -> Result<(Box<Conn>, Vec<Chunk<'k>>)> {
        let chunks = multi_get::chunks(group)?;
        let mut conn = self.check_out(server).await?;
        if let Some(first) = chunks.first() {
            conn.send(first.request()).await?;
        }
        Ok((conn, chunks))
    }

    /// An idle connection to `server`, or a new one.
    async fn check_out(&self, server: usize) -> Result<Box<Conn>> {
        let inner = &*self.inner;
        let (addr, idle) = match (inner.config.servers.get(server), inner.idle.get(server)) {
            (Some(a), Some(i)) => (a, i),
            _ => return Err(Error::NoServers(format!("no server #{server}"))),
        };
        match idle.take() {
            Some(c) => Ok(c),
            None => Conn::connect(addr, &inner.config, inner.parser)
                .await
                .map(Box::new),
        }
    }

    /// Returns a connection known to be in step with `server` to its idle stack.
    fn check_in(&self, server: usize, conn: Box<Conn>) {
        if let Some(idle) = self.inner.idle.get(server) {
            idle.put(conn);
        }
    }

    async fn batches_on(&self, server: usize, ops: Vec<Op<bool>>) -> Result<Vec<bool>> {
        let result: Result<Vec<bool>> =
            async { with_conn!(self, server, |c| c.run_batches(ops)) }.await;
        self.inner.cluster.record(server, &result);
        result
    }

    /// See [`Client::store_multi`](super::Client::store_multi) (servers as parallel tasks).
    pub async fn store_multi(
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
        .await
    }

    /// See [`Client::delete_multi`](super::Client::delete_multi).
    pub async fn delete_multi<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<bool>> {
        let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
        self.fan_out_writes(&keys, |i| ops::delete(keys[i], None))
            .await
    }

    async fn fan_out_writes(
        &self,
        keys: &[&[u8]],
        make_op: impl Fn(usize) -> Result<Op<bool>>,
    ) -> Result<Vec<bool>> {
        let groups = self.inner.cluster.group_indices(keys)?;
        let mut tasks = tokio::task::JoinSet::new();
        for (server, indices) in groups {
            let ops = indices
                .iter()
                .map(|&i| make_op(i))
                .collect::<Result<Vec<_>>>()?;
            let client = self.clone();
            tasks.spawn(async move { (indices, client.batches_on(server, ops).await) });
        }
        let mut outcome = ops::WriteOutcome::new(keys.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((indices, result)) => outcome.add(&indices, result),
                Err(e) => outcome.add(
                    &[],
                    Err(Error::Client(format!("multi-write task failed: {e}"))),
                ),
            }
        }
        outcome.finish()
    }

    async fn store(
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
        self.run(key, op).await
    }

    /// See [`Client::set`](super::Client::set).
    pub async fn set(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
    ) -> Result<()> {
        let key = key.as_ref();
        match self
            .store(SetMode::Set, key, value, flags, expiry, None)
            .await?
        {
            true => Ok(()),
            false => Err(Error::Server(format!(
                "set of {:?} was not stored",
                String::from_utf8_lossy(key)
            ))),
        }
    }

    /// See [`Client::add`](super::Client::add).
    pub async fn add(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
    ) -> Result<bool> {
        self.store(SetMode::Add, key.as_ref(), value, flags, expiry, None)
            .await
    }

    /// See [`Client::replace`](super::Client::replace).
    pub async fn replace(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
    ) -> Result<bool> {
        self.store(SetMode::Replace, key.as_ref(), value, flags, expiry, None)
            .await
    }

    /// See [`Client::append`](super::Client::append).
    pub async fn append(&self, key: impl AsRef<[u8]>, value: &[u8]) -> Result<bool> {
        self.store(SetMode::Append, key.as_ref(), value, 0, Expiry::Never, None)
            .await
    }

    /// See [`Client::prepend`](super::Client::prepend).
    pub async fn prepend(&self, key: impl AsRef<[u8]>, value: &[u8]) -> Result<bool> {
        self.store(
            SetMode::Prepend,
            key.as_ref(),
            value,
            0,
            Expiry::Never,
            None,
        )
        .await
    }

    /// See [`Client::cas`](super::Client::cas).
    pub async fn cas(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
        cas: u64,
    ) -> Result<bool> {
        self.store(SetMode::Set, key.as_ref(), value, flags, expiry, Some(cas))
            .await
    }

    /// See [`Client::delete`](super::Client::delete).
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.run(key, ops::delete(key, None)?).await
    }

    /// See [`Client::incr`](super::Client::incr).
    pub async fn incr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<Option<u64>> {
        let key = key.as_ref();
        self.run(key, ops::arith(key, false, delta)?).await
    }

    /// See [`Client::decr`](super::Client::decr).
    pub async fn decr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<Option<u64>> {
        let key = key.as_ref();
        self.run(key, ops::arith(key, true, delta)?).await
    }

    /// See [`Client::touch`](super::Client::touch).
    pub async fn touch(&self, key: impl AsRef<[u8]>, expiry: Expiry) -> Result<bool> {
        let key = key.as_ref();
        self.run(key, ops::touch(key, Self::exptime(expiry))?).await
    }

    /// See [`Client::flush_all`](super::Client::flush_all): clears the whole servers.
    pub async fn flush_all(&self) -> Result<()> {
        for server in 0..self.inner.config.servers.len() {
            self.run_on(server, ops::flush_all(None)).await?;
        }
        Ok(())
    }

    /// See [`Client::stats`](super::Client::stats) (with the same `larder:*` entries).
    pub async fn stats(&self) -> Result<HashMap<String, HashMap<String, String>>> {
        let mut replies = Vec::new();
        for server in 0..self.inner.config.servers.len() {
            replies.push(self.run_on(server, ops::stats(None)?).await);
        }
        stats_with_health(replies, self.health())
    }

    /// See [`Client::version`](super::Client::version).
    pub async fn version(&self) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for (server, addr) in self.inner.config.servers.iter().enumerate() {
            out.insert(addr.to_string(), self.run_on(server, ops::version()).await?);
        }
        Ok(out)
    }

    /// See [`Client::meta_get`](super::Client::meta_get).
    pub async fn meta_get(
        &self,
        key: impl AsRef<[u8]>,
        opts: MetaGetOptions,
    ) -> Result<MetaGetResult> {
        let key = key.as_ref();
        self.run(key, ops::meta_get(key, opts)?).await
    }

    /// See [`Client::meta_invalidate`](super::Client::meta_invalidate).
    pub async fn meta_invalidate(&self, key: impl AsRef<[u8]>, ttl: Expiry) -> Result<bool> {
        let key = key.as_ref();
        let exptime = match ttl {
            Expiry::Never => 0,
            e => Self::exptime(e),
        };
        self.run(key, ops::delete(key, Some(exptime))?).await
    }

    /// See [`Client::meta_set_cas`](super::Client::meta_set_cas).
    pub async fn meta_set_cas(
        &self,
        key: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
        expiry: Expiry,
        cas: u64,
    ) -> Result<bool> {
        self.cas(key, value, flags, expiry, cas).await
    }

    /// Drops every idle connection.
    pub fn close_idle(&self) {
        for idle in &self.inner.idle {
            idle.clear();
        }
    }
}
