//! Pools: one API whose strategy (shared, queue, per-thread) is configuration, and `Proxy`.
