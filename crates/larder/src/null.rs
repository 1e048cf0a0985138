//! [`NullCache`]: a cache that stores nothing. Reads miss, writes succeed, state never
//! changes — for turning caching off by configuration without touching callers.

use std::collections::HashMap;
use std::marker::PhantomData;

use crate::{Cache, Expiry, MultiWrite, Result};

/// Every read misses, every write reports success, nothing is ever stored.
///
/// Conditional writes report what a cache that is always empty would: `add` succeeds,
/// `replace`, `delete`, `touch`, `incr` and `decr` find nothing.
pub struct NullCache<V>(PhantomData<fn(V)>);

impl<V> NullCache<V> {
    /// A null cache.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<V> Default for NullCache<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> std::fmt::Debug for NullCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NullCache")
    }
}

fn keys_of<V>(items: Vec<(&str, V)>, applied: bool) -> MultiWrite {
    let mut out = MultiWrite::default();
    for (k, _) in items {
        out.record(k, applied);
    }
    out
}

impl<V> Cache<V> for NullCache<V> {
    fn get(&self, _key: &str) -> Result<Option<V>> {
        Ok(None)
    }
    fn get_multi(&self, _keys: &[&str]) -> Result<HashMap<String, V>> {
        Ok(HashMap::new())
    }
    fn get_with_ttl(&self, _key: &str) -> Result<Option<(V, Expiry)>> {
        Ok(None)
    }
    fn set(&self, _key: &str, _value: V, _expiry: Expiry) -> Result<()> {
        Ok(())
    }
    fn set_multi(&self, items: Vec<(&str, V)>, _expiry: Expiry) -> Result<MultiWrite> {
        Ok(keys_of(items, true))
    }
    fn add(&self, _key: &str, _value: V, _expiry: Expiry) -> Result<bool> {
        Ok(true)
    }
    fn add_multi(&self, items: Vec<(&str, V)>, _expiry: Expiry) -> Result<MultiWrite> {
        Ok(keys_of(items, true))
    }
    fn replace(&self, _key: &str, _value: V, _expiry: Expiry) -> Result<bool> {
        Ok(false)
    }
    fn replace_multi(&self, items: Vec<(&str, V)>, _expiry: Expiry) -> Result<MultiWrite> {
        Ok(keys_of(items, false))
    }
    fn delete(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }
    fn delete_multi(&self, keys: &[&str]) -> Result<MultiWrite> {
        Ok(MultiWrite {
            applied: Vec::new(),
            not_applied: keys.iter().map(|k| k.to_string()).collect(),
        })
    }
    fn incr(&self, _key: &str, _delta: u64) -> Result<Option<u64>> {
        Ok(None)
    }
    fn decr(&self, _key: &str, _delta: u64) -> Result<Option<u64>> {
        Ok(None)
    }
    fn touch(&self, _key: &str, _expiry: Expiry) -> Result<bool> {
        Ok(false)
    }
    fn clear(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(feature = "tokio")]
crate::async_cache_via_blocking!(impl<V> for NullCache<V> where V: Send + 'static);
crate::cache::inherent_cache_ops!(impl<V> for NullCache<V> where V: Send + 'static);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_miss_and_writes_change_nothing() {
        let c = NullCache::<u64>::new();
        c.set("a", 1, Expiry::Never).unwrap();
        assert_eq!(c.get("a").unwrap(), None);
        assert!(c.add("a", 1, Expiry::Never).unwrap());
        assert!(
            c.add("a", 1, Expiry::Never).unwrap(),
            "still empty after add"
        );
        assert!(!c.replace("a", 2, Expiry::Never).unwrap());
        assert!(c.get_multi(&["a", "b"]).unwrap().is_empty());
        let w = c
            .set_multi(vec![("a", 1), ("b", 2)], Expiry::Never)
            .unwrap();
        assert_eq!(w.applied, vec!["a", "b"]);
        assert_eq!(c.delete_multi(&["a"]).unwrap().not_applied, vec!["a"]);
        assert_eq!(c.incr("a", 1).unwrap(), None);
        assert!(!c.touch("a", Expiry::secs(1)).unwrap());
    }
}
