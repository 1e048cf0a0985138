//! One checkout + return, in ns per operation, for larder's pool strategies against r2d2,
//! deadpool (its `unmanaged` pool, whose `try_get` is a fair synchronous comparison) and a
//! plain `Arc::clone` baseline; at 1 and 2 threads.
//!
//! The contenders are interleaved: the run is `POOL_ROUNDS` (default 15) rounds, and in
//! each every contender runs one block of about `POOL_BLOCK_MS` (default 20) ms, the order
//! rotating from round to round, so a burst of load from elsewhere on the machine lands on
//! every contender alike. A figure is the median block (min–max beside it); a ratio is the
//! median of the per-round ratios, both sides measured within the same round.
//!
//! With 2 threads both threads run the loop at once and the figure is the time per
//! operation as one thread sees it (the slower thread's total / iterations), so contention
//! shows up as a larger number. Queue-like pools get one object per thread, so nobody waits
//! for an object: what is measured is the checkout machinery itself. Beside the wall time,
//! the CPU column is the slower thread's own time on CPU (`CLOCK_THREAD_CPUTIME_ID`,
//! Linux), which leaves out the time the thread was preempted on a busy machine (and the
//! time it slept on a contended lock).
//!
//! Run: `cargo bench -p larder-bench --bench pool`. Knobs: `POOL_ROUNDS=31` for a steadier
//! median; `POOL_THREADS=1` (or `2`, default `1,2`); `POOL_ONLY=PerThread` runs only the
//! contenders whose name holds that text and `POOL_ITERS=N` fixes the iterations per block,
//! to profile one under `perf record` or count its instructions under
//! `valgrind --tool=callgrind` (two runs differing only in `POOL_ROUNDS`).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use larder::pool::{Manager, Pool, PoolConfig, Strategy};
use larder_bench::env_or;
use larder_bench::stats::spread;

/// The pooled object: small, like a connection handle.
#[derive(Debug)]
struct Conn(u64);

struct Conns;

impl Manager for Conns {
    type Object = Conn;
    type Error = std::io::Error;
    fn create(&self) -> Result<Conn, std::io::Error> {
        Ok(Conn(7))
    }
}

#[derive(Debug)]
struct NoError;
impl std::fmt::Display for NoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no error")
    }
}
impl std::error::Error for NoError {}

struct R2d2Conns;

impl r2d2::ManageConnection for R2d2Conns {
    type Connection = Conn;
    type Error = NoError;
    fn connect(&self) -> Result<Conn, NoError> {
        Ok(Conn(7))
    }
    fn is_valid(&self, _conn: &mut Conn) -> Result<(), NoError> {
        Ok(())
    }
    fn has_broken(&self, _conn: &mut Conn) -> bool {
        false
    }
}

/// The calling thread's time on CPU so far, in ns.
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> Option<u64> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer, which points to one.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (rc == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// One block of one contender: ns per operation as the slower thread saw it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: Option<f64>,
}

/// Runs `op` `iters` times on one thread; (wall, CPU) of that thread.
fn timed(iters: u64, op: &(dyn Fn() + Sync)) -> (Duration, Option<u64>) {
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    for _ in 0..iters {
        op();
    }
    let wall = start.elapsed();
    let cpu = cpu0.zip(thread_cpu_ns()).map(|(a, b)| b.saturating_sub(a));
    (wall, cpu)
}

/// Runs `op` `iters` times on each of `threads` threads at once.
fn block(threads: usize, iters: u64, op: &(dyn Fn() + Sync)) -> Sample {
    let per_op = |(wall, cpu): (Duration, Option<u64>)| Sample {
        wall: wall.as_nanos() as f64 / iters as f64,
        cpu: cpu.map(|c| c as f64 / iters as f64),
    };
    if threads == 1 {
        return per_op(timed(iters, op));
    }
    let barrier = Barrier::new(threads);
    let results: Vec<(Duration, Option<u64>)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    timed(iters, op)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    });
    let wall = results.iter().map(|r| r.0).max().unwrap_or_default();
    let cpu = results
        .iter()
        .map(|r| r.1)
        .collect::<Option<Vec<u64>>>()
        .and_then(|c| c.into_iter().max());
    per_op((wall, cpu))
}

const ARC: usize = 0;
const QUEUE: usize = 2;
const PER_THREAD: usize = 3;
const DEADPOOL: usize = 5;
const NAMES: [&str; 6] = [
    "Arc::clone (baseline)",
    "larder Shared",
    "larder Queue",
    "larder PerThread",
    "r2d2",
    "deadpool unmanaged",
];

