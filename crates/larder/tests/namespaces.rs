//! `Namespaces` and `AsyncNamespaces`: the default namespace serves the contract, a named one
//! routes to its own cache (possibly shared), unknown names are an error, and `clear_all`
//! clears every cache behind any namespace while `clear` clears the default's only. Both
//! faces run the same checks; the blocking one also runs the contract suite.

use std::sync::Arc;

use larder::clock::ManualClock;
use larder::memory::MemoryCache;
use larder::{Cache, Error, Expiry, Namespaces};
use larder_testing::Fixture;

fn memory() -> MemoryCache<String> {
    MemoryCache::new(1000)
}

fn make() -> Fixture {
    let clock = ManualClock::new();
    let main: Arc<dyn Cache<String>> = Arc::new(
        MemoryCache::builder()
            .max_entries(10_000)
            .clock(Arc::new(clock.clone()))
            .build(),
    );
    let other: Arc<dyn Cache<String>> = Arc::new(memory());
    let ns = Namespaces::new([("main".into(), main), ("other".into(), other)], "main").unwrap();
    Fixture {
        cache: Arc::new(ns),
        advance: Box::new(move |d| clock.advance(d)),
        guard: Box::new(()),
    }
}

mod contract {
    larder_testing::contract_tests!(super::make);
}

/// `users` and `sessions` share one cache, `pages` has its own; `users` is the default.
fn blocking() -> (Namespaces<String>, MemoryCache<String>, MemoryCache<String>) {
    let (shared, pages) = (memory(), memory());
    let ns = Namespaces::new(
        [
            (
                "users".to_owned(),
                Arc::new(shared.clone()) as Arc<dyn Cache<String>>,
            ),
            ("sessions".to_owned(), Arc::new(shared.clone())),
            ("pages".to_owned(), Arc::new(pages.clone())),
        ],
        "users",
    )
    .unwrap();
    (ns, shared, pages)
}

#[test]
fn routes_by_namespace_and_clears() {
    let (ns, shared, pages) = blocking();
    assert_eq!(ns.default_namespace(), "users");
    ns.set("u1", "ada".into(), Expiry::Never).unwrap();
    assert_eq!(shared.get("u1").unwrap().as_deref(), Some("ada"));
    ns.namespace("pages")
        .unwrap()
        .set("p1", "home".into(), Expiry::Never)
        .unwrap();
    assert_eq!(pages.get("p1").unwrap().as_deref(), Some("home"));
    assert_eq!(ns.get("p1").unwrap(), None, "not in the default namespace");
    assert_eq!(
        ns.namespace("sessions")
            .unwrap()
            .get("u1")
            .unwrap()
            .as_deref(),
        Some("ada"),
        "sessions shares the users cache"
    );
    match ns.namespace("nope") {
        Err(Error::UnknownNamespace(name)) => assert_eq!(name, "nope"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("an unknown namespace was routed"),
    }
    ns.clear().unwrap();
    assert_eq!(shared.get("u1").unwrap(), None);
    assert!(
        pages.get("p1").unwrap().is_some(),
        "clear is the default's only"
    );
    ns.clear_all().unwrap();
    assert_eq!(
        pages.get("p1").unwrap(),
        None,
        "clear_all clears every cache"
    );
    assert!(matches!(
        Namespaces::<String>::new([], "users"),
        Err(Error::UnknownNamespace(_))
    ));
}

#[cfg(feature = "tokio")]
mod async_face {
    use super::*;
    use larder::{AsyncCache, AsyncNamespaces};

    fn routed() -> (
        AsyncNamespaces<String>,
        MemoryCache<String>,
        MemoryCache<String>,
    ) {
        let (shared, pages) = (memory(), memory());
        let ns = AsyncNamespaces::new(
            [
                (
                    "users".to_owned(),
                    Arc::new(shared.clone()) as Arc<dyn AsyncCache<String>>,
                ),
                ("sessions".to_owned(), Arc::new(shared.clone())),
                ("pages".to_owned(), Arc::new(pages.clone())),
            ],
            "users",
        )
        .unwrap();
        (ns, shared, pages)
    }

    #[tokio::test]
    async fn routes_by_namespace_and_clears() {
        let (ns, shared, pages) = routed();
        assert_eq!(ns.default_namespace(), "users");
        ns.set("u1", "ada".into(), Expiry::Never).await.unwrap();
        assert_eq!(shared.get("u1").unwrap().as_deref(), Some("ada"));
        assert_eq!(
            ns.get_with_ttl("u1").await.unwrap(),
            Some(("ada".into(), Expiry::Never))
        );
        ns.namespace("pages")
            .unwrap()
            .set("p1", "home".into(), Expiry::Never)
            .await
            .unwrap();
        assert_eq!(pages.get("p1").unwrap().as_deref(), Some("home"));
        assert_eq!(ns.get("p1").await.unwrap(), None);
        let sessions = ns.namespace("sessions").unwrap();
        assert_eq!(sessions.get("u1").await.unwrap().as_deref(), Some("ada"));
        assert!(matches!(
            ns.namespace("nope"),
            Err(Error::UnknownNamespace(_))
        ));
        assert!(matches!(
            ns.incr("u1", 1).await,
            Err(Error::NotANumber { .. })
        ));
        let w = ns
            .set_multi(vec![("a", "1".into()), ("b", "2".into())], Expiry::Never)
            .await
            .unwrap();
        assert_eq!(w.applied.len(), 2);
        assert_eq!(ns.get_multi(&["a", "b", "c"]).await.unwrap().len(), 2);
        ns.clear().await.unwrap();
        assert_eq!(shared.get("a").unwrap(), None);
        assert!(
            pages.get("p1").unwrap().is_some(),
            "clear is the default's only"
        );
        ns.clear_all().await.unwrap();
        assert_eq!(
            pages.get("p1").unwrap(),
            None,
            "clear_all clears every cache"
        );
    }
}
