//! One checkout + return, in ns per operation, for larder's pool strategies against r2d2,
//! deadpool (its `unmanaged` pool, whose `try_get` is a fair synchronous comparison) and a
//! plain `Arc::clone` baseline; at 1 and 2 threads.
//!
//! With 2 threads both threads run the loop at once and the figure is the time per
//! operation as one thread sees it (the slower thread's total / iterations), so contention
//! shows up as a larger number. Queue-like pools get one object per thread, so nobody waits
//! for an object: what is measured is the checkout machinery itself.
//!
//! Run: `cargo bench -p larder-bench --bench pool -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use larder::pool::{Manager, Pool, PoolConfig, Strategy};

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

/// Runs `op` `iters` times on each of `threads` threads at once; the slowest thread's time.
fn run(threads: usize, iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        return start.elapsed();
    }
    let barrier = Barrier::new(threads);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

fn larder_pool(strategy: Strategy) -> Pool<Conns> {
    Pool::new(Conns, PoolConfig::new("bench", strategy)).expect("pool builds")
}

fn checkout(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_checkout");
    for threads in [1usize, 2] {
        let arc = Arc::new(Conn(7));
        group.bench_function(BenchmarkId::new("arc_clone_baseline", threads), |b| {
            b.iter_custom(|iters| {
                run(threads, iters, &|| {
                    black_box(Arc::clone(black_box(&arc)));
                })
            })
        });

        for (name, strategy) in [
            ("larder_shared", Strategy::Shared),
            ("larder_queue", Strategy::queue(threads)),
            ("larder_per_thread", Strategy::PerThread),
        ] {
            let pool = larder_pool(strategy);
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| {
                    run(threads, iters, &|| {
                        let conn = pool.get().expect("checkout");
                        black_box(conn.0);
                    })
                })
            });
        }

        let r2d2_pool = r2d2::Pool::builder()
            .max_size(threads as u32)
            .build(R2d2Conns)
            .expect("r2d2 pool builds");
        group.bench_function(BenchmarkId::new("r2d2", threads), |b| {
            b.iter_custom(|iters| {
                run(threads, iters, &|| {
                    let conn = r2d2_pool.get().expect("checkout");
                    black_box(conn.0);
                })
            })
        });

        let deadpool_pool = deadpool::unmanaged::Pool::new(threads);
        for _ in 0..threads {
            deadpool_pool
                .try_add(Conn(7))
                .map_err(|(_, e)| e)
                .expect("deadpool add");
        }
        group.bench_function(BenchmarkId::new("deadpool_unmanaged", threads), |b| {
            b.iter_custom(|iters| {
                run(threads, iters, &|| {
                    let conn = deadpool_pool.try_get().expect("checkout");
                    black_box(conn.0);
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, checkout);
criterion_main!(benches);
