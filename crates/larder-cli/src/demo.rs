//! `larder demo`: runs a simulated service twice — once calling its slow lookup on every
//! request, once with a cache in front of it — and prints what the cache changed
//! (requests served, hit ratio, lookups made, throughput, p50/p99 latency).
//!
//! The service: `--threads` workers request keys drawn from a Zipf distribution over
//! `--keys` keys; a lookup sleeps `--lookup-ms`. The cached run reads the cache first and
//! on a miss does the lookup and stores the result with a `--ttl`. Scenes other than the
//! service (the dogpile stampede) and backends other than the embedded memory cache plug
//! in at [`run`].

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use larder::codec::{BytesCodec, Codec, Encoded, TextCodec};
use larder::dogpile::Region;

use crate::stampede::{StampedeCaches, REGION};
use larder::memcache::{Client as McClient, MemcachedCache};
use larder::memory::MemoryCache;
use larder::redis::{RedisCache, RedisConfig};
use larder::tiered::Tiered;
use larder::{Cache, Expiry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::Zipf;

/// The options of `larder demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// The scene to run.
    #[arg(long, value_enum, default_value_t = Scene::Service)]
    pub scene: Scene,
    /// The cache of the cached run: memory | memcached | redis | tiered (memory in front of
    /// --redis or --servers).
    #[arg(long, value_name = "NAME", default_value = "memory")]
    pub backend: String,
    /// The memcached servers for `--backend memcached|tiered`, as HOST:PORT,...
    #[arg(long, value_name = "HOST:PORT,...")]
    pub servers: Option<String>,
    /// The Redis server for `--backend redis|tiered`, as redis://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Worker threads sending requests (default: 8 for the service scene, 64 for stampede).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// Distinct keys the workers request.
    #[arg(long, value_name = "N", default_value = "10000", value_parser = at_least_one_u64)]
    pub keys: u64,
    /// Zipf exponent of the key popularity (0 = uniform; higher = more skewed).
    #[arg(long, value_name = "S", default_value = "0.99", value_parser = zipf_exponent)]
    pub exponent: f64,
    /// Length of each run, in seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = positive_secs)]
    pub duration: Duration,
    /// How long one slow lookup takes, in milliseconds (fractions allowed; 0 = instant).
    #[arg(long, value_name = "MS", default_value = "2", value_parser = lookup_millis)]
    pub lookup_ms: Duration,
    /// Entries the cache may hold.
    #[arg(long, value_name = "N", default_value = "2000", value_parser = at_least_one)]
    pub capacity: usize,
    /// Time to live of a cached lookup result, in seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = positive_secs)]
    pub ttl: Duration,
}

impl DemoArgs {
    /// Worker threads of the service scene.
    fn workers(&self) -> usize {
        self.threads.unwrap_or(8)
    }
}

/// What `larder demo` shows.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scene {
    /// A service behind a slow lookup, without and with a cache.
    Service,
    /// Many workers regenerating one expired value, without and with dogpile protection.
    Stampede,
}

/// Runs the demo `args` describe; the error is a one-line message for the user.
pub fn run(args: &DemoArgs) -> Result<(), String> {
    match args.scene {
        Scene::Service => {
            let backend = Backend::from_args(args)?;
            service(args, backend)
        }
        // The stampede scene runs on the embedded memory cache; it splits --duration
        // between its two runs.
        Scene::Stampede => {
            let caches = stampede_caches(&Backend::from_args(args)?)?;
            crate::stampede::run(args.threads.unwrap_or(64), args.duration, caches)
        }
    }
}

/// The caches the service scene can put in front of its lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backend {
    /// The embedded [`MemoryCache`].
    Memory,
    /// memcached servers.
    Memcached(String),
    /// A Redis server.
    Redis(String),
    /// A memory L1 in front of a shared L2.
    Tiered(Box<Backend>),
}

