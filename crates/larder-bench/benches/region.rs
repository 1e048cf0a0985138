//! A region's fresh hit against the cache under it: `Region::get_or_create` on a fresh key
//! over a `MemoryCache` of entries vs a bare `MemoryCache::get` of the same backend key.
//! Target (within 1.5× of the bare get): a region on its own memory cache (built from a
//! `MemoryCacheBuilder`, so its keys need no prefix), with a one-hour expiration and with
//! none, on the region's default clock. For reference: a region on a shared `MemoryCache`
//! (it builds the prefixed key on every call), and one with `SystemClock` against a bare
//! entry that has a TTL (both then read the system clock on every call).
//!
//! The machine is shared and drifts, so the two take turns in short blocks on one thread
//! (`REGION_BENCH_OPS` calls per block, default 2 000), `REGION_BENCH_PAIRS` pairs (default
//! 2 000), the order inside each pair alternating. A pair's ratio compares blocks a few
//! milliseconds apart; the report is the median ratio with its quartiles, and the median
//! ns per call of each.
//!
//! `cargo bench -p larder-bench --bench region`

use std::hint::black_box;
use std::time::{Duration, Instant};

use std::sync::Arc;

use larder::clock::SystemClock;
use larder::dogpile::{CachedValue, Region, RegionBuilder};
use larder::memory::MemoryCache;
use larder::Expiry;
use larder_bench::env_or;
use larder_bench::stats::quartiles;

fn time(ops: usize, mut op: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..ops {
        op();
    }
    start.elapsed()
}

/// Interleaves `bare` and `region` blocks; prints the figures and returns the median ratio.
fn compare(label: &str, mut bare: impl FnMut(), mut region: impl FnMut()) -> f64 {
    let ops = env_or::<usize>("REGION_BENCH_OPS", 2_000);
    let pairs = env_or::<usize>("REGION_BENCH_PAIRS", 2_000);
    // Warm both paths (caches, branch predictors) before anything counts.
    time(ops, &mut bare);
    time(ops, &mut region);
    let (mut ratios, mut bare_ns, mut region_ns) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..pairs {
        let (b, r) = if pair % 2 == 0 {
            let b = time(ops, &mut bare);
            (b, time(ops, &mut region))
        } else {
            let r = time(ops, &mut region);
            (time(ops, &mut bare), r)
        };
        ratios.push(r.as_secs_f64() / b.as_secs_f64());
        bare_ns.push(b.as_nanos() as f64 / ops as f64);
        region_ns.push(r.as_nanos() as f64 / ops as f64);
    }
    let [lo, ratio, hi] = quartiles(ratios);
    println!(
        "{label:<28} bare get {:>6.1} ns   region get_or_create {:>6.1} ns   ratio {ratio:.2}× \
         (quartiles {:.2}–{:.2}, {pairs} pairs of {ops} calls)",
        quartiles(bare_ns)[1],
        quartiles(region_ns)[1],
        lo,
        hi,
    );
    ratio
}

/// How the region of a case is set up, and what expiry the bare cache's entry has.
struct Setup {
    label: &'static str,
    /// The region, named `user`, and the key its backend stores `user:12345` under.
    region: fn() -> (Region<String>, &'static str),
    bare_expiry: Expiry,
    /// Counted against the target (the others are for reference).
    target: bool,
}

const HOUR: Duration = Duration::from_secs(3600);

/// A region owning its memory cache: backend keys are the caller's keys.
fn owned(configure: fn(RegionBuilder<String>) -> RegionBuilder<String>) -> Region<String> {
    configure(Region::builder(
        "user",
        MemoryCache::builder().max_entries(10_000),
    ))
    .build()
}

const SETUPS: [Setup; 4] = [
    Setup {
        label: "owned memory, 1 h",
        region: || (owned(|b| b.expiration(Some(HOUR))), "user:12345"),
        bare_expiry: Expiry::Never,
        target: true,
    },
    Setup {
        label: "owned memory, no expiration",
        region: || (owned(|b| b), "user:12345"),
        bare_expiry: Expiry::Never,
        target: true,
    },
    Setup {
        label: "shared MemoryCache, 1 h",
        region: || {
            let shared = MemoryCache::<CachedValue<String>>::new(10_000);
            let region = Region::builder("user", shared)
                .expiration(Some(HOUR))
                .build();
            (region, "12345")
        },
        bare_expiry: Expiry::Never,
        target: false,
    },
    Setup {
        label: "owned, SystemClock / TTL entry",
        region: || {
            let region = owned(|b| b.expiration(Some(HOUR)).clock(Arc::new(SystemClock)));
            (region, "user:12345")
        },
        bare_expiry: Expiry::After(HOUR),
        target: false,
    },
];

/// One case: the bare cache and the region's backend both hold the value under
/// `"user:12345"`. The creator (never run on a fresh hit) captures nothing.
fn case(setup: &Setup, value_label: &str, value: &str) -> f64 {
    let bare = MemoryCache::<String>::new(10_000);
    bare.set("user:12345", value.to_owned(), setup.bare_expiry)
        .unwrap();
    let (region, key) = (setup.region)();
    region.set(key, value.to_owned()).unwrap();
    assert_eq!(region.mangle(key).unwrap(), "user:12345");
    compare(
        &format!("{}, {value_label}", setup.label),
        || {
            black_box(bare.get(black_box("user:12345")).unwrap());
        },
        || {
            black_box(
                region
                    .get_or_create(black_box(key), || Ok(String::new()))
                    .unwrap(),
            );
        },
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    println!(
        "Region::get_or_create fresh hit vs bare MemoryCache::get (target: ratio ≤ 1.5× for a \
         region on its own memory cache)"
    );
    let mut target = Vec::new();
    for setup in &SETUPS {
        for (value_label, value) in [
            ("empty String", ""),
            ("24-byte String", "a report of 24 bytes..."),
        ] {
            let ratio = case(setup, value_label, value);
            if setup.target {
                target.push(ratio);
            }
        }
    }
    let worst = target.iter().copied().fold(0.0, f64::max);
    println!(
        "worst median ratio of the target cases: {worst:.2}× — {}",
        if worst <= 1.5 {
            "within target"
        } else {
            "OVER TARGET"
        }
    );
}