fn main() {
    let rounds: usize = env_or::<usize>("POOL_ROUNDS", 15).max(1);
    let block_ms: f64 = env_or("POOL_BLOCK_MS", 20.0);
    let fixed_iters: Option<u64> = std::env::var("POOL_ITERS")
        .ok()
        .and_then(|v| v.parse().ok());
    let threads: Vec<usize> = std::env::var("POOL_THREADS")
        .unwrap_or_else(|_| "1,2".to_owned())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    for threads in threads {
        run_threads(threads, rounds, block_ms, fixed_iters);
    }
}

fn run_threads(threads: usize, rounds: usize, block_ms: f64, fixed_iters: Option<u64>) {
    let arc = Arc::new(Conn(7));
    let shared = larder_pool(Strategy::Shared);
    let queue = larder_pool(Strategy::queue(threads));
    let per_thread = larder_pool(Strategy::PerThread);
    let r2d2_pool = r2d2::Pool::builder()
        .max_size(threads as u32)
        .build(R2d2Conns)
        .expect("r2d2 pool builds");
    let deadpool_pool = deadpool::unmanaged::Pool::new(threads);
    for _ in 0..threads {
        deadpool_pool
            .try_add(Conn(7))
            .map_err(|(_, e)| e)
            .expect("deadpool add");
    }

    let ops: [&(dyn Fn() + Sync); 6] = [
        &|| {
            black_box(Arc::clone(black_box(&arc)));
        },
        &|| {
            black_box(shared.get().expect("checkout").0);
        },
        &|| {
            black_box(queue.get().expect("checkout").0);
        },
        &|| {
            black_box(per_thread.get().expect("checkout").0);
        },
        &|| {
            black_box(r2d2_pool.get().expect("checkout").0);
        },
        &|| {
            black_box(deadpool_pool.try_get().expect("checkout").0);
        },
    ];

    // Iterations per block: from a warm-up block, so each block lasts about `block_ms`.
    let iters: Vec<u64> = ops
        .iter()
        .map(|op| {
            if let Some(n) = fixed_iters {
                return n;
            }
            // A contender left out by `POOL_ONLY` still gets its count: the probe is short.
            let probe = 20_000;
            let warm = block(threads, probe, *op);
            ((block_ms * 1e6 / warm.wall.max(1.0)) as u64).clamp(10_000, 50_000_000)
        })
        .collect();

    let only = std::env::var("POOL_ONLY").unwrap_or_default();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); ops.len()];
    for round in 0..rounds {
        for turn in 0..ops.len() {
            let c = (round + turn) % ops.len();
            if !NAMES[c].contains(only.as_str()) {
                continue;
            }
            samples[c].push(block(threads, iters[c], ops[c]));
        }
    }
    report(threads, rounds, &samples);
}

fn larder_pool(strategy: Strategy) -> Pool<Conns> {
    Pool::new(Conns, PoolConfig::new("bench", strategy)).expect("pool builds")
}

fn report(threads: usize, rounds: usize, samples: &[Vec<Sample>]) {
    let wall = |c: usize| samples[c].iter().map(|s| s.wall).collect::<Vec<_>>();
    let cpu = |c: usize| samples[c].iter().filter_map(|s| s.cpu).collect::<Vec<_>>();
    println!();
    println!(
        "| {threads} thread(s), {rounds} interleaved rounds | wall ns/op | CPU ns/op | \
         / Arc::clone (wall) |"
    );
    println!("|---|---:|---:|---:|");
    for (c, name) in NAMES.iter().enumerate() {
        println!(
            "| {name} | {} | {} | {} |",
            spread(wall(c), 1),
            spread(cpu(c), 1),
            spread(ratios(samples, c, ARC, |s| Some(s.wall)), 2),
        );
    }
    println!();
    println!("| target ({threads} thread(s)) | wall | CPU |");
    println!("|---|---:|---:|");
    println!(
        "| larder PerThread ns/op ≤ 50 | {} | {} |",
        spread(wall(PER_THREAD), 1),
        spread(cpu(PER_THREAD), 1),
    );
    let bound = if threads == 1 { "≤ 1.00" } else { "< 1.00" };
    println!(
        "| larder Queue / deadpool {bound} | {} | {} |",
        spread(ratios(samples, QUEUE, DEADPOOL, |s| Some(s.wall)), 3),
        spread(ratios(samples, QUEUE, DEADPOOL, |s| s.cpu), 3),
    );
}

/// Per-round ratios of contender `c` to contender `base`.
fn ratios(
    samples: &[Vec<Sample>],
    c: usize,
    base: usize,
    f: fn(&Sample) -> Option<f64>,
) -> Vec<f64> {
    samples[c]
        .iter()
        .zip(&samples[base])
        .filter_map(|(a, b)| Some(f(a)? / f(b)?))
        .collect()
}
