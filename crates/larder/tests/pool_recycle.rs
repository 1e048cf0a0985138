//! `Manager::recycle_after`: the idle time a pool hands its manager when it measures one
//! (a `Queue` with an idle timeout), on the injected clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::clock::ManualClock;
use larder::pool::{Manager, Pool, PoolConfig, QueueConfig, Strategy};

/// Records the idle time each recycle was told.
#[derive(Default)]
struct Recorder(Seen);

type Seen = Arc<Mutex<Vec<Option<Duration>>>>;

impl Manager for Recorder {
    type Object = u32;
    type Error = std::io::Error;

    fn create(&self) -> Result<u32, std::io::Error> {
        Ok(7)
    }

    fn recycle_after(&self, _obj: &mut u32, idle: Option<Duration>) -> Result<(), std::io::Error> {
        self.0.lock().unwrap().push(idle);
        Ok(())
    }
}

fn queue(idle_timeout: Option<Duration>) -> Strategy {
    let queue = QueueConfig::new(2).wait_timeout(Duration::from_millis(50));
    match idle_timeout {
        Some(limit) => queue.idle_timeout(limit).into(),
        None => queue.into(),
    }
}

fn pool(strategy: Strategy, clock: &ManualClock) -> (Pool<Recorder>, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = PoolConfig::new("recycle-after", strategy).clock(Arc::new(clock.clone()));
    (Pool::new(Recorder(seen.clone()), config).unwrap(), seen)
}

#[test]
fn a_queue_with_an_idle_timeout_tells_the_manager_how_long_the_object_sat() {
    let clock = ManualClock::new();
    let (pool, seen) = pool(queue(Some(Duration::from_secs(60))), &clock);
    drop(pool.get().unwrap()); // created: not recycled
    assert!(seen.lock().unwrap().is_empty());
    clock.advance(Duration::from_secs(7));
    drop(pool.get().unwrap());
    clock.advance(Duration::from_millis(1500));
    drop(pool.get().unwrap());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            Some(Duration::from_secs(7)),
            Some(Duration::from_millis(1500))
        ]
    );
    // Past the idle timeout the object is closed, not recycled, and a new one made.
    clock.advance(Duration::from_secs(61));
    drop(pool.get().unwrap());
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(pool.stats().created, 2);
}

#[test]
fn a_pool_that_measures_no_idle_time_says_so() {
    for strategy in [queue(None), Strategy::PerThread] {
        let clock = ManualClock::new();
        let (pool, seen) = pool(strategy, &clock);
        drop(pool.get().unwrap());
        clock.advance(Duration::from_secs(9));
        drop(pool.get().unwrap());
        assert_eq!(*seen.lock().unwrap(), [None]);
    }
}
