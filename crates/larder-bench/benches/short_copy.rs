//! The key copy of a multi-get's request and of its collected hits: larder's `extend_short`
//! (two overlapping word copies written in place) against `Vec::extend_from_slice` (a
//! `memcpy` call per key), appending 100 keys after a space each, as a text `get` request
//! is built.
//!
//! Pure CPU, one thread: the two take turns in blocks of `SHORT_BENCH_OPS` requests
//! (default 2 000), `SHORT_BENCH_PAIRS` pairs (default 300), the order inside each pair
//! alternating. Reported per key shape: the median ns per request of each and the median of
//! the per-pair ratios (quartiles beside it).
//!
//! `cargo bench -p larder-bench --bench short_copy`

use std::hint::black_box;
use std::time::Instant;

use larder::memcache::proto::{extend_short, SHORT};
use larder_bench::env_or;
use larder_bench::stats::quartiles;

/// ns per request of `ops` requests of `keys`, each key appended by `copy`.
fn block(keys: &[Vec<u8>], ops: usize, copy: fn(&mut Vec<u8>, &[u8])) -> f64 {
    let mut out = Vec::with_capacity(keys.iter().map(|k| k.len() + 1).sum::<usize>() + SHORT + 5);
    let start = Instant::now();
    for _ in 0..ops {
        out.clear();
        out.extend_from_slice(b"get");
        for key in keys {
            out.push(b' ');
            copy(&mut out, black_box(key));
        }
        black_box(&out);
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn std_copy(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
}

fn main() {
    let (ops, pairs) = (
        env_or::<usize>("SHORT_BENCH_OPS", 2_000),
        env_or::<usize>("SHORT_BENCH_PAIRS", 300),
    );
    println!(
        "100 keys per request; ns per request, median of {pairs} pairs of {ops}-request blocks"
    );
    println!(
        "{:<22} {:>13} {:>18} {:>24}",
        "keys", "extend_short", "extend_from_slice", "ratio (quartiles)"
    );
    for (name, prefix) in [
        ("\"k:N\" (3-4 bytes)", "k:"),
        ("\"bench:N\" (7-8)", "bench:"),
        ("\"user:session:N\" (14-15)", "user:session:"),
    ] {
        let keys: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect();
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for pair in 0..pairs {
            let (a, b) = if pair % 2 == 0 {
                let a = block(&keys, ops, extend_short);
                (a, block(&keys, ops, std_copy))
            } else {
                let b = block(&keys, ops, std_copy);
                (block(&keys, ops, extend_short), b)
            };
            ours.push(a);
            theirs.push(b);
            ratios.push(a / b);
        }
        let [lo, r, hi] = quartiles(ratios);
        println!(
            "{name:<22} {:>13.0} {:>18.0} {:>12.2} ({lo:.2}-{hi:.2})",
            quartiles(ours)[1],
            quartiles(theirs)[1],
            r
        );
    }
}
