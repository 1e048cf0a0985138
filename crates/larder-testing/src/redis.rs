//! [`RedisServer`]: a real `redis-server` on a free loopback port, without persistence,
//! killed on drop; it can be stopped and restarted on the same port to test recovery.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::memcached::free_port;
use larder::{Error, Result};

/// The `process_id` the redis server on 127.0.0.1:`port` reports in `INFO server`.
fn server_pid(port: u16) -> std::io::Result<Option<u32>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"INFO server\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&reply);
        if let Some(rest) = text.split("process_id:").nth(1) {
            if let Some((pid, _)) = rest.split_once("\r\n") {
                return Ok(pid.trim().parse().ok());
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        reply.extend_from_slice(&chunk[..n]);
    }
}

/// A redis-server process owned by a test.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts a server with no persistence on a free 127.0.0.1 port.
    pub fn start() -> Result<Self> {
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port()?,
            };
            if server.spawn()? {
                return Ok(server);
            }
        }
        Err(Error::Unavailable(
            "could not start redis-server on a free port (is it installed? .ci/run installs it)"
                .into(),
        ))
    }

    /// Spawns the process and waits until it accepts; `false` when it exited (port taken).
    fn spawn(&mut self) -> Result<bool> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            // Connecting is not enough: another test's server may hold the port while ours
            // exits on its failed bind.
            if server_pid(self.port).is_ok_and(|p| p == Some(pid)) {
                return Ok(true);
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        Ok(false)
    }

    /// The server's URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (the port stays ours to restart on).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        if self.spawn()? {
            Ok(())
        } else {
            Err(Error::Unavailable(format!(
                "redis-server did not restart on port {}",
                self.port
            )))
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
