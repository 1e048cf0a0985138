//! The embedded memory cache: bounded, per-entry TTL, safe from many threads.