impl Backend {
    fn from_args(args: &DemoArgs) -> Result<Self, String> {
        let missing = |what: &str| format!("--backend {} needs a server: {what}", args.backend);
        let memcached_hint = "pass --servers 127.0.0.1:11211 (start one with `memcached -p 11211`)";
        let redis_hint =
            "pass --redis redis://127.0.0.1:6379 (start one with `redis-server --port 6379`)";
        match args.backend.as_str() {
            "memory" => Ok(Backend::Memory),
            "memcached" => args
                .servers
                .clone()
                .map(Backend::Memcached)
                .ok_or_else(|| missing(memcached_hint)),
            "redis" => args
                .redis
                .clone()
                .map(Backend::Redis)
                .ok_or_else(|| missing(redis_hint)),
            "tiered" => match (&args.redis, &args.servers) {
                (Some(url), _) => Ok(Backend::Tiered(Box::new(Backend::Redis(url.clone())))),
                (None, Some(servers)) => Ok(Backend::Tiered(Box::new(Backend::Memcached(
                    servers.clone(),
                )))),
                (None, None) => Err(missing(&format!("{redis_hint}, or {memcached_hint}"))),
            },
            other => Err(format!(
                "unknown backend '{other}' (available: memory, memcached, redis, tiered)"
            )),
        }
    }
}

/// What a lookup returns and the cache stores: cheap to clone, as a cached value should be.
type Record = Arc<str>;

/// The slow dependency of the simulated service; counts the lookups made.
struct SlowSource {
    delay: Duration,
    lookups: AtomicU64,
}

impl SlowSource {
    fn new(delay: Duration) -> Self {
        Self {
            delay,
            lookups: AtomicU64::new(0),
        }
    }

    fn lookup(&self, key: &str) -> Record {
        if !self.delay.is_zero() {
            thread::sleep(self.delay);
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("record for {key}"))
    }

    fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }
}

/// Stores a [`Record`] as UTF-8 text, for the server backends.
struct RecordCodec;

impl Codec<Record> for RecordCodec {
    fn encode(&self, value: &Record) -> larder::Result<Encoded> {
        TextCodec.encode(&value.to_string())
    }
    fn decode(&self, data: &[u8], flags: u32) -> larder::Result<Record> {
        TextCodec.decode(data, flags).map(Arc::from)
    }
}

/// A cache built for the cached run, kept concrete so its own counters can be reported.
enum DemoCache {
    Memory(MemoryCache<Record>),
    Shared(Box<dyn Cache<Record>>, String),
    Tiered(Tiered<Record>),
}

/// Connects to the server `backend` names, checking it answers, with a one-line error that
/// says how to start one; values are stored with `codec` under `prefix`.
fn shared_cache<V, C>(
    backend: &Backend,
    codec: C,
    prefix: &str,
) -> Result<(Box<dyn Cache<V>>, String), String>
where
    V: Send + Sync + 'static,
    C: Codec<V> + 'static,
{
    match backend {
        Backend::Redis(url) => {
            let config = RedisConfig::new(url.as_str()).prefix(prefix);
            let cache = RedisCache::new(config, codec).map_err(|e| e.to_string())?;
            cache.clear().map_err(|e| {
                format!(
                    "no Redis server reachable at {url} ({e}); start one with \
                     `redis-server --port 6379` or pass --redis redis://HOST:PORT"
                )
            })?;
            Ok((Box::new(cache), format!("redis at {url}")))
        }
        Backend::Memcached(servers) => {
            let unreachable = |e: larder::Error| {
                format!(
                    "no memcached server reachable at {servers} ({e}); start one with \
                     `memcached -p 11211` or pass --servers HOST:PORT"
                )
            };
            let client = McClient::connect(servers).map_err(|e| e.to_string())?;
            client.version().map_err(unreachable)?;
            let cache = MemcachedCache::new(client, codec).with_prefix(prefix);
            Ok((Box::new(cache), format!("memcached at {servers}")))
        }
        Backend::Memory | Backend::Tiered(_) => {
            Err("a tiered cache's L2 must be memcached or redis".to_string())
        }
    }
}

