//! [`MemcachedLockStore`]: the [`LockStore`] of a [`DistributedMutex`](super::DistributedMutex)
//! on memcached, for processes on many hosts.
//!
//! Acquire is memcached `add` (atomic: only one client creates the entry) with the lock TTL
//! rounded up to whole seconds (memcached's resolution). Release reads the entry with `gets`
//! and deletes it only when it still holds our token. The read and the delete are two round
//! trips: if our lock lapsed between them and another client took it in that window, the
//! delete would free its lock, so choose a lock TTL well above the creator's run time.

use std::time::Duration;

use super::mutex::LockStore;
use crate::memcache::Client;
use crate::{Expiry, Result};

/// A [`LockStore`] on a memcached [`Client`] (cheap to clone: the client is shared).
#[derive(Clone)]
pub struct MemcachedLockStore {
    client: Client,
}

impl MemcachedLockStore {
    /// Lock entries live in the servers of `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl std::fmt::Debug for MemcachedLockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemcachedLockStore")
    }
}

/// memcached counts whole seconds: round up, at least 1.
fn whole_seconds(ttl: Duration) -> Duration {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

impl LockStore for MemcachedLockStore {
    fn try_acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.client
            .add(key, token.as_bytes(), 0, Expiry::After(whole_seconds(ttl)))
    }

    fn release(&self, key: &str, token: &str) -> Result<bool> {
        match self.client.gets(key)? {
            Some(item) if item.data == token.as_bytes() => self.client.delete(key),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            whole_seconds(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            whole_seconds(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }
}
