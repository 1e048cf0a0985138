//! The invalidation bus: how instances that keep local copies of one shared backend tell each
//! other which copies went stale. It sits beside the cache contract, so the layers that use it
//! (`tiered`, which publishes and evicts) and the ones that carry it (the Redis pub/sub bus)
//! both depend on it here instead of on each other.

use crate::Result;

/// What an instance tells the others when its writes make their local copies stale.
///
/// Migration: this was `tiered::Invalidation`; it was renamed so that it does not clash
/// with [`dogpile::Invalidation`](crate::dogpile::Invalidation) (a region's hard or soft
/// invalidation), which is a different thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// One key changed.
    Key(String),
    /// Everything was cleared.
    All,
}

/// A channel between the instances of a cache that share one backend (for
/// [`Tiered`](crate::tiered::Tiered): their L2).
///
/// Migration: this trait moved from `tiered` to here (still re-exported as
/// `tiered::InvalidationBus`); its messages are [`Stale`], formerly `tiered::Invalidation`.
pub trait InvalidationBus: Send + Sync {
    /// Tells the other instances (not this one) that `what` changed.
    fn publish(&self, what: &Stale) -> Result<()>;
    /// Calls `on_remote` for every notice another instance publishes, from now on.
    fn subscribe(&self, on_remote: Box<dyn Fn(Stale) + Send + Sync>) -> Result<()>;
}
