//! Shared helpers for larder's comparison benchmarks: seeded Zipf key traces, a get/set
//! operation mix per thread, one small interface ([`InProcessCache`]) over the in-process
//! caches compared (larder's `MemoryCache`, moka, quick_cache), and a runner that drives one
//! cache from several threads and counts hits.
//!
//! Traces are generated before timing starts, from fixed seeds, so every cache sees exactly
//! the same requests and the timed loop does no random-number work.

pub mod replay;
pub mod stats;

/// The value of environment variable `name` parsed as a `T`, or `default` when it is unset
/// or does not parse (the benches' knobs).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

use std::time::{Duration, Instant};

use larder::memory::MemoryCache;
use larder::{Cache, Expiry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::Zipf;

/// One request of a trace, naming its key by index into [`Workload::keys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read the key.
    Get(u32),
    /// Write the key.
    Set(u32),
}

/// What a workload looks like: its key space, skew, write share and size.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadSpec {
    /// Distinct keys.
    pub key_space: u32,
    /// Zipf exponent of key popularity.
    pub exponent: f64,
    /// Fraction of operations that are writes (0.1 = 90 % get / 10 % set).
    pub write_fraction: f64,
    /// Threads, each with its own trace.
    pub threads: usize,
    /// Operations in each thread's trace.
    pub ops_per_thread: usize,
    /// Seed of the first thread's trace; thread `i` uses `seed + i`.
    pub seed: u64,
}

/// Key names and one pre-generated trace per thread.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `keys[i]` is the name of key `i`.
    pub keys: Vec<String>,
    /// One trace per thread.
    pub traces: Vec<Vec<Op>>,
}

impl Workload {
    /// Generates the workload `spec` describes.
    ///
    /// # Panics
    /// When the spec is not a valid Zipf distribution (zero keys or a negative exponent).
    pub fn generate(spec: &WorkloadSpec) -> Self {
        let keys = key_names(spec.key_space);
        let traces = (0..spec.threads)
            .map(|thread| {
                let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_add(thread as u64));
                zipf_ranks(&mut rng, spec.key_space, spec.exponent, spec.ops_per_thread)
                    .into_iter()
                    .map(|key| {
                        if rng.gen_bool(spec.write_fraction) {
                            Op::Set(key)
                        } else {
                            Op::Get(key)
                        }
                    })
                    .collect()
            })
            .collect();
        Self { keys, traces }
    }
}

/// `count` key names: `"key:0"`, `"key:1"`, ...
pub fn key_names(count: u32) -> Vec<String> {
    (0..count).map(|i| format!("key:{i}")).collect()
}

/// `len` key indices in `0..key_space`, index 0 the most popular, drawn from a Zipf
/// distribution with `exponent`.
///
/// # Panics
/// When `key_space` is 0 or `exponent` is negative or not finite.
pub fn zipf_ranks(rng: &mut StdRng, key_space: u32, exponent: f64, len: usize) -> Vec<u32> {
    let zipf = Zipf::new(u64::from(key_space), exponent).expect("a valid Zipf distribution");
    (0..len)
        .map(|_| (rng.sample(zipf) as u32).saturating_sub(1))
        .collect()
}

/// The operations the benchmarks need from an in-process cache of `String` keys and `u64`
/// values, so that each peer is driven by the same code.
pub trait InProcessCache: Send + Sync {
    /// The name printed in reports.
    fn name(&self) -> &'static str;
    /// The value under `key`, if cached.
    fn get(&self, key: &str) -> Option<u64>;
    /// Stores `value` under `key`.
    fn set(&self, key: &str, value: u64);
}

impl InProcessCache for MemoryCache<u64> {
    fn name(&self) -> &'static str {
        "larder"
    }
    fn get(&self, key: &str) -> Option<u64> {
        Cache::get(self, key).expect("MemoryCache::get")
    }
    fn set(&self, key: &str, value: u64) {
        Cache::set(self, key, value, Expiry::Never).expect("MemoryCache::set");
    }
}

impl InProcessCache for moka::sync::Cache<String, u64> {
    fn name(&self) -> &'static str {
        "moka"
    }
    fn get(&self, key: &str) -> Option<u64> {
        moka::sync::Cache::get(self, key)
    }
    fn set(&self, key: &str, value: u64) {
        self.insert(key.to_owned(), value);
    }
}

