//! Dogpile behaviour: one creator per key under contention, stale values served while one
//! caller regenerates, file locks across processes, invalidation, failing creators, lapsed
//! distributed locks, multi-key creation, cached functions, background regeneration and
//! early expiration.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use larder::clock::{Clock, ManualClock};
use larder::dogpile::{
    CachedValue, DistributedMutex, FileMutex, Invalidation, KeyedMutex, LocalMutex, Lock,
    LockStore, MemoryLockStore, Region, Retrieval,
};
use larder::keys::{HashAlgorithm, KeyEncoder, KeyEncoding};
use larder::memory::MemoryCache;
use larder::{Cache, Error, Result};

type Backend = Arc<dyn Cache<CachedValue<String>>>;

fn backend() -> Backend {
    Arc::new(MemoryCache::builder().max_entries(10_000).build())
}

fn region(clock: &ManualClock, expiration: Option<Duration>) -> Region<String> {
    Region::builder("r", backend())
        .expiration(expiration)
        .clock(Arc::new(clock.clone()))
        .build()
}

const HOUR: Duration = Duration::from_secs(3600);

/// A creator that counts its calls and takes ~80 ms.
fn slow_creator(calls: &Arc<AtomicUsize>, value: &str) -> impl FnOnce() -> Result<String> {
    let calls = Arc::clone(calls);
    let value = value.to_owned();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(80));
        Ok(value)
    }
}