/// The stampede scene's caches on `backend`.
fn stampede_caches(backend: &Backend) -> Result<StampedeCaches, String> {
    // The region encodes its own entries: any cache of bytes will do.
    let region =
        |b: &Backend| shared_cache::<Vec<u8>, _>(b, BytesCodec, "larder-stampede:").map(|(c, _)| c);
    let plain =
        |b: &Backend| shared_cache::<String, _>(b, TextCodec, "larder-stampede:").map(|(c, _)| c);
    Ok(match backend {
        Backend::Memory => StampedeCaches::memory(),
        Backend::Tiered(l2) => StampedeCaches {
            region: Region::builder(
                REGION,
                Tiered::new(
                    MemoryCache::new(1_000),
                    Arc::from(region(l2)?),
                    Duration::from_secs(5),
                ),
            ),
            plain: Arc::new(Tiered::new(
                MemoryCache::new(1_000),
                Arc::from(plain(l2)?),
                Duration::from_secs(5),
            )),
        },
        shared => StampedeCaches {
            region: Region::builder(REGION, region(shared)?),
            plain: Arc::from(plain(shared)?),
        },
    })
}

impl DemoCache {
    fn build(backend: &Backend, capacity: usize) -> Result<Self, String> {
        Ok(match backend {
            Backend::Memory => DemoCache::Memory(MemoryCache::new(capacity)),
            Backend::Tiered(l2) => {
                let (l2, _) = shared_cache(l2, RecordCodec, "larder-demo:")?;
                DemoCache::Tiered(Tiered::new(
                    MemoryCache::new(capacity),
                    Arc::from(l2),
                    Duration::from_secs(5),
                ))
            }
            shared => {
                let (cache, name) = shared_cache(shared, RecordCodec, "larder-demo:")?;
                DemoCache::Shared(cache, name)
            }
        })
    }

    fn as_cache(&self) -> &dyn Cache<Record> {
        match self {
            DemoCache::Memory(cache) => cache,
            DemoCache::Shared(cache, _) => &**cache,
            DemoCache::Tiered(cache) => cache,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            DemoCache::Memory(_) => "memory cache",
            DemoCache::Shared(..) => "shared cache",
            DemoCache::Tiered(_) => "tiered cache",
        }
    }

    /// One line on the cache's state after the run.
    fn describe(&self, capacity: usize) -> String {
        let memory = |label: &str, cache: &MemoryCache<Record>| {
            let s = cache.stats();
            format!(
                "{label} after its run: {} of {capacity} entries, {} inserts, {} evictions, {} expirations",
                s.entries, s.inserts, s.evictions, s.expirations
            )
        };
        match self {
            DemoCache::Memory(cache) => memory("memory cache", cache),
            DemoCache::Shared(_, name) => {
                format!("shared cache: {name} (keys under \"larder-demo:\")")
            }
            DemoCache::Tiered(cache) => memory("tiered cache's L1", cache.l1()),
        }
    }
}

/// The counts of one run, over all workers.
struct RunReport {
    mode: &'static str,
    requests: u64,
    hits: u64,
    lookups: u64,
    elapsed: Duration,
    latency: LatencyHistogram,
}

impl RunReport {
    fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.requests)
    }

    fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }
}

