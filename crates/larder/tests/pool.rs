//! Behaviour of `larder::pool`: every strategy under contention, exhaustion, health checks,
//! retirement, idle expiry, failed creation, a panicking holder, per-thread release, hooks,
//! close, and the async checkout. Panicking managers and hooks, and leak detection, are in
//! `pool_faults.rs`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use larder::clock::ManualClock;
use larder::pool::{Hooks, Manager, Pool, PoolConfig, QueueConfig, Strategy};
use larder::Error;

/// An object that records a violation whenever two threads use it at once, and counts
/// its drops.
#[derive(Debug)]
struct Probe {
    id: u64,
    busy: AtomicBool,
    violations: Arc<AtomicU64>,
    drops: Arc<AtomicU64>,
    /// Scratch state for hooks and `get_mut`.
    notes: Mutex<Vec<u64>>,
}

impl Probe {
    /// Uses the object exclusively for a moment; returns its id.
    fn use_exclusively(&self) -> u64 {
        if self.busy.swap(true, Ordering::SeqCst) {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
        thread::yield_now();
        self.busy.store(false, Ordering::SeqCst);
        self.id
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default, Clone)]
struct Probes {
    next_id: Arc<AtomicU64>,
    violations: Arc<AtomicU64>,
    drops: Arc<AtomicU64>,
    /// The next this many `create` calls fail.
    failing_creates: Arc<AtomicU64>,
    /// Objects with these ids fail `recycle`.
    unhealthy: Arc<Mutex<Vec<u64>>>,
}

impl Probes {
    fn drops(&self) -> u64 {
        self.drops.load(Ordering::SeqCst)
    }
    fn violations(&self) -> u64 {
        self.violations.load(Ordering::SeqCst)
    }
}

impl Manager for Probes {
    type Object = Probe;
    type Error = std::io::Error;

    fn create(&self) -> Result<Probe, std::io::Error> {
        let failing = self.failing_creates.load(Ordering::SeqCst);
        if failing > 0 {
            self.failing_creates.store(failing - 1, Ordering::SeqCst);
            return Err(std::io::Error::other("backend refused"));
        }
        Ok(Probe {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            busy: AtomicBool::new(false),
            violations: self.violations.clone(),
            drops: self.drops.clone(),
            notes: Mutex::new(Vec::new()),
        })
    }

    fn recycle(&self, obj: &mut Probe) -> Result<(), std::io::Error> {
        if self.unhealthy.lock().unwrap().contains(&obj.id) {
            return Err(std::io::Error::other("ping failed"));
        }
        Ok(())
    }
}

fn queue(max_size: usize, wait_timeout: Duration) -> Strategy {
    Strategy::Queue(QueueConfig::new(max_size).wait_timeout(wait_timeout))
}

fn all_strategies() -> Vec<Strategy> {
    vec![
        Strategy::Shared,
        queue(3, Duration::from_secs(30)),
        Strategy::PerThread,
    ]
}

/// The caller's code: the same whatever the strategy.
fn handle_request(pool: &Pool<Probes>) -> larder::Result<u64> {
    let probe = pool.get()?;
    Ok(probe.busy.load(Ordering::SeqCst) as u64 + probe.id)
}

#[test]
fn pools_and_owned_guards_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Pool<Probes>>();
    send::<larder::pool::Pooled<'static, Probes>>();
    send_sync::<larder::pool::Proxy<Probe>>();

    let pool = Pool::new(
        Probes::default(),
        PoolConfig::new("owned", queue(1, Duration::from_secs(1))),
    )
    .unwrap();
    let guard = pool.get_owned().unwrap();
    drop(pool);
    let id = thread::spawn(move || guard.id).join().unwrap();
    assert_eq!(
        id, 0,
        "an owned guard outlives the Pool value and moves threads"
    );
}

