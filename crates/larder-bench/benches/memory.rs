//! In-process caches side by side: larder's `MemoryCache` vs `moka::sync::Cache` vs
//! `quick_cache::sync::Cache` on a get-heavy Zipf workload (90 % get / 10 % set, 100 000
//! keys, capacity 10 000, exponents 0.9 and 1.0) at 1 and 2 threads.
//!
//! Criterion reports operations per second (one iteration = one operation on every
//! thread). Before timing, a one-off pass per exponent prints the hit ratio each cache
//! achieves on the same single-threaded trace, since a fast cache that misses more is not
//! faster for its callers.
//!
//! `cargo bench -p larder-bench --bench memory -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use larder_bench::{contenders, run_threads, run_trace, Workload, WorkloadSpec};

const KEY_SPACE: u32 = 100_000;
const CAPACITY: usize = 10_000;
const WRITE_FRACTION: f64 = 0.1;
/// Long enough that a thread's trace holds many times the capacity.
const OPS_PER_THREAD: usize = 1 << 20;
const EXPONENTS: [f64; 2] = [0.9, 1.0];
const THREADS: [usize; 2] = [1, 2];

fn workload(exponent: f64, threads: usize) -> Workload {
    Workload::generate(&WorkloadSpec {
        key_space: KEY_SPACE,
        exponent,
        write_fraction: WRITE_FRACTION,
        threads,
        ops_per_thread: OPS_PER_THREAD,
        seed: 0x00C0_FFEE,
    })
}

/// Runs one trace through a fresh copy of each cache and prints the hit ratios.
fn print_hit_ratios(exponent: f64, workload: &Workload) {
    let trace = &workload.traces[0];
    let ratios: Vec<String> = contenders(CAPACITY)
        .iter()
        .map(|cache| {
            let tally = run_trace(cache.as_ref(), &workload.keys, trace, trace.len() as u64);
            format!("{}={:.4}", cache.name(), tally.hit_ratio())
        })
        .collect();
    println!(
        "hit ratio (zipf s={exponent}, {KEY_SPACE} keys, capacity {CAPACITY}, {} ops, 1 thread): {}",
        trace.len(),
        ratios.join(" ")
    );
}

fn zipf_get_heavy(c: &mut Criterion) {
    let max_threads = THREADS.iter().copied().max().unwrap_or(1);
    for exponent in EXPONENTS {
        let full = workload(exponent, max_threads);
        print_hit_ratios(exponent, &full);
        for threads in THREADS {
            let load = Workload {
                keys: full.keys.clone(),
                traces: full.traces[..threads].to_vec(),
            };
            let mut group = c.benchmark_group(format!("zipf{exponent}-90get/{threads}t"));
            group.throughput(Throughput::Elements(threads as u64));
            for cache in contenders(CAPACITY) {
                // Fill the cache so every timed run starts in the steady state.
                run_threads(cache.as_ref(), &load, OPS_PER_THREAD as u64);
                group.bench_function(cache.name(), |b| {
                    b.iter_custom(|iters| run_threads(cache.as_ref(), &load, iters).0)
                });
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = zipf_get_heavy
}
criterion_main!(benches);
