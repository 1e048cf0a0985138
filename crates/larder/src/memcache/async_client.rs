//! The async memcached [`AsyncClient`]: the tokio driver of the exchange engine, with the
//! same operations ([`super::api`]), rules ([`super::exchange`]) and connection pools
//! ([`crate::pool`], with an [`AsyncManager`]) as the blocking client.
//!
//! Every read and write is first tried without waiting; only one that must wait sets up
//! its bound (a per-connection timer for reads, pushed forward before each wait, to the
//! read timeout or the call's deadline, whichever is nearer). A multi-key call takes off on
//! every server before it lands any, within the caller's task (no task per call). When the
//! caller's future is dropped mid-exchange, the connection is not in step and the pool
//! drops it instead of reusing it.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use super::api::{self, client_api};
use super::cluster::{Cluster, ServerHealth};
use super::exchange::{Bound, Deadline, Exchange, Single, Step, Wire};
use super::multi_get::{self, HitRef, MultiGetHits, ServerGet};
use super::ops::{self, GetsItem, MetaGetOptions, MetaGetResult, Op};
use super::proto::{ReplyParser, SetMode};
use super::{net, ClientConfig, ServerAddr};
use crate::pool::{Async, AsyncManager, Pool, Pooled};
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

    fn peek_now(&self) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => net::peek_now(s),
            #[cfg(unix)]
            Stream::Unix(s) => net::peek_now(s),
        }
    }
}

/// `fut` bounded by `bound`; a timeout names `what`.
async fn bounded<T>(
    bound: Bound,
    what: impl FnOnce() -> String,
    fut: impl Future<Output = io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(bound.wait, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Io(e)),
        Err(_) => Err(Error::Timeout {
            what: what(),
            after: bound.reported,
        }),
    }
}

/// One connection to one server: its socket and its [`Wire`].
struct Conn {
    stream: Stream,
    wire: Wire,
    label: String,
    read_timeout: Duration,
    /// The read bound's timer, kept for the connection's life and pushed forward before
    /// each wait: moving a registered deadline costs no timer-wheel work, where a new
    /// `tokio::time::timeout` per read registered and removed an entry every time.
    read_timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    write_timeout: Duration,
}

impl Conn {
    async fn connect(addr: &ServerAddr, cfg: &ClientConfig, parser: ReplyParser) -> Result<Self> {
        let label = addr.to_string();
        let what = || format!("connect to {label}");
        let limit = cfg.connect_timeout.min(cfg.operation_timeout);
        let bound = Bound {
            wait: limit,
            reported: limit,
        };
        let stream = match addr {
            ServerAddr::Tcp { host, port } => {
                let s = bounded(bound, what, TcpStream::connect((host.as_str(), *port))).await?;
                s.set_nodelay(cfg.nodelay)?;
                Stream::Tcp(s)
            }
            #[cfg(unix)]
            ServerAddr::Unix(path) => {
                Stream::Unix(bounded(bound, what, UnixStream::connect(path)).await?)
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
            wire: Wire::new(parser),
            label,
            read_timeout: cfg.read_timeout,
            read_timer: Box::pin(tokio::time::sleep(cfg.read_timeout)),
            write_timeout: cfg.write_timeout,
        })
    }

    /// Writes all of `bytes` within the deadline.
    async fn send(&mut self, bytes: &[u8], deadline: &Deadline) -> Result<()> {
        // Most requests fit the socket's send buffer at once: try that first, so the bound
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
        let bound = deadline.bound(Instant::now(), self.write_timeout, what)?;
        bounded(bound, what, self.stream.write_all(rest)).await
    }