#[test]
fn one_caller_code_runs_on_every_strategy_from_many_threads() {
    for strategy in all_strategies() {
        let probes = Probes::default();
        let pool = Pool::new(probes.clone(), PoolConfig::new("generic", strategy.clone())).unwrap();
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    for _ in 0..200 {
                        handle_request(&pool).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = pool.stats();
        assert_eq!(stats.in_use, 0, "{strategy:?}: everything came back");
        match strategy {
            Strategy::Shared => assert_eq!(stats.created, 1),
            Strategy::Queue(QueueConfig { max_size, .. }) => {
                assert!(stats.created as usize <= max_size, "{stats:?}");
                assert_eq!(stats.created + stats.reused, 6 * 200);
            }
            Strategy::PerThread => {
                assert_eq!(stats.created, 6, "one per thread");
                assert_eq!(stats.reused, 6 * 199);
                assert_eq!(probes.drops(), 6, "released when the threads ended");
            }
            other => panic!("no check written for {other:?}"),
        }
    }
}

#[test]
fn exclusive_strategies_never_hand_one_object_to_two_threads() {
    for strategy in [queue(3, Duration::from_secs(30)), Strategy::PerThread] {
        let probes = Probes::default();
        let pool = Pool::new(
            probes.clone(),
            PoolConfig::new("exclusive", strategy.clone()),
        )
        .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    for _ in 0..300 {
                        let mut probe = pool.get().unwrap();
                        probe.use_exclusively();
                        probe.get_mut().unwrap().notes.get_mut().unwrap().push(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(probes.violations(), 0, "{strategy:?}");
    }
}

#[test]
fn shared_hands_one_object_to_all_and_refuses_mut() {
    let probes = Probes::default();
    let pool = Pool::new(probes.clone(), PoolConfig::new("shared", Strategy::Shared)).unwrap();
    let mut a = pool.get().unwrap();
    let b = pool.get().unwrap();
    assert!(a.is_shared());
    assert_eq!(a.id, b.id);
    assert_eq!(pool.stats().in_use, 2);
    assert!(matches!(a.get_mut(), Err(Error::Unsupported(m)) if m.contains("\"shared\"")));
    drop((a, b));
    assert_eq!(pool.stats().in_use, 0);
    drop(pool);
    assert_eq!(probes.drops(), 1, "the shared object goes with the pool");
}

#[test]
fn shared_needs_a_sync_object() {
    struct Cells;
    impl Manager for Cells {
        type Object = std::cell::Cell<u32>;
        type Error = std::io::Error;
        fn create(&self) -> Result<std::cell::Cell<u32>, std::io::Error> {
            Ok(std::cell::Cell::new(0))
        }
    }
    let err = Pool::new_unsync(Cells, PoolConfig::new("cells", Strategy::Shared)).unwrap_err();
    assert!(matches!(err, Error::Config(m) if m.contains("Sync")));
    let pool = Pool::new_unsync(Cells, PoolConfig::new("cells", Strategy::PerThread)).unwrap();
    let cell = pool.get().unwrap();
    cell.set(cell.get() + 1);
    drop(cell);
    assert_eq!(
        pool.get().unwrap().get(),
        1,
        "the thread's object came back"
    );
}

#[test]
fn exhausted_queue_times_out_within_its_bound() {
    let wait = Duration::from_millis(200);
    let pool = Pool::new(Probes::default(), PoolConfig::new("tiny", queue(1, wait))).unwrap();
    let _held = pool.get().unwrap();
    let err = pool.get().unwrap_err();
    match err {
        Error::PoolTimeout { pool: name, waited } => {
            assert_eq!(name, "tiny");
            assert!(waited >= wait, "{waited:?}");
            assert!(waited < wait + Duration::from_secs(2), "{waited:?}");
        }
        other => panic!("expected PoolTimeout, got {other:?}"),
    }
    let stats = pool.stats();
    assert_eq!((stats.timeouts, stats.waits), (1, 1));
}

#[test]
fn a_waiter_gets_the_object_when_it_is_returned() {
    let probes = Probes::default();
    let pool = Pool::new(
        probes,
        PoolConfig::new("handoff", queue(1, Duration::from_secs(30))),
    )
    .unwrap();
    let held = pool.get().unwrap();
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.get().map(|p| p.id))
    };
    // Let the waiter find the pool exhausted (not required for correctness).
    while pool.stats().waits == 0 && !waiter.is_finished() {
        thread::yield_now();
    }
    drop(held);
    assert_eq!(waiter.join().unwrap().unwrap(), 0);
    assert_eq!(pool.stats().created, 1);
}

#[test]
fn failed_health_check_replaces_the_object() {
    for strategy in [queue(2, Duration::from_secs(1)), Strategy::PerThread] {
        let probes = Probes::default();
        let pool = Pool::new(probes.clone(), PoolConfig::new("health", strategy)).unwrap();
        assert_eq!(pool.get().unwrap().id, 0);
        probes.unhealthy.lock().unwrap().push(0);
        assert_eq!(pool.get().unwrap().id, 1, "object 0 failed recycle");
        let stats = pool.stats();
        assert_eq!(
            (stats.recycle_failures, stats.created, stats.closed),
            (1, 2, 1)
        );
        assert_eq!(probes.drops(), 1);
    }
}

#[test]
fn objects_retire_after_max_uses() {
    let strategy = Strategy::Queue(
        QueueConfig::new(1)
            .wait_timeout(Duration::from_secs(1))
            .max_uses(2),
    );
    let probes = Probes::default();
    let pool = Pool::new(probes.clone(), PoolConfig::new("uses", strategy)).unwrap();
    let ids: Vec<u64> = (0..5).map(|_| pool.get().unwrap().id).collect();
    assert_eq!(ids, [0, 0, 1, 1, 2]);
    assert_eq!(pool.stats().closed, 2, "objects 0 and 1 retired; 2 is idle");
    assert_eq!(probes.drops(), 2);
}

#[test]
fn idle_objects_expire_by_the_pool_clock() {
    let clock = ManualClock::new();
    let strategy = Strategy::Queue(
        QueueConfig::new(2)
            .wait_timeout(Duration::from_secs(1))
            .idle_timeout(Duration::from_secs(60)),
    );
    let config = PoolConfig::new("idle", strategy).clock(Arc::new(clock.clone()));
    let probes = Probes::default();
    let pool = Pool::new(probes.clone(), config).unwrap();
    assert_eq!(pool.get().unwrap().id, 0);
    clock.advance(Duration::from_secs(59));
    assert_eq!(pool.get().unwrap().id, 0, "still fresh");
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        pool.get().unwrap().id,
        1,
        "stale object dropped on checkout"
    );
    assert_eq!(probes.drops(), 1);
    assert_eq!(pool.stats().closed, 1);
}

