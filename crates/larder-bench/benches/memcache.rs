//! memcached client throughput, side by side on one local memcached started for the run:
//! a bare-socket loop sending the bytes larder sends (the limit), larder's blocking
//! `Client`, larder's `AsyncClient`, and the `memcache` crate — single get and set round
//! trips (ops/s) and 100-key multi-gets (keys/s), at 1 and 16 concurrent callers.
//! Multi-gets run both as `get_multi` (an owned result) and as `get_multi_with` (each hit
//! visited in the read buffer). The multi-get limit is a bare text `get k1 … k100`, as
//! larder sends it (faster on the wire than quiet `mg`s + `mn`, also printed).
//!
//! The machine is shared and its speed drifts by ±10 % over seconds, more than some of the
//! differences measured. So the contenders of a case take turns in short slices
//! (`MC_BENCH_MS`, default 100 ms, after `MC_BENCH_WARM_MS`, default 20 ms, of unmeasured
//! warm-up in which the callers connect), `MC_BENCH_SLICES` turns (default 25). The blocking
//! contenders and the tokio ones take turns in separate groups, each turn in a new seeded
//! random order (`MC_BENCH_SEED`): a slice's speed depends on the kind of slice before it.
//! A ratio to the bare socket is the median of the per-turn ratios, each comparing runs a
//! fraction of a second apart; its quartiles are shown beside it. Rates are the median slice.
//!
//! At one caller a slice's ratio still varies by ±15 %: memcached serves each connection on
//! one of its worker threads, and where that thread runs against the caller moves a round
//! trip by up to 4× on this VM. So a second table measures the 1-caller ratios in pairs: one
//! caller alternates between the bare socket and the client in blocks of a few milliseconds
//! (`MC_BENCH_PAIRS` pairs, default 200) on a memcached with one worker thread, which serves
//! both connections alike.
//!
//! `cargo bench -p larder-bench --bench memcache` (`MC_BENCH_CALLERS=1,16` picks the caller
//! counts; `MC_BENCH_VERBOSE=1` prints every slice's rate).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::memcache::{AsyncClient, Client};
use larder::Expiry;
use larder_bench::env_or;
use larder_bench::stats::quartiles;
use larder_testing::memcached::MemcachedServer;

const VALUE: &[u8; 100] = &[b'v'; 100];
const MULTI: usize = 100;

/// The bare loops send the bytes larder sends: `mg <key> v f O<opaque>` for a get (value,
/// client flags and the opaque that ties the reply to its request; larder's opaques are
/// nine or ten digits), whose reply is complete at `VA 100 f0 O<opaque>\r\n`, the value
/// and `\r\n`.
const GET_REQ: &[u8] = b"mg bench:key v f O210341445\r\n";

fn get_done(reply: &[u8]) -> bool {
    reply.len() >= b"VA 100 f0 O210341445\r\n".len() + VALUE.len() + 2
}

/// A set's reply (`HD O<opaque>\r\n`) is complete at its length.
fn set_done(reply: &[u8]) -> bool {
    reply.len() >= b"HD O210341446\r\n".len()
}

/// A text multi-get's reply is complete at `END\r\n`.
fn multi_done(reply: &[u8]) -> bool {
    reply.ends_with(b"END\r\n")
}

/// Stores the benchmark's items through `client`: `bench:key` and the multi-get's keys,
/// which it returns.
fn stock(client: &Client) -> Vec<String> {
    client.set("bench:key", VALUE, 0, Expiry::Never).unwrap();
    let keys: Vec<String> = (0..MULTI).map(|i| format!("bench:m{i}")).collect();
    for k in &keys {
        client.set(k, VALUE, 0, Expiry::Never).unwrap();
    }
    keys
}

/// The phase of one slice, shared by its callers: they warm up (connect, settle) unmeasured,
/// then count units, then stop.
struct Phase(AtomicU8);

const WARM: u8 = 0;
const COUNT: u8 = 1;
const STOP: u8 = 2;

