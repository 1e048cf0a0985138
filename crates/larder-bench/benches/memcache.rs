//! memcached client throughput, side by side on one local memcached started for the run:
//! a bare-socket loop (the limit), larder's blocking `Client`, larder's `AsyncClient`, and the
//! `memcache` crate — single get and set round trips (ops/s) and 100-key multi-gets (keys/s),
//! at 1 and 16 concurrent callers. Multi-gets run both as `get_multi` (a map of owned
//! copies) and as `get_multi_with` (each hit visited in the read buffer). The multi-get limit
//! is a bare text `get k1 … k100` (faster on the wire than quiet `mg`s + `mn`, also printed).
//! The machine is shared and noisy, so every cell is measured in `MC_BENCH_ROUNDS`
//! interleaved rounds (default 5) and the table shows each cell's best round.
//!
//! `cargo bench -p larder-bench --bench memcache` (`MC_BENCH_MS` sets the time per cell and
//! round, default 300).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::memcache::{AsyncClient, Client};
use larder::testing::memcached::MemcachedServer;
use larder::Expiry;

const VALUE: &[u8; 100] = &[b'v'; 100];
const MULTI: usize = 100;

fn cell_time() -> Duration {
    let ms = std::env::var("MC_BENCH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    Duration::from_millis(ms)
}

/// Runs `make(caller)()` in `callers` threads for the cell time; units per second.
fn threads<F: FnMut() -> u64>(callers: usize, make: impl Fn(usize) -> F + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..callers {
            let (stop, total, make) = (&stop, &total, &make);
            s.spawn(move || {
                let mut op = make(c);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += op();
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(cell_time());
        stop.store(true, Ordering::Relaxed);
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Runs `op` in `callers` tokio tasks (2 worker threads) for the cell time; units per second.
/// One runtime for every async cell: an `AsyncClient`'s connections belong to the runtime
/// that opened them.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn tasks<Fut>(callers: usize, op: impl Fn(usize) -> Fut + Send + Sync + 'static) -> f64
where
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let rt = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let op = Arc::new(op);
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..callers)
            .map(|c| {
                let (stop, op) = (stop.clone(), op.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += op(c).await;
                    }
                    n
                })
            })
            .collect();
        tokio::time::sleep(cell_time()).await;
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        total as f64 / start.elapsed().as_secs_f64()
    })
}