#[test]
fn failing_create_never_leaks_a_slot() {
    for strategy in [
        queue(1, Duration::from_millis(100)),
        Strategy::Shared,
        Strategy::PerThread,
    ] {
        let probes = Probes::default();
        probes.failing_creates.store(5, Ordering::SeqCst);
        let pool = Pool::new(probes.clone(), PoolConfig::new("flaky", strategy.clone())).unwrap();
        for _ in 0..5 {
            match pool.get().unwrap_err() {
                Error::PoolCreate { pool, source } => {
                    assert_eq!(pool, "flaky");
                    assert_eq!(source.to_string(), "backend refused");
                }
                other => panic!("{strategy:?}: expected PoolCreate, got {other:?}"),
            }
        }
        assert_eq!(
            pool.get().unwrap().id,
            0,
            "{strategy:?}: the slot is free again"
        );
        assert_eq!(pool.stats().timeouts, 0);
    }
}

#[test]
fn a_panic_while_held_drops_the_object() {
    for strategy in [queue(1, Duration::from_secs(1)), Strategy::PerThread] {
        let probes = Probes::default();
        let pool = Pool::new(probes.clone(), PoolConfig::new("panicky", strategy.clone())).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _probe = pool.get().unwrap();
            panic!("handler bug");
        }));
        assert!(result.is_err());
        assert_eq!(probes.drops(), 1, "{strategy:?}");
        let stats = pool.stats();
        assert_eq!((stats.closed, stats.in_use, stats.idle), (1, 0, 0));
        assert_eq!(pool.get().unwrap().id, 1, "a fresh object replaces it");
    }
}

