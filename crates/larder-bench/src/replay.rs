//! Replays a request trace through `MemoryCache` as a look-aside cache (get; on a miss,
//! set) and counts object and byte hits: the Rust half of the hit-ratio suite in
//! `bench/hit_ratio/` (its Python half runs libCacheSim's reference policies on the same file).
//!
//! Traces are in libCacheSim's `oracleGeneral` binary format, which both sides read: one
//! 24-byte little-endian record per request (`u32` timestamp, `u64` object id, `u32` object
//! size, `i64` index of the object's next request or -1), so Belady's optimum can run on the
//! same file.

use std::fmt::Write as _;
use std::path::Path;

use larder::memory::MemoryCache;
use larder::{Cache, Expiry};

/// Bytes of one `oracleGeneral` record.
pub const RECORD_BYTES: usize = 24;

/// One request of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The object requested.
    pub id: u64,
    /// Its size in bytes (1 in the unweighted traces).
    pub size: u32,
}

/// Parses an `oracleGeneral` trace; `None` when its length is not a whole number of records.
pub fn parse_oracle_general(bytes: &[u8]) -> Option<Vec<Request>> {
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return None;
    }
    let requests = bytes
        .chunks_exact(RECORD_BYTES)
        .map(|r| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&r[4..12]);
            let mut size = [0u8; 4];
            size.copy_from_slice(&r[12..16]);
            Request {
                id: u64::from_le_bytes(id),
                size: u32::from_le_bytes(size),
            }
        })
        .collect();
    Some(requests)
}

/// Reads an `oracleGeneral` trace file.
pub fn read_trace(path: &Path) -> std::io::Result<Vec<Request>> {
    let bytes = std::fs::read(path)?;
    parse_oracle_general(&bytes).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a whole number of 24-byte records", path.display()),
        )
    })
}

/// Encodes requests as an `oracleGeneral` trace (next-access indices included).
pub fn encode_oracle_general(requests: &[Request]) -> Vec<u8> {
    let mut next = vec![-1i64; requests.len()];
    let mut seen = std::collections::HashMap::new();
    for (i, r) in requests.iter().enumerate().rev() {
        if let Some(&later) = seen.get(&r.id) {
            next[i] = later;
        }
        seen.insert(r.id, i as i64);
    }
    let mut out = Vec::with_capacity(requests.len() * RECORD_BYTES);
    for (i, (r, next)) in requests.iter().zip(next).enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&r.id.to_le_bytes());
        out.extend_from_slice(&r.size.to_le_bytes());
        out.extend_from_slice(&next.to_le_bytes());
    }
    out
}

/// How the cache is bounded during a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// At most this many entries (every object counts 1).
    Entries(usize),
    /// At most this many bytes: `max_weight` with a weigher returning the object's size.
    Bytes(u64),
}

/// Requests and hits of one replay, by object and by byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Requests replayed.
    pub requests: u64,
    /// Requests that found their object.
    pub hits: u64,
    /// Bytes requested.
    pub bytes: u64,
    /// Bytes of the requests that hit.
    pub bytes_hit: u64,
}

impl Outcome {
    /// Hits per request.
    pub fn hit_ratio(&self) -> f64 {
        self.hits as f64 / self.requests.max(1) as f64
    }

    /// Hit bytes per requested byte.
    pub fn byte_hit_ratio(&self) -> f64 {
        self.bytes_hit as f64 / self.bytes.max(1) as f64
    }
}

/// The hash seed of every replay unless told otherwise: the keys' shards and the sketch's
/// counters then fall the same way on every run, so the suite prints the same table.
pub const DEFAULT_SEED: u64 = 17;

/// The cache a replay measures: `MemoryCache`'s default configuration under `bound`, or
/// with `shards` shards instead of the default count, hashing with `seed`.
pub fn cache_for(bound: Bound, shards: Option<usize>, seed: u64) -> MemoryCache<u32> {
    let builder = match bound {
        Bound::Entries(n) => MemoryCache::builder().max_entries(n),
        Bound::Bytes(bytes) => MemoryCache::builder()
            .max_weight(bytes)
            .weigher(|_, size: &u32| u64::from(*size)),
    };
    let builder = builder.hash_seed(seed);
    match shards {
        Some(n) => builder.shards(n).build(),
        None => builder.build(),
    }
}

/// Replays `requests` through `cache` as a look-aside cache: get; on a miss, set (a value
/// the cache refuses as too heavy is simply not cached, like a reference policy that cannot
/// fit it).
pub fn replay(cache: &MemoryCache<u32>, requests: &[Request]) -> Outcome {
    let mut out = Outcome::default();
    let mut key = String::with_capacity(24);
    for r in requests {
        key.clear();
        let _ = write!(key, "{}", r.id);
        out.requests += 1;
        out.bytes += u64::from(r.size);
        if matches!(Cache::get(cache, &key), Ok(Some(_))) {
            out.hits += 1;
            out.bytes_hit += u64::from(r.size);
        } else {
            let _ = Cache::set(cache, &key, r.size, Expiry::Never);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_trace_round_trips_and_replays() {
        // Two hot objects and a stream of one-off ones through a cache of 4 entries.
        let mut requests = Vec::new();
        for i in 0..200u64 {
            requests.push(Request {
                id: i % 2,
                size: 10,
            });
            requests.push(Request {
                id: 100 + i,
                size: 1,
            });
        }
        let bytes = encode_oracle_general(&requests);
        assert_eq!(bytes.len(), requests.len() * RECORD_BYTES);
        // Object 0's next request is the fifth (0, 100, 1, 101, 0, ...).
        assert_eq!(i64::from_le_bytes(bytes[16..24].try_into().unwrap()), 4);
        let parsed = parse_oracle_general(&bytes).unwrap();
        assert_eq!(parsed, requests);
        assert!(parse_oracle_general(&bytes[..23]).is_none());

        let out = replay(&cache_for(Bound::Entries(4), None, DEFAULT_SEED), &parsed);
        assert_eq!(out.requests, 400);
        // The two hot objects miss once each and hit on every later request.
        assert_eq!(out.hits, 198);
        assert_eq!(out.bytes, 200 * 10 + 200);
        assert_eq!(out.bytes_hit, 198 * 10);

        let weighted = replay(&cache_for(Bound::Bytes(40), Some(1), DEFAULT_SEED), &parsed);
        assert_eq!(weighted.hits, 198, "{weighted:?}");
    }
}
