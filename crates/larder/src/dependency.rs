//! [`Dependency`]: wheezy's `CacheDependency` — a wire between cache entries so that one
//! call invalidates them all, stored in the cache itself so unrelated modules can share it.
//!
//! The master key holds the number of dependents `n`; dependent `i` (1-based) is stored
//! under `master_key + i` and holds the name of the key it guards. `delete` reads them all
//! and deletes the guarded keys, the dependent entries and the master key.
//!
//! **Key collisions:** dependents are built by appending a number to the master key, so a
//! master key made from an id must end with a delimiter that ids never contain: for order
//! `100` use `mk:order:100:` (dependents `mk:order:100:1`, `mk:order:100:2`, ...), never
//! `mk:order:100`, whose dependent 1 would be `mk:order:1001`'s master key.
//!
//! The cache's `V` must be able to hold both a counter and a key name (`String`, `Vec<u8>`,
//! or with feature `json` `serde_json::Value`); see [`crate::value`]. Other types give
//! [`Error::Unsupported`].

use std::any::Any;

use crate::value::{as_counter, as_text, from_counter, from_text};
use crate::{Cache, Error, Expiry, Result};

/// A named group of cache keys that are invalidated together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    master_key: String,
    expiry: Expiry,
}

impl Dependency {
    /// A dependency whose state lives under `master_key` (end it with a delimiter; see the
    /// module docs), with entries that expire after `expiry`.
    pub fn new(master_key: impl Into<String>, expiry: Expiry) -> Self {
        Self {
            master_key: master_key.into(),
            expiry,
        }
    }

    /// The master key.
    pub fn master_key(&self) -> &str {
        &self.master_key
    }

    /// The key of dependent number `n` (1-based).
    pub fn dependent_key(&self, n: u64) -> String {
        format!("{}{n}", self.master_key)
    }

    /// Makes `key` depend on this dependency.
    pub fn add<V: Any>(&self, cache: &dyn Cache<V>, key: &str) -> Result<()> {
        self.add_multi(cache, &[key])
    }

    /// Makes every key in `keys` depend on this dependency.
    pub fn add_multi<V: Any>(&self, cache: &dyn Cache<V>, keys: &[&str]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let count = u64::try_from(keys.len()).map_err(|_| Error::Config("too many keys".into()))?;
        let last = self.reserve(cache, count)?;
        let first = last - count + 1;
        let dependent_keys: Vec<String> = (first..=last).map(|n| self.dependent_key(n)).collect();
        let values = keys
            .iter()
            .map(|key| from_text::<V>(key).ok_or_else(Self::unsupported))
            .collect::<Result<Vec<V>>>()?;
        let items: Vec<(&str, V)> = dependent_keys
            .iter()
            .map(String::as_str)
            .zip(values)
            .collect();
        cache.set_multi(items, self.expiry)?;
        Ok(())
    }

    /// Atomically takes `count` dependent numbers; returns the last one.
    fn reserve<V: Any>(&self, cache: &dyn Cache<V>, count: u64) -> Result<u64> {
        for _ in 0..8 {
            if let Some(n) = cache.incr(&self.master_key, count)? {
                return Ok(n);
            }
            let initial = from_counter::<V>(count).ok_or_else(Self::unsupported)?;
            if cache.add(&self.master_key, initial, self.expiry)? {
                return Ok(count);
            }
            // Someone else created the master key between our incr and add: count again.
        }
        Err(Error::Server(format!(
            "dependency master key {:?} keeps vanishing between incr and add",
            self.master_key
        )))
    }

    /// Deletes every key that depends on this dependency, the dependents and the master
    /// key; returns how many guarded keys were deleted.
    pub fn delete<V: Any>(&self, cache: &dyn Cache<V>) -> Result<usize> {
        let Some(master) = cache.get(&self.master_key)? else {
            return Ok(0);
        };
        let n = as_counter(&master).ok_or_else(|| Error::NotANumber {
            key: self.master_key.clone(),
        })?;
        let dependent_keys: Vec<String> = (1..=n).map(|i| self.dependent_key(i)).collect();
        let refs: Vec<&str> = dependent_keys.iter().map(String::as_str).collect();
        let mut guarded: Vec<String> = Vec::new();
        for chunk in refs.chunks(1000) {
            guarded.extend(cache.get_multi(chunk)?.values().filter_map(as_text));
        }
        let guarded_refs: Vec<&str> = guarded.iter().map(String::as_str).collect();
        let deleted = cache.delete_multi(&guarded_refs)?.applied.len();
        for chunk in refs.chunks(1000) {
            cache.delete_multi(chunk)?;
        }
        cache.delete(&self.master_key)?;
        Ok(deleted)
    }

    fn unsupported() -> Error {
        Error::Unsupported(
            "Dependency needs a cache whose values can hold counters and key names \
             (String, Vec<u8> or serde_json::Value)"
                .into(),
        )
    }
}