#[test]
fn discard_drops_the_object_instead_of_returning_it() {
    for strategy in [queue(1, Duration::from_secs(1)), Strategy::PerThread] {
        let probes = Probes::default();
        let pool = Pool::new(probes.clone(), PoolConfig::new("discard", strategy)).unwrap();
        pool.get().unwrap().discard();
        assert_eq!(probes.drops(), 1);
        assert_eq!(pool.get().unwrap().id, 1);
    }
}

#[test]
fn broken_objects_are_dropped_on_return() {
    struct Fragile;
    impl Manager for Fragile {
        type Object = Vec<u8>;
        type Error = std::io::Error;
        fn create(&self) -> Result<Vec<u8>, std::io::Error> {
            Ok(Vec::new())
        }
        fn is_broken(&self, obj: &mut Vec<u8>) -> bool {
            obj.is_empty()
        }
    }
    let pool = Pool::new(
        Fragile,
        PoolConfig::new("fragile", queue(1, Duration::from_secs(1))),
    )
    .unwrap();
    drop(pool.get().unwrap()); // empty: broken
    pool.get().unwrap().get_mut().unwrap().push(1); // kept
    let stats = pool.stats();
    assert_eq!((stats.created, stats.closed, stats.idle), (2, 1, 1));
    assert_eq!(pool.get().unwrap().as_slice(), [1]);
}

#[test]
fn per_thread_objects_are_released_when_threads_end() {
    let probes = Probes::default();
    let pool = Pool::new(
        probes.clone(),
        PoolConfig::new("threads", Strategy::PerThread),
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            thread::spawn(move || {
                let first = pool.get().unwrap().id;
                barrier.wait(); // all four threads are alive with a parked object
                assert_eq!(pool.get().unwrap().id, first, "the thread keeps its object");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(probes.drops(), 4);
    let stats = pool.stats();
    assert_eq!((stats.created, stats.reused, stats.closed), (4, 4, 4));
    assert_eq!((stats.idle, stats.in_use), (0, 0));
}

#[test]
fn hooks_run_at_each_point_of_an_objects_life() {
    let log = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let hook = |name: &'static str| {
        let log = log.clone();
        move |_: &mut Probe| log.lock().unwrap().push(name)
    };
    let hooks = Hooks::new()
        .on_create(hook("create"))
        .on_checkout(hook("checkout"))
        .on_return({
            let log = log.clone();
            move |p: &mut Probe| {
                p.notes.get_mut().unwrap().clear(); // reset state for the next user
                log.lock().unwrap().push("return");
            }
        })
        .on_close(hook("close"));
    let strategy = Strategy::Queue(
        QueueConfig::new(1)
            .wait_timeout(Duration::from_secs(1))
            .max_uses(2),
    );
    let pool = Pool::builder(Probes::default())
        .config(PoolConfig::new("hooks", strategy))
        .hooks(hooks)
        .build()
        .unwrap();
    pool.get()
        .unwrap()
        .get_mut()
        .unwrap()
        .notes
        .get_mut()
        .unwrap()
        .push(9);
    assert!(
        pool.get().unwrap().notes.lock().unwrap().is_empty(),
        "on_return reset it"
    );
    assert_eq!(
        *log.lock().unwrap(),
        ["create", "checkout", "return", "checkout", "return", "close"]
    );
}

#[test]
fn closed_pools_refuse_checkouts_and_wake_waiters() {
    for strategy in all_strategies() {
        let probes = Probes::default();
        let pool = Pool::new(probes.clone(), PoolConfig::new("closing", strategy.clone())).unwrap();
        drop(pool.get().unwrap());
        pool.close();
        assert!(pool.is_closed());
        assert!(matches!(pool.get(), Err(Error::Unavailable(m)) if m.contains("\"closing\"")));
        if !matches!(strategy, Strategy::Shared) {
            assert_eq!(
                probes.drops(),
                1,
                "{strategy:?}: the idle object is dropped"
            );
        }
    }
    // A waiter blocked on an exhausted queue fails at close instead of at its timeout.
    let pool = Pool::new(
        Probes::default(),
        PoolConfig::new("closing", queue(1, Duration::from_secs(3600))),
    )
    .unwrap();
    let held = pool.get().unwrap();
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.get().map(|p| p.id))
    };
    while pool.stats().waits == 0 && !waiter.is_finished() {
        thread::yield_now();
    }
    pool.close();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Unavailable(_))));
    drop(held);
    assert_eq!(pool.stats().closed, 1, "returned after close: dropped");
}