impl Phase {
    fn new() -> Arc<Self> {
        Arc::new(Phase(AtomicU8::new(WARM)))
    }

    fn now(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }

    /// Lets the callers warm up for `MC_BENCH_WARM_MS`, then counts for `time`: the counting
    /// time.
    fn run(&self, time: Duration) -> Duration {
        std::thread::sleep(Duration::from_millis(env_or::<u64>("MC_BENCH_WARM_MS", 20)));
        self.0.store(COUNT, Ordering::Relaxed);
        let start = Instant::now();
        std::thread::sleep(time);
        self.0.store(STOP, Ordering::Relaxed);
        start.elapsed()
    }
}

/// Runs `op` until `phase` stops; the units it did while counting.
fn count_units(phase: &Phase, mut op: impl FnMut() -> u64) -> u64 {
    let mut n = 0;
    loop {
        match phase.now() {
            WARM => drop(op()),
            COUNT => n += op(),
            _ => return n,
        }
    }
}

/// Runs `make(caller)()` in `callers` threads for a slice of `time`; units per second.
fn threads<F: FnMut() -> u64>(
    callers: usize,
    time: Duration,
    make: impl Fn(usize) -> F + Sync,
) -> f64 {
    let phase = Phase::new();
    let total = AtomicU64::new(0);
    let counted = std::thread::scope(|s| {
        for c in 0..callers {
            let (phase, total, make) = (&phase, &total, &make);
            s.spawn(move || {
                let mut op = make(c);
                total.fetch_add(count_units(phase, &mut op), Ordering::Relaxed);
            });
        }
        phase.run(time)
    });
    total.load(Ordering::Relaxed) as f64 / counted.as_secs_f64()
}

/// One runtime for every async slice (2 worker threads): an `AsyncClient`'s connections
/// belong to the runtime that opened them.
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

/// Spawns `callers` tasks made by `task(phase)`, each returning the units it counted, for
/// a slice of `time`; units per second.
fn spawn_for<Fut>(callers: usize, time: Duration, task: impl Fn(Arc<Phase>) -> Fut) -> f64
where
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let phase = Phase::new();
    let handles: Vec<_> = (0..callers)
        .map(|_| runtime().spawn(task(phase.clone())))
        .collect();
    let counted = phase.run(time);
    let total: u64 = runtime().block_on(async {
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        total
    });
    total as f64 / counted.as_secs_f64()
}

/// Runs `op` in a loop in each of `callers` tokio tasks for a slice of `time`; units per
/// second.
fn tasks<Op, Fut>(callers: usize, time: Duration, op: Op) -> f64
where
    Op: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let op = Arc::new(op);
    spawn_for(callers, time, |phase| {
        let op = op.clone();
        async move {
            let mut n = 0;
            loop {
                match phase.now() {
                    WARM => drop(op().await),
                    COUNT => n += op().await,
                    _ => return n,
                }
            }
        }
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

// Every contender opens new connections for each slice. memcached pins a connection to one
// of its worker threads, and on this 2-core VM a round trip's speed depends on where that
// thread runs relative to the caller's thread, by up to 2× at one caller: a connection kept
// for the whole run keeps one draw of that luck, new ones each slice average it out.

/// The bare-socket limit: each caller connects, then sends `req` and reads until `done` says
/// the reply is complete, counting `units`.
fn bare<'a>(
    addr: &'a str,
    callers: usize,
    req: &'a [u8],
    done: fn(&[u8]) -> bool,
    units: u64,
) -> Contender<'a> {
    Box::new(move |time| {
        threads(callers, time, |_| {
            let mut b = Bare::new(addr);
            move || {
                b.round_trip(req, done);
                units
            }
        })
    })
}

/// Writes `req` on a bare tokio socket and reads into `buf` until `done` says the reply is
/// complete.
async fn tokio_round_trip(
    s: &mut tokio::net::TcpStream,
    buf: &mut [u8],
    req: &[u8],
    done: fn(&[u8]) -> bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(req).await.unwrap();
    let mut got = 0;
    while !done(&buf[..got]) {
        got += s.read(&mut buf[got..]).await.unwrap();
    }
}

