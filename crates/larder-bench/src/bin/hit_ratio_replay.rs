//! The Rust half of the hit-ratio suite (`bench/hit_ratio/run.py`): replays traces through
//! `MemoryCache`'s default configuration and prints one JSON object per job.
//!
//! `hit_ratio_replay JOBS` where each line of the file `JOBS` is
//! `<trace.oracleGeneral> <capacity> <entries|bytes>`. `LARDER_SHARDS=N` replaces the
//! default shard count (to see what sharding costs); `LARDER_SEED=N` replaces the fixed
//! hash seed (to see how much a figure owes to where the keys happened to fall).

use std::path::Path;
use std::process::ExitCode;

use larder_bench::replay::{cache_for, read_trace, replay, Bound, DEFAULT_SEED};

fn run(jobs: &str) -> Result<(), String> {
    let shards = match std::env::var("LARDER_SHARDS") {
        Ok(n) => Some(n.parse().map_err(|e| format!("LARDER_SHARDS={n:?}: {e}"))?),
        Err(_) => None,
    };
    let seed = match std::env::var("LARDER_SEED") {
        Ok(n) => n.parse().map_err(|e| format!("LARDER_SEED={n:?}: {e}"))?,
        Err(_) => DEFAULT_SEED,
    };
    let text = std::fs::read_to_string(jobs).map_err(|e| format!("{jobs}: {e}"))?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [path, capacity, unit] = fields[..] else {
            return Err(format!("bad job line {line:?}"));
        };
        let capacity: u64 = capacity
            .parse()
            .map_err(|e| format!("bad capacity in {line:?}: {e}"))?;
        let bound = match unit {
            "entries" => Bound::Entries(capacity as usize),
            "bytes" => Bound::Bytes(capacity),
            other => return Err(format!("unknown unit {other:?} in {line:?}")),
        };
        let requests = read_trace(Path::new(path)).map_err(|e| e.to_string())?;
        let cache = cache_for(bound, shards, seed);
        let start = std::time::Instant::now();
        let out = replay(&cache, &requests);
        println!(
            "{{\"trace\": {path:?}, \"capacity\": {capacity}, \"unit\": {unit:?}, \"shards\": {}, \
             \"requests\": {}, \"hits\": {}, \"bytes\": {}, \"bytes_hit\": {}, \"secs\": {:.3}}}",
            cache.shard_count(),
            out.requests,
            out.hits,
            out.bytes,
            out.bytes_hit,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(jobs) = std::env::args().nth(1) else {
        eprintln!("usage: hit_ratio_replay JOBS (lines: <trace> <capacity> <entries|bytes>)");
        return ExitCode::FAILURE;
    };
    match run(&jobs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hit_ratio_replay: {e}");
            ExitCode::FAILURE
        }
    }
}