#[test]
fn eager_queues_fill_at_build_and_validate_sizes() {
    let strategy = Strategy::Queue(
        QueueConfig::new(3)
            .min_size(2)
            .wait_timeout(Duration::from_secs(1))
            .eager(true),
    );
    let pool = Pool::new(
        Probes::default(),
        PoolConfig::new("eager", strategy.clone()),
    )
    .unwrap();
    let stats = pool.stats();
    assert_eq!((stats.created, stats.idle), (2, 2));

    let probes = Probes::default();
    probes.failing_creates.store(1, Ordering::SeqCst);
    let err = Pool::new(probes, PoolConfig::new("eager", strategy)).unwrap_err();
    assert!(matches!(err, Error::PoolCreate { .. }));

    let err = Pool::new(
        Probes::default(),
        PoolConfig::new("zero", queue(0, Duration::ZERO)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Config(m) if m.contains("max_size")));
}

#[cfg(feature = "tokio")]
mod async_checkout {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_and_queue_serve_many_tasks() {
        for strategy in [Strategy::Shared, queue(2, Duration::from_secs(30))] {
            let probes = Probes::default();
            let pool =
                Pool::new(probes.clone(), PoolConfig::new("async", strategy.clone())).unwrap();
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let pool = pool.clone();
                    let exclusive = !matches!(pool.strategy(), Strategy::Shared);
                    tokio::spawn(async move {
                        for _ in 0..50 {
                            let probe = pool.get_async().await.unwrap();
                            if exclusive {
                                probe.use_exclusively();
                            }
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(probes.violations(), 0);
            let stats = pool.stats();
            assert_eq!(stats.in_use, 0);
            assert!(stats.created <= 2, "{strategy:?}: {stats:?}");
        }
    }

    #[tokio::test]
    async fn exhausted_queue_times_out_without_blocking_the_runtime() {
        let wait = Duration::from_millis(150);
        let pool = Pool::new(
            Probes::default(),
            PoolConfig::new("async-tiny", queue(1, wait)),
        )
        .unwrap();
        let _held = pool.get_async().await.unwrap();
        // On this single-threaded runtime, another task still runs while we wait.
        let ticker = tokio::spawn(async { 42 });
        match pool.get_async().await {
            Err(Error::PoolTimeout { waited, .. }) => {
                assert!(waited >= wait, "{waited:?}");
                assert!(waited < wait + Duration::from_secs(2), "{waited:?}");
            }
            other => panic!("expected PoolTimeout, got {other:?}"),
        }
        assert_eq!(ticker.await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_waiting_task_gets_the_returned_object() {
        let pool = Pool::new(
            Probes::default(),
            PoolConfig::new("async-handoff", queue(1, Duration::from_secs(30))),
        )
        .unwrap();
        let held = pool.get_async().await.unwrap();
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get_async().await.map(|p| p.id) })
        };
        while pool.stats().waits == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert_eq!(waiter.await.unwrap().unwrap(), 0);
    }

    #[tokio::test]
    async fn failing_create_frees_the_slot() {
        let probes = Probes::default();
        probes.failing_creates.store(3, Ordering::SeqCst);
        let pool = Pool::new(
            probes,
            PoolConfig::new("async-flaky", queue(1, Duration::from_millis(100))),
        )
        .unwrap();
        for _ in 0..3 {
            assert!(matches!(
                pool.get_async().await,
                Err(Error::PoolCreate { .. })
            ));
        }
        assert_eq!(pool.get_async().await.unwrap().id, 0);
    }

    /// A manager whose `create` takes a while (a slow connect).
    struct Slow;
    impl Manager for Slow {
        type Object = u32;
        type Error = std::io::Error;
        fn create(&self) -> Result<u32, std::io::Error> {
            thread::sleep(Duration::from_millis(300));
            Ok(1)
        }
    }

    #[tokio::test]
    async fn cancelled_checkouts_free_their_slot() {
        let pool = Pool::new(
            Slow,
            PoolConfig::new("async-cancel", queue(1, Duration::from_secs(30))),
        )
        .unwrap();
        // Cancelled while the object is being created (on a blocking thread).
        let cancelled = tokio::time::timeout(Duration::from_millis(20), pool.get_async()).await;
        assert!(cancelled.is_err());
        assert_eq!(pool.stats().in_use, 0, "the reserved slot was given back");
        // Cancelled while waiting for a free object.
        let held = pool.get_async().await.unwrap();
        let cancelled = tokio::time::timeout(Duration::from_millis(20), pool.get_async()).await;
        assert!(cancelled.is_err());
        drop(held);
        assert_eq!(*pool.get_async().await.unwrap(), 1);
        assert_eq!(pool.stats().in_use, 0);
    }

    #[tokio::test]
    async fn per_thread_is_unsupported() {
        let pool = Pool::new(
            Probes::default(),
            PoolConfig::new("async-pt", Strategy::PerThread),
        )
        .unwrap();
        assert!(
            matches!(pool.get_async().await, Err(Error::Unsupported(m)) if m.contains("PerThread"))
        );
    }
}

#[cfg(feature = "tokio")]
/// Objects made on the runtime, as async connections are.
struct OnTheRuntime {
    made: AtomicU64,
}

#[cfg(feature = "tokio")]
impl larder::pool::AsyncManager for OnTheRuntime {
    type Object = u64;
    type Error = std::io::Error;

