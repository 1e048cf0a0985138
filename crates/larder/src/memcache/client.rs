//! The blocking memcached [`Client`]: the std-socket driver of the exchange engine. It opens
//! connections (TCP or Unix) into one [`Pool`] per server, moves each [`Exchange`]'s bytes
//! and waits under its [`Deadline`]; every rule about replies, reuse and retry is
//! [`super::exchange`]'s, and the public operations are [`super::api`]'s list.
//!
//! A multi-key call takes off on every server (each one's first request is written) before
//! it lands any (reads the replies), so the servers work in parallel without threads.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::api::{self, client_api};
use super::cluster::{Cluster, ServerHealth};
use super::exchange::{wait_error, Deadline, Exchange, Single, Step, Wire};
use super::multi_get::{self, HitRef, MultiGetHits, ServerGet};
use super::ops::{self, GetsItem, MetaGetOptions, MetaGetResult, Op};
use super::proto::{ReplyParser, SetMode};
use super::{net, ClientConfig, ServerAddr};
use crate::pool::{Manager, Pool, Pooled};
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

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(d)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(Some(d)),
        }
    }

    fn set_write_timeout(&self, d: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(d)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_write_timeout(Some(d)),
        }
    }

    fn peek_now(&self) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => net::peek_now(s),
            #[cfg(unix)]
            Stream::Unix(s) => net::peek_now(s),
        }
    }

    fn send_now(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => net::send_now(s, bytes),
            #[cfg(unix)]
            Stream::Unix(s) => net::send_now(s, bytes),
        }
    }
}

/// One connection to one server: its socket and its [`Wire`].
pub(crate) struct Conn {
    stream: Stream,
    wire: Wire,
    label: String,
    read_timeout: Duration,
    write_timeout: Duration,
    /// The socket's timeouts as set now: lowered below `read_timeout`/`write_timeout` only
    /// while a call's deadline is nearer than them.
    rcv_timeout: Duration,
    snd_timeout: Duration,
}

