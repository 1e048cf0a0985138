//! Client CPU per key of 100-key multi-gets over three local memcached servers, counted on
//! the calling thread only.
//!
//! The servers share the machine's cores with the client, so a wall-clock rate mixes the
//! client's cost with how memcached happened to be scheduled. This bench instead reads the
//! CPU time the calling thread itself used while it ran the multi-gets, and divides by the
//! keys fetched:
//!
//! - total (user + system) ns per key from `/proc/thread-self/schedstat` (its first field,
//!   the thread's time on CPU in ns, exact);
//! - user and system ns per key from `getrusage(RUSAGE_THREAD)`. The kernel keeps the exact
//!   total but splits it into user and system by sampling at each scheduler tick, so the
//!   split of a block is only as fine as the ticks it spans (a 4 ms tick at 250 Hz); hence
//!   blocks of `CPK_SECS` and the pooled column, which adds every round's ticks.
//!
//! Contenders, all fetching `cpk:0`..`cpk:99` (100-byte values stocked once, every key a
//! hit) from the same three servers:
//!
//! - larder's blocking `Client::get_multi` and `Client::get_multi_with` (a visitor, no
//!   copies);
//! - larder's `AsyncClient::get_multi` on a current-thread tokio runtime, so the calling
//!   thread does all of the client's work (I/O driver included);
//! - bare sockets: three blocking `TcpStream`s (TCP_NODELAY) sending each server the text
//!   `get k1 k2 …` of exactly the keys larder's ring places on it, all three requests before
//!   any reply is read, each reply then read until it ends with `END\r\n`, nothing parsed:
//!   the cost of the exchange itself;
//! - pylibmc (`bench/python/cpu_per_key.py`, run as a subprocess each round with the same
//!   servers), measured in Python with `getrusage(RUSAGE_THREAD)` and `time.thread_time_ns()`.
//!
//! The run is `CPK_ROUNDS` (default 7) rounds; in each, every contender runs one block of
//! `CPK_SECS` (default 0.5) seconds after a short warm-up, the contenders' order rotating
//! from round to round. Figures are the median round (min–max beside it); the ratios the
//! project tracks (larder total / bare total, larder user / pylibmc user) are medians of the
//! per-round ratios. The servers' own counters (`stats`) around each block give the bytes
//! and keys each contender exchanged per call, to show that all of them did the same
//! exchange. Only ratios within one run mean anything.
//!
//! Where the scheduler puts the client against the servers changes the kernel's share of a
//! call (a wake-up of a thread on the other CPU costs far more than one on the same CPU),
//! and it may change from round to round. `CPK_CPU=N` pins the bench, the servers and the
//! Python half to CPU `N`, one placement for every contender and round; unset, the
//! scheduler places them.
//!
//! `cargo bench -p larder-bench --bench cpu_per_key` (Linux only: `/proc/thread-self`,
//! `RUSAGE_THREAD`); pylibmc is skipped, with a note, when it is not installed.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use larder::memcache::{AsyncClient, Client};
use larder::Expiry;
use larder_bench::env_or;
use larder_bench::stats::{median, spread};
use larder_testing::memcached::MemcachedServer;

const VALUE: &[u8; 100] = &[b'v'; 100];
const MULTI: usize = 100;
const PREFIX: &str = "cpk:";
/// Calls before the first round of each contender (connections made, code paths hot).
const WARMUP_CALLS: u64 = 200;
/// Calls before each block, unmeasured (caches refilled after the other contenders ran).
const BLOCK_WARMUP_CALLS: u64 = 20;
/// Calls between two looks at the clock.
const CHECK_EVERY: u64 = 8;
/// The scheduler tick of a `CONFIG_HZ=250` kernel (this project's machines), used only to
/// estimate how many ticks the user/system split was sampled from.
const TICK_NS: f64 = 4e6;
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../bench/python/cpu_per_key.py"
);