#[test]
fn cold_key_64_threads_one_creator_call() {
    let clock = ManualClock::new();
    let region = region(&clock, Some(HOUR));
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (region, calls, barrier) = (region.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                region.get_or_create("hot", slow_creator(&calls, "v1"))
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), "v1");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn expired_key_63_threads_get_the_stale_value_without_waiting() {
    let clock = ManualClock::new();
    let region = region(&clock, Some(Duration::from_secs(60)));
    region.set("hot", "old".to_owned()).unwrap();
    clock.advance(Duration::from_secs(61));

    let calls = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let stale_returned = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let region = region.clone();
            let (calls, done, stale_returned, barrier) = (
                calls.clone(),
                done.clone(),
                stale_returned.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                let creator = {
                    let (calls, done, stale_returned) =
                        (calls.clone(), done.clone(), stale_returned.clone());
                    move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // The creator finishes only after the 63 others have returned (or a
                        // generous bound passes, in which case the assertions below fail).
                        let give_up = Instant::now() + Duration::from_secs(20);
                        while stale_returned.load(Ordering::SeqCst) < 63 && Instant::now() < give_up
                        {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        done.store(true, Ordering::SeqCst);
                        Ok("new".to_owned())
                    }
                };
                let value = region.get_or_create("hot", creator).unwrap();
                let creator_done_at_return = done.load(Ordering::SeqCst);
                if value == "old" {
                    stale_returned.fetch_add(1, Ordering::SeqCst);
                }
                (value, creator_done_at_return)
            })
        })
        .collect();
    let results: Vec<(String, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
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

// ---- file lock across processes -------------------------------------------------------

const CHILD_ENV: &str = "LARDER_DOGPILE_FILE_LOCK_DIR";

fn read_value(dir: &Path) -> Retrieval<String> {
    match std::fs::read_to_string(dir.join("value")) {
        Ok(v) => Retrieval::Value {
            value: v,
            created_at: Duration::ZERO,
        },
        Err(_) => Retrieval::NeedRegeneration,
    }
}

/// Child mode of `four_processes_share_a_file_lock`: does nothing unless started by it.
#[test]
fn file_lock_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let mutex = FileMutex::new(dir.join("locks")).unwrap();
    let lock = Lock::new(&mutex).wait(Duration::from_secs(20));
    let value = lock
        .get(
            "shared-key",
            || {
                let mut log = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("calls"))
                    .unwrap();
                writeln!(log, "{}", std::process::id()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                std::fs::write(dir.join("value.tmp"), "made").unwrap();
                std::fs::rename(dir.join("value.tmp"), dir.join("value")).unwrap();
                Ok(("made".to_owned(), Duration::ZERO))
            },
            || Ok(read_value(&dir)),
        )
        .unwrap();
    assert_eq!(value, "made");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "larder-{name}-{}-{}",
        std::process::id(),
        larder::clock::SystemClock.unix_time().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn four_processes_share_a_file_lock() {
    let dir = temp_dir("flock");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "file_lock_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &dir)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
    assert_eq!(calls.lines().count(), 1, "creator calls: {calls:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_mutex_excludes_threads_and_times_out() {
    let dir = temp_dir("fmutex");
    let mutex = FileMutex::new(&dir).unwrap();
    let guard = mutex.try_acquire("k").unwrap().unwrap();
    assert!(mutex.try_acquire("k").unwrap().is_none());
    assert!(mutex.try_acquire("other").unwrap().is_some());
    let err = mutex.acquire("k", Duration::from_millis(20)).unwrap_err();
    assert!(
        matches!(err, Error::LockTimeout { ref key, .. } if key == "k"),
        "{err}"
    );
    guard.release().unwrap();
    assert!(mutex.try_acquire("k").unwrap().is_some());
    assert!(mutex.path_for("k").starts_with(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- in-process mutex ---------------------------------------------------------------------

#[test]
fn local_mutex_is_per_key_and_forgets_idle_keys() {
    let mutex = LocalMutex::new();
    let a = mutex.acquire("a", Duration::from_secs(1)).unwrap();
    assert!(mutex.try_acquire("a").unwrap().is_none());
    let b = mutex
        .try_acquire("b")
        .unwrap()
        .expect("other keys are free");
    assert!(matches!(
        mutex.acquire("a", Duration::from_millis(10)),
        Err(Error::LockTimeout { .. })
    ));
    assert_eq!(mutex.active_keys(), 2);
    drop(b);
    assert_eq!(mutex.active_keys(), 1);

    // A waiter gets the lock when the holder lets go.
    let waiter = {
        let mutex = mutex.clone();
        std::thread::spawn(move || mutex.acquire("a", Duration::from_secs(10)).map(drop))
    };
    std::thread::sleep(Duration::from_millis(20));
    drop(a);
    waiter.join().unwrap().unwrap();
    assert_eq!(mutex.active_keys(), 0);
}

// ---- invalidation ---------------------------------------------------------------------

/// Starts a `get_or_create` on another thread whose creator blocks until the returned
/// sender is used; returns once the creator is running.
fn start_blocked_creator(
    region: &Region<String>,
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

#[test]
fn soft_invalidation_serves_stale_while_one_regenerates() {
    let clock = ManualClock::new();
    let region = region(&clock, Some(HOUR));
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

#[test]
fn hard_invalidation_makes_callers_wait_for_the_new_value() {
    let clock = ManualClock::new();
    let region = region(&clock, Some(HOUR));
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

// ---- failures -----------------------------------------------------------------------------

#[test]
fn failing_creator_returns_its_error_and_the_next_call_retries() {
    let clock = ManualClock::new();
    let mutex = Arc::new(LocalMutex::new());
    let region = Region::builder("r", backend())
        .clock(Arc::new(clock.clone()))
        .mutex(mutex.clone())
        .build();
    let err = region
        .get_or_create("k", || Err(Error::user("database down")))
        .unwrap_err();
    assert!(err.to_string().contains("database down"), "{err}");
    assert_eq!(mutex.active_keys(), 0, "the lock is released");
    assert_eq!(region.get_or_create("k", || Ok("v".into())).unwrap(), "v");

    // Waiters of a failing creator retry: the first call fails, one waiter creates.
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (region, calls, barrier) = (region.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                region.get_or_create("k2", move || {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    if n == 0 {
                        Err(Error::user("first attempt fails"))
                    } else {
                        Ok("second".to_owned())
                    }
                })
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .all(|v| v == "second"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn lapsed_distributed_lock_is_taken_over_after_its_ttl() {
    let clock = ManualClock::new();
    let store = MemoryLockStore::new(Arc::new(clock.clone()));
    // A holder that died: its entry stays until the lock TTL passes.
    assert!(store
        .try_acquire("lock:r:k", "dead-holder", Duration::from_secs(30))
        .unwrap());
    let region = Region::builder("r", backend())
        .clock(Arc::new(clock.clone()))
        .mutex(Arc::new(DistributedMutex::new(
            store.clone(),
            Duration::from_secs(30),
        )))
        .lock_wait(Duration::from_millis(20))
        .build();
    let err = region.get_or_create("k", || Ok("v".into())).unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    clock.advance(Duration::from_secs(31));
    assert_eq!(region.get_or_create("k", || Ok("v".into())).unwrap(), "v");
    assert_eq!(store.holder("lock:r:k"), None, "our lock was released");
}

#[test]
fn distributed_mutex_gives_one_creator_among_threads() {
    let store = MemoryLockStore::default();
    let region = Region::builder("d", backend())
        .mutex(Arc::new(DistributedMutex::new(
            store.clone(),
            Duration::from_secs(30),
        )))
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (region, calls, barrier) = (region.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                region.get_or_create("hot", slow_creator(&calls, "v"))
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), "v");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.holder("lock:d:hot"), None);
}

#[test]
fn distributed_release_never_frees_someone_elses_lock() {
    let clock = ManualClock::new();
    let store = MemoryLockStore::new(Arc::new(clock.clone()));
    let mutex = DistributedMutex::new(store.clone(), Duration::from_secs(5));
    let late = mutex.try_acquire("k").unwrap().unwrap();
    assert!(mutex.try_acquire("k").unwrap().is_none());
    clock.advance(Duration::from_secs(6));
    let current = mutex.try_acquire("k").unwrap().unwrap();
    let holder = store.holder("lock:k").unwrap();
    late.release().unwrap();
    assert_eq!(
        store.holder("lock:k"),
        Some(holder),
        "still held by the new owner"
    );
    drop(current);
    assert_eq!(store.holder("lock:k"), None);
}

// ---- region features ---------------------------------------------------------------------

#[test]
fn multi_creates_all_missing_keys_in_one_call() {
    let clock = ManualClock::new();
    let region = region(&clock, Some(Duration::from_secs(10)));
    region.set("a", "A0".into()).unwrap();
    let calls = Mutex::new(Vec::<Vec<String>>::new());
    let make = |keys: &[&str]| {
        calls
            .lock()
            .unwrap()
            .push(keys.iter().map(|k| k.to_string()).collect());
        Ok(keys.iter().map(|k| k.to_uppercase()).collect())
    };
    let got = region.get_or_create_multi(&["a", "b", "c"], make).unwrap();
    assert_eq!(got, ["A0", "B", "C"]);
    assert_eq!(*calls.lock().unwrap(), [vec!["b", "c"]]);
    assert_eq!(
        region.get_or_create_multi(&["c", "b"], make).unwrap(),
        ["C", "B"]
    );
    assert_eq!(calls.lock().unwrap().len(), 1, "all fresh: no creator call");

    clock.advance(Duration::from_secs(11));
    let got = region.get_or_create_multi(&["a", "b", "c"], make).unwrap();
    assert_eq!(got, ["A", "B", "C"]);
    assert_eq!(calls.lock().unwrap()[1], ["a", "b", "c"]);

    let err = region
        .get_or_create_multi(&["x", "y"], |_| Ok(vec!["only one".to_string()]))
        .unwrap_err();
    assert!(err.to_string().contains("1 values for 2 keys"), "{err}");
}

#[test]
fn per_call_expiration_should_cache_and_key_mangling() {
    let clock = ManualClock::new();
    let backend = backend();
    let region = Region::builder("users", backend.clone())
        .expiration(Some(HOUR))
        .clock(Arc::new(clock.clone()))
        .should_cache(|v: &String| !v.is_empty())
        .build();
    assert_eq!(region.mangle("42").unwrap(), "users:42");
    region
        .get_or_create_expiring("42", Some(Duration::from_secs(5)), || Ok("a".into()))
        .unwrap();
    assert!(backend.get("users:42").unwrap().is_some());
    clock.advance(Duration::from_secs(6));
    let v = region
        .get_or_create_expiring("42", Some(Duration::from_secs(5)), || Ok("b".into()))
        .unwrap();
    assert_eq!(v, "b");
    // The region's own (1 h) expiration keeps "b" fresh.
    assert_eq!(region.get_or_create("42", || Ok("c".into())).unwrap(), "b");

    // should_cache: the empty value is returned but not stored.
    assert_eq!(
        region.get_or_create("empty", || Ok(String::new())).unwrap(),
        ""
    );
    assert!(backend.get("users:empty").unwrap().is_none());

    // A hashing mangler makes any key valid.
    let hashed = Region::builder("h", backend.clone())
        .key_encoder(KeyEncoder::new(KeyEncoding::Hash(HashAlgorithm::Sha256)).with_prefix("h:"))
        .build();
    let long = "key with spaces ".repeat(40);
    assert_eq!(hashed.get_or_create(&long, || Ok("x".into())).unwrap(), "x");
    assert_eq!(hashed.mangle(&long).unwrap().len(), 2 + 64);
    assert!(matches!(
        region.get("has space"),
        Err(Error::KeyInvalid { .. })
    ));
}

#[test]
fn cached_function_call_get_invalidate_refresh_set() {
    let clock = ManualClock::new();
    let region = region(&clock, Some(HOUR));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let square = region.cached_fn("square", move |n: &u64| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok((n * n).to_string())
    });
    assert_eq!(square.get(&3).unwrap(), None);
    assert_eq!(square.call(&3).unwrap(), "9");
    assert_eq!(square.call(&3).unwrap(), "9");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(square.get(&3).unwrap().as_deref(), Some("9"));
    assert_eq!(square.key(&3), "square:3");
    assert!(square.invalidate(&3).unwrap());
    assert_eq!(square.call(&3).unwrap(), "9");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    square.set(&3, "nine".into()).unwrap();
    assert_eq!(square.call(&3).unwrap(), "nine");
    assert_eq!(square.refresh(&3).unwrap(), "9");
    assert_eq!(square.get(&3).unwrap().as_deref(), Some("9"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Arguments whose Debug form is not a valid key are hashed.
    let concat = region.cached_fn("concat", |(a, b): &(String, String)| Ok(format!("{a}{b}")));
    let args = ("a b".to_string(), "c".to_string());
    assert!(concat.key(&args).starts_with("concat:#"));
    assert_eq!(concat.call(&args).unwrap(), "a bc");
}

#[test]
fn background_regeneration_returns_stale_at_once_and_holds_the_lock() {
    let clock = ManualClock::new();
    let region = Region::builder("bg", backend())
        .expiration(Some(Duration::from_secs(10)))
        .clock(Arc::new(clock.clone()))
        .background_regeneration(1)
        .build();
    region.set("k", "old".into()).unwrap();
    region.set("k2", "old2".into()).unwrap();
    clock.advance(Duration::from_secs(11));

    let calls = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let counted = calls.clone();
    // The winner itself returns the stale value while its creator waits on another thread.
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while region.get("k").unwrap().as_deref() != Some("new") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(region.get("k").unwrap().as_deref(), Some("new"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn early_expiration_refreshes_before_expiry_but_not_long_before() {
    let clock = ManualClock::new();
    let region = Region::builder("xf", backend())
        .expiration(Some(Duration::from_secs(10)))
        .clock(Arc::new(clock.clone()))
        .early_expiration(1.0, 7)
        .build();
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

// ---- async -----------------------------------------------------------------------------------

#[cfg(feature = "tokio")]
mod async_region {
    use super::*;
    use larder::dogpile::AsyncRegion;
    use larder::AsyncCache;

    fn async_region(clock: &ManualClock, expiration: Option<Duration>) -> AsyncRegion<String> {
        let backend: Arc<dyn AsyncCache<CachedValue<String>>> =
            Arc::new(MemoryCache::builder().max_entries(10_000).build());
        AsyncRegion::builder("a", backend)
            .expiration(expiration)
            .clock(Arc::new(clock.clone()))
            .build()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn single_flight_64_tasks_one_creator_call() {
        let clock = ManualClock::new();
        let region = async_region(&clock, Some(HOUR));
        let calls = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (region, calls, barrier) = (region.clone(), calls.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    region
                        .get_or_create("hot", || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok("v".to_owned())
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "v");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(region.flights_in_progress(), 0);
        assert_eq!(region.get("hot").await.unwrap().as_deref(), Some("v"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_value_is_served_stale_while_one_task_regenerates() {
        let clock = ManualClock::new();
        let region = async_region(&clock, Some(Duration::from_secs(10)));
        region.set("k", "old".into()).await.unwrap();
        clock.advance(Duration::from_secs(11));
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let creator = {
            let region = region.clone();
            tokio::spawn(async move {
                region
                    .get_or_create("k", || async move {
                        entered_tx.send(()).unwrap();
                        release_rx.await.unwrap();
                        Ok("new".to_owned())
                    })
                    .await
            })
        };
        entered_rx.await.unwrap();
        for _ in 0..10 {
            let got = region
                .get_or_create("k", || async { panic!("second creator") })
                .await
                .unwrap();
            assert_eq!(got, "old");
        }
        release_tx.send(()).unwrap();
        assert_eq!(creator.await.unwrap().unwrap(), "new");
        assert_eq!(region.get("k").await.unwrap().as_deref(), Some("new"));
        region.invalidate(Invalidation::Hard);
        assert_eq!(region.get("k").await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_creator_reaches_its_task_and_the_next_call_retries() {
        let clock = ManualClock::new();
        let region = async_region(&clock, None);
        let err = region
            .get_or_create("k", || async { Err(Error::user("upstream 503")) })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("upstream 503"), "{err}");
        assert_eq!(region.flights_in_progress(), 0);
        let got = region
            .get_or_create("k", || async { Ok("ok".to_owned()) })
            .await
            .unwrap();
        assert_eq!(got, "ok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cross_process_lock_is_respected_and_lapses() {
        let clock = ManualClock::new();
        let store = MemoryLockStore::new(Arc::new(clock.clone()));
        assert!(store
            .try_acquire("lock:a:k", "other-process", Duration::from_secs(30))
            .unwrap());
        let backend: Arc<dyn AsyncCache<CachedValue<String>>> =
            Arc::new(MemoryCache::builder().max_entries(10_000).build());
        let region = AsyncRegion::builder("a", backend)
            .clock(Arc::new(clock.clone()))
            .lock_wait(Duration::from_millis(20))
            .cross_process_mutex(Arc::new(DistributedMutex::new(
                store.clone(),
                Duration::from_secs(30),
            )))
            .build();
        let err = region
            .get_or_create("k", || async { Ok("v".to_owned()) })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
        clock.advance(Duration::from_secs(31));
        let got = region
            .get_or_create("k", || async { Ok("v".to_owned()) })
            .await
            .unwrap();
        assert_eq!(got, "v");
        assert_eq!(store.holder("lock:a:k"), None);
    }
}
