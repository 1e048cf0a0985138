//! Dogpile on memcached, built on the `dogpile` module's traits (which know nothing of
//! memcached).
//!
//! [`MemcachedLockStore`]: the [`LockStore`] of a
//! [`DistributedMutex`](crate::dogpile::DistributedMutex) on memcached, for processes on
//! many hosts.
//!
//! Acquire is memcached `add` (atomic: only one client creates the entry) with the lock TTL
//! rounded up to whole seconds (memcached's resolution). Release reads the entry with `gets`
//! and, when it still holds our token, deletes it with meta `md … C<cas>`: the server deletes
//! only if the entry is unchanged since our read, so a lock that lapsed and was re-taken by
//! another client in between is never freed by us.
//!
//! [`MetaRegion`]: stampede control done by memcached itself (meta protocol): on a miss the
//! server creates a placeholder and tells exactly one client it won (`W`); near expiry
//! (`R`) or after [`MetaRegion::invalidate`] (`md … I`) one client wins the recache while
//! every other client gets the current (stale) value at once.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::dogpile::{backoff, LockStore};
use crate::keys::KeyEncoder;
use crate::memcache::{Client, MetaGetOptions};
use crate::{Codec, Error, Expiry, Result};

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
            // Deleted only if nobody re-took the lock between our read and the delete.
            Some(item) if item.data == token.as_bytes() => self.client.delete_cas(key, item.cas),
            _ => Ok(false),
        }
    }
}

/// Whole seconds for a meta-protocol flag, at least 1, saturating.
fn flag_seconds(d: Duration) -> u32 {
    u32::try_from(whole_seconds(d).as_secs()).unwrap_or(u32::MAX)
}

/// Stale-while-revalidate on memcached's meta protocol: the server picks the one client that
/// (re)creates a value. Values are encoded with a [`Codec`]; keys go through a
/// [`KeyEncoder`] (default: UTF-8 with `"<name>:"` prefix).
///
/// - Miss: the server stores a placeholder for `placeholder_ttl` and one caller wins and
///   runs the creator; the others poll (1 ms doubling to 20 ms, at most `lock_wait`, then
///   [`Error::LockTimeout`]) until the value lands.
/// - Remaining TTL below `recache_before`, or invalidated: one caller wins and recreates
///   inline; every other caller gets the current value at once.
/// - A winner's creator error is returned to it; on a miss its placeholder is deleted so the
///   next caller retries at once. (A failed *recache* is retried when the item expires.)
/// - A value stored as zero bytes is indistinguishable from a placeholder while another
///   client holds the win; callers then wait for that client.
pub struct MetaRegion<V, C> {
    client: Client,
    codec: C,
    keys: KeyEncoder,
    ttl: Duration,
    recache_before: Duration,
    placeholder_ttl: Duration,
    lock_wait: Duration,
    _values: PhantomData<fn() -> V>,
}

impl<V, C> std::fmt::Debug for MetaRegion<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaRegion")
            .field("prefix", &self.keys.prefix())
            .field("ttl", &self.ttl)
            .field("recache_before", &self.recache_before)
            .finish()
    }
}

impl<V, C: Codec<V>> MetaRegion<V, C> {
    /// A region named `name` on `client`, values living `ttl` (whole seconds), recached by
    /// one caller in the last tenth of it; placeholders live 30 s, waits are bounded at 30 s.
    pub fn new(client: Client, codec: C, name: &str, ttl: Duration) -> Self {
        Self {
            client,
            codec,
            keys: crate::dogpile::default_key_encoder(name),
            ttl,
            recache_before: ttl / 10,
            placeholder_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(30),
            _values: PhantomData,
        }
    }

    /// One caller recreates the value once its remaining TTL is below `before`.
    pub fn recache_before(mut self, before: Duration) -> Self {
        self.recache_before = before;
        self
    }

    /// How long a miss's placeholder lives (covers a winner that dies while creating).
    pub fn placeholder_ttl(mut self, ttl: Duration) -> Self {
        self.placeholder_ttl = ttl;
        self
    }

    /// The longest a caller waits for another client's creator.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Uses `keys` as the key mangler.
    pub fn key_encoder(mut self, keys: KeyEncoder) -> Self {
        self.keys = keys;
        self
    }

    /// The value under `key`, created by `creator` by the one caller memcached picks.
    pub fn get_or_create(&self, key: &str, creator: impl FnOnce() -> Result<V>) -> Result<V> {
        let mangled = self.keys.encode(key)?;
        let opts = MetaGetOptions::default()
            .vivify(flag_seconds(self.placeholder_ttl))
            .recache_below(flag_seconds(self.recache_before));
        let deadline = Instant::now() + self.lock_wait;
        let mut step = Duration::from_millis(1);
        loop {
            let found = self.client.meta_get(&mangled, opts)?;
            let placeholder = !found.stale && found.value.as_ref().is_none_or(|v| v.is_empty());
            if found.won {
                return match creator() {
                    Ok(value) => {
                        let encoded = self.codec.encode(&value)?;
                        // `false`: invalidated again meanwhile; the value is still ours to use.
                        self.client.meta_set_cas(
                            &mangled,
                            &encoded.data,
                            encoded.flags,
                            Expiry::After(whole_seconds(self.ttl)),
                            found.cas,
                        )?;
                        Ok(value)
                    }
                    Err(err) => {
                        if placeholder {
                            self.client.delete(&mangled)?;
                        }
                        Err(err)
                    }
                };
            }
            if !placeholder {
                if let Some(data) = &found.value {
                    return self.codec.decode(data, found.flags);
                }
            }
            if !backoff(&mut step, deadline) {
                return Err(Error::LockTimeout {
                    key: mangled,
                    waited: self.lock_wait,
                });
            }
        }
    }

    /// Marks `key` stale: the next caller recreates it while others get the old value;
    /// `true` when the key existed.
    pub fn invalidate(&self, key: &str) -> Result<bool> {
        let mangled = self.keys.encode(key)?;
        self.client
            .meta_invalidate(&mangled, Expiry::After(whole_seconds(self.ttl)))
    }

    /// Removes `key`; `true` when it was present.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let mangled = self.keys.encode(key)?;
        self.client.delete(&mangled)
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