const BLOCKING: usize = 0;
const VISIT: usize = 1;
const ASYNC: usize = 2;
const BARE: usize = 3;
const PYLIBMC: usize = 4;
const NAMES: [&str; 5] = [
    "larder blocking `get_multi`",
    "larder blocking `get_multi_with` (visit)",
    "larder async `get_multi` (current-thread tokio)",
    "bare sockets (3 std TcpStreams)",
    "pylibmc 1.6.3 `get_multi`",
];
/// The larder contenders whose ratios are tracked, with their column titles.
const LARDER: [(usize, &str); 3] = [
    (BLOCKING, "blocking `get_multi`"),
    (VISIT, "blocking `get_multi_with`"),
    (ASYNC, "async `get_multi`"),
];

/// CPU time the calling thread has used so far, in ns.
#[derive(Debug, Clone, Copy)]
struct ThreadCpu {
    /// User mode, from `getrusage` (tick-sampled split of the exact total).
    user: u64,
    /// Kernel mode, from `getrusage`.
    sys: u64,
    /// User + kernel, from `/proc/thread-self/schedstat` (exact).
    total: u64,
}

impl ThreadCpu {
    fn now() -> Self {
        let (user, sys) = rusage_thread();
        Self {
            user,
            sys,
            total: schedstat_ns(),
        }
    }
}

/// The calling thread's user and system time in ns, from `getrusage(RUSAGE_THREAD)`.
#[cfg(target_os = "linux")]
fn rusage_thread() -> (u64, u64) {
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `struct rusage` through the pointer, which points to one
    // (zeroed, so fully initialised even where the kernel leaves fields alone).
    let usage = unsafe {
        assert_eq!(
            libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()),
            0,
            "getrusage(RUSAGE_THREAD): {}",
            std::io::Error::last_os_error()
        );
        usage.assume_init()
    };
    (ns(usage.ru_utime), ns(usage.ru_stime))
}

#[cfg(not(target_os = "linux"))]
fn rusage_thread() -> (u64, u64) {
    panic!("cpu_per_key needs Linux (getrusage(RUSAGE_THREAD), /proc/thread-self)")
}

/// Pins the calling thread to `cpu`; the processes it starts afterwards (the servers, the
/// Python half) inherit the pin.
#[cfg(target_os = "linux")]
fn pin_to_cpu(cpu: usize) {
    // SAFETY: `cpu_set_t` is plain data (all zeroes is the empty set); CPU_SET writes inside
    // the set (it ignores a `cpu` beyond it) and sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "CPK_CPU={cpu}: sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

#[cfg(not(target_os = "linux"))]
fn pin_to_cpu(_cpu: usize) {
    panic!("CPK_CPU needs Linux (sched_setaffinity)")
}

/// The calling thread's time on CPU in ns: the first field of `/proc/thread-self/schedstat`.
fn schedstat_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat (Linux with CONFIG_SCHED_INFO)");
    text.split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .expect("schedstat starts with the ns on CPU")
}

/// One measured block of one contender.
#[derive(Debug, Clone, Copy)]
struct Sample {
    calls: u64,
    keys: u64,
    wall: Duration,
    user_ns: u64,
    sys_ns: u64,
    total_ns: u64,
}

impl Sample {
    fn between(start: ThreadCpu, end: ThreadCpu, wall: Duration, calls: u64, keys: u64) -> Self {
        Self {
            calls,
            keys,
            wall,
            user_ns: end.user - start.user,
            sys_ns: end.sys - start.sys,
            total_ns: end.total - start.total,
        }
    }

    fn user_per_key(&self) -> f64 {
        self.user_ns as f64 / self.keys as f64
    }

    fn sys_per_key(&self) -> f64 {
        self.sys_ns as f64 / self.keys as f64
    }

    fn total_per_key(&self) -> f64 {
        self.total_ns as f64 / self.keys as f64
    }

    fn keys_per_sec(&self) -> f64 {
        self.keys as f64 / self.wall.as_secs_f64()
    }
}

/// Warms up, then runs `op` (a multi-get returning the hits it found) for `secs` of wall
/// time; the calling thread's CPU over the measured calls.
fn block(calls_before: u64, secs: f64, mut op: impl FnMut() -> usize) -> Sample {
    for _ in 0..calls_before {
        assert_eq!(op(), MULTI, "every key is a hit");
    }
    let limit = Duration::from_secs_f64(secs);
    let (mut calls, mut keys) = (0, 0);
    let cpu = ThreadCpu::now();
    let start = Instant::now();
    loop {
        for _ in 0..CHECK_EVERY {
            keys += op() as u64;
        }
        calls += CHECK_EVERY;
        if start.elapsed() >= limit {
            break;
        }
    }
    let wall = start.elapsed();
    let sample = Sample::between(cpu, ThreadCpu::now(), wall, calls, keys);
    assert_eq!(keys, calls * MULTI as u64, "every key is a hit");
    sample
}

