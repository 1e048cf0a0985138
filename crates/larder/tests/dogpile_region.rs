//! Region behaviour, every scenario on both faces ([`Region`] and `AsyncRegion`): one creator
//! per key under contention, stale values served while one caller regenerates,
//! invalidation, failing creators, lapsed distributed locks, multi-key creation, cached
//! functions, background regeneration and early expiration.

mod region_faces;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use larder::clock::ManualClock;
use larder::dogpile::{DistributedMutex, Invalidation, LocalMutex, LockStore, MemoryLockStore};
use larder::keys::{HashAlgorithm, KeyEncoder, KeyEncoding};
use larder::{Cache, Error, Result};
use region_faces::{memory, Face};

const HOUR: Duration = Duration::from_secs(3600);

fn region<F: Face>(clock: &ManualClock, expiration: Option<Duration>) -> F {
    F::build(
        F::builder("r", memory())
            .expiration(expiration)
            .clock(Arc::new(clock.clone())),
    )
}

/// A creator that counts its calls and takes ~80 ms.
fn slow_creator(
    calls: &Arc<AtomicUsize>,
    value: &str,
) -> impl FnOnce() -> Result<String> + Send + 'static {
    let calls = Arc::clone(calls);
    let value = value.to_owned();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(80));
        Ok(value)
    }
}