/// The bare-socket limit on tokio, for the async client: each caller's task connects, then
/// sends `req` and reads until `done` says the reply is complete, counting `units`.
fn bare_tokio<'a>(
    addr: &'a str,
    callers: usize,
    req: &[u8],
    done: fn(&[u8]) -> bool,
    units: u64,
) -> Contender<'a> {
    let req: Arc<[u8]> = req.into();
    Box::new(move |time| {
        spawn_for(callers, time, |phase| {
            let (req, addr) = (req.clone(), addr.to_owned());
            async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let mut buf = vec![0; 64 * 1024];
                let mut n = 0;
                loop {
                    let counting = match phase.now() {
                        WARM => false,
                        COUNT => true,
                        _ => return n,
                    };
                    tokio_round_trip(&mut s, &mut buf, &req, done).await;
                    if counting {
                        n += units;
                    }
                }
            }
        })
    })
}

/// larder's blocking `Client`, new for each slice, running `op` in each caller.
fn blocking<'a>(
    addr: &'a str,
    callers: usize,
    op: impl Fn(&Client) -> u64 + Sync + 'a,
) -> Contender<'a> {
    Box::new(move |time| {
        let client = Client::connect(addr).unwrap();
        threads(callers, time, |_| {
            let (c, op) = (client.clone(), &op);
            move || op(&c)
        })
    })
}

/// larder's `AsyncClient`, new for each slice, running `op` in each caller's task.
fn asynchronous<'a, Fut>(
    addr: &'a str,
    callers: usize,
    op: impl Fn(AsyncClient) -> Fut + Clone + Send + Sync + 'static,
) -> Contender<'a>
where
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    Box::new(move |time| {
        let client = AsyncClient::connect(addr).unwrap();
        let op = op.clone();
        tasks(callers, time, move || op(client.clone()))
    })
}

/// The `memcache` crate's client, new for each slice (it connects when built, before the
/// slice is timed), running `op` in each caller.
fn memcache_crate<'a>(
    addr: &'a str,
    callers: usize,
    op: impl Fn(&memcache::Client) -> u64 + Sync + 'a,
) -> Contender<'a> {
    Box::new(move |time| {
        let mc = memcache_client(addr, callers as u32);
        threads(callers, time, |_| {
            let (mc, op) = (&mc, &op);
            move || op(mc)
        })
    })
}

/// A `memcache` crate client of `addr` (text protocol, `TCP_NODELAY`) with up to `pool`
/// connections; it connects when built.
fn memcache_client(addr: &str, pool: u32) -> memcache::Client {
    memcache::Client::builder()
        .add_server(format!("memcache://{addr}?tcp_nodelay=true&protocol=ascii"))
        .unwrap()
        .with_max_pool_size(pool)
        .build()
        .unwrap()
}

/// A contender: runs its workload for one slice of the given length; units per second.
type Contender<'a> = Box<dyn FnMut(Duration) -> f64 + 'a>;

