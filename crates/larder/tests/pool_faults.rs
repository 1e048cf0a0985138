//! `larder::pool` when its user misbehaves: a manager or hook that panics (the checkout
//! fails with `Error::Panicked`, no slot is lost), and guards held longer than `max_hold`,
//! whether they come back late or never (reported once each, on the injected clock).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use larder::clock::ManualClock;
use larder::pool::{Hooks, Manager, Pool, PoolConfig, Pooled, QueueConfig, Strategy};
use larder::Error;

/// Panics raised on purpose carry this text; the panic hook keeps them off stderr and
/// passes every other panic (a failing assertion) to the default hook.
const EXPECTED: &str = "(expected)";

fn quiet_expected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !text.contains(EXPECTED) {
                default(info);
            }
        }));
    });
}

/// Which of the manager's methods and the pool's hooks panic right now.
#[derive(Default)]
struct Faults {
    create: AtomicBool,
    recycle: AtomicBool,
    on_create: AtomicBool,
    on_checkout: AtomicBool,
    on_return: AtomicBool,
}

fn fail_if(flag: &AtomicBool, what: &str) {
    if flag.load(Ordering::SeqCst) {
        panic!("{what} {EXPECTED}");
    }
}

/// A manager that panics in `create` or `recycle` while told to.
#[derive(Clone, Default)]
struct Panicky {
    faults: Arc<Faults>,
    made: Arc<AtomicU64>,
}

impl Manager for Panicky {
    type Object = u64;
    type Error = std::io::Error;

    fn create(&self) -> Result<u64, std::io::Error> {
        fail_if(&self.faults.create, "create");
        Ok(self.made.fetch_add(1, Ordering::SeqCst))
    }

    fn recycle(&self, _: &mut u64) -> Result<(), std::io::Error> {
        fail_if(&self.faults.recycle, "recycle");
        Ok(())
    }
}

fn panicky_pool(strategy: Strategy) -> (Pool<Panicky>, Arc<Faults>) {
    quiet_expected_panics();
    let manager = Panicky::default();
    let faults = manager.faults.clone();
    let hook = |pick: fn(&Faults) -> &AtomicBool, what: &'static str| {
        let faults = faults.clone();
        move |_: &mut u64| fail_if(pick(&faults), what)
    };
    let hooks = Hooks::new()
        .on_create(hook(|f| &f.on_create, "on_create"))
        .on_checkout(hook(|f| &f.on_checkout, "on_checkout"))
        .on_return(hook(|f| &f.on_return, "on_return"));
    let pool = Pool::builder(manager)
        .config(PoolConfig::new("panicky", strategy))
        .hooks(hooks)
        .build()
        .unwrap();
    (pool, faults)
}

fn queue(max_size: usize, wait_timeout: Duration) -> Strategy {
    Strategy::Queue(QueueConfig::new(max_size).wait_timeout(wait_timeout))
}

/// Asserts `got` is the `Panicked` error of `what` in the pool "panicky".
fn assert_panicked<T>(got: larder::Result<T>, what: &str, strategy: &Strategy) {
    match got {
        Err(Error::Panicked { what: w, message }) => {
            assert_eq!(w, format!("pool \"panicky\": {what}"), "{strategy:?}");
            assert!(message.contains(EXPECTED), "{strategy:?}: {message}");
        }
        Err(other) => panic!("{strategy:?}: expected Panicked for {what}, got {other:?}"),
        Ok(_) => panic!("{strategy:?}: expected Panicked for {what}, got an object"),
    }
}

/// Turns `flag` on for one checkout, which must fail with the `Panicked` error of `what`.
fn one_panicking_get(pool: &Pool<Panicky>, flag: &AtomicBool, what: &str, strategy: &Strategy) {
    flag.store(true, Ordering::SeqCst);
    let got = pool.get();
    flag.store(false, Ordering::SeqCst);
    assert_panicked(got, what, strategy);
    assert_eq!(
        pool.stats().in_use,
        0,
        "{strategy:?}: {what} left a slot taken"
    );
}

#[test]
fn panics_in_create_recycle_or_a_hook_are_errors_and_never_leak_a_slot() {
    for strategy in [queue(1, Duration::from_millis(50)), Strategy::PerThread] {
        let (pool, faults) = panicky_pool(strategy.clone());
        one_panicking_get(&pool, &faults.create, "Manager::create", &strategy);
        one_panicking_get(&pool, &faults.on_create, "the on_create hook", &strategy);
        // A new object whose on_checkout panics, then an idle one's.
        one_panicking_get(
            &pool,
            &faults.on_checkout,
            "the on_checkout hook",
            &strategy,
        );
        drop(pool.get().unwrap());
        one_panicking_get(
            &pool,
            &faults.on_checkout,
            "the on_checkout hook",
            &strategy,
        );
        drop(pool.get().unwrap());
        one_panicking_get(&pool, &faults.recycle, "Manager::recycle", &strategy);
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.in_use), (0, 0), "{strategy:?}");
        assert_eq!(stats.recycle_failures, 1, "{strategy:?}");
        // Every object a panic touched was dropped (the panicking create made none).
        assert_eq!(
            (stats.created, stats.closed),
            (4, 4),
            "{strategy:?}: {stats:?}"
        );
        // The one slot still serves: nothing waits, nothing times out.
        let obj = pool.get().expect("the slot was never leaked");
        assert_eq!(*obj, 4);
        drop(obj);
        assert_eq!(pool.stats().timeouts, 0, "{strategy:?}");
    }
}