/// [`block`] for an async multi-get, all of it inside one `block_on` of a current-thread
/// runtime: the runtime's I/O driver runs on the calling thread too.
fn block_async<F: Future<Output = usize>>(
    rt: &tokio::runtime::Runtime,
    calls_before: u64,
    secs: f64,
    mut op: impl FnMut() -> F,
) -> Sample {
    rt.block_on(async {
        for _ in 0..calls_before {
            assert_eq!(op().await, MULTI, "every key is a hit");
        }
        let limit = Duration::from_secs_f64(secs);
        let (mut calls, mut keys) = (0, 0);
        let cpu = ThreadCpu::now();
        let start = Instant::now();
        loop {
            for _ in 0..CHECK_EVERY {
                keys += op().await as u64;
            }
            calls += CHECK_EVERY;
            if start.elapsed() >= limit {
                break;
            }
        }
        let wall = start.elapsed();
        let sample = Sample::between(cpu, ThreadCpu::now(), wall, calls, keys);
        assert_eq!(keys, calls * MULTI as u64, "every key is a hit");
        sample
    })
}

/// Bare sockets to each server and the text `get` of the keys larder's ring places on it.
struct BareFanOut {
    conns: Vec<(TcpStream, Vec<u8>)>,
    buf: Vec<u8>,
}

impl BareFanOut {
    /// Groups `keys` by `client`'s own ring, so each server gets the keys larder sends it.
    fn new(client: &Client, keys: &[&str]) -> Self {
        let config = client.config();
        let ring = config.ring().expect("the client's ring");
        let mut requests = vec![b"get".to_vec(); config.servers.len()];
        for k in keys {
            let req = &mut requests[ring.server_for(k.as_bytes()).expect("a live server")];
            req.push(b' ');
            req.extend_from_slice(k.as_bytes());
        }
        let conns = config
            .servers
            .iter()
            .zip(requests)
            .filter(|(_, req)| req.len() > b"get".len())
            .map(|(addr, mut req)| {
                req.extend_from_slice(b"\r\n");
                let stream = TcpStream::connect(addr.to_string()).unwrap();
                stream.set_nodelay(true).unwrap();
                (stream, req)
            })
            .collect();
        Self {
            conns,
            buf: vec![0; 1 << 16],
        }
    }

    /// Sends every request, then reads each reply to its `END`; `parse` counts the items
    /// of each reply (only outside the measured blocks), else the keys are taken as hits.
    fn exchange(&mut self, parse: bool) -> usize {
        for (stream, req) in &mut self.conns {
            stream.write_all(req).unwrap();
        }
        let mut items = 0;
        for (stream, _) in &mut self.conns {
            let mut got = 0;
            while !self.buf[..got].ends_with(b"END\r\n") {
                got += stream.read(&mut self.buf[got..]).unwrap();
            }
            if parse {
                items += self.buf[..got]
                    .windows(b"VALUE ".len())
                    .filter(|w| w == b"VALUE ")
                    .count();
            }
        }
        if parse {
            items
        } else {
            MULTI
        }
    }
}

/// The servers' counters that show what a contender exchanged: `get_hits` (keys found),
/// `bytes_read` (request bytes), `bytes_written` (reply bytes); one row per server, in the
/// client's configuration order.
fn counters(client: &Client) -> Vec<[u64; 3]> {
    let stats = client.stats().expect("stats");
    client
        .config()
        .servers
        .iter()
        .map(|addr| {
            let server = &stats[&addr.to_string()];
            ["get_hits", "bytes_read", "bytes_written"].map(|name| {
                server
                    .get(name)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("stats of {addr} without {name}"))
            })
        })
        .collect()
}