/// Runs each group of contenders (indices into `contenders`) in turns, each turn in a new
/// random order (seeded: the same orders every run); each contender's slice rates.
///
/// A slice's speed depends on the slice before it: a std-thread slice after a tokio one ran
/// ~25 % slower than after another std one, and a tokio slice after a std one faster. A
/// rotating order keeps who runs after whom, which biased the ratios systematically; so the
/// blocking contenders and the tokio ones take turns in separate groups, each group's order
/// shuffled every turn.
fn take_turns(contenders: &mut [Contender<'_>], groups: &[&[usize]]) -> Vec<Vec<f64>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let turns = env_or::<u64>("MC_BENCH_SLICES", 25).max(1) as usize;
    let slice = Duration::from_millis(env_or::<u64>("MC_BENCH_MS", 100));
    let mut rates = vec![Vec::with_capacity(turns); contenders.len()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(env_or::<u64>("MC_BENCH_SEED", 1));
    for group in groups {
        let mut order = group.to_vec();
        for _ in 0..turns {
            order.shuffle(&mut rng);
            for &c in &order {
                rates[c].push(contenders[c](slice));
            }
        }
    }
    if std::env::var_os("MC_BENCH_VERBOSE").is_some() {
        for (c, r) in rates.iter().enumerate() {
            let r: Vec<String> = r.iter().map(|v| format!("{v:.0}")).collect();
            eprintln!("contender {c}: {}", r.join(" "));
        }
    }
    rates
}

/// One printed row: the median rates and the per-turn ratios to the limit.
struct Row {
    case: &'static str,
    callers: usize,
    unit: &'static str,
    /// Median rates: bare std socket, larder, bare tokio socket, larder async, memcache crate
    /// (NaN when not run).
    rates: [f64; 5],
    /// Quartiles of the per-turn ratios: larder to the std socket, larder async to the tokio
    /// socket.
    ratios: [[f64; 3]; 2],
}

impl Row {
    /// The row of `cols` (indices into `rates`, in [`Row::rates`] order; `None` when not
    /// run).
    fn new(
        case: &'static str,
        callers: usize,
        unit: &'static str,
        rates: &[Vec<f64>],
        cols: [Option<usize>; 5],
    ) -> Self {
        let median = |c: Option<usize>| c.map_or(f64::NAN, |c| quartiles(rates[c].clone())[1]);
        let ratio = |c: Option<usize>, limit: Option<usize>| match (c, limit) {
            (Some(c), Some(limit)) => quartiles(
                rates[c]
                    .iter()
                    .zip(&rates[limit])
                    .map(|(r, l)| r / l)
                    .collect(),
            ),
            _ => [f64::NAN; 3],
        };
        Row {
            case,
            callers,
            unit,
            rates: cols.map(median),
            ratios: [ratio(cols[1], cols[0]), ratio(cols[3], cols[2])],
        }
    }
}

/// A ratio's median (quartiles) as printed; `-` when it was not measured.
fn ratio_text([lo, mid, hi]: [f64; 3]) -> String {
    if mid.is_nan() {
        "-".to_owned()
    } else {
        format!("{mid:.2} ({lo:.2}-{hi:.2})")
    }
}

fn print(rows: &[Row]) {
    println!(
        "{:<16} {:>3} {:<7} {:>11} {:>11} {:>11} {:>11} {:>11} {:>17} {:>17}",
        "case",
        "n",
        "unit",
        "bare std",
        "larder",
        "bare tokio",
        "async",
        "memcache",
        "larder/std",
        "async/tokio"
    );
    for r in rows {
        let [bare, larder, bare_tokio, larder_async, crate_mc] = r.rates;
        println!(
            "{:<16} {:>3} {:<7} {bare:>11.0} {larder:>11.0} {bare_tokio:>11.0} {larder_async:>11.0} {crate_mc:>11.0} {:>17} {:>17}",
            r.case,
            r.callers,
            r.unit,
            ratio_text(r.ratios[0]),
            ratio_text(r.ratios[1]),
        );
    }
    println!(
        "rates: median of {} slices of {} ms; ratios: median (quartiles) of the per-turn ratios",
        env_or::<u64>("MC_BENCH_SLICES", 25).max(1),
        env_or::<u64>("MC_BENCH_MS", 100)
    );
}

fn main() {
    let server = MemcachedServer::start().expect("memcached starts");
    let addr = server.addr().to_owned();
    let keys = stock(&Client::connect(&addr).unwrap());
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let owned_keys = Arc::new(keys.clone());
    let mut meta_req = Vec::new();
    for k in &keys {
        meta_req.extend_from_slice(format!("mg {k} v q\r\n").as_bytes());
    }
    meta_req.extend_from_slice(b"mn\r\n");
    let text_req = format!("get {}\r\n", key_refs.join(" ")).into_bytes();
    let mut set_req = format!("ms bench:key {} O210341446\r\n", VALUE.len()).into_bytes();
    set_req.extend_from_slice(VALUE);
    set_req.extend_from_slice(b"\r\n");

    // A row of every contender, in `Row::rates` order.
    const ALL: [Option<usize>; 5] = [Some(0), Some(1), Some(2), Some(3), Some(4)];
    // The blocking contenders (bare std, larder, memcache crate) and the tokio ones take
    // turns apart (see `take_turns`).
    const BY_KIND: &[&[usize]] = &[&[0, 1, 4], &[2, 3]];
    let mut rows = Vec::new();
    let callers_list: Vec<usize> = match std::env::var("MC_BENCH_CALLERS") {
        Ok(list) => list.split(',').filter_map(|n| n.parse().ok()).collect(),
        Err(_) => vec![1, 16],
    };
    for &callers in &callers_list {
        let addr = addr.as_str();
        let rates = take_turns(
            &mut [
                bare(addr, callers, GET_REQ, get_done, 1),
                blocking(addr, callers, |c| {
                    u64::from(c.get("bench:key").unwrap().is_some())
                }),
                bare_tokio(addr, callers, GET_REQ, get_done, 1),
                asynchronous(addr, callers, |c| async move {
                    u64::from(c.get("bench:key").await.unwrap().is_some())
                }),
                memcache_crate(addr, callers, |mc| {
                    u64::from(mc.get::<Vec<u8>>("bench:key").unwrap().is_some())
                }),
            ],
            BY_KIND,
        );
        rows.push(Row::new("get", callers, "ops/s", &rates, ALL));

        let rates = take_turns(
            &mut [
                bare(addr, callers, &set_req, set_done, 1),
                blocking(addr, callers, |c| {
                    c.set("bench:key", VALUE, 0, Expiry::Never).unwrap();
                    1
                }),
                bare_tokio(addr, callers, &set_req, set_done, 1),
                asynchronous(addr, callers, |c| async move {
                    c.set("bench:key", VALUE, 0, Expiry::Never).await.unwrap();
                    1
                }),
                memcache_crate(addr, callers, |mc| {
                    mc.set("bench:key", &VALUE[..], 0).unwrap();
                    1
                }),
            ],
            BY_KIND,
        );
        rows.push(Row::new("set", callers, "ops/s", &rates, ALL));

        let (k_map, k_visit) = (owned_keys.clone(), owned_keys.clone());
        let rates = take_turns(
            &mut [
                // The limit for multi-get is the faster wire form, text `get k1 … k100`.
                bare(addr, callers, &text_req, multi_done, MULTI as u64),
                blocking(addr, callers, |c| {
                    c.get_multi(&key_refs).unwrap().len() as u64
                }),
                bare_tokio(addr, callers, &text_req, multi_done, MULTI as u64),
                asynchronous(addr, callers, move |c| {
                    let k = k_map.clone();
                    async move { c.get_multi(&k).await.unwrap().len() as u64 }
                }),
                memcache_crate(addr, callers, |mc| {
                    mc.gets::<Vec<u8>>(&key_refs).unwrap().len() as u64
                }),
                // The same multi-get visiting each hit in the read buffer (no copies).
                blocking(addr, callers, |c| {
                    c.get_multi_with(&key_refs, |hit| assert_eq!(hit.value.len(), VALUE.len()))
                        .unwrap() as u64
                }),
                asynchronous(addr, callers, move |c| {
                    let k = k_visit.clone();
                    async move {
                        c.get_multi_with(&k, |hit| assert_eq!(hit.value.len(), VALUE.len()))
                            .await
                            .unwrap() as u64
                    }
                }),
                bare(
                    addr,
                    callers,
                    &meta_req,
                    |r| r.ends_with(b"MN\r\n"),
                    MULTI as u64,
                ),
            ],
            &[&[0, 1, 4, 5, 7], &[2, 3, 6]],
        );
        let row = |case, cols| Row::new(case, callers, "keys/s", &rates, cols);
        rows.push(row("multi-get 100", ALL));
        rows.push(row(
            "multi-get visit",
            [Some(0), Some(5), Some(2), Some(6), None],
        ));
        rows.push(row("  (meta mg q)", [Some(7), None, None, None, None]));
    }
    print(&rows);
    one_caller_paired(&set_req, &text_req);
    cluster();
}

/// One caller alternating between the bare socket (`bare`) and a client (`client`) in
/// blocks of `block` calls, [`pairs`] pairs after one of warm-up, the order within a pair
/// alternating; the client's rate over the socket's in each pair.
///
/// For the 1-caller figures, on a memcached with one worker thread: memcached serves a
/// connection on one of its threads, and on this VM two connections alternating in one
/// caller measured up to 4× apart with four threads (two bare sockets, both ways round) —
/// where each thread runs against the caller decides. On one thread both connections are
/// served alike, and blocks a few milliseconds apart share the machine's state.
fn paired(block: usize, mut bare: impl FnMut(), mut client: impl FnMut()) -> Vec<f64> {
    let mut ratios = Vec::with_capacity(pairs());
    for p in 0..=pairs() {
        let mut secs = [0.0; 2];
        for side in [p % 2, 1 - p % 2] {
            let start = Instant::now();
            for _ in 0..block {
                if side == 0 {
                    bare();
                } else {
                    client();
                }
            }
            secs[side] = start.elapsed().as_secs_f64();
        }
        // The first pair warms up.
        if p > 0 {
            ratios.push(secs[0] / secs[1]);
        }
    }
    ratios
}

/// How many pairs of blocks [`paired`] measures: `MC_BENCH_PAIRS`, default 200.
fn pairs() -> usize {
    env_or::<u64>("MC_BENCH_PAIRS", 200).max(1) as usize
}

/// [`paired`] on tokio: one task alternating between a bare tokio socket sending `req`
/// (complete when `done`) and `op` on an `AsyncClient`.
fn paired_tokio<Fut>(
    addr: &str,
    block: usize,
    req: &[u8],
    done: fn(&[u8]) -> bool,
    op: impl Fn(AsyncClient) -> Fut + Send + 'static,
) -> Vec<f64>
where
    Fut: std::future::Future<Output = u64> + Send,
{
    let (addr, req) = (addr.to_owned(), req.to_vec());
    let pairs = pairs();
    let task = runtime().spawn(async move {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let client = AsyncClient::connect(&addr).unwrap();
        let mut buf = vec![0; 64 * 1024];
        let mut ratios = Vec::with_capacity(pairs);
        for p in 0..=pairs {
            let mut secs = [0.0; 2];
            for side in [p % 2, 1 - p % 2] {
                let start = Instant::now();
                for _ in 0..block {
                    if side == 0 {
                        tokio_round_trip(&mut s, &mut buf, &req, done).await;
                    } else {
                        op(client.clone()).await;
                    }
                }
                secs[side] = start.elapsed().as_secs_f64();
            }
            // The first pair warms up.
            if p > 0 {
                ratios.push(secs[0] / secs[1]);
            }
        }
        ratios
    });
    runtime().block_on(task).unwrap()
}

/// The 1-caller ratios to the bare socket, measured in pairs (see [`paired`]) on a
/// memcached with one worker thread: larder, larder async (to a tokio socket) and the
/// `memcache` crate, for get, set and the 100-key multi-gets.
fn one_caller_paired(set_req: &[u8], text_req: &[u8]) {
    let server = MemcachedServer::start_with(&["-t", "1"]).expect("memcached starts");
    let addr = server.addr();
    let client = Client::connect(addr).unwrap();
    let keys = stock(&client);
    let mc = memcache_client(addr, 1);
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let owned_keys = Arc::new(keys.clone());
    // Blocks of a few milliseconds: 100 single round trips, 20 multi-gets.
    let std_pair = |block, req: &[u8], done: fn(&[u8]) -> bool, op: &mut dyn FnMut()| {
        let mut bare = Bare::new(addr);
        quartiles(paired(block, || bare.round_trip(req, done), op))
    };
    let rows: [(&str, [[f64; 3]; 3]); 4] = [
        (
            "get",
            [
                std_pair(100, GET_REQ, get_done, &mut || {
                    assert!(client.get("bench:key").unwrap().is_some())
                }),
                quartiles(paired_tokio(addr, 100, GET_REQ, get_done, |c| async move {
                    u64::from(c.get("bench:key").await.unwrap().is_some())
                })),
                std_pair(100, GET_REQ, get_done, &mut || {
                    assert!(mc.get::<Vec<u8>>("bench:key").unwrap().is_some())
                }),
            ],
        ),
        (
            "set",
            [
                std_pair(100, set_req, set_done, &mut || {
                    client.set("bench:key", VALUE, 0, Expiry::Never).unwrap()
                }),
                quartiles(paired_tokio(addr, 100, set_req, set_done, |c| async move {
                    c.set("bench:key", VALUE, 0, Expiry::Never).await.unwrap();
                    1
                })),
                std_pair(100, set_req, set_done, &mut || {
                    mc.set("bench:key", &VALUE[..], 0).unwrap()
                }),
            ],
        ),
        (
            "multi-get 100",
            [
                std_pair(20, text_req, multi_done, &mut || {
                    assert_eq!(client.get_multi(&key_refs).unwrap().len(), MULTI)
                }),
                quartiles(paired_tokio(addr, 20, text_req, multi_done, {
                    let keys = owned_keys.clone();
                    move |c| {
                        let keys = keys.clone();
                        async move { c.get_multi(&keys).await.unwrap().len() as u64 }
                    }
                })),
                std_pair(20, text_req, multi_done, &mut || {
                    assert_eq!(mc.gets::<Vec<u8>>(&key_refs).unwrap().len(), MULTI)
                }),
            ],
        ),
        (
            "multi-get visit",
            [
                std_pair(20, text_req, multi_done, &mut || {
                    let hits = client
                        .get_multi_with(&key_refs, |hit| assert_eq!(hit.value.len(), VALUE.len()));
                    assert_eq!(hits.unwrap(), MULTI)
                }),
                quartiles(paired_tokio(addr, 20, text_req, multi_done, {
                    let keys = owned_keys.clone();
                    move |c| {
                        let keys = keys.clone();
                        async move {
                            c.get_multi_with(&keys, |hit| assert_eq!(hit.value.len(), VALUE.len()))
                                .await
                                .unwrap() as u64
                        }
                    }
                })),
                [f64::NAN; 3],
            ],
        ),
    ];
    println!();
    println!(
        "1 caller, paired: {} pairs of blocks, on a memcached with one worker thread",
        pairs()
    );
    println!(
        "{:<16} {:>17} {:>17} {:>17}",
        "case", "larder/std", "async/tokio", "memcache/std"
    );
    for (case, ratios) in rows {
        let [larder, larder_async, crate_mc] = ratios.map(ratio_text);
        println!("{case:<16} {larder:>17} {larder_async:>17} {crate_mc:>17}");
    }
    println!("ratios: median (quartiles) of the per-pair ratios of rates");
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
    let parallel = threads(1, Duration::from_millis(300), |_| {
        let c = all.clone();
        let k = key_refs.clone();
        move || c.get_multi(&k).unwrap().len() as u64
    });
    let sequential = threads(1, Duration::from_millis(300), |_| {
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
    let batched = threads(1, Duration::from_millis(300), |_| {
        let c = all.clone();
        let items = items.clone();
        move || {
            c.store_multi(larder::memcache::SetMode::Set, &items, Expiry::Never)
                .unwrap()
                .len() as u64
        }
    });
    let one_by_one = threads(1, Duration::from_millis(300), |_| {
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