    /// Reads what the server sent next (at least one byte) within the deadline. Bytes
    /// already received are taken without setting up the timer.
    async fn fill(&mut self, deadline: &Deadline) -> Result<()> {
        let spare = self.wire.spare();
        let n = match self.stream.try_read(spare) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let label = &self.label;
                let what = || format!("read from {label}");
                let now = Instant::now();
                let bound = deadline.bound(now, self.read_timeout, what)?;
                let timer = &mut self.read_timer;
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(now + bound.wait));
                tokio::select! {
                    biased;
                    read = self.stream.read(spare) => read.map_err(Error::Io)?,
                    () = timer.as_mut() => {
                        return Err(Error::Timeout { what: what(), after: bound.reported })
                    }
                }
            }
            Err(e) => return Err(Error::Io(e)),
        };
        self.wire.filled(n, &self.label)
    }

    /// See the blocking driver's `take_off`.
    async fn take_off<V: ?Sized, X: Exchange<V>>(
        &mut self,
        x: &mut X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<Option<X::Output>> {
        self.wire.begin();
        loop {
            match self.wire.step(x, visit)? {
                Step::Write(bytes) => self.send(bytes, deadline).await?,
                Step::Read => return Ok(None),
                Step::Done(out) => return out.map(Some),
            }
        }
    }

    /// Steps `x` to its end.
    async fn land<V: ?Sized, X: Exchange<V>>(
        &mut self,
        x: &mut X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<X::Output> {
        loop {
            match self.wire.step(x, visit)? {
                Step::Write(bytes) => self.send(bytes, deadline).await?,
                Step::Read => self.fill(deadline).await?,
                Step::Done(out) => return out,
            }
        }
    }

    /// Runs `x` from its start to its end.
    async fn run<V: ?Sized, X: Exchange<V>>(
        &mut self,
        x: &mut X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<X::Output> {
        match self.take_off(x, visit, deadline).await? {
            Some(out) => Ok(out),
            None => self.land(x, visit, deadline).await,
        }
    }
}

/// Opens, probes and judges the connections of one server's pool.
struct ConnManager {
    addr: ServerAddr,
    config: ClientConfig,
    parser: ReplyParser,
}

impl AsyncManager for ConnManager {
    /// Boxed, as in the blocking client: the pool moves objects on every checkout.
    type Object = Box<Conn>;
    type Error = Error;

    async fn create(&self) -> Result<Box<Conn>> {
        Conn::connect(&self.addr, &self.config, self.parser)
            .await
            .map(Box::new)
    }

    /// See the blocking client's `recycle`.
    fn recycle(&self, conn: &mut Box<Conn>) -> Result<()> {
        self.recycle_after(conn, None)
    }

    fn recycle_after(&self, conn: &mut Box<Conn>, idle: Option<Duration>) -> Result<()> {
        let Conn {
            wire,
            stream,
            label,
            ..
        } = &**conn;
        let probe_after = self.config.idle_probe_after;
        wire.check_out(probe_after, idle, || stream.peek_now(), label)
    }

    /// See the blocking client's `is_broken` (a cancelled call's connection is not in step).
    fn is_broken(&self, conn: &mut Box<Conn>) -> bool {
        let Conn { wire, stream, .. } = &mut **conn;
        wire.check_in(|| stream.peek_now())
    }
}

type ConnPool = Pool<Async<ConnManager>>;

/// See the blocking client's `Flight`.
enum Flight<'p, T> {
    Airborne(Pooled<'p, Async<ConnManager>>),
    Landed(T),
}

struct Inner {
    config: ClientConfig,
    cluster: Arc<Cluster>,
    pools: Vec<ConnPool>,
}

/// An async memcached client for tokio: `Send + Sync`, cheap to clone.
///
/// Its pooled connections are registered with the runtime that opened them: use one client
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

impl AsyncClient {
    /// A client for `config`; connects lazily (no runtime needed to build it).
    pub fn new(config: ClientConfig) -> Result<Self> {
        config.validate()?;
        let cluster = Arc::new(Cluster::new(&config)?);
        Self::from_validated(config, cluster)
    }

    /// A client for a configuration that was already validated, sharing `cluster`'s health.
    pub(crate) fn from_validated(config: ClientConfig, cluster: Arc<Cluster>) -> Result<Self> {
        let parser = ReplyParser::new(config.max_value_size);
        let pools = config
            .servers
            .iter()
            .map(|addr| {
                let manager = ConnManager {
                    addr: addr.clone(),
                    config: config.clone(),
                    parser,
                };
                Pool::new_async(manager, config.server_pool_config(addr))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                cluster,
                pools,
            }),
        })
    }

    /// A client with default settings for a comma-separated server list.
    pub fn connect(servers: &str) -> Result<Self> {
        Self::new(ClientConfig::from_specs(servers)?)
    }

    async fn checkout(&self, server: usize) -> Result<Pooled<'_, Async<ConnManager>>> {
        let pool = self
            .inner
            .pools
            .get(server)
            .ok_or_else(|| Error::NoServers(format!("no server #{server}")))?;
        pool.get_async().await.map_err(api::unwrap_create_error)
    }

    /// See the blocking client's `exchange`.
    async fn exchange<V: ?Sized, X: Exchange<V>>(
        &self,
        server: usize,
        x: &mut X,
        visit: &mut V,
    ) -> Result<X::Output> {
        let deadline = Deadline::new(Instant::now(), self.inner.config.operation_timeout);
        let mut conn = self.checkout(server).await?;
        let first = conn.get_mut()?.run(x, visit, &deadline).await;
        self.retry_or(server, conn, first, x, visit, &deadline)
            .await
    }

    /// See the blocking client's `retry_or`.
    async fn retry_or<V: ?Sized, X: Exchange<V>>(
        &self,
        server: usize,
        mut conn: Pooled<'_, Async<ConnManager>>,
        result: Result<X::Output>,
        x: &mut X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<X::Output> {
        match result {
            Err(e) if conn.get_mut()?.wire.may_retry(&e) && x.rewind() => {
                drop(conn);
                let mut fresh = self.checkout(server).await?;
                fresh.get_mut()?.run(x, visit, deadline).await
            }
            other => other,
        }
    }

    async fn run_key<T>(&self, key: &[u8], op: Op<T>) -> Result<T> {
        let server = self.inner.cluster.route(key)?;
        let result = self.exchange(server, &mut Single::new(op), &mut ()).await;
        self.inner.cluster.record(server, &result);
        result
    }

    async fn run_on<T>(&self, server: usize, op: Op<T>) -> Result<T> {
        self.inner.cluster.admit(server)?;
        let result = self.exchange(server, &mut Single::new(op), &mut ()).await;
        self.inner.cluster.record(server, &result);
        result
    }

    /// See the blocking client's `take_off`.
    async fn take_off<V: ?Sized, X: Exchange<V>>(
        &self,
        server: usize,
        mut x: X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<(X, Flight<'_, X::Output>)> {
        let mut conn = self.checkout(server).await?;
        let flight = match conn.get_mut()?.take_off(&mut x, visit, deadline).await {
            Ok(None) => Flight::Airborne(conn),
            Ok(Some(out)) => Flight::Landed(out),
            Err(e) => Flight::Landed(
                self.retry_or(server, conn, Err(e), &mut x, visit, deadline)
                    .await?,
            ),
        };
        Ok((x, flight))
    }

    /// See the blocking client's `land`.
    async fn land<V: ?Sized, X: Exchange<V>>(
        &self,
        server: usize,
        flight: Result<(X, Flight<'_, X::Output>)>,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<X::Output> {
        let result = match flight {
            Ok((_, Flight::Landed(out))) => Ok(out),
            Ok((mut x, Flight::Airborne(mut conn))) => match conn.get_mut() {
                Ok(c) => {
                    let landed = c.land(&mut x, visit, deadline).await;
                    self.retry_or(server, conn, landed, &mut x, visit, deadline)
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        self.inner.cluster.record(server, &result);
        result
    }

    async fn get_multi_core<K, V>(&self, keys: &[K], visit: &mut V) -> Result<usize>
    where
        K: AsRef<[u8]>,
        V: FnMut(usize, HitRef<'_>) + Send + ?Sized,
    {
        let (groups, mut outcome) = multi_get::route(&self.inner.cluster, keys);
        let deadline = Deadline::new(Instant::now(), self.inner.config.operation_timeout);
        let mut flights = Vec::with_capacity(groups.len());
        for (server, group) in groups.iter() {
            let flight = match ServerGet::new(group) {
                Ok(x) => self.take_off(server, x, visit, &deadline).await,
                Err(e) => Err(e),
            };
            flights.push((server, flight));
        }
        for (server, flight) in flights {
            outcome.add(self.land(server, flight, visit, &deadline).await);
        }
        outcome.finish()
    }

    /// See the blocking client's `write_multi`.
    async fn write_multi(
        &self,
        keys: &[&[u8]],
        make_op: impl Fn(usize, &mut Vec<u8>) -> Result<Op<bool>>,
    ) -> Result<Vec<bool>> {
        let batches = api::write_batches(&self.inner.cluster, keys, make_op)?;
        let deadline = Deadline::new(Instant::now(), self.inner.config.operation_timeout);
        let mut flights = Vec::with_capacity(batches.len());
        for (server, indices, x) in batches {
            let flight = self.take_off(server, x, &mut (), &deadline).await;
            flights.push((server, indices, flight));
        }
        let mut outcome = ops::WriteOutcome::new(keys.len());
        for (server, indices, flight) in flights {
            outcome.add(
                &indices,
                self.land(server, flight, &mut (), &deadline).await,
            );
        }
        outcome.finish()
    }
}

client_api!(AsyncClient, [async], [.await], [+ Send]);
