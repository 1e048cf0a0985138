//! larder's memcached clients against the Python ones (pylibmc on libmemcached, pymemcache)
//! and the Rust `memcache` crate, in ONE run on the same three local memcached servers:
//! single get and set round trips of a 100-byte value on one server (ops/s) and 100-key
//! multi-gets spread over the three servers (keys/s), one caller each. The Python side is
//! `bench/python_clients.py`, run with the same addresses; its JSON is merged into one
//! markdown table. The machine is shared, so the run is `VS_PY_ROUNDS` interleaved rounds
//! (Rust cells, then the Python cells) and each cell reports its best round. Only ratios
//! within one run mean anything.
//!
//! `cargo bench -p larder-bench --bench vs_python` (`VS_PY_SECS` sets the seconds per cell
//! and round, default 0.3; `VS_PY_ROUNDS` the rounds, default 7); `bash bench/run.sh`
//! installs the Python clients first when missing.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use larder::memcache::ring::Ring;
use larder::memcache::{AsyncClient, Client, Distribution, KeyHash};
use larder::Expiry;
use larder_bench::env_or;
use larder_testing::memcached::MemcachedServer;

const VALUE: &[u8; 100] = &[b'v'; 100];
const MULTI: usize = 100;
const WORKLOADS: [&str; 3] = ["get", "set", "get_multi"];
const COLUMNS: [&str; 5] = [
    "larder blocking",
    "larder async",
    "memcache crate",
    "pylibmc",
    "pymemcache",
];

fn cell_secs() -> f64 {
    env_or("VS_PY_SECS", 0.3)
}

/// column → workload → units per second.
type Table = HashMap<String, HashMap<String, f64>>;

/// Keeps the better of `table`'s cell and `value`.
fn put_best(table: &mut Table, column: &str, workload: &str, value: f64) {
    let cell = table
        .entry(column.to_owned())
        .or_default()
        .entry(workload.to_owned())
        .or_insert(0.0);
    *cell = cell.max(value);
}

/// Calls `op` (which returns how many units it did) for the cell time after a short warm-up;
/// units per second. Checks the clock every 64 calls, as the Python side does.
fn rate(mut op: impl FnMut() -> u64) -> f64 {
    for _ in 0..50 {
        black_box(op());
    }
    let cell = Duration::from_secs_f64(cell_secs());
    let start = Instant::now();
    let mut units = 0;
    loop {
        for _ in 0..64 {
            units += op();
        }
        if start.elapsed() >= cell {
            return units as f64 / start.elapsed().as_secs_f64();
        }
    }
}

/// Like [`rate`], for an async operation driven by a single-threaded runtime (one caller).
fn rate_async<Fut: std::future::Future<Output = u64>>(
    rt: &tokio::runtime::Runtime,
    mut op: impl FnMut() -> Fut,
) -> f64 {
    rt.block_on(async {
        for _ in 0..50 {
            black_box(op().await);
        }
        let cell = Duration::from_secs_f64(cell_secs());
        let start = Instant::now();
        let mut units = 0;
        loop {
            for _ in 0..64 {
                units += op().await;
            }
            if start.elapsed() >= cell {
                return units as f64 / start.elapsed().as_secs_f64();
            }
        }
    })
}

/// Runs `bench/python_clients.py` against `servers`; (column → workload → rate, notes).
fn python_columns(servers: &[&str]) -> (Table, Vec<String>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/python_clients.py");
    let mut notes = Vec::new();
    let output = Command::new("python3")
        .arg(script)
        .arg("--servers")
        .arg(servers.join(","))
        .arg("--duration")
        .arg(cell_secs().to_string())
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            notes.push(format!(
                "python_clients.py failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return (HashMap::new(), notes);
        }
        Err(e) => {
            notes.push(format!("python3 could not be run: {e}"));
            return (HashMap::new(), notes);
        }
    };
    let json: serde_json::Value = match serde_json::from_slice(&output.stdout) {
        Ok(v) => v,
        Err(e) => {
            notes.push(format!("python_clients.py printed no JSON: {e}"));
            return (HashMap::new(), notes);
        }
    };
    if let Some(version) = json["python"].as_str() {
        notes.push(format!("Python {version}"));
    }
    for missing in json["missing"].as_array().into_iter().flatten() {
        notes.push(format!(
            "missing: {} (bash bench/run.sh installs it)",
            missing.as_str().unwrap_or("?")
        ));
    }
    let mut columns = Table::new();
    for name in ["pylibmc", "pymemcache"] {
        if let Some(cells) = json[name].as_object() {
            let cells = cells
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect();
            columns.insert(name.to_owned(), cells);
        }
    }
    (columns, notes)
}