impl InProcessCache for quick_cache::sync::Cache<String, u64> {
    fn name(&self) -> &'static str {
        "quick_cache"
    }
    fn get(&self, key: &str) -> Option<u64> {
        quick_cache::sync::Cache::get(self, key)
    }
    fn set(&self, key: &str, value: u64) {
        self.insert(key.to_owned(), value);
    }
}

/// The three caches compared, each bounded to `capacity` entries.
pub fn contenders(capacity: usize) -> Vec<Box<dyn InProcessCache>> {
    vec![
        Box::new(MemoryCache::<u64>::new(capacity)),
        Box::new(moka::sync::Cache::<String, u64>::new(capacity as u64)),
        Box::new(quick_cache::sync::Cache::<String, u64>::new(capacity)),
    ]
}

/// Reads and hits counted while running traces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// `Get` operations run.
    pub gets: u64,
    /// `Get` operations that found a value.
    pub hits: u64,
}

impl Tally {
    /// Hits per get (0 when there were no gets).
    pub fn hit_ratio(&self) -> f64 {
        if self.gets == 0 {
            0.0
        } else {
            self.hits as f64 / self.gets as f64
        }
    }
}

/// Runs `ops` operations of `trace` (from its start, wrapping around) against `cache`.
pub fn run_trace(cache: &dyn InProcessCache, keys: &[String], trace: &[Op], ops: u64) -> Tally {
    let mut tally = Tally::default();
    for op in trace.iter().cycle().take(ops as usize) {
        match *op {
            Op::Get(key) => {
                tally.gets += 1;
                if std::hint::black_box(cache.get(&keys[key as usize])).is_some() {
                    tally.hits += 1;
                }
            }
            Op::Set(key) => cache.set(&keys[key as usize], u64::from(key)),
        }
    }
    tally
}

/// Runs `ops_per_thread` operations on each of the workload's traces, one thread per
/// trace, all at once; the wall time from the first spawn to the last join and the summed
/// tally.
pub fn run_threads(
    cache: &dyn InProcessCache,
    workload: &Workload,
    ops_per_thread: u64,
) -> (Duration, Tally) {
    let start = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = workload
            .traces
            .iter()
            .map(|trace| {
                scope.spawn(move || run_trace(cache, &workload.keys, trace, ops_per_thread))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark thread panicked"))
            .collect()
    });
    let elapsed = start.elapsed();
    let total = tallies.iter().fold(Tally::default(), |a, t| Tally {
        gets: a.gets + t.gets,
        hits: a.hits + t.hits,
    });
    (elapsed, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkloadSpec {
        WorkloadSpec {
            key_space: 1000,
            exponent: 1.0,
            write_fraction: 0.1,
            threads: 2,
            ops_per_thread: 20_000,
            seed: 7,
        }
    }

    #[test]
    fn traces_are_seeded_skewed_and_mixed() {
        let a = Workload::generate(&spec());
        let b = Workload::generate(&spec());
        assert_eq!(a.traces, b.traces, "same seed, same traces");
        assert_ne!(a.traces[0], a.traces[1], "threads get different traces");
        let trace = &a.traces[0];
        let writes = trace.iter().filter(|op| matches!(op, Op::Set(_))).count();
        assert!((1500..2500).contains(&writes), "{writes} writes of 20000");
        let key = |op: &Op| match *op {
            Op::Get(k) | Op::Set(k) => k,
        };
        assert!(trace.iter().all(|op| key(op) < 1000));
        let hottest = trace.iter().filter(|op| key(op) == 0).count();
        let coldest = trace.iter().filter(|op| key(op) == 999).count();
        assert!(hottest > 100 * coldest.max(1), "{hottest} vs {coldest}");
    }

    #[test]
    fn every_contender_hits_after_a_set() {
        let w = Workload::generate(&spec());
        for cache in contenders(100) {
            cache.set("k", 5);
            assert_eq!(cache.get("k"), Some(5), "{}", cache.name());
            let (_, tally) = run_threads(cache.as_ref(), &w, 5_000);
            let expected_gets = w
                .traces
                .iter()
                .flat_map(|t| &t[..5_000])
                .filter(|op| matches!(op, Op::Get(_)))
                .count() as u64;
            assert_eq!(tally.gets, expected_gets, "{}", cache.name());
            assert!(
                tally.hits > 0 && tally.hits <= tally.gets,
                "{}",
                cache.name()
            );
        }
    }
}
