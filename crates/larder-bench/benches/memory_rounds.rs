//! `MemoryCache` against quick_cache and moka on `memory`'s Zipf 0.9 workload (90 % get /
//! 10 % set, 100 000 keys, capacity 10 000), interleaved: each round runs every cache once
//! on the same pre-generated traces, so machine noise hits all of them alike. Prints each
//! round's operations per second and larder's ratio to each peer (median, min, max).
//!
//! `cargo bench -p larder-bench --bench memory_rounds` (`ROUNDS=N`, default 7)

use larder_bench::{contenders, run_threads, Workload, WorkloadSpec};

const OPS_PER_THREAD: u64 = 1 << 20;

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    for threads in [1, 2] {
        let load = Workload::generate(&WorkloadSpec {
            key_space: 100_000,
            exponent: 0.9,
            write_fraction: 0.1,
            threads,
            ops_per_thread: OPS_PER_THREAD as usize,
            seed: 0x00C0_FFEE,
        });
        let caches = contenders(10_000);
        for cache in &caches {
            run_threads(cache.as_ref(), &load, OPS_PER_THREAD);
        }
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); caches.len()];
        for _ in 0..rounds {
            for (cache, rate) in caches.iter().zip(&mut rates) {
                let (elapsed, _) = run_threads(cache.as_ref(), &load, OPS_PER_THREAD);
                rate.push((threads as u64 * OPS_PER_THREAD) as f64 / elapsed.as_secs_f64());
            }
        }
        println!("zipf 0.9, 90 % get, {threads} thread(s), {rounds} rounds (M ops/s):");
        for (cache, rate) in caches.iter().zip(&rates) {
            let shown: Vec<String> = rate.iter().map(|r| format!("{:.2}", r / 1e6)).collect();
            println!("  {:<12} {}", cache.name(), shown.join(" "));
        }
        for (peer, rate) in caches.iter().zip(&rates).skip(1) {
            let mut ratios: Vec<f64> = rates[0].iter().zip(rate).map(|(a, b)| a / b).collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "  larder / {:<12} median {:.2} (min {:.2}, max {:.2})",
                peer.name(),
                ratios[ratios.len() / 2],
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
    }
}