/// One worker's counts.
#[derive(Default)]
struct WorkerTally {
    requests: u64,
    hits: u64,
    latency: LatencyHistogram,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The service scene: one run without a cache, one with, then the table.
fn service(args: &DemoArgs, backend: Backend) -> Result<(), String> {
    // Built (and a server checked) before anything runs, so a missing server costs nothing.
    let cache = DemoCache::build(&backend, args.capacity)?;

    let keys = Arc::new(KeySpace::new(args.keys, args.exponent)?);
    let mut out = std::io::stdout().lock();
    let mut say = |text: &str| -> Result<(), String> {
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))
    };

    say(&format!(
        "service scene: {} workers, {} keys (Zipf s={}), lookup {} ms, {:.1} s per run",
        args.workers(),
        args.keys,
        args.exponent,
        args.lookup_ms.as_secs_f64() * 1000.0,
        args.duration.as_secs_f64()
    ))?;

    say("running without a cache ...")?;
    let uncached = run_once("no cache", args, &keys, None)?;

    say(&format!(
        "running with the {} (capacity {}, ttl {} s) ...",
        cache.label(),
        args.capacity,
        args.ttl.as_secs_f64()
    ))?;
    let cached = run_once(cache.label(), args, &keys, Some(cache.as_cache()))?;

    say("")?;
    say(&render_table(&[&uncached, &cached]))?;
    say("")?;
    say(&cache.describe(args.capacity))?;
    say(&summary(&uncached, &cached))?;
    Ok(())
}

/// The keys of the service and how often each is requested.
struct KeySpace {
    names: Vec<String>,
    popularity: Zipf<f64>,
}

impl KeySpace {
    /// Keys whose names are made up front for key spaces up to this size (larger ones are
    /// named per request).
    const PRENAMED: u64 = 1 << 20;

    fn new(count: u64, exponent: f64) -> Result<Self, String> {
        let popularity = Zipf::new(count, exponent)
            .map_err(|e| format!("cannot draw {count} keys with Zipf exponent {exponent}: {e}"))?;
        let names = if count <= Self::PRENAMED {
            (0..count).map(key_name).collect()
        } else {
            Vec::new()
        };
        Ok(Self { names, popularity })
    }

    /// The name of a key drawn by popularity.
    fn draw(&self, rng: &mut StdRng) -> std::borrow::Cow<'_, str> {
        // Zipf draws a rank in 1..=count as a float.
        let rank = (rng.sample(self.popularity) as u64).saturating_sub(1);
        match usize::try_from(rank).ok().and_then(|i| self.names.get(i)) {
            Some(name) => std::borrow::Cow::Borrowed(name),
            None => std::borrow::Cow::Owned(key_name(rank)),
        }
    }
}

fn key_name(rank: u64) -> String {
    format!("item:{rank}")
}

/// Runs `args.workers()` workers for `args.duration`, through `cache` when there is one.
fn run_once(
    mode: &'static str,
    args: &DemoArgs,
    keys: &KeySpace,
    cache: Option<&dyn Cache<Record>>,
) -> Result<RunReport, String> {
    let source = SlowSource::new(args.lookup_ms);
    let expiry = Expiry::After(args.ttl);
    let start = Instant::now();
    let deadline = start + args.duration;
    let tallies: Vec<Result<WorkerTally, String>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..args.workers())
            .map(|worker| {
                let source = &source;
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(0x1a2d_e400 + worker as u64);
                    work(&mut rng, keys, source, cache, expiry, deadline)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a worker thread panicked".to_string()))
            })
            .collect()
    });
    let elapsed = start.elapsed();

    let mut report = RunReport {
        mode,
        requests: 0,
        hits: 0,
        lookups: source.lookups(),
        elapsed,
        latency: LatencyHistogram::default(),
    };
    for tally in tallies {
        let tally = tally?;
        report.requests += tally.requests;
        report.hits += tally.hits;
        report.latency.merge(&tally.latency);
    }
    Ok(report)
}