/// The servers' counters summed over a contender's blocks, and its calls in them.
#[derive(Debug, Default, Clone)]
struct Wire {
    calls: u64,
    per_server: Vec<[u64; 3]>,
}

impl Wire {
    fn add(&mut self, calls: u64, before: &[[u64; 3]], after: &[[u64; 3]]) {
        self.calls += calls;
        self.per_server.resize(before.len(), [0; 3]);
        for ((sum, b), a) in self.per_server.iter_mut().zip(before).zip(after) {
            for i in 0..3 {
                sum[i] += a[i] - b[i];
            }
        }
    }

    /// Keys per server per call (as `a+b+c`), request and reply bytes per call.
    fn per_call(&self) -> Option<(String, f64, f64)> {
        if self.calls == 0 {
            return None;
        }
        let calls = self.calls as f64;
        let split = self
            .per_server
            .iter()
            .map(|s| format!("{:.0}", s[0] as f64 / calls))
            .collect::<Vec<_>>()
            .join("+");
        let sum = |i: usize| self.per_server.iter().map(|s| s[i]).sum::<u64>() as f64 / calls;
        Some((split, sum(1), sum(2)))
    }
}

/// What one run of the Python half gave.
enum Python {
    Ran { sample: Sample, calls_all: u64 },
    Skipped(String),
    Failed(String),
}

/// Runs `bench/python/cpu_per_key.py` once against `servers`.
fn run_python(servers: &str, secs: f64) -> (Python, Vec<String>) {
    let mut notes = Vec::new();
    let output = Command::new("python3")
        .arg(SCRIPT)
        .args(["--servers", servers, "--prefix", PREFIX])
        .args(["--secs", &secs.to_string()])
        .args(["--keys", &MULTI.to_string()])
        .args(["--value-len", &VALUE.len().to_string()])
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let why = format!(
                "cpu_per_key.py failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return (Python::Failed(why), notes);
        }
        Err(e) => {
            return (
                Python::Skipped(format!("python3 could not be run: {e}")),
                notes,
            )
        }
    };
    let json: serde_json::Value = match serde_json::from_slice(&output.stdout) {
        Ok(v) => v,
        Err(e) => {
            return (
                Python::Failed(format!("cpu_per_key.py printed no JSON: {e}")),
                notes,
            )
        }
    };
    if let (Some(python), Some(pylibmc)) =
        (json["python"].as_str(), json["pylibmc_version"].as_str())
    {
        notes.push(format!("Python {python}, pylibmc {pylibmc}"));
    }
    if let Some(missing) = json["missing"].as_array().and_then(|m| m.first()) {
        let why = format!(
            "not installed: {} (bash bench/run.sh installs it)",
            missing.as_str().unwrap_or("?")
        );
        return (Python::Skipped(why), notes);
    }
    let m = &json["pylibmc"];
    let field = |name: &str| m[name].as_u64().unwrap_or_else(|| panic!("pylibmc.{name}"));
    let sample = Sample {
        calls: field("calls"),
        keys: field("keys"),
        wall: Duration::from_secs_f64(m["wall_s"].as_f64().expect("pylibmc.wall_s")),
        user_ns: field("user_ns"),
        sys_ns: field("sys_ns"),
        total_ns: field("total_ns"),
    };
    let calls_all = field("calls_all");
    (Python::Ran { sample, calls_all }, notes)
}

