//! A tiny web service whose handlers reach their cache through a global [`Proxy`], declared
//! before the cache exists and set at startup — the Flask example of proxy-pattern-pool,
//! on std's `TcpListener` (no web framework).
//!
//! The proxy is backed by a `Queue` pool of store clients (as pylibmc clones one client per
//! worker), so each request checks a client out and gives it back. The program starts the
//! server on 127.0.0.1:0, sends itself a few HTTP requests, checks the answers and exits.
//!
//! Run: `cargo run -p larder --example proxy_service`

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use larder::pool::{Manager, Pool, PoolConfig, Proxy, QueueConfig, Strategy};

// ---- "Shared.py": a proxy to a yet unknown object -------------------------------------

/// The cache every handler uses; nothing exists behind it until `init_app`.
static CACHE: Proxy<StoreClient> = Proxy::new("cache");

/// Points the proxy at a pool of clients of `store`.
fn init_app(store: Arc<Mutex<HashMap<String, String>>>) -> larder::Result<Pool<Clients>> {
    let strategy = Strategy::Queue(
        QueueConfig::new(4)
            .min_size(1)
            .wait_timeout(Duration::from_secs(2))
            .idle_timeout(Duration::from_secs(300))
            .eager(true),
    );
    let pool = Pool::new(
        Clients {
            store,
            next_id: AtomicU64::new(1),
        },
        PoolConfig::new("cache-clients", strategy),
    )?;
    CACHE.set_pool(pool.clone());
    Ok(pool)
}

/// One client of a shared key-value store (stands in for a memcached client).
struct StoreClient {
    id: u64,
    store: Arc<Mutex<HashMap<String, String>>>,
}

impl StoreClient {
    fn get(&self, key: &str) -> Option<String> {
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store.get(key).cloned()
    }

    fn set(&self, key: &str, value: &str) {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store.insert(key.to_string(), value.to_string());
    }
}

/// Makes store clients for the pool.
struct Clients {
    store: Arc<Mutex<HashMap<String, String>>>,
    next_id: AtomicU64,
}

impl Manager for Clients {
    type Object = StoreClient;
    type Error = std::io::Error;

    fn create(&self) -> Result<StoreClient, std::io::Error> {
        Ok(StoreClient {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            store: Arc::clone(&self.store),
        })
    }
}

// ---- "SubStuff.py": handlers that only know the proxy ---------------------------------

/// Routes a path to a handler; answers (status, body).
fn route(path: &str) -> (u16, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let answer = match parts.as_slice() {
        ["sub", "stuff"] => CACHE.with(|c| (200, format!("store client #{}", c.id))),
        ["set", key, value] => CACHE.with(|c| {
            c.set(key, value);
            (200, format!("stored {key}"))
        }),
        ["get", key] => CACHE.with(|c| match c.get(key) {
            Some(value) => (200, value),
            None => (404, format!("no value for {key}")),
        }),
        _ => Ok((404, format!("no route for {path}"))),
    };
    answer.unwrap_or_else(|e| (503, format!("cache unavailable: {e}")))
}

fn serve_connection(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = route(path);
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.0 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn serve(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        thread::spawn(move || {
            if let Err(e) = serve_connection(stream) {
                eprintln!("connection failed: {e}");
            }
        });
    }
}

// ---- a client, to try the service -----------------------------------------------------

fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

// ---- "App.py" ------------------------------------------------------------------------

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || serve(listener));

    // Before init_app the handlers answer, but say the cache is not there.
    let (status, body) = http_get(addr, "/sub/stuff")?;
    println!("before init: {status} {body}");
    assert_eq!(status, 503);
    assert!(body.contains("proxy \"cache\" is not set"), "{body}");

    let pool = init_app(Arc::new(Mutex::new(HashMap::new())))?;

    let (status, body) = http_get(addr, "/sub/stuff")?;
    println!("GET /sub/stuff -> {status} {body}");
    assert_eq!((status, body.as_str()), (200, "store client #1"));

    let (status, body) = http_get(addr, "/set/greeting/hello")?;
    println!("GET /set/greeting/hello -> {status} {body}");
    assert_eq!(status, 200);

    let (status, body) = http_get(addr, "/get/greeting")?;
    println!("GET /get/greeting -> {status} {body}");
    assert_eq!((status, body.as_str()), (200, "hello"));

    let (status, body) = http_get(addr, "/get/missing")?;
    println!("GET /get/missing -> {status} {body}");
    assert_eq!(status, 404);

    // Concurrent requests share the pool's clients.
    let answers: Vec<_> = (0..8)
        .map(|_| thread::spawn(move || http_get(addr, "/get/greeting")))
        .collect();
    for answer in answers {
        let (status, body) = answer.join().map_err(|_| "request thread panicked")??;
        assert_eq!((status, body.as_str()), (200, "hello"));
    }

    let stats = pool.stats();
    println!("pool stats: {stats:?}");
    assert!(stats.created >= 1 && stats.created <= 4, "{stats:?}");
    // One client was created eagerly at init; every other creation served a checkout.
    let checkouts = stats.reused + stats.created - 1;
    assert_eq!(checkouts, 12, "one checkout per request after init");
    assert_eq!(stats.in_use, 0);
    Ok(())
}
