//! `Dependency` on a `MemoryCache<String>`: invalidation of every guarded key, sharing
//! between modules, the master-key collision the docs warn about, and concurrent adds.

use std::collections::BTreeSet;

use larder::memory::MemoryCache;
use larder::{Dependency, Error, Expiry};

fn cache() -> MemoryCache<String> {
    MemoryCache::new(100_000)
}

fn s(v: &str) -> String {
    v.to_owned()
}

#[test]
fn delete_removes_guarded_keys_dependents_and_master() {
    let c = cache();
    let dep = Dependency::new("dep:list:", Expiry::Never);
    for key in ["item:1", "item:2", "item:3", "other"] {
        c.set(key, s("v"), Expiry::Never).unwrap();
    }
    dep.add(&c, "item:1").unwrap();
    dep.add_multi(&c, &["item:2", "item:3"]).unwrap();
    dep.add_multi(&c, &[]).unwrap();
    assert_eq!(c.get("dep:list:").unwrap(), Some(s("3")));
    assert_eq!(c.get(&dep.dependent_key(2)).unwrap(), Some(s("item:2")));

    assert_eq!(dep.delete(&c).unwrap(), 3);
    for key in [
        "item:1",
        "item:2",
        "item:3",
        "dep:list:",
        "dep:list:1",
        "dep:list:3",
    ] {
        assert_eq!(c.get(key).unwrap(), None, "{key} should be gone");
    }
    assert_eq!(c.get("other").unwrap(), Some(s("v")), "unrelated key stays");
    assert_eq!(dep.delete(&c).unwrap(), 0, "nothing left to delete");
}

#[test]
fn guarded_keys_already_gone_are_not_counted() {
    let c = cache();
    let dep = Dependency::new("dep:g:", Expiry::Never);
    c.set("a", s("1"), Expiry::Never).unwrap();
    dep.add_multi(&c, &["a", "never-stored"]).unwrap();
    assert_eq!(dep.delete(&c).unwrap(), 1);
    assert_eq!(c.stats().entries, 0);
}

#[test]
fn two_modules_share_one_dependency_through_the_cache() {
    let c = cache();
    // Each module builds its own handle from the same master key; the state is in the cache.
    let orders = Dependency::new("dep:customer:7:", Expiry::Never);
    let invoices = Dependency::new("dep:customer:7:", Expiry::Never);
    c.set("orders:7", s("[...]"), Expiry::Never).unwrap();
    c.set("invoices:7", s("[...]"), Expiry::Never).unwrap();
    orders.add(&c, "orders:7").unwrap();
    invoices.add(&c, "invoices:7").unwrap();
    assert_eq!(c.get("dep:customer:7:").unwrap(), Some(s("2")));

    assert_eq!(invoices.delete(&c).unwrap(), 2);
    assert_eq!(c.get("orders:7").unwrap(), None);
    assert_eq!(c.get("invoices:7").unwrap(), None);
}

#[test]
fn master_key_without_delimiter_collides_as_documented() {
    let c = cache();
    // Without a delimiter, order 100's first dependent is order 1001's master key.
    let order_100 = Dependency::new("mk:order:100", Expiry::Never);
    let order_1001 = Dependency::new("mk:order:1001", Expiry::Never);
    assert_eq!(order_100.dependent_key(1), order_1001.master_key());
    order_100.add(&c, "order:100:lines").unwrap();
    match order_1001.add(&c, "order:1001:lines") {
        Err(Error::NotANumber { key }) => assert_eq!(key, "mk:order:1001"),
        other => panic!("collision should surface as NotANumber, got {other:?}"),
    }

    // With the delimiter the docs ask for, the two never meet.
    let c = cache();
    let order_100 = Dependency::new("mk:order:100:", Expiry::Never);
    let order_1001 = Dependency::new("mk:order:1001:", Expiry::Never);
    assert_ne!(order_100.dependent_key(1), order_1001.master_key());
    c.set("order:100:lines", s("a"), Expiry::Never).unwrap();
    c.set("order:1001:lines", s("b"), Expiry::Never).unwrap();
    order_100.add(&c, "order:100:lines").unwrap();
    order_1001.add(&c, "order:1001:lines").unwrap();
    assert_eq!(order_100.delete(&c).unwrap(), 1);
    assert_eq!(c.get("order:100:lines").unwrap(), None);
    assert_eq!(c.get("order:1001:lines").unwrap(), Some(s("b")));
}

#[test]
fn concurrent_adds_keep_every_dependent() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 200;
    let c = cache();
    let dep = Dependency::new("dep:conc:", Expiry::Never);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (c, dep) = (&c, &dep);
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let key = format!("g:{t}:{i}");
                    c.set(&key, s("v"), Expiry::Never).unwrap();
                    if i % 2 == 0 {
                        dep.add(c, &key).unwrap();
                    } else {
                        let extra = format!("g:{t}:{i}:x");
                        c.set(&extra, s("v"), Expiry::Never).unwrap();
                        dep.add_multi(c, &[&key, &extra]).unwrap();
                    }
                }
            });
        }
    });
    let total = THREADS * (PER_THREAD / 2) * 3;
    assert_eq!(c.get("dep:conc:").unwrap(), Some(total.to_string()));
    // Every number was handed out once: the dependents name every guarded key exactly once.
    let guarded: Vec<String> = (1..=total as u64)
        .map(|n| {
            c.get(&dep.dependent_key(n))
                .unwrap()
                .expect("dependent present")
        })
        .collect();
    let distinct: BTreeSet<&String> = guarded.iter().collect();
    assert_eq!(distinct.len(), total);
    assert_eq!(dep.delete(&c).unwrap(), total);
    assert_eq!(c.stats().entries, 0);
}

#[test]
fn values_that_cannot_hold_key_names_are_unsupported() {
    let c: MemoryCache<u64> = MemoryCache::new(10);
    let dep = Dependency::new("dep:n:", Expiry::Never);
    assert!(matches!(dep.add(&c, "k"), Err(Error::Unsupported(_))));
}
