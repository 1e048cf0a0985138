//! Shared helpers for larder's comparison benchmarks (workload generators).
