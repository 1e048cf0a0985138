//! Test servers: [`MemcachedServer`] runs a real `memcached` on a free loopback port (or a
//! Unix socket) and kills it on drop; [`FakeServer`] is a scripted TCP peer for testing how a
//! client copes with garbage, truncated, oversized or missing replies.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::{Error, Result};

/// The memcached binary used (override with the `MEMCACHED_BIN` environment variable).
pub fn memcached_bin() -> String {
    std::env::var("MEMCACHED_BIN").unwrap_or_else(|_| "memcached".to_owned())
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The `pid` memcached at `addr` reports in `stats`.
fn stats_pid(addr: &str) -> std::io::Result<Option<u32>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"stats\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.ends_with(b"END\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|l| l.strip_prefix("STAT pid "))
        .and_then(|p| p.trim().parse().ok()))
}

/// A memcached process started for a test; killed when dropped.
#[derive(Debug)]
pub struct MemcachedServer {
    child: Child,
    addr: String,
    socket: Option<PathBuf>,
}

/// Starts memcached listening where `listen` says, UDP off, 64 MB, `-u root` (required when
/// run as root), with `extra` arguments; stderr piped (it says why a start failed).
fn spawn_memcached(listen: &[&str], extra: &[&str]) -> Result<Child> {
    Ok(Command::new(memcached_bin())
        .args(listen)
        .args(["-U", "0", "-m", "64", "-u", "root"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?)
}

impl MemcachedServer {
    /// Starts `memcached -l 127.0.0.1 -p PORT -U 0 -m 64` on a free port.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with extra arguments (e.g. `["-I", "2m"]`).
    pub fn start_with(args: &[&str]) -> Result<Self> {
        let mut last_err = None;
        // The port may be taken between release and bind; try a few.
        for _ in 0..5 {
            match Self::start_on_port(free_port()?, args) {
                Ok(server) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Unavailable("memcached did not start".into())))
    }

    /// Starts memcached on 127.0.0.1:`port` (e.g. the port of a server that was dropped, to
    /// bring it back), with extra arguments.
    pub fn start_on_port(port: u16, args: &[&str]) -> Result<Self> {
        let addr = format!("127.0.0.1:{port}");
        let port_text = port.to_string();
        let child = spawn_memcached(&["-l", "127.0.0.1", "-p", &port_text], args)?;
        let mut server = MemcachedServer {
            child,
            addr,
            socket: None,
        };
        let target = server.addr.clone();
        let pid = server.child.id();
        // Another test's server may hold the port (it was free when picked); connecting then
        // succeeds while ours exits on its failed bind, so the server must say it is ours.
        server.wait_ready(|| match stats_pid(&target)? {
            Some(p) if p == pid => Ok(()),
            _ => Err(std::io::Error::other("the port is held by another process")),
        })?;
        Ok(server)
    }

    /// Kills the server and starts a fresh (empty) one on the same port; TCP servers only.
    /// Retries for up to 5 s while the port is still held by the old process.
    pub fn restart(&mut self) -> Result<()> {
        let port = self.port()?;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Self::start_on_port(port, &[]) {
                Ok(fresh) => {
                    *self = fresh;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The TCP port (an error for a Unix socket server).
    pub fn port(&self) -> Result<u16> {
        self.addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .filter(|_| self.socket.is_none())
            .ok_or_else(|| Error::Config(format!("{} is not a TCP server", self.addr)))
    }

    /// The process id (e.g. to `kill -STOP` it in a test).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts memcached listening on the Unix socket `path` (no TCP).
    pub fn start_unix(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let _ = std::fs::remove_file(&path);
        let path_text = path.to_string_lossy().into_owned();
        let child = spawn_memcached(&["-s", &path_text], &[])?;
        let mut server = MemcachedServer {
            child,
            addr: path_text,
            socket: Some(path.clone()),
        };
        #[cfg(unix)]
        server.wait_ready(|| std::os::unix::net::UnixStream::connect(&path).map(drop))?;
        Ok(server)
    }

    fn wait_ready(&mut self, try_connect: impl Fn() -> std::io::Result<()>) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if try_connect().is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                return Err(Error::Unavailable(format!(
                    "memcached for {} exited ({status}): {}",
                    self.addr,
                    stderr.trim()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Unavailable(format!(
                    "memcached on {} did not accept within 5 s",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address: `127.0.0.1:PORT`, or the socket path for [`start_unix`](Self::start_unix).
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `reply` answering the meta `request` as memcached would: with the request's opaque token
/// (`O…`, which larder sends on every meta request and checks in the reply) added to the
/// reply's first line. Unchanged when the request carries none.
pub fn with_opaque(request: &[u8], reply: &[u8]) -> Vec<u8> {
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let Some(token) = line
        .split(|&b| b == b' ')
        .skip(2)
        .find(|t| t.first() == Some(&b'O'))
    else {
        return reply.to_vec();
    };
    let end = reply
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(reply.len());
    let mut out = Vec::with_capacity(reply.len() + token.len() + 1);
    out.extend_from_slice(&reply[..end]);
    out.push(b' ');
    out.extend_from_slice(token);
    out.extend_from_slice(&reply[end..]);
    out
}

/// What a [`FakeServer`] does with one request it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeAction {
    /// Write these bytes back.
    Reply(Vec<u8>),
    /// Write nothing and keep the connection open.
    Silent,
    /// Write these bytes, then close the connection.
    ReplyAndClose(Vec<u8>),
}

type Script = dyn Fn(usize, &[u8]) -> FakeAction + Send + Sync;

/// A scripted TCP server on a free loopback port. For every chunk it reads it calls the
/// script with the connection's number (0, 1, ...) and the bytes, and does what it says.
pub struct FakeServer {
    addr: String,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeServer {
    /// Starts a server answering with `script`.
    pub fn start(
        script: impl Fn(usize, &[u8]) -> FakeAction + Send + Sync + 'static,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let (stop2, conns2) = (stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let n = conns2.fetch_add(1, Ordering::SeqCst);
                        let (script, stop) = (script.clone(), stop2.clone());
                        std::thread::spawn(move || serve(stream, n, &*script, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            connections,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream, n: usize, script: &Script, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(len) => match script(n, &buf[..len]) {
                FakeAction::Reply(bytes) => {
                    if stream.write_all(&bytes).is_err() {
                        return;
                    }
                }
                FakeAction::Silent => {}
                FakeAction::ReplyAndClose(bytes) => {
                    let _ = stream.write_all(&bytes);
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