fn main() {
    let rounds: usize = env_or::<usize>("CPK_ROUNDS", 7).max(1);
    let secs: f64 = env_or("CPK_SECS", 0.5);
    let cpu: Option<usize> = std::env::var("CPK_CPU").ok().and_then(|v| v.parse().ok());
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu);
    }

    let servers: Vec<MemcachedServer> = (0..3)
        .map(|_| MemcachedServer::start().expect("memcached starts"))
        .collect();
    let all = servers
        .iter()
        .map(MemcachedServer::addr)
        .collect::<Vec<_>>()
        .join(",");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let keys: Vec<String> = (0..MULTI).map(|i| format!("{PREFIX}{i}")).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let client = Client::connect(&all).unwrap();
    let async_client = AsyncClient::connect(&all).unwrap();
    // A client of its own for the servers' counters, so the measured clients' connections
    // carry nothing else.
    let admin = Client::connect(&all).unwrap();
    for k in &keys {
        client.set(k, VALUE, 0, Expiry::Never).unwrap();
    }
    let mut bare = BareFanOut::new(&client, &key_refs);
    assert_eq!(bare.exchange(true), MULTI, "bare sockets find every key");

    let get_multi = || client.get_multi(&key_refs).unwrap().len();
    let visit = || {
        client
            .get_multi_with(&key_refs, |hit| {
                assert_eq!(hit.value.len(), VALUE.len());
            })
            .unwrap()
    };
    let async_get_multi = || async { async_client.get_multi(&key_refs).await.unwrap().len() };

    // Warm up every Rust contender once; the Python side warms up in each of its runs.
    block(WARMUP_CALLS, 0.0, get_multi);
    block(WARMUP_CALLS, 0.0, visit);
    block_async(&rt, WARMUP_CALLS, 0.0, async_get_multi);
    block(WARMUP_CALLS, 0.0, || bare.exchange(false));

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); NAMES.len()];
    let mut wire: Vec<Wire> = vec![Wire::default(); NAMES.len()];
    let mut notes: Vec<String> = Vec::new();
    let mut python_off: Option<String> = None;
    for round in 0..rounds {
        for turn in 0..NAMES.len() {
            let contender = (round + turn) % NAMES.len();
            let before = counters(&admin);
            let (sample, calls) = match contender {
                BLOCKING => {
                    let s = block(BLOCK_WARMUP_CALLS, secs, get_multi);
                    (s, s.calls + BLOCK_WARMUP_CALLS)
                }
                VISIT => {
                    let s = block(BLOCK_WARMUP_CALLS, secs, visit);
                    (s, s.calls + BLOCK_WARMUP_CALLS)
                }
                ASYNC => {
                    let s = block_async(&rt, BLOCK_WARMUP_CALLS, secs, async_get_multi);
                    (s, s.calls + BLOCK_WARMUP_CALLS)
                }
                BARE => {
                    let s = block(BLOCK_WARMUP_CALLS, secs, || bare.exchange(false));
                    (s, s.calls + BLOCK_WARMUP_CALLS)
                }
                _ => {
                    if python_off.is_some() {
                        continue;
                    }
                    let (outcome, round_notes) = run_python(&all, secs);
                    for note in round_notes {
                        if !notes.contains(&note) {
                            notes.push(note);
                        }
                    }
                    match outcome {
                        Python::Ran { sample, calls_all } => (sample, calls_all),
                        Python::Skipped(why) | Python::Failed(why) => {
                            python_off = Some(why);
                            continue;
                        }
                    }
                }
            };
            wire[contender].add(calls, &before, &counters(&admin));
            samples[contender].push(sample);
        }
    }
    drop(servers);

    if let Some(why) = &python_off {
        notes.push(format!("pylibmc skipped: {why}"));
    }
    notes.push(match cpu {
        Some(cpu) => format!("placement: the bench, the servers and Python pinned to CPU {cpu}"),
        None => "placement: as the scheduler chose (CPK_CPU=N pins all to CPU N)".to_owned(),
    });
    report(&samples, &wire, &mut notes, rounds, secs);
}

