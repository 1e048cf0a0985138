//! The dogpile lock and mutexes: file locks across processes, the in-process and
//! distributed mutexes, and the async region's own single flight on tokio tasks. Region
//! scenarios on both faces are in `dogpile_region.rs`; backends in `dogpile_backends.rs`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use larder::clock::{Clock, ManualClock};
use larder::dogpile::{
    DistributedMutex, FileMutex, KeyedMutex, LocalMutex, Lock, Lookup, MemoryLockStore,
};
use larder::Error;

// ---- file lock across processes -------------------------------------------------------

const CHILD_ENV: &str = "LARDER_DOGPILE_FILE_LOCK_DIR";

fn read_value(dir: &Path) -> Lookup<String> {
    match std::fs::read_to_string(dir.join("value")) {
        Ok(v) => Lookup::Value {
            value: v,
            created_at: Duration::ZERO,
        },
        Err(_) => Lookup::NeedRegeneration,
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
                Ok("made".to_owned())
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

// ---- distributed mutex -----------------------------------------------------------------

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

// ---- the lock itself ----------------------------------------------------------------------

/// A value and its creation time in a cell, read by a retriever.
type Stored = std::sync::Mutex<Option<(String, Duration)>>;

fn retrieve(stored: &Stored) -> larder::Result<Lookup<String>> {
    Ok(match stored.lock().unwrap().clone() {
        Some((value, created_at)) => Lookup::Value { value, created_at },
        None => Lookup::NeedRegeneration,
    })
}

#[test]
fn lock_serves_stale_while_the_holder_regenerates_and_retries_after_an_error() {
    let clock = ManualClock::new();
    let mutex = LocalMutex::new();
    let lock = Lock::new(&mutex)
        .expiration(Some(Duration::from_secs(10)))
        .clock(Arc::new(clock.clone()));
    let stored = Arc::new(Stored::new(Some(("old".into(), clock.unix_time()))));
    clock.advance(Duration::from_secs(10));
    assert!(lock.is_expired(stored.lock().unwrap().as_ref().unwrap().1));

    // Someone else holds the key: the stale value comes back at once.
    let held = mutex.try_acquire("k").unwrap().unwrap();
    let got = lock.get("k", || panic!("must not create"), || retrieve(&stored));
    assert_eq!(got.unwrap(), "old");
    drop(held);

    // The holder's creator fails: its error comes back and the mutex is free again.
    let err = lock
        .get("k", || Err(Error::user("no")), || retrieve(&stored))
        .unwrap_err();
    assert!(err.to_string().contains("no"), "{err}");
    assert_eq!(mutex.active_keys(), 0);
    let made = lock.get(
        "k",
        || {
            *stored.lock().unwrap() = Some(("new".into(), clock.unix_time()));
            Ok("new".to_owned())
        },
        || retrieve(&stored),
    );
    assert_eq!(made.unwrap(), "new");
}

#[test]
fn lock_get_or_spawn_hands_the_creator_and_the_held_guard_to_the_background() {
    let clock = ManualClock::new();
    let mutex = LocalMutex::new();
    let lock = Lock::new(&mutex)
        .expiration(Some(Duration::from_secs(10)))
        .clock(Arc::new(clock.clone()));
    let stored = Arc::new(Stored::new(Some(("old".into(), clock.unix_time()))));
    clock.advance(Duration::from_secs(11));
    let (done_tx, done_rx) = mpsc::channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let (counted, into_cell, now) = (calls.clone(), stored.clone(), clock.unix_time());
    let got = lock.get_or_spawn(
        "k",
        move || {
            counted.fetch_add(1, Ordering::SeqCst);
            *into_cell.lock().unwrap() = Some(("new".into(), now));
            Ok("new".to_owned())
        },
        || retrieve(&stored),
        |creator, guard| {
            std::thread::spawn(move || {
                let made = creator();
                drop(guard);
                done_tx.send(made).unwrap();
            });
        },
    );
    assert_eq!(got.unwrap(), "old", "the winner serves stale at once");
    assert_eq!(done_rx.recv().unwrap().unwrap(), "new");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(mutex.active_keys(), 0, "the background released the lock");
    let fresh = lock.get_or_spawn("k", || panic!("fresh"), || retrieve(&stored), |_, _| {});
    assert_eq!(fresh.unwrap(), "new");
}

// ---- async -----------------------------------------------------------------------------------

#[cfg(feature = "tokio")]
mod async_region {
    use super::*;
    use larder::dogpile::{AsyncRegion, CachedValue, Invalidation};
    use larder::memory::MemoryCache;

    const HOUR: Duration = Duration::from_secs(3600);

    fn async_region(clock: &ManualClock, expiration: Option<Duration>) -> AsyncRegion<String> {
        let backend = MemoryCache::<CachedValue<String>>::new(10_000);
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
    async fn a_task_that_gives_up_waiting_leaves_no_flight_behind() {
        let clock = ManualClock::new();
        let region = async_region(&clock, None);
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let creator = {
            let region = region.clone();
            tokio::spawn(async move {
                region
                    .get_or_create("k", || async move {
                        entered_tx.send(()).unwrap();
                        release_rx.await.unwrap();
                        Ok("v".to_owned())
                    })
                    .await
            })
        };
        entered_rx.await.unwrap();
        // A waiter dropped mid-wait (its caller's own timeout) and one that runs into the
        // region's lock_wait both leave the key's flight.
        let waiter = region.get_or_create("k", || async { panic!("second creator") });
        assert!(tokio::time::timeout(Duration::from_millis(20), waiter)
            .await
            .is_err());
        assert_eq!(region.flights_in_progress(), 1, "the creator still flies");
        release_tx.send(()).unwrap();
        assert_eq!(creator.await.unwrap().unwrap(), "v");
        assert_eq!(region.flights_in_progress(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_async_multi_creator_gets_owned_keys() {
        // The async multi creator gets owned keys, so its future may hold them.
        let clock = ManualClock::new();
        let region = async_region(&clock, None);
        let got = region
            .get_or_create_multi(&["x", "y"], |keys| async move {
                tokio::task::yield_now().await;
                Ok(keys.iter().map(|k| format!("{k}!")).collect())
            })
            .await
            .unwrap();
        assert_eq!(got, ["x!", "y!"]);
        assert_eq!(region.flights_in_progress(), 0);
    }

    /// Polls `f` to completion on this thread, outside any tokio runtime.
    fn poll_here<F: std::future::Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    #[test]
    fn outside_a_tokio_runtime_it_regenerates_inline_and_errs_instead_of_panicking() {
        let clock = ManualClock::new();
        let region = AsyncRegion::builder("o", MemoryCache::<CachedValue<String>>::new(10))
            .expiration(Some(Duration::from_secs(10)))
            .clock(Arc::new(clock.clone()))
            .background_regeneration(1)
            .build();
        poll_here(region.set("k", "old".into())).unwrap();
        clock.advance(Duration::from_secs(11));
        let got = poll_here(region.get_or_create("k", || async { Ok("new".to_owned()) }));
        assert_eq!(
            got.unwrap(),
            "old",
            "the stale value, served as with a runtime"
        );
        assert_eq!(poll_here(region.get("k")).unwrap().as_deref(), Some("new"));

        // Waiting for a creator (a missing key) and the shared mutex need the runtime.
        let err = poll_here(region.get_or_create("k2", || async { Ok("v".to_owned()) }));
        assert!(err.unwrap_err().to_string().contains("tokio runtime"));
        let shared = AsyncRegion::builder("o", MemoryCache::<CachedValue<String>>::new(10))
            .mutex(Arc::new(LocalMutex::new()))
            .clock(Arc::new(clock.clone()))
            .expiration(Some(Duration::from_secs(10)))
            .build();
        poll_here(shared.set("k", "old".into())).unwrap();
        clock.advance(Duration::from_secs(11));
        let err = poll_here(shared.get_or_create("k", || async { Ok("v".to_owned()) }));
        assert!(err.unwrap_err().to_string().contains("tokio runtime"));
    }
}