/// Runs `call` on `n` threads released together; their results in thread order.
fn on_threads<F: Face, T: Send + 'static>(
    region: &F,
    n: usize,
    call: impl Fn(F) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let call = Arc::new(call);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (region, barrier, call) = (region.clone(), barrier.clone(), call.clone());
            std::thread::spawn(move || {
                barrier.wait();
                call(region)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn cold_key_64_threads_one_creator_call<F: Face>() {
    let clock = ManualClock::new();
    let region: F = region(&clock, Some(HOUR));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let results = on_threads(&region, 64, move |r| {
        r.get_or_create("hot", slow_creator(&counted, "v1"))
    });
    for result in results {
        assert_eq!(result.unwrap(), "v1");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn expired_key_63_threads_get_the_stale_value_without_waiting<F: Face>() {
    let clock = ManualClock::new();
    let region: F = region(&clock, Some(Duration::from_secs(60)));
    region.set("hot", "old".to_owned()).unwrap();
    clock.advance(Duration::from_secs(61));

    let calls = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let stale_returned = Arc::new(AtomicUsize::new(0));
    let (c, d, s) = (calls.clone(), done.clone(), stale_returned.clone());
    let results = on_threads(&region, 64, move |region| {
        let (calls, done, stale_returned) = (c.clone(), d.clone(), s.clone());
        let creator = move || {
            calls.fetch_add(1, Ordering::SeqCst);
            // The creator finishes only after the 63 others have returned (or a generous
            // bound passes, in which case the assertions below fail).
            let give_up = Instant::now() + Duration::from_secs(20);
            while stale_returned.load(Ordering::SeqCst) < 63 && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
            done.store(true, Ordering::SeqCst);
            Ok("new".to_owned())
        };
        let value = region.get_or_create("hot", creator).unwrap();
        let creator_done_at_return = d.load(Ordering::SeqCst);
        if value == "old" {
            s.fetch_add(1, Ordering::SeqCst);
        }
        (value, creator_done_at_return)
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stale: Vec<_> = results.iter().filter(|(v, _)| v == "old").collect();
    assert_eq!(stale.len(), 63);
    assert!(
        stale.iter().all(|(_, done)| !done),
        "a caller waited for the creator"
    );
    assert_eq!(results.iter().filter(|(v, _)| v == "new").count(), 1);
    assert_eq!(region.get("hot").unwrap().as_deref(), Some("new"));
}

/// Starts a `get_or_create` on another thread whose creator blocks until the returned
/// sender is used; returns once the creator is running.
fn start_blocked_creator<F: Face>(
    region: &F,
    key: &'static str,
    value: &'static str,
    calls: &Arc<AtomicUsize>,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<String>) {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let region = region.clone();
    let calls = calls.clone();
    let handle = std::thread::spawn(move || {
        region
            .get_or_create(key, move || {
                calls.fetch_add(1, Ordering::SeqCst);
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(value.to_owned())
            })
            .unwrap()
    });
    entered_rx.recv().unwrap();
    (release_tx, handle)
}

fn soft_invalidation_serves_stale_while_one_regenerates<F: Face>() {
    let clock = ManualClock::new();
    let region: F = region(&clock, Some(HOUR));
    let calls = Arc::new(AtomicUsize::new(0));
    region.set("k", "v1".into()).unwrap();
    region.invalidate(Invalidation::Soft);
    assert_eq!(region.get("k").unwrap(), None, "get never serves stale");

    let (release, creator) = start_blocked_creator(&region, "k", "v2", &calls);
    // While the creator runs, other callers get the stale value immediately.
    let other = region
        .get_or_create("k", || panic!("second creator"))
        .unwrap();
    assert_eq!(other, "v1");
    release.send(()).unwrap();
    assert_eq!(creator.join().unwrap(), "v2");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(region.get("k").unwrap().as_deref(), Some("v2"));
}

fn hard_invalidation_makes_callers_wait_for_the_new_value<F: Face>() {
    let clock = ManualClock::new();
    let region: F = region(&clock, Some(HOUR));
    let calls = Arc::new(AtomicUsize::new(0));
    region.set("k", "v1".into()).unwrap();
    region.invalidate(Invalidation::Hard);
    assert_eq!(region.get("k").unwrap(), None);

    let (release, creator) = start_blocked_creator(&region, "k", "v2", &calls);
    let waiter = {
        let region = region.clone();
        std::thread::spawn(move || region.get_or_create("k", || Ok("v3".to_owned())).unwrap())
    };
    release.send(()).unwrap();
    assert_eq!(creator.join().unwrap(), "v2");
    assert_eq!(
        waiter.join().unwrap(),
        "v2",
        "a waiter never gets the old value"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn failing_creator_returns_its_error_and_the_next_call_retries<F: Face>() {
    let clock = ManualClock::new();
    let mutex = Arc::new(LocalMutex::new());
    let region = F::build(
        F::builder("r", memory())
            .clock(Arc::new(clock.clone()))
            .mutex(mutex.clone()),
    );
    let err = region
        .get_or_create("k", || Err(Error::user("database down")))
        .unwrap_err();
    assert!(err.to_string().contains("database down"), "{err}");
    assert_eq!(mutex.active_keys(), 0, "the lock is released");
    assert_eq!(region.get_or_create("k", || Ok("v".into())).unwrap(), "v");

    // Waiters of a failing creator retry: the first call fails, one waiter creates.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let results = on_threads(&region, 8, move |region| {
        let calls = counted.clone();
        region.get_or_create("k2", move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            if n == 0 {
                Err(Error::user("first attempt fails"))
            } else {
                Ok("second".to_owned())
            }
        })
    });
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .all(|v| v == "second"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

fn lapsed_distributed_lock_is_taken_over_after_its_ttl<F: Face>() {
    let clock = ManualClock::new();
    let store = MemoryLockStore::new(Arc::new(clock.clone()));
    // A holder that died: its entry stays until the lock TTL passes.
    assert!(store
        .try_acquire("lock:r:k", "dead-holder", Duration::from_secs(30))
        .unwrap());
    let region = F::build(
        F::builder("r", memory())
            .clock(Arc::new(clock.clone()))
            .mutex(Arc::new(DistributedMutex::new(
                store.clone(),
                Duration::from_secs(30),
            )))
            .lock_wait(Duration::from_millis(20)),
    );
    let err = region.get_or_create("k", || Ok("v".into())).unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    clock.advance(Duration::from_secs(31));
    assert_eq!(region.get_or_create("k", || Ok("v".into())).unwrap(), "v");
    assert_eq!(store.holder("lock:r:k"), None, "our lock was released");
}

fn distributed_mutex_gives_one_creator_among_threads<F: Face>() {
    let store = MemoryLockStore::default();
    let region = F::build(
        F::builder("d", memory()).mutex(Arc::new(DistributedMutex::new(
            store.clone(),
            Duration::from_secs(30),
        ))),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let results = on_threads(&region, 16, move |r| {
        r.get_or_create("hot", slow_creator(&counted, "v"))
    });
    for result in results {
        assert_eq!(result.unwrap(), "v");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.holder("lock:d:hot"), None);
}

fn multi_creates_all_missing_keys_in_one_call<F: Face>() {
    let clock = ManualClock::new();
    let region: F = region(&clock, Some(Duration::from_secs(10)));
    region.set("a", "A0".into()).unwrap();
    let calls = Mutex::new(Vec::<Vec<String>>::new());
    let mut make = |keys: &[&str]| {
        calls
            .lock()
            .unwrap()
            .push(keys.iter().map(|k| k.to_string()).collect());
        Ok(keys.iter().map(|k| k.to_uppercase()).collect())
    };
    let got = region
        .get_or_create_multi(&["a", "b", "c", "b"], &mut make)
        .unwrap();
    assert_eq!(got, ["A0", "B", "C", "B"]);
    assert_eq!(*calls.lock().unwrap(), [vec!["b", "c"]]);
    assert_eq!(
        region.get_or_create_multi(&["c", "b"], &mut make).unwrap(),
        ["C", "B"]
    );
    assert_eq!(calls.lock().unwrap().len(), 1, "all fresh: no creator call");

    clock.advance(Duration::from_secs(11));
    let got = region
        .get_or_create_multi(&["a", "b", "c"], &mut make)
        .unwrap();
    assert_eq!(got, ["A", "B", "C"]);
    assert_eq!(calls.lock().unwrap()[1], ["a", "b", "c"]);

    let err = region
        .get_or_create_multi(&["x", "y"], &mut |_| Ok(vec!["only one".to_string()]))
        .unwrap_err();
    assert!(err.to_string().contains("1 values for 2 keys"), "{err}");
}

fn per_call_expiration_should_cache_and_key_mangling<F: Face>() {
    let clock = ManualClock::new();
    let backend = memory();
    let region = F::build(
        F::builder("users", backend.clone())
            .expiration(Some(HOUR))
            .clock(Arc::new(clock.clone()))
            .should_cache(|v: &String| !v.is_empty()),
    );
    assert_eq!(region.mangle("42").unwrap(), "users:42");
    let five = Some(Some(Duration::from_secs(5)));
    region
        .get_or_create_expiring("42", five, Box::new(|| Ok("a".into())))
        .unwrap();
    assert!(Cache::get(&backend, "users:42").unwrap().is_some());
    clock.advance(Duration::from_secs(6));
    let v = region
        .get_or_create_expiring("42", five, Box::new(|| Ok("b".into())))
        .unwrap();
    assert_eq!(v, "b");
    // The region's own (1 h) expiration keeps "b" fresh.
    assert_eq!(region.get_or_create("42", || Ok("c".into())).unwrap(), "b");

    // should_cache: the empty value is returned but not stored.
    assert_eq!(
        region.get_or_create("empty", || Ok(String::new())).unwrap(),
        ""
    );
    assert!(Cache::get(&backend, "users:empty").unwrap().is_none());

    // A hashing mangler makes any key valid.
    let hashed =
        F::build(F::builder("h", backend.clone()).key_encoder(
            KeyEncoder::new(KeyEncoding::Hash(HashAlgorithm::Sha256)).with_prefix("h:"),
        ));
    let long = "key with spaces ".repeat(40);
    assert_eq!(hashed.get_or_create(&long, || Ok("x".into())).unwrap(), "x");
    assert_eq!(hashed.mangle(&long).unwrap().len(), 2 + 64);
    assert!(matches!(
        region.get("has space"),
        Err(Error::KeyInvalid { .. })
    ));
}

fn cached_function_call_get_invalidate_refresh_set<F: Face>() {
    let clock = ManualClock::new();
    let region: F = region(&clock, Some(HOUR));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let square = region.cached_fn(
        "square",
        Arc::new(move |n: u64| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok((n * n).to_string())
        }),
    );
    assert_eq!(square.get(3).unwrap(), None);
    assert_eq!(square.call(3).unwrap(), "9");
    assert_eq!(square.call(3).unwrap(), "9");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(square.get(3).unwrap().as_deref(), Some("9"));
    assert_eq!(square.key(3), "square:3");
    assert!(square.invalidate(3).unwrap());
    assert_eq!(square.call(3).unwrap(), "9");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    square.set(3, "nine".into()).unwrap();
    assert_eq!(square.call(3).unwrap(), "nine");
    assert_eq!(square.refresh(3).unwrap(), "9");
    assert_eq!(square.get(3).unwrap().as_deref(), Some("9"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(region.get("square:3").unwrap().as_deref(), Some("9"));
}

fn background_regeneration_returns_stale_at_once_and_holds_the_lock<F: Face>() {
    let clock = ManualClock::new();
    let region = F::build(
        F::builder("bg", memory())
            .expiration(Some(Duration::from_secs(10)))
            .clock(Arc::new(clock.clone()))
            .background_regeneration(1),
    );
    region.set("k", "old".into()).unwrap();
    region.set("k2", "old2".into()).unwrap();
    clock.advance(Duration::from_secs(11));

    let calls = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let counted = calls.clone();
    // The winner itself returns the stale value while its creator waits elsewhere.
    let got = region
        .get_or_create("k", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            release_rx.recv().unwrap();
            Ok("new".to_owned())
        })
        .unwrap();
    assert_eq!(got, "old");
    // The lock is still held by the background creator: others get stale, no second run.
    let other = region
        .get_or_create("k", || panic!("second creator"))
        .unwrap();
    assert_eq!(other, "old");
    // The one worker is busy: the winner on another key regenerates inline (and still
    // serves the stale value).
    let got = region.get_or_create("k2", || Ok("new2".into())).unwrap();
    assert_eq!(got, "old2");
    assert_eq!(region.get("k2").unwrap().as_deref(), Some("new2"));
    release_tx.send(()).unwrap();
    // Waits for the background worker (a thread or a task), not for the clock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while region.get("k").unwrap().as_deref() != Some("new") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(region.get("k").unwrap().as_deref(), Some("new"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Warnings logged so far that mention `needle`.
fn warnings_about(needle: &str) -> Vec<String> {
    larder_testing::log::warnings(|w| w.contains(needle))
}

fn a_background_creator_that_panics_is_reported_and_frees_its_lock<F: Face>() {
    // Each face logs under its own key, as the faces' tests share one logger.
    let key = format!("panics-{}", std::any::type_name::<F>().replace(':', "_"));
    warnings_about(&key);
    let clock = ManualClock::new();
    let region = F::build(
        F::builder("bgp", memory())
            .expiration(Some(Duration::from_secs(10)))
            .clock(Arc::new(clock.clone()))
            .background_regeneration(1),
    );
    region.set(&key, "old".into()).unwrap();
    clock.advance(Duration::from_secs(11));
    let got = region
        .get_or_create(&key, || panic!("creator blew up"))
        .unwrap();
    assert_eq!(got, "old");
    // The panic is logged with its message, and frees the lock and the one worker: a later
    // caller regenerates (waiting for the background worker, not for the clock).
    let deadline = Instant::now() + Duration::from_secs(10);
    while warnings_about(&key).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let logged = warnings_about(&key);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].contains("panicked") && logged[0].contains("creator blew up"),
        "{logged:?}"
    );
    let calls = Arc::new(AtomicUsize::new(0));
    while region.get(&key).unwrap().as_deref() != Some("new") && Instant::now() < deadline {
        let counted = calls.clone();
        let _ = region.get_or_create(&key, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok("new".to_owned())
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(region.get(&key).unwrap().as_deref(), Some("new"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn early_expiration_refreshes_before_expiry_but_not_long_before<F: Face>() {
    let clock = ManualClock::new();
    let region = F::build(
        F::builder("xf", memory())
            .expiration(Some(Duration::from_secs(10)))
            .clock(Arc::new(clock.clone()))
            .early_expiration(1.0, 7),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    // A creator that "takes" 1 s of clock time: delta = 1000 ms.
    let creator = |clock: &ManualClock, calls: &Arc<AtomicUsize>| {
        let (clock, calls) = (clock.clone(), calls.clone());
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            clock.advance(Duration::from_secs(1));
            Ok("v".to_owned())
        }
    };
    region.get_or_create("k", creator(&clock, &calls)).unwrap();
    // 8 s before expiry, P(refresh) = e^-8 per call: with this seed, none of 100 calls.
    clock.advance(Duration::from_secs(2));
    for _ in 0..100 {
        region.get_or_create("k", creator(&clock, &calls)).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // 100 ms before expiry, P(refresh) = e^-0.1 ≈ 0.9 per call: refreshed early.
    clock.advance(Duration::from_millis(7_900));
    // Plain reads never draw early expiration: the value is still fresh.
    for _ in 0..50 {
        assert_eq!(region.get("k").unwrap().as_deref(), Some("v"));
    }
    for _ in 0..10 {
        region.get_or_create("k", creator(&clock, &calls)).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

on_both_faces!(
    cold_key_64_threads_one_creator_call,
    expired_key_63_threads_get_the_stale_value_without_waiting,
    soft_invalidation_serves_stale_while_one_regenerates,
    hard_invalidation_makes_callers_wait_for_the_new_value,
    failing_creator_returns_its_error_and_the_next_call_retries,
    lapsed_distributed_lock_is_taken_over_after_its_ttl,
    distributed_mutex_gives_one_creator_among_threads,
    multi_creates_all_missing_keys_in_one_call,
    cached_function_call_get_invalidate_refresh_set,
    background_regeneration_returns_stale_at_once_and_holds_the_lock,
    a_background_creator_that_panics_is_reported_and_frees_its_lock,
    early_expiration_refreshes_before_expiry_but_not_long_before;
    shared backend only: per_call_expiration_should_cache_and_key_mangling,
);

/// The async face's own check of a panicking background creator: the scenario above runs
/// creators on the blocking pool, which turns a panic into an error before the region sees it.
#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_background_creator_that_panics_is_reported() {
    use larder::dogpile::AsyncRegion;
    let key = "async-creator-panics";
    warnings_about(key);
    let clock = ManualClock::new();
    let region: AsyncRegion<String> = AsyncRegion::builder("bgp", memory())
        .expiration(Some(Duration::from_secs(10)))
        .clock(Arc::new(clock.clone()))
        .background_regeneration(1)
        .build();
    region.set(key, "old".into()).await.unwrap();
    clock.advance(Duration::from_secs(11));
    let got = region
        .get_or_create(key, || async { panic!("async creator blew up") })
        .await
        .unwrap();
    assert_eq!(got, "old");
    let deadline = Instant::now() + Duration::from_secs(10);
    while warnings_about(key).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let logged = warnings_about(key);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("async creator blew up"), "{logged:?}");
}