/// A raw socket that writes a request and reads until the reply is complete.
struct Bare {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Bare {
    fn new(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Bare {
            stream,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Writes `req`, reads until `done(received)` says the reply is complete.
    fn round_trip(&mut self, req: &[u8], done: impl Fn(&[u8]) -> bool) {
        self.stream.write_all(req).unwrap();
        let mut got = 0;
        loop {
            got += self.stream.read(&mut self.buf[got..]).unwrap();
            if done(&self.buf[..got]) {
                return;
            }
        }
    }
}

/// The best of each cell over the rounds, in first-measured order.
#[derive(Default)]
struct Best {
    rows: Vec<(String, usize, &'static str, [f64; 4])>,
}

impl Best {
    /// Keeps the better of each of `cells` and the row's earlier rounds.
    fn put(&mut self, name: &str, callers: usize, unit: &'static str, cells: [f64; 4]) {
        match self
            .rows
            .iter_mut()
            .find(|(n, c, _, _)| n == name && *c == callers)
        {
            Some((_, _, _, best)) => {
                for (b, v) in best.iter_mut().zip(cells) {
                    *b = b.max(v);
                }
            }
            None => self.rows.push((name.to_owned(), callers, unit, cells)),
        }
    }

    fn print(&self) {
        println!(
            "{:<16} {:>3} {:<7} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9}",
            "case",
            "n",
            "unit",
            "bare socket",
            "larder",
            "larder async",
            "memcache",
            "larder/b",
            "async/b"
        );
        for (name, callers, unit, [bare, larder, larder_async, crate_mc]) in &self.rows {
            println!(
                "{name:<16} {callers:>3} {unit:<7} {bare:>12.0} {larder:>12.0} {larder_async:>12.0} {crate_mc:>12.0} {:>9.2} {:>9.2}",
                larder / bare,
                larder_async / bare,
            );
        }
    }
}

fn main() {
    let server = MemcachedServer::start().expect("memcached starts");
    let addr = server.addr().to_owned();
    let client = Client::connect(&addr).unwrap();
    let aclient = AsyncClient::connect(&addr).unwrap();
    let mc = memcache::Client::builder()
        .add_server(format!("memcache://{addr}?tcp_nodelay=true&protocol=ascii"))
        .unwrap()
        .with_max_pool_size(32)
        .build()
        .unwrap();

    client.set("bench:key", VALUE, 0, Expiry::Never).unwrap();
    let keys: Vec<String> = (0..MULTI).map(|i| format!("bench:m{i}")).collect();
    for k in &keys {
        client.set(k, VALUE, 0, Expiry::Never).unwrap();
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut multi_req = Vec::new();
    for k in &keys {
        multi_req.extend_from_slice(format!("mg {k} v q\r\n").as_bytes());
    }
    multi_req.extend_from_slice(b"mn\r\n");
    let get_reply_len = format!("VA {}\r\n", VALUE.len()).len() + VALUE.len() + 2;
    let mut set_req = format!("ms bench:key {}\r\n", VALUE.len()).into_bytes();
    set_req.extend_from_slice(VALUE);
    set_req.extend_from_slice(b"\r\n");

    let rounds: usize = std::env::var("MC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut best = Best::default();
    for (_, callers) in (0..rounds.max(1)).flat_map(|r| [(r, 1), (r, 16)]) {
        let bare = threads(callers, |_| {
            let mut b = Bare::new(&addr);
            move || {
                b.round_trip(b"mg bench:key v\r\n", |r| r.len() >= get_reply_len);
                1
            }
        });
        let lg = threads(callers, |_| {
            let c = client.clone();
            move || u64::from(c.get("bench:key").unwrap().is_some())
        });
        let ac = aclient.clone();
        let la = tasks(callers, move |_| {
            let c = ac.clone();
            async move { u64::from(c.get("bench:key").await.unwrap().is_some()) }
        });
        let cg = threads(callers, |_| {
            let mc = &mc;
            move || u64::from(mc.get::<Vec<u8>>("bench:key").unwrap().is_some())
        });
        best.put("get", callers, "ops/s", [bare, lg, la, cg]);

        let bare = threads(callers, |_| {
            let mut b = Bare::new(&addr);
            let req = set_req.clone();
            move || {
                b.round_trip(&req, |r| r.len() >= 4);
                1
            }
        });
        let ls = threads(callers, |_| {
            let c = client.clone();
            move || {
                c.set("bench:key", VALUE, 0, Expiry::Never).unwrap();
                1
            }
        });
        let ac = aclient.clone();
        let las = tasks(callers, move |_| {
            let c = ac.clone();
            async move {
                c.set("bench:key", VALUE, 0, Expiry::Never).await.unwrap();
                1
            }
        });
        let cs = threads(callers, |_| {
            let mc = &mc;
            move || {
                mc.set("bench:key", &VALUE[..], 0).unwrap();
                1
            }
        });
        best.put("set", callers, "ops/s", [bare, ls, las, cs]);

        // The limit for multi-get is the faster wire form, text `get k1 … k100`.
        let text_req = format!("get {}\r\n", key_refs.join(" ")).into_bytes();
        let bare = threads(callers, |_| {
            let mut b = Bare::new(&addr);
            let req = text_req.clone();
            move || {
                b.round_trip(&req, |r| r.ends_with(b"END\r\n"));
                MULTI as u64
            }
        });
        let lm = threads(callers, |_| {
            let c = client.clone();
            let k = key_refs.clone();
            move || c.get_multi(&k).unwrap().len() as u64
        });
        let ac = aclient.clone();
        let owned = keys.clone();
        let lam = tasks(callers, move |_| {
            let c = ac.clone();
            let k = owned.clone();
            async move { c.get_multi(&k).await.unwrap().len() as u64 }
        });
        let cm = threads(callers, |_| {
            let mc = &mc;
            let k = key_refs.clone();
            move || mc.gets::<Vec<u8>>(&k).unwrap().len() as u64
        });
        best.put("multi-get 100", callers, "keys/s", [bare, lm, lam, cm]);
        // The same multi-get visiting each hit in the read buffer (no copies, no map).
        let lv = threads(callers, |_| {
            let c = client.clone();
            let k = key_refs.clone();
            move || {
                c.get_multi_with(&k, |hit| assert_eq!(hit.value.len(), VALUE.len()))
                    .unwrap() as u64
            }
        });
        let ac = aclient.clone();
        let owned = keys.clone();
        let lav = tasks(callers, move |_| {
            let c = ac.clone();
            let k = owned.clone();
            async move {
                c.get_multi_with(&k, |hit| assert_eq!(hit.value.len(), VALUE.len()))
                    .await
                    .unwrap() as u64
            }
        });
        best.put(
            "multi-get visit",
            callers,
            "keys/s",
            [bare, lv, lav, f64::NAN],
        );
        let bare_meta = threads(callers, |_| {
            let mut b = Bare::new(&addr);
            let req = multi_req.clone();
            move || {
                b.round_trip(&req, |r| r.ends_with(b"MN\r\n"));
                MULTI as u64
            }
        });
        best.put(
            "  (meta mg q)",
            callers,
            "keys/s",
            [bare_meta, f64::NAN, f64::NAN, f64::NAN],
        );
    }
    best.print();
    println!("best of {} interleaved rounds per cell", rounds.max(1));
    cluster();
}

/// Three servers: a 300-key multi-get fanned out in parallel vs the same keys fetched server
/// by server (the sequential path), and a 300-item `store_multi` (batched per server, in
/// parallel) vs 300 single sets. One caller; keys/s.
fn cluster() {
    let servers: Vec<MemcachedServer> = (0..3)
        .map(|_| MemcachedServer::start().expect("memcached starts"))
        .collect();
    let addrs: Vec<String> = servers.iter().map(|s| s.addr().to_owned()).collect();
    let all = Client::connect(&addrs.join(",")).unwrap();
    let ring = larder::memcache::ring::Ring::from_specs(
        &addrs,
        larder::memcache::Distribution::Ketama,
        larder::memcache::KeyHash::OneAtATime,
    )
    .unwrap();
    let singles: Vec<Client> = addrs.iter().map(|a| Client::connect(a).unwrap()).collect();
    let keys: Vec<String> = (0..300).map(|i| format!("cluster:{i}")).collect();
    let mut per_server: Vec<Vec<&str>> = vec![Vec::new(); 3];
    for k in &keys {
        all.set(k, VALUE, 0, Expiry::Never).unwrap();
        per_server[ring.server_for(k.as_bytes()).unwrap()].push(k);
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let parallel = threads(1, |_| {
        let c = all.clone();
        let k = key_refs.clone();
        move || c.get_multi(&k).unwrap().len() as u64
    });
    let sequential = threads(1, |_| {
        let groups = per_server.clone();
        let singles = singles.clone();
        move || {
            groups
                .iter()
                .zip(&singles)
                .map(|(g, c)| c.get_multi(g).unwrap().len() as u64)
                .sum()
        }
    });
    let items: Vec<(&[u8], &[u8], u32)> =
        keys.iter().map(|k| (k.as_bytes(), &VALUE[..], 0)).collect();
    let batched = threads(1, |_| {
        let c = all.clone();
        let items = items.clone();
        move || {
            c.store_multi(larder::memcache::SetMode::Set, &items, Expiry::Never)
                .unwrap()
                .len() as u64
        }
    });
    let one_by_one = threads(1, |_| {
        let c = all.clone();
        let k = key_refs.clone();
        move || {
            for key in &k {
                c.set(key, VALUE, 0, Expiry::Never).unwrap();
            }
            k.len() as u64
        }
    });
    println!(
        "cluster x3 multi-get 300 keys/s: parallel fan-out {parallel:.0}, server by server {sequential:.0}"
    );
    println!("cluster x3 set 300 keys/s: store_multi {batched:.0}, single sets {one_by_one:.0}");
}