/// One worker: requests keys until `deadline`, timing each request.
fn work(
    rng: &mut StdRng,
    keys: &KeySpace,
    source: &SlowSource,
    cache: Option<&dyn Cache<Record>>,
    expiry: Expiry,
    deadline: Instant,
) -> Result<WorkerTally, String> {
    let mut tally = WorkerTally::default();
    loop {
        let began = Instant::now();
        if began >= deadline {
            return Ok(tally);
        }
        let key = keys.draw(rng);
        let record = match cache {
            None => source.lookup(&key),
            Some(cache) => {
                let cached = cache
                    .get(&key)
                    .map_err(|e| format!("cache read of {key} failed: {e}"))?;
                match cached {
                    Some(record) => {
                        tally.hits += 1;
                        record
                    }
                    None => {
                        let record = source.lookup(&key);
                        cache
                            .set(&key, Arc::clone(&record), expiry)
                            .map_err(|e| format!("cache write of {key} failed: {e}"))?;
                        record
                    }
                }
            }
        };
        std::hint::black_box(record);
        tally.requests += 1;
        tally.latency.record(began.elapsed());
    }
}

/// The results as an aligned table, one row per run.
fn render_table(runs: &[&RunReport]) -> String {
    let header = [
        "mode",
        "requests",
        "hit ratio",
        "lookups",
        "throughput (req/s)",
        "p50 (µs)",
        "p99 (µs)",
    ];
    let rows: Vec<[String; 7]> = runs
        .iter()
        .map(|r| {
            [
                r.mode.to_string(),
                r.requests.to_string(),
                format!("{:.1}%", r.hit_ratio() * 100.0),
                r.lookups.to_string(),
                format!("{:.0}", r.throughput()),
                micros(r.latency.quantile(0.50)),
                micros(r.latency.quantile(0.99)),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            if i == 0 {
                // The mode column is text: left-aligned. The rest are numbers.
                let _ = write!(text, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(text, "  {}{cell}", " ".repeat(pad));
            }
        }
        table.push_str(text.trim_end());
        table.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    table.trim_end().to_string()
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// One line on what the cache changed.
fn summary(uncached: &RunReport, cached: &RunReport) -> String {
    let speedup = if uncached.throughput() > 0.0 {
        cached.throughput() / uncached.throughput()
    } else {
        0.0
    };
    let per_request = |r: &RunReport| ratio(r.lookups, r.requests);
    let fewer = if per_request(uncached) > 0.0 {
        (1.0 - per_request(cached) / per_request(uncached)) * 100.0
    } else {
        0.0
    };
    format!(
        "with the {}: {speedup:.1}x the throughput, {fewer:.0}% fewer lookups per request, p50 {} µs -> {} µs",
        cached.mode,
        micros(uncached.latency.quantile(0.50)),
        micros(cached.latency.quantile(0.50)),
    )
}

/// Request latencies in log-linear buckets of nanoseconds: exact below 16 ns, then 16
/// buckets per power of two, so a reported quantile is within 1/32 of the true value.
/// Bounded memory however many requests are recorded.
#[derive(Debug, Clone)]
struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl LatencyHistogram {
    /// log2 of the buckets per power of two.
    const SUB_BITS: u32 = 4;
    const SUB: u64 = 1 << Self::SUB_BITS;
    /// Buckets covering every `u64` nanosecond count.
    const BUCKETS: usize = ((64 - Self::SUB_BITS as usize) + 1) * Self::SUB as usize;

    fn bucket(nanos: u64) -> usize {
        if nanos < Self::SUB {
            return nanos as usize;
        }
        let exponent = 63 - nanos.leading_zeros(); // >= SUB_BITS
        let shift = exponent - Self::SUB_BITS;
        let sub = (nanos >> shift) & (Self::SUB - 1);
        ((shift as u64 + 1) * Self::SUB + sub) as usize
    }

    /// The middle of bucket `index`'s range of nanoseconds.
    fn midpoint(index: usize) -> u64 {
        let (group, sub) = (index as u64 / Self::SUB, index as u64 % Self::SUB);
        if group == 0 {
            return sub;
        }
        let shift = group - 1;
        let low = (Self::SUB + sub) << shift;
        low + ((1u64 << shift) - 1) / 2
    }

    fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(nanos)] += 1;
        self.total += 1;
    }

    fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// The latency below which a fraction `q` of the recorded ones fall (zero when empty).
    fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(Self::midpoint(index));
            }
        }
        Duration::from_nanos(u64::MAX)
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; Self::BUCKETS],
            total: 0,
        }
    }
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn at_least_one_u64(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn zipf_exponent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        Ok(_) => Err("must be a finite number >= 0".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn positive_secs(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 => Duration::try_from_secs_f64(secs).map_err(|e| e.to_string()),
        Ok(_) => Err("must be more than 0 seconds".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn lookup_millis(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(ms) if ms >= 0.0 => Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| e.to_string()),
        Ok(_) => Err("must be 0 ms or more".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_a_bucket_of_the_truth() {
        let mut h = LatencyHistogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, truth_us) in [(0.5, 500.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = h.quantile(q).as_secs_f64() * 1e6;
            assert!(
                (got - truth_us).abs() <= truth_us / 32.0 + 0.001,
                "q={q}: got {got} µs, want about {truth_us} µs"
            );
        }
    }

    #[test]
    fn histogram_buckets_are_ordered_and_cover_u64() {
        let mut last = 0;
        for nanos in (0..5000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = LatencyHistogram::bucket(nanos);
            assert!(b >= last && b < LatencyHistogram::BUCKETS, "nanos {nanos}");
            last = b;
        }
        assert_eq!(LatencyHistogram::midpoint(LatencyHistogram::bucket(7)), 7);
    }

    #[test]
    fn merged_histograms_count_both() {
        let (mut a, mut b) = (LatencyHistogram::default(), LatencyHistogram::default());
        a.record(Duration::from_micros(1));
        b.record(Duration::from_millis(2));
        b.record(Duration::from_millis(2));
        a.merge(&b);
        assert_eq!(a.total, 3);
        assert!(a.quantile(0.5) > Duration::from_millis(1));
        assert!(a.quantile(0.3) < Duration::from_micros(2));
    }

    #[test]
    fn backends_are_chosen_by_name_and_need_their_server() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            demo: DemoArgs,
        }
        let parse = |args: &[&str]| Backend::from_args(&Cli::parse_from(args).demo);
        assert_eq!(parse(&["x"]), Ok(Backend::Memory));
        let url = "redis://127.0.0.1:7000";
        assert_eq!(
            parse(&["x", "--backend", "redis", "--redis", url]),
            Ok(Backend::Redis(url.into()))
        );
        assert_eq!(
            parse(&["x", "--backend", "tiered", "--redis", url]),
            Ok(Backend::Tiered(Box::new(Backend::Redis(url.into()))))
        );
        let err = parse(&["x", "--backend", "redis"]).unwrap_err();
        assert!(err.contains("redis-server --port"), "{err}");
        let err = parse(&["x", "--backend", "memcached"]).unwrap_err();
        assert!(err.contains("memcached -p"), "{err}");
        assert_eq!(
            parse(&["x", "--backend", "tiered", "--servers", "h:1"]),
            Ok(Backend::Tiered(Box::new(Backend::Memcached("h:1".into()))))
        );
        let err = parse(&["x", "--backend", "floppy"]).unwrap_err();
        assert!(err.contains("unknown backend 'floppy'"), "{err}");
    }

    #[test]
    fn flag_parsers_reject_nonsense() {
        assert!(positive_secs("0").is_err());
        assert!(positive_secs("-1").is_err());
        assert!(positive_secs("NaN").is_err());
        assert_eq!(positive_secs("0.25"), Ok(Duration::from_millis(250)));
        assert!(lookup_millis("-0.5").is_err());
        assert_eq!(lookup_millis("0"), Ok(Duration::ZERO));
        assert!(at_least_one("0").is_err());
        assert!(zipf_exponent("inf").is_err());
    }
}