impl Conn {
    fn connect(addr: &ServerAddr, cfg: &ClientConfig, parser: ReplyParser) -> Result<Self> {
        let label = addr.to_string();
        let connect_timeout = cfg.connect_timeout.min(cfg.operation_timeout);
        let connect_error = |e: io::Error| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                what: format!("connect to {label}"),
                after: connect_timeout,
            },
            _ => Error::Io(e),
        };
        let stream = match addr {
            ServerAddr::Tcp { host, port } => {
                let mut last = None;
                let mut found = None;
                for sa in (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(connect_error)?
                {
                    match TcpStream::connect_timeout(&sa, connect_timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = match (found, last) {
                    (Some(s), _) => s,
                    (None, Some(e)) => return Err(connect_error(e)),
                    (None, None) => {
                        return Err(Error::Config(format!("{label} resolves to no address")))
                    }
                };
                s.set_nodelay(cfg.nodelay)?;
                Stream::Tcp(s)
            }
            #[cfg(unix)]
            ServerAddr::Unix(path) => {
                Stream::Unix(UnixStream::connect(path).map_err(connect_error)?)
            }
            #[cfg(not(unix))]
            ServerAddr::Unix(_) => {
                return Err(Error::Config(
                    "Unix sockets are not available on this platform".into(),
                ))
            }
        };
        stream.set_read_timeout(cfg.read_timeout)?;
        stream.set_write_timeout(cfg.write_timeout)?;
        Ok(Conn {
            stream,
            wire: Wire::new(parser),
            label,
            read_timeout: cfg.read_timeout,
            write_timeout: cfg.write_timeout,
            rcv_timeout: cfg.read_timeout,
            snd_timeout: cfg.write_timeout,
        })
    }

    /// Writes all of `bytes` within the deadline.
    fn send(&mut self, mut bytes: &[u8], deadline: &Deadline) -> Result<()> {
        // What the socket takes at once needs no bound, so no clock read.
        while !bytes.is_empty() {
            match self.stream.send_now(bytes) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::Io(e)),
            }
        }
        while !bytes.is_empty() {
            let label = &self.label;
            let what = || format!("write to {label}");
            let bound = deadline.bound(Instant::now(), self.write_timeout, what)?;
            if bound.wait != self.snd_timeout {
                self.stream.set_write_timeout(bound.wait)?;
                self.snd_timeout = bound.wait;
            }
            match self.stream.write(bytes) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(wait_error(e, what, bound)),
            }
        }
        Ok(())
    }

    /// Reads what the server sent next (at least one byte) within the deadline.
    fn fill(&mut self, deadline: &Deadline) -> Result<()> {
        let label = &self.label;
        let what = || format!("read from {label}");
        let bound = deadline.bound(Instant::now(), self.read_timeout, what)?;
        if bound.wait != self.rcv_timeout {
            self.stream.set_read_timeout(bound.wait)?;
            self.rcv_timeout = bound.wait;
        }
        loop {
            match self.stream.read(self.wire.spare()) {
                Ok(n) => return self.wire.filled(n, &self.label),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(wait_error(e, || format!("read from {}", self.label), bound)),
            }
        }
    }

    /// Starts `x` and steps it until it first waits for a reply (its first request is
    /// written); `Some` when it finished without waiting.
    fn take_off<V: ?Sized, X: Exchange<V>>(
        &mut self,
        x: &mut X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<Option<X::Output>> {
        self.wire.begin();
        loop {
            match self.wire.step(x, visit)? {
                Step::Write(bytes) => self.send(bytes, deadline)?,
                Step::Read => return Ok(None),
                Step::Done(out) => return out.map(Some),
            }
        }
    }

    /// Steps `x` to its end.
    fn land<V: ?Sized, X: Exchange<V>>(
        &mut self,
        x: &mut X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<X::Output> {
        loop {
            match self.wire.step(x, visit)? {
                Step::Write(bytes) => self.send(bytes, deadline)?,
                Step::Read => self.fill(deadline)?,
                Step::Done(out) => return out,
            }
        }
    }

    /// Runs `x` from its start to its end.
    fn run<V: ?Sized, X: Exchange<V>>(
        &mut self,
        x: &mut X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<X::Output> {
        match self.take_off(x, visit, deadline)? {
            Some(out) => Ok(out),
            None => self.land(x, visit, deadline),
        }
    }
}

/// Makes, probes and judges the connections of one server's pool.
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

    /// Before reusing a connection idle for `idle_probe_after` or more: closed by the
    /// server, or holding bytes nobody asked for, and it is replaced.
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

    /// A connection goes back to the pool only in step (see [`Wire::reusable`]).
    fn is_broken(&self, conn: &mut Box<Conn>) -> bool {
        let Conn { wire, stream, .. } = &mut **conn;
        wire.check_in(|| stream.peek_now())
    }
}

/// A multi-key exchange after take-off: still waiting for its replies on a connection, or
/// already finished.
enum Flight<'p, T> {
    Airborne(Pooled<'p, ConnManager>),
    Landed(T),
}

struct Inner {
    config: ClientConfig,
    cluster: Arc<Cluster>,
    pools: Vec<Pool<ConnManager>>,
    /// The async client over the same configuration and server health, for
    /// `MemcachedCache`'s async face (its pools open no connection until used).
    #[cfg(feature = "tokio")]
    async_twin: super::AsyncClient,
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

impl Client {
    /// A client for `config`; connects lazily.
    pub fn new(config: ClientConfig) -> Result<Self> {
        config.validate()?;
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
                Pool::new_unsync(manager, config.server_pool_config(addr))
            })
            .collect::<Result<Vec<_>>>()?;
        let cluster = Arc::new(Cluster::new(&config)?);
        Ok(Self {
            inner: Arc::new(Inner {
                #[cfg(feature = "tokio")]
                async_twin: super::AsyncClient::from_validated(config.clone(), cluster.clone())?,
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

    /// An async client with this client's configuration, sharing its server health (its
    /// own connection pools).
    #[cfg(feature = "tokio")]
    pub(crate) fn async_twin(&self) -> super::AsyncClient {
        self.inner.async_twin.clone()
    }

    fn checkout(&self, server: usize) -> Result<Pooled<'_, ConnManager>> {
        let pool = self
            .inner
            .pools
            .get(server)
            .ok_or_else(|| Error::NoServers(format!("no server #{server}")))?;
        pool.get().map_err(api::unwrap_create_error)
    }

    /// Runs `x` on a connection to `server`, once more on another connection when the
    /// engine allows it ([`Wire::may_retry`], [`Exchange::rewind`]).
    fn exchange<V: ?Sized, X: Exchange<V>>(
        &self,
        server: usize,
        x: &mut X,
        visit: &mut V,
    ) -> Result<X::Output> {
        let deadline = Deadline::new(Instant::now(), self.inner.config.operation_timeout);
        let mut conn = self.checkout(server)?;
        let first = conn.get_mut()?.run(x, visit, &deadline);
        self.retry_or(server, conn, first, x, visit, &deadline)
    }

    /// The result of an exchange that ran on `conn`, or of its retry on another connection.
    fn retry_or<V: ?Sized, X: Exchange<V>>(
        &self,
        server: usize,
        mut conn: Pooled<'_, ConnManager>,
        result: Result<X::Output>,
        x: &mut X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<X::Output> {
        match result {
            Err(e) if conn.get_mut()?.wire.may_retry(&e) && x.rewind() => {
                drop(conn);
                self.checkout(server)?.get_mut()?.run(x, visit, deadline)
            }
            other => other,
        }
    }

    /// One op on the server that takes `key`, recorded in its health.
    fn run_key<T>(&self, key: &[u8], op: Op<T>) -> Result<T> {
        let server = self.inner.cluster.route(key)?;
        let result = self.exchange(server, &mut Single::new(op), &mut ());
        self.inner.cluster.record(server, &result);
        result
    }

    /// One non-key op on `server`: a dead server (not yet due for a probe) fails at once
    /// with [`Error::ServerDead`].
    fn run_on<T>(&self, server: usize, op: Op<T>) -> Result<T> {
        self.inner.cluster.admit(server)?;
        let result = self.exchange(server, &mut Single::new(op), &mut ());
        self.inner.cluster.record(server, &result);
        result
    }

    /// Takes `x` off on a connection to `server`: its first request written (or, after a
    /// retry, the whole exchange run).
    fn take_off<V: ?Sized, X: Exchange<V>>(
        &self,
        server: usize,
        mut x: X,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<(X, Flight<'_, X::Output>)> {
        let mut conn = self.checkout(server)?;
        let flight = match conn.get_mut()?.take_off(&mut x, visit, deadline) {
            Ok(None) => Flight::Airborne(conn),
            Ok(Some(out)) => Flight::Landed(out),
            Err(e) => {
                Flight::Landed(self.retry_or(server, conn, Err(e), &mut x, visit, deadline)?)
            }
        };
        Ok((x, flight))
    }

    /// Lands an exchange taken off by [`take_off`](Self::take_off); the outcome is
    /// recorded in `server`'s health.
    fn land<V: ?Sized, X: Exchange<V>>(
        &self,
        server: usize,
        flight: Result<(X, Flight<'_, X::Output>)>,
        visit: &mut V,
        deadline: &Deadline,
    ) -> Result<X::Output> {
        let result = flight.and_then(|(mut x, flight)| match flight {
            Flight::Landed(out) => Ok(out),
            Flight::Airborne(mut conn) => {
                let landed = conn.get_mut()?.land(&mut x, visit, deadline);
                self.retry_or(server, conn, landed, &mut x, visit, deadline)
            }
        });
        self.inner.cluster.record(server, &result);
        result
    }

    fn get_multi_core<K, V>(&self, keys: &[K], visit: &mut V) -> Result<usize>
    where
        K: AsRef<[u8]>,
        V: FnMut(usize, HitRef<'_>) + ?Sized,
    {
        let (groups, mut outcome) = multi_get::route(&self.inner.cluster, keys);
        let deadline = Deadline::new(Instant::now(), self.inner.config.operation_timeout);
        let mut flights = Vec::with_capacity(groups.len());
        for (server, group) in groups.iter() {
            let flight =
                ServerGet::new(group).and_then(|x| self.take_off(server, x, visit, &deadline));
            flights.push((server, flight));
        }
        for (server, flight) in flights {
            outcome.add(self.land(server, flight, visit, &deadline));
        }
        outcome.finish()
    }

    /// One op per key (built by `make_op` from the key's index, into its batch's buffer),
    /// grouped by server and batched; every server's first batch is written before any
    /// reply is read. The outcomes in key order; every server is tried, the first failure
    /// is the error.
    fn write_multi(
        &self,
        keys: &[&[u8]],
        make_op: impl Fn(usize, &mut Vec<u8>) -> Result<Op<bool>>,
    ) -> Result<Vec<bool>> {
        let batches = api::write_batches(&self.inner.cluster, keys, make_op)?;
        let deadline = Deadline::new(Instant::now(), self.inner.config.operation_timeout);
        let mut flights = Vec::with_capacity(batches.len());
        for (server, indices, x) in batches {
            let flight = self.take_off(server, x, &mut (), &deadline);
            flights.push((server, indices, flight));
        }
        let mut outcome = ops::WriteOutcome::new(keys.len());
        for (server, indices, flight) in flights {
            outcome.add(&indices, self.land(server, flight, &mut (), &deadline));
        }
        outcome.finish()
    }
}

client_api!(Client, [], [], []);
