//! The stampede scene: many workers hammer one hot key whose value expires several times
//! during the run, first through a dogpile [`Region`] and then with the naive
//! "get → on miss create → set" pattern, printing creator calls and p99 latency for each
//! and a one-line verdict.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::dogpile::{Region, RegionBuilder};
use larder::memory::MemoryCache;
use larder::{Cache, Expiry};

/// How long the hot value stays fresh.
const TTL: Duration = Duration::from_millis(200);
/// How long creating the hot value takes (a slow query).
const CREATE_TIME: Duration = Duration::from_millis(50);
/// Pause between one worker's requests.
const THINK_TIME: Duration = Duration::from_millis(5);

/// What one phase measured.
struct Outcome {
    creator_calls: usize,
    p99: Duration,
    requests: usize,
}

/// The slow creator: counts its calls and takes [`CREATE_TIME`].
fn create(calls: &AtomicUsize) -> String {
    let n = calls.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(CREATE_TIME);
    format!("report #{n}")
}

/// Runs `request` on `workers` threads until `duration` passes; returns the sorted
/// latencies of every request.
fn hammer(
    workers: usize,
    duration: Duration,
    request: Arc<dyn Fn() -> Result<String, String> + Send + Sync>,
) -> Result<Vec<Duration>, String> {
    let deadline = Instant::now() + duration;
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let request = Arc::clone(&request);
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    request()?;
                    latencies.push(started.elapsed());
                    std::thread::sleep(THINK_TIME);
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        let latencies = handle
            .join()
            .map_err(|_| "a stampede worker panicked".to_string())??;
        all.extend(latencies);
    }
    all.sort_unstable();
    Ok(all)
}

fn p99(sorted: &[Duration]) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * 99).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The caches a stampede run stores into: the region's (over any backend; the scene sets
/// its expiration) and the naive run's (plain values).
pub struct StampedeCaches {
    /// The region run's region, on its backend.
    pub region: RegionBuilder<String>,
    /// Backs the run without a region.
    pub plain: Arc<dyn Cache<String>>,
}

/// The name of the stampede region (the prefix of its keys).
pub const REGION: &str = "stampede";

impl StampedeCaches {
    /// Two embedded memory caches (the region builds its own).
    pub fn memory() -> Self {
        Self {
            region: Region::builder(REGION, MemoryCache::builder().max_entries(1_000)),
            plain: Arc::new(MemoryCache::builder().max_entries(1_000).build()),
        }
    }
}

fn with_region(
    workers: usize,
    duration: Duration,
    region: RegionBuilder<String>,
) -> Result<Outcome, String> {
    let region = region.expiration(Some(TTL)).build();
    // A value left by an earlier run on a shared server would hide the first stampede.
    region.delete("hot").map_err(|err| err.to_string())?;
    let calls = Arc::new(AtomicUsize::new(0));
    let request = {
        let calls = Arc::clone(&calls);
        Arc::new(move || {
            let calls = Arc::clone(&calls);
            region
                .get_or_create("hot", move || Ok(create(&calls)))
                .map_err(|err| err.to_string())
        })
    };
    let latencies = hammer(workers, duration, request)?;
    Ok(Outcome {
        creator_calls: calls.load(Ordering::SeqCst),
        p99: p99(&latencies),
        requests: latencies.len(),
    })
}

fn without_region(
    workers: usize,
    duration: Duration,
    cache: Arc<dyn Cache<String>>,
) -> Result<Outcome, String> {
    cache.delete("hot").map_err(|err| err.to_string())?;
    let calls = Arc::new(AtomicUsize::new(0));
    let request = {
        let calls = Arc::clone(&calls);
        Arc::new(move || {
            if let Some(value) = cache.get("hot").map_err(|err| err.to_string())? {
                return Ok(value);
            }
            let value = create(&calls);
            cache
                .set("hot", value.clone(), Expiry::After(TTL))
                .map_err(|err| err.to_string())?;
            Ok(value)
        })
    };
    let latencies = hammer(workers, duration, request)?;
    Ok(Outcome {
        creator_calls: calls.load(Ordering::SeqCst),
        p99: p99(&latencies),
        requests: latencies.len(),
    })
}

fn report(label: &str, outcome: &Outcome) {
    println!(
        "{label:<15} creator calls: {:>5}   p99 latency: {:>7.2} ms   requests: {}",
        outcome.creator_calls,
        outcome.p99.as_secs_f64() * 1000.0,
        outcome.requests
    );
}

/// Runs the scene: `workers` threads on one hot key (200 ms TTL, 50 ms creator), half of
/// `duration` with a dogpile region and half without, printing `creator calls: N` and the
/// p99 latency of each, then a verdict.
pub fn run(workers: usize, duration: Duration, caches: StampedeCaches) -> Result<(), String> {
    if workers == 0 {
        return Err("stampede needs at least one worker".into());
    }
    if duration.is_zero() {
        return Err("stampede needs a non-zero duration".into());
    }
    let phase = duration / 2;
    println!(
        "stampede: {workers} workers, one hot key, TTL {} ms, creator {} ms, {:.1} s per run",
        TTL.as_millis(),
        CREATE_TIME.as_millis(),
        phase.as_secs_f64()
    );
    let with = with_region(workers, phase, caches.region)?;
    report("with region:", &with);
    let without = without_region(workers, phase, caches.plain)?;
    report("without region:", &without);
    let expiries = (phase.as_millis() / TTL.as_millis()).max(1);
    if with.creator_calls < without.creator_calls {
        println!(
            "verdict: the region ran the creator {} times (~1 per expiry, {expiries} expiries) \
             instead of {}, and cut p99 latency from {:.2} ms to {:.2} ms",
            with.creator_calls,
            without.creator_calls,
            without.p99.as_secs_f64() * 1000.0,
            with.p99.as_secs_f64() * 1000.0
        );
    } else {
        println!(
            "verdict: no stampede to prevent with {workers} worker(s): {} creator calls with \
             the region, {} without",
            with.creator_calls, without.creator_calls
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_picks_the_99th_percentile() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(p99(&ms), Duration::from_millis(99));
        assert_eq!(p99(&ms[..1]), Duration::from_millis(1));
        assert_eq!(p99(&[]), Duration::ZERO);
    }

    #[test]
    fn rejects_empty_runs() {
        assert!(run(0, Duration::from_secs(1), StampedeCaches::memory()).is_err());
        assert!(run(1, Duration::ZERO, StampedeCaches::memory()).is_err());
    }
}