fn main() {
    let servers: Vec<MemcachedServer> = (0..3)
        .map(|_| MemcachedServer::start().expect("memcached starts"))
        .collect();
    let addrs: Vec<&str> = servers.iter().map(MemcachedServer::addr).collect();
    let one = addrs[0];
    let all = addrs.join(",");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let key = "bench:rs:key";
    // The same names as bench/python_clients.py: same ring, same split over the servers.
    let keys: Vec<String> = (0..MULTI).map(|i| format!("bench:m{i}")).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();

    // larder: one client per server list; the async ones run one task on a current-thread
    // runtime (one caller).
    let single = Client::connect(one).unwrap();
    let multi = Client::connect(&all).unwrap();
    let async_single = AsyncClient::connect(one).unwrap();
    let async_multi = AsyncClient::connect(&all).unwrap();
    single.set(key, VALUE, 0, Expiry::Never).unwrap();
    for k in &keys {
        multi.set(k, VALUE, 0, Expiry::Never).unwrap();
    }
    assert_eq!(multi.get_multi(&key_refs).unwrap().len(), MULTI);

    // The limit of one caller: bare sockets that send the three text `get`s of the same
    // split, then read each reply to its `END`, parsing nothing.
    let mut bare = BareFanOut::new(&addrs, &key_refs);
    let mut bare_best: f64 = 0.0;
    // The limit of one round trip: a bare socket sending `mg <key> v` and reading the reply,
    // blocking (std) and async (tokio, on the same runtime as the async client).
    let mut bare_get = BareGet::new(one, key);
    let mut tokio_get = rt.block_on(BareGet::connect(one, key));
    let (mut bare_get_best, mut tokio_get_best): (f64, f64) = (0.0, 0.0);

    // The `memcache` crate: text protocol, TCP_NODELAY. It places keys by its own hash, so
    // it stores its own copies of the keys first.
    let url = |addr: &str| format!("memcache://{addr}?tcp_nodelay=true&protocol=ascii");
    let mc_single = memcache::Client::connect(url(one)).unwrap();
    let mc_multi =
        memcache::Client::connect(addrs.iter().map(|a| url(a)).collect::<Vec<_>>()).unwrap();
    for k in &keys {
        mc_multi.set(k, &VALUE[..], 0).unwrap();
    }
    assert_eq!(mc_multi.gets::<Vec<u8>>(&key_refs).unwrap().len(), MULTI);

    let mut table = Table::new();
    let mut notes = Vec::new();
    let rounds: usize = env_or("VS_PY_ROUNDS", 7);
    for _ in 0..rounds.max(1) {
        let t = &mut table;
        put_best(
            t,
            COLUMNS[0],
            "get",
            rate(|| u64::from(single.get(key).unwrap().is_some())),
        );
        put_best(
            t,
            COLUMNS[0],
            "set",
            rate(|| {
                single.set(key, VALUE, 0, Expiry::Never).unwrap();
                1
            }),
        );
        put_best(
            t,
            COLUMNS[0],
            "get_multi",
            rate(|| multi.get_multi(&key_refs).unwrap().len() as u64),
        );

        put_best(
            t,
            COLUMNS[1],
            "get",
            rate_async(&rt, || async {
                u64::from(async_single.get(key).await.unwrap().is_some())
            }),
        );
        put_best(
            t,
            COLUMNS[1],
            "set",
            rate_async(&rt, || async {
                async_single
                    .set(key, VALUE, 0, Expiry::Never)
                    .await
                    .unwrap();
                1
            }),
        );
        put_best(
            t,
            COLUMNS[1],
            "get_multi",
            rate_async(&rt, || async {
                async_multi.get_multi(&key_refs).await.unwrap().len() as u64
            }),
        );

        bare_best = bare_best.max(rate(|| bare.get_multi()));
        bare_get_best = bare_get_best.max(rate(|| bare_get.get()));
        tokio_get_best = tokio_get_best.max(rt.block_on(tokio_get.rate()));

        put_best(
            t,
            COLUMNS[2],
            "get",
            rate(|| u64::from(mc_single.get::<Vec<u8>>(key).unwrap().is_some())),
        );
        put_best(
            t,
            COLUMNS[2],
            "set",
            rate(|| {
                mc_single.set(key, &VALUE[..], 0).unwrap();
                1
            }),
        );
        put_best(
            t,
            COLUMNS[2],
            "get_multi",
            rate(|| mc_multi.gets::<Vec<u8>>(&key_refs).unwrap().len() as u64),
        );

        // The Python clients, same servers, same workloads.
        let (python, round_notes) = python_columns(&addrs);
        for (column, cells) in python {
            for (workload, value) in cells {
                put_best(t, &column, &workload, value);
            }
        }
        for note in round_notes {
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    let pylibmc_bare = table
        .get("pylibmc")
        .and_then(|c| c.get("get_multi"))
        .map(|py| format!(" = {:.2}× pylibmc", bare_best / py))
        .unwrap_or_default();
    let pylibmc_get = table
        .get("pylibmc")
        .and_then(|c| c.get("get"))
        .copied()
        .unwrap_or(f64::NAN);
    notes.push(format!(
        "limit: get over a bare socket: {bare_get_best:.0} ops/s blocking ({:.2}× pylibmc), \
         {tokio_get_best:.0} ops/s on tokio ({:.2}× pylibmc)",
        bare_get_best / pylibmc_get,
        tokio_get_best / pylibmc_get,
    ));
    notes.push(format!(
        "limit: the same multi-get over bare sockets (send the 3 text gets, read each to END, \
         parse nothing): {bare_best:.0} keys/s{pylibmc_bare}"
    ));
    notes.push(format!(
        "best of {} interleaved rounds of {} s per cell",
        rounds.max(1),
        cell_secs()
    ));
    print_table(&table, &notes);
}

/// Bare sockets to each server and the text `get` of each server's share of the keys
/// (placed by the same ketama ring as the clients).
struct BareFanOut {
    conns: Vec<(TcpStream, Vec<u8>)>,
    buf: Vec<u8>,
    keys: u64,
}

impl BareFanOut {
    fn new(addrs: &[&str], keys: &[&str]) -> Self {
        let specs: Vec<String> = addrs.iter().map(|a| (*a).to_owned()).collect();
        let ring = Ring::from_specs(&specs, Distribution::Ketama, KeyHash::OneAtATime).unwrap();
        let mut requests = vec![b"get".to_vec(); addrs.len()];
        for k in keys {
            let req = &mut requests[ring.server_for(k.as_bytes()).unwrap()];
            req.push(b' ');
            req.extend_from_slice(k.as_bytes());
        }
        let conns = addrs
            .iter()
            .zip(requests)
            .filter(|(_, req)| req.len() > 3)
            .map(|(addr, mut req)| {
                req.extend_from_slice(b"\r\n");
                let stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                (stream, req)
            })
            .collect();
        Self {
            conns,
            buf: vec![0; 1 << 16],
            keys: keys.len() as u64,
        }
    }

    fn get_multi(&mut self) -> u64 {
        for (stream, req) in &mut self.conns {
            stream.write_all(req).unwrap();
        }
        for (stream, _) in &mut self.conns {
            let mut got = 0;
            while !self.buf[..got].ends_with(b"END\r\n") {
                got += stream.read(&mut self.buf[got..]).unwrap();
            }
        }
        self.keys
    }
}

/// A bare socket (std or tokio) doing single gets: `mg <key> v`, then reads the `VA 100`
/// reply's bytes without parsing them.
struct BareGet<S> {
    stream: S,
    request: Vec<u8>,
    reply_len: usize,
    buf: Vec<u8>,
}

impl<S> BareGet<S> {
    fn on(stream: S, key: &str) -> Self {
        Self {
            stream,
            request: format!("mg {key} v\r\n").into_bytes(),
            reply_len: format!("VA {}\r\n", VALUE.len()).len() + VALUE.len() + 2,
            buf: vec![0; 4096],
        }
    }
}

impl BareGet<TcpStream> {
    fn new(addr: &str, key: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Self::on(stream, key)
    }

    fn get(&mut self) -> u64 {
        self.stream.write_all(&self.request).unwrap();
        let mut got = 0;
        while got < self.reply_len {
            got += self.stream.read(&mut self.buf[got..]).unwrap();
        }
        1
    }
}

impl BareGet<tokio::net::TcpStream> {
    async fn connect(addr: &str, key: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self::on(stream, key)
    }

    async fn get(&mut self) -> u64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(&self.request).await.unwrap();
        let mut got = 0;
        while got < self.reply_len {
            got += self.stream.read(&mut self.buf[got..]).await.unwrap();
        }
        1
    }

    /// Like [`rate_async`] (which cannot lend `self` to each call's future).
    async fn rate(&mut self) -> f64 {
        for _ in 0..50 {
            black_box(self.get().await);
        }
        let cell = Duration::from_secs_f64(cell_secs());
        let start = Instant::now();
        let mut units = 0;
        loop {
            for _ in 0..64 {
                units += self.get().await;
            }
            if start.elapsed() >= cell {
                return units as f64 / start.elapsed().as_secs_f64();
            }
        }
    }
}

fn print_table(table: &Table, notes: &[String]) {
    let cell = |column: &str, workload: &str| table.get(column).and_then(|c| c.get(workload));
    let label = |workload: &str| match workload {
        "get" => "get (ops/s)",
        "set" => "set (ops/s)",
        _ => "get_multi, 100 keys, 3 servers (keys/s)",
    };
    println!();
    println!("| workload (1 caller) | {} |", COLUMNS.join(" | "));
    println!("|---|{}", "---:|".repeat(COLUMNS.len()));
    for workload in WORKLOADS {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| match cell(c, workload) {
                Some(v) => format!("{v:.0}"),
                None => "n/a".to_owned(),
            })
            .collect();
        println!("| {} | {} |", label(workload), cells.join(" | "));
    }
    println!();
    for workload in WORKLOADS {
        let Some(py) = cell("pylibmc", workload) else {
            continue;
        };
        let ratio = |column: &str| {
            cell(column, workload)
                .map(|v| format!("{:.2}×", v / py))
                .unwrap_or_else(|| "n/a".to_owned())
        };
        println!(
            "- {}: larder blocking / pylibmc = {}, larder async / pylibmc = {}",
            label(workload),
            ratio(COLUMNS[0]),
            ratio(COLUMNS[1]),
        );
    }
    for note in notes {
        println!("- note: {note}");
    }
}