    async fn create(&self) -> Result<u64, std::io::Error> {
        tokio::task::yield_now().await;
        Ok(self.made.fetch_add(1, Ordering::SeqCst))
    }

    fn is_broken(&self, obj: &mut u64) -> bool {
        *obj == 99
    }
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_managers_create_on_the_runtime_under_the_same_bounds() {
    let pool = Pool::new_async(
        OnTheRuntime {
            made: AtomicU64::new(0),
        },
        PoolConfig::new("async", queue(2, Duration::from_millis(50))),
    )
    .unwrap();
    // A blocking checkout cannot create with an async manager: a typed error, no slot lost.
    assert!(matches!(pool.get(), Err(Error::PoolCreate { .. })));
    let a = pool.get_async().await.unwrap();
    let mut b = pool.get_async().await.unwrap();
    assert_eq!((*a, *b), (0, 1));
    assert!(matches!(
        pool.get_async().await,
        Err(Error::PoolTimeout { .. })
    ));
    drop(a);
    // An idle object is reused by either kind of checkout.
    assert_eq!(*pool.get().unwrap(), 0);
    // A broken object is dropped when it comes back.
    *b.get_mut().unwrap() = 99;
    drop(b);
    assert_eq!(pool.stats().closed, 1);
    pool.close_idle();
    assert_eq!((pool.stats().idle, pool.stats().in_use), (0, 0));
    assert_eq!(*pool.get_async().await.unwrap(), 2);
}