fn report(
    samples: &[Vec<Sample>],
    wire: &[Wire],
    notes: &mut Vec<String>,
    rounds: usize,
    secs: f64,
) {
    let per = |c: usize, f: fn(&Sample) -> f64| samples[c].iter().map(f).collect::<Vec<_>>();
    // User ns per key over all rounds, and the user ticks that figure was sampled from.
    let pooled_user = |c: usize| {
        let (user, keys) = samples[c]
            .iter()
            .fold((0, 0), |(u, k), s| (u + s.user_ns, k + s.keys));
        (keys > 0).then(|| (user as f64 / keys as f64, user as f64 / TICK_NS))
    };

    println!();
    println!(
        "| contender (1 caller, 100-key multi-get, 3 servers) | user ns/key | system ns/key \
         | total ns/key | user ns/key, rounds pooled | keys/s (wall) | per call: keys per \
         server, request / reply bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (c, name) in NAMES.iter().enumerate() {
        let wire_text = wire[c]
            .per_call()
            .map(|(split, req, reply)| format!("{split}, {req:.0} / {reply:.0}"))
            .unwrap_or_else(|| "n/a".to_owned());
        println!(
            "| {name} | {} | {} | {} | {} | {} | {wire_text} |",
            spread(per(c, Sample::user_per_key), 0),
            spread(per(c, Sample::sys_per_key), 0),
            spread(per(c, Sample::total_per_key), 0),
            pooled_user(c).map_or_else(
                || "n/a".to_owned(),
                |(u, ticks)| { format!("{u:.0} ±{:.0} %", 100.0 / ticks.max(1.0).sqrt()) }
            ),
            spread(per(c, Sample::keys_per_sec), 0),
        );
    }

    // Ratios per round: both sides of each were measured within the same round.
    let ratios = |c: usize, base: usize, f: fn(&Sample) -> f64| {
        samples[c]
            .iter()
            .zip(&samples[base])
            .map(|(a, b)| f(a) / f(b))
            .collect::<Vec<_>>()
    };
    println!();
    println!(
        "| ratio (median of per-round ratios, min–max) | target | {} |",
        LARDER.map(|(_, title)| title).join(" | ")
    );
    println!("|---|---:|{}", "---:|".repeat(LARDER.len()));
    let total_cells = LARDER.map(|(c, _)| spread(ratios(c, BARE, Sample::total_per_key), 2));
    println!(
        "| larder total / bare total | ≤ 1.10 | {} |",
        total_cells.join(" | ")
    );
    let user_cells = LARDER.map(|(c, _)| {
        if samples[PYLIBMC].is_empty() {
            return "n/a (no pylibmc)".to_owned();
        }
        let pooled = match (pooled_user(c), pooled_user(PYLIBMC)) {
            (Some((a, _)), Some((b, _))) => format!("; pooled {:.3}", a / b),
            _ => String::new(),
        };
        format!(
            "{}{pooled}",
            spread(ratios(c, PYLIBMC, Sample::user_per_key), 3)
        )
    });
    println!(
        "| larder user / pylibmc user | ≤ 0.15 | {} |",
        user_cells.join(" | ")
    );

    println!();
    let bare_total = {
        let mut v = per(BARE, Sample::total_per_key);
        (!v.is_empty()).then(|| median(&mut v))
    };
    if let Some(bare_total) = bare_total {
        let beyond = LARDER.map(|(c, title)| {
            let mut v = per(c, Sample::total_per_key);
            format!("{title} {:+.0}", median(&mut v) - bare_total)
        });
        notes.push(format!(
            "larder's total beyond the bare exchange, ns/key (medians; exact, schedstat only): {}",
            beyond.join(", ")
        ));
    }
    let mut block_cpu_ms: Vec<f64> = samples
        .iter()
        .flatten()
        .map(|s| s.total_ns as f64 / 1e6)
        .collect();
    if !block_cpu_ms.is_empty() {
        let mid = median(&mut block_cpu_ms);
        notes.push(format!(
            "resolution: a block used {mid:.0} ms of the thread's CPU (median; {:.0}–{:.0}); \
             the total is exact, the user/system split is sampled once per scheduler tick \
             (4 ms at CONFIG_HZ=250: ~{:.0} ticks a block), so the pooled user column, which \
             adds all rounds' ticks, is the steadier user figure (± is 1/√ of its user ticks)",
            block_cpu_ms[0],
            block_cpu_ms[block_cpu_ms.len() - 1],
            mid * 1e6 / TICK_NS
        ));
    }
    if let (Some((py_split, ..)), Some((ring_split, ..))) =
        (wire[PYLIBMC].per_call(), wire[BLOCKING].per_call())
    {
        notes.push(if py_split == ring_split {
            format!("pylibmc split the keys over the servers as larder's ring does ({py_split})")
        } else {
            format!("pylibmc split the keys {py_split}, larder's ring {ring_split}: NOT the same")
        });
    }
    notes.push(format!(
        "{rounds} interleaved round(s) of one {secs} s block per contender (order rotating each \
         round); the servers' counters per call include each block's warm-up calls"
    ));
    for note in notes.iter() {
        println!("- note: {note}");
    }
}