#[test]
fn a_panicking_create_under_shared_is_an_error_and_the_next_checkout_creates() {
    let (pool, faults) = panicky_pool(Strategy::Shared);
    one_panicking_get(&pool, &faults.create, "Manager::create", &Strategy::Shared);
    one_panicking_get(
        &pool,
        &faults.on_create,
        "the on_create hook",
        &Strategy::Shared,
    );
    assert_eq!(*pool.get().unwrap(), 1);
}

#[test]
fn a_panicking_on_return_drops_the_object_frees_its_slot_and_reaches_the_holder() {
    for strategy in [queue(1, Duration::from_millis(50)), Strategy::PerThread] {
        let (pool, faults) = panicky_pool(strategy.clone());
        let guard = pool.get().unwrap();
        faults.on_return.store(true, Ordering::SeqCst);
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(guard)));
        faults.on_return.store(false, Ordering::SeqCst);
        assert!(
            dropped.is_err(),
            "{strategy:?}: the hook's panic reaches the holder"
        );
        let stats = pool.stats();
        assert_eq!(
            (stats.idle, stats.in_use, stats.closed),
            (0, 0, 1),
            "{strategy:?}"
        );
        assert_eq!(
            *pool.get().unwrap(),
            1,
            "{strategy:?}: a new object in the slot"
        );
        assert_eq!(pool.stats().timeouts, 0, "{strategy:?}");
    }
}

#[cfg(feature = "tokio")]
mod async_checkout {
    use super::*;

    #[tokio::test]
    async fn a_panicking_create_on_a_blocking_thread_is_an_error() {
        for strategy in [queue(1, Duration::from_millis(50)), Strategy::Shared] {
            let (pool, faults) = panicky_pool(strategy.clone());
            faults.create.store(true, Ordering::SeqCst);
            let got = pool.get_async().await;
            faults.create.store(false, Ordering::SeqCst);
            assert_panicked(got, "Manager::create", &strategy);
            assert_eq!(*pool.get_async().await.unwrap(), 0, "{strategy:?}");
        }
    }

    /// An async manager whose `create` panics while told to, after an `.await`.
    #[derive(Default)]
    struct PanickyAsync {
        panic: AtomicBool,
    }

    impl larder::pool::AsyncManager for PanickyAsync {
        type Object = u64;
        type Error = std::io::Error;

        async fn create(&self) -> Result<u64, std::io::Error> {
            tokio::task::yield_now().await;
            fail_if(&self.panic, "async create");
            Ok(7)
        }
    }

    #[tokio::test]
    async fn a_panicking_async_create_is_an_error_and_frees_its_slot() {
        quiet_expected_panics();
        let pool = Pool::new_async(
            PanickyAsync::default(),
            PoolConfig::new("panicky", queue(1, Duration::from_millis(50))),
        )
        .unwrap();
        pool.manager().0.panic.store(true, Ordering::SeqCst);
        let got = pool.get_async().await;
        pool.manager().0.panic.store(false, Ordering::SeqCst);
        assert_panicked(got, "AsyncManager::create", &Strategy::queue(1));
        assert_eq!(pool.stats().in_use, 0);
        assert_eq!(*pool.get_async().await.unwrap(), 7);
    }
}

// ---- leak detection ----

/// The warnings logged so far about pool `name`.
fn warnings(name: &str) -> Vec<String> {
    let prefix = format!("pool {name:?}:");
    larder_testing::log::warnings(|w| w.starts_with(&prefix))
}

#[derive(Clone, Default)]
struct Numbers(Arc<AtomicU64>);

impl Manager for Numbers {
    type Object = u64;
    type Error = std::io::Error;
    fn create(&self) -> Result<u64, std::io::Error> {
        Ok(self.0.fetch_add(1, Ordering::SeqCst))
    }
}

fn leak_pool(name: &str, strategy: Strategy, clock: &ManualClock) -> Pool<Numbers> {
    warnings(name); // the recorder is installed before the pool can log
    let config = PoolConfig::new(name, strategy)
        .max_hold(Duration::from_secs(5))
        .clock(Arc::new(clock.clone()));
    Pool::new(Numbers::default(), config).unwrap()
}

/// Keeps a guard out for good, as a forgotten one is.
fn never_return(guard: Pooled<'_, Numbers>) {
    std::mem::forget(guard);
}

#[test]
fn a_guard_never_returned_is_reported_once_when_it_outlives_max_hold() {
    for (name, strategy) in [
        ("leak-queue", queue(4, Duration::from_secs(1))),
        ("leak-per-thread", Strategy::PerThread),
    ] {
        let clock = ManualClock::new();
        let pool = leak_pool(name, strategy, &clock);
        never_return(pool.get().unwrap());
        clock.advance(Duration::from_secs(4));
        let in_time = pool.get().unwrap();
        assert_eq!(
            pool.stats().held_too_long,
            0,
            "{name}: not yet past max_hold"
        );
        clock.advance(Duration::from_millis(1500));
        drop(in_time); // out 1.5 s: in time
        let stats = pool.stats();
        assert_eq!((stats.held_too_long, stats.leaks), (1, 0), "{name}");
        // Later scans, checkouts and more time do not report it again.
        clock.advance(Duration::from_secs(60));
        drop(pool.get().unwrap());
        let stats = pool.stats();
        assert_eq!((stats.held_too_long, stats.leaks), (1, 0), "{name}");
        let logged = warnings(name);
        assert_eq!(logged.len(), 1, "{name}: {logged:?}");
        assert!(logged[0].contains("is not back"), "{}", logged[0]);
        assert_eq!(
            pool.stats().in_use,
            1,
            "{name}: the forgotten guard is still out"
        );
    }
}

#[test]
fn a_checkout_reports_a_guard_out_too_long_without_a_stats_call() {
    for (name, strategy) in [
        ("leak-checkout-queue", queue(4, Duration::from_secs(1))),
        ("leak-checkout-per-thread", Strategy::PerThread),
    ] {
        let clock = ManualClock::new();
        let pool = leak_pool(name, strategy, &clock);
        drop(pool.get().unwrap()); // a first checkout scans (nothing out) and sets the next scan
        never_return(pool.get().unwrap());
        clock.advance(Duration::from_secs(6));
        assert!(
            warnings(name).is_empty(),
            "{name}: nothing reports without a look"
        );
        drop(pool.get().unwrap());
        assert_eq!(
            warnings(name).len(),
            1,
            "{name}: the checkout's scan reported it"
        );
        assert_eq!(pool.stats().held_too_long, 1, "{name}");
    }
}

#[test]
fn an_exhausted_queue_names_the_guard_that_never_came_back() {
    let clock = ManualClock::new();
    let name = "leak-exhausted";
    let pool = leak_pool(name, queue(1, Duration::from_millis(20)), &clock);
    never_return(pool.get().unwrap());
    clock.advance(Duration::from_secs(6));
    assert!(matches!(pool.get(), Err(Error::PoolTimeout { .. })));
    assert_eq!(warnings(name).len(), 1, "reported before the wait");
    let stats = pool.stats();
    assert_eq!((stats.held_too_long, stats.timeouts), (1, 1));
}

#[test]
fn a_late_return_is_a_leak_counted_once_and_a_reported_guard_is_not_counted_again() {
    for (name, strategy) in [
        ("leak-late-queue", queue(2, Duration::from_secs(1))),
        ("leak-late-per-thread", Strategy::PerThread),
        ("leak-late-shared", Strategy::Shared),
    ] {
        let clock = ManualClock::new();
        let pool = leak_pool(name, strategy.clone(), &clock);
        let quick = pool.get().unwrap();
        clock.advance(Duration::from_secs(4));
        drop(quick);
        assert_eq!(pool.stats().leaks, 0, "{name}");
        let slow = pool.get().unwrap();
        clock.advance(Duration::from_secs(6));
        drop(slow);
        let stats = pool.stats();
        assert_eq!((stats.leaks, stats.held_too_long), (1, 0), "{name}");
        if strategy == Strategy::Shared {
            continue; // a Shared guard is only looked at when it comes back
        }
        // Found while out, then returned: one report, not two.
        let kept = pool.get().unwrap();
        clock.advance(Duration::from_secs(6));
        assert_eq!(pool.stats().held_too_long, 1, "{name}");
        drop(kept);
        let stats = pool.stats();
        assert_eq!((stats.leaks, stats.held_too_long), (1, 1), "{name}");
        assert_eq!(warnings(name).len(), 2, "{name}");
    }
}

#[test]
fn without_max_hold_nothing_is_tracked() {
    let clock = ManualClock::new();
    let config = PoolConfig::new("untracked", queue(2, Duration::from_secs(1)))
        .clock(Arc::new(clock.clone()));
    let pool = Pool::new(Numbers::default(), config).unwrap();
    never_return(pool.get().unwrap());
    let late = pool.get().unwrap();
    clock.advance(Duration::from_secs(3600));
    drop(late);
    let stats = pool.stats();
    assert_eq!((stats.leaks, stats.held_too_long), (0, 0));
}
