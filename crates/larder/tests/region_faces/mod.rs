//! One interface over both region faces, so each scenario runs on [`Region`] and on
//! [`AsyncRegion`]: the async face is driven from plain threads through a shared tokio
//! runtime (`Handle::block_on`), and blocking creators run on its blocking pool, so thread
//! scenarios (many callers, a creator parked on a channel) mean the same on both faces.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use larder::dogpile::{BlockingStore, CachedFn, CachedValue, Invalidation, Region, RegionBuilder};
use larder::memory::MemoryCache;
use larder::Result;

/// The backend every scenario uses: a memory cache of entries (both faces take it).
pub type Memory = MemoryCache<CachedValue<String>>;

pub fn memory() -> Memory {
    MemoryCache::builder().max_entries(10_000).build()
}

/// A blocking creator, as scenarios write them.
pub type Creator = Box<dyn FnOnce() -> Result<String> + Send>;

/// The operations of a cached function of `u64` arguments.
pub trait CachedOps {
    fn key(&self, n: u64) -> String;
    fn call(&self, n: u64) -> Result<String>;
    fn get(&self, n: u64) -> Result<Option<String>>;
    fn invalidate(&self, n: u64) -> Result<bool>;
    fn refresh(&self, n: u64) -> Result<String>;
    fn set(&self, n: u64, value: String) -> Result<()>;
}

/// A region face, as scenarios use it.
pub trait Face: Clone + Send + Sync + 'static {
    type Store;
    fn builder(name: &str, backend: Memory) -> RegionBuilder<String, Self::Store>;
    fn build(builder: RegionBuilder<String, Self::Store>) -> Self;
    fn get_or_create_expiring(
        &self,
        key: &str,
        expiration: Option<Option<Duration>>,
        creator: Creator,
    ) -> Result<String>;
    fn get_or_create_multi(
        &self,
        keys: &[&str],
        creator: &mut dyn FnMut(&[&str]) -> Result<Vec<String>>,
    ) -> Result<Vec<String>>;
    fn get(&self, key: &str) -> Result<Option<String>>;
    fn set(&self, key: &str, value: String) -> Result<()>;
    fn delete(&self, key: &str) -> Result<bool>;
    fn invalidate(&self, how: Invalidation);
    fn mangle(&self, key: &str) -> Result<String>;
    fn cached_fn(
        &self,
        namespace: &str,
        f: Arc<dyn Fn(u64) -> Result<String> + Send + Sync>,
    ) -> Box<dyn CachedOps>;

    fn get_or_create(
        &self,
        key: &str,
        creator: impl FnOnce() -> Result<String> + Send + 'static,
    ) -> Result<String> {
        self.get_or_create_expiring(key, None, Box::new(creator))
    }
}

impl Face for Region<String> {
    type Store = BlockingStore<String>;
    fn builder(name: &str, backend: Memory) -> RegionBuilder<String> {
        Region::builder(name, backend)
    }
    fn build(builder: RegionBuilder<String>) -> Self {
        builder.build()
    }
    fn get_or_create_expiring(
        &self,
        key: &str,
        expiration: Option<Option<Duration>>,
        creator: Creator,
    ) -> Result<String> {
        match expiration {
            Some(exp) => Region::get_or_create_expiring(self, key, exp, creator),
            None => Region::get_or_create(self, key, creator),
        }
    }
    fn get_or_create_multi(
        &self,
        keys: &[&str],
        creator: &mut dyn FnMut(&[&str]) -> Result<Vec<String>>,
    ) -> Result<Vec<String>> {
        Region::get_or_create_multi(self, keys, creator)
    }
    fn get(&self, key: &str) -> Result<Option<String>> {
        Region::get(self, key)
    }
    fn set(&self, key: &str, value: String) -> Result<()> {
        Region::set(self, key, value)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        Region::delete(self, key)
    }
    fn invalidate(&self, how: Invalidation) {
        Region::invalidate(self, how)
    }
    fn mangle(&self, key: &str) -> Result<String> {
        Region::mangle(self, key)
    }
    fn cached_fn(
        &self,
        namespace: &str,
        f: Arc<dyn Fn(u64) -> Result<String> + Send + Sync>,
    ) -> Box<dyn CachedOps> {
        Box::new(Region::cached_fn(self, namespace, move |n: &u64| f(*n)))
    }
}

/// The blocking face on a memory cache the region builds from a builder and owns: its
/// fresh-hit path judges entries in place, apart from the shared-cache path. The scenario's
/// backend is ignored (nothing else can see an owned cache).
#[derive(Clone)]
pub struct OwnedMemory(Region<String>);

impl Face for OwnedMemory {
    type Store = BlockingStore<String>;
    fn builder(name: &str, _backend: Memory) -> RegionBuilder<String> {
        Region::builder(name, MemoryCache::builder().max_entries(10_000))
    }
    fn build(builder: RegionBuilder<String>) -> Self {
        OwnedMemory(builder.build())
    }
    // Everything else is the blocking face's, on the region inside.
    fn get_or_create_expiring(
        &self,
        key: &str,
        expiration: Option<Option<Duration>>,
        creator: Creator,
    ) -> Result<String> {
        Face::get_or_create_expiring(&self.0, key, expiration, creator)
    }
    fn get_or_create_multi(
        &self,
        keys: &[&str],
        creator: &mut dyn FnMut(&[&str]) -> Result<Vec<String>>,
    ) -> Result<Vec<String>> {
        Face::get_or_create_multi(&self.0, keys, creator)
    }
    fn get(&self, key: &str) -> Result<Option<String>> {
        Face::get(&self.0, key)
    }
    fn set(&self, key: &str, value: String) -> Result<()> {
        Face::set(&self.0, key, value)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        Face::delete(&self.0, key)
    }
    fn invalidate(&self, how: Invalidation) {
        Face::invalidate(&self.0, how)
    }
    fn mangle(&self, key: &str) -> Result<String> {
        Face::mangle(&self.0, key)
    }
    fn cached_fn(
        &self,
        namespace: &str,
        f: Arc<dyn Fn(u64) -> Result<String> + Send + Sync>,
    ) -> Box<dyn CachedOps> {
        Face::cached_fn(&self.0, namespace, f)
    }
}

impl CachedOps for CachedFn<u64, String> {
    fn key(&self, n: u64) -> String {
        CachedFn::key(self, &n)
    }
    fn call(&self, n: u64) -> Result<String> {
        CachedFn::call(self, &n)
    }
    fn get(&self, n: u64) -> Result<Option<String>> {
        CachedFn::get(self, &n)
    }
    fn invalidate(&self, n: u64) -> Result<bool> {
        CachedFn::invalidate(self, &n)
    }
    fn refresh(&self, n: u64) -> Result<String> {
        CachedFn::refresh(self, &n)
    }
    fn set(&self, n: u64, value: String) -> Result<()> {
        CachedFn::set(self, &n, value)
    }
}

#[cfg(feature = "tokio")]
mod async_face {
    use super::*;
    use larder::dogpile::{AsyncCachedFn, AsyncRegion, AsyncStore};
    use larder::Error;
    use std::sync::OnceLock;

    /// The runtime that drives every async region of the tests.
    fn runtime() -> &'static tokio::runtime::Runtime {
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime")
        })
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        runtime().handle().block_on(f)
    }

    /// Runs a blocking creator on the runtime's blocking pool (a creator may sleep or wait on a
    /// channel, which must not stall the runtime's workers).
    async fn off_runtime(creator: Creator) -> Result<String> {
        tokio::task::spawn_blocking(creator)
            .await
            .map_err(|e| Error::user(format!("creator panicked: {e}")))?
    }

    impl Face for AsyncRegion<String> {
        type Store = AsyncStore<String>;
        fn builder(name: &str, backend: Memory) -> RegionBuilder<String, AsyncStore<String>> {
            AsyncRegion::builder(name, backend)
        }
        fn build(builder: RegionBuilder<String, AsyncStore<String>>) -> Self {
            builder.build()
        }
        fn get_or_create_expiring(
            &self,
            key: &str,
            expiration: Option<Option<Duration>>,
            creator: Creator,
        ) -> Result<String> {
            let creator = move || off_runtime(creator);
            block_on(async {
                match expiration {
                    Some(exp) => AsyncRegion::get_or_create_expiring(self, key, exp, creator).await,
                    None => AsyncRegion::get_or_create(self, key, creator).await,
                }
            })
        }
        fn get_or_create_multi(
            &self,
            keys: &[&str],
            creator: &mut dyn FnMut(&[&str]) -> Result<Vec<String>>,
        ) -> Result<Vec<String>> {
            block_on(AsyncRegion::get_or_create_multi(
                self,
                keys,
                |keys| async move {
                    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    creator(&refs)
                },
            ))
        }
        fn get(&self, key: &str) -> Result<Option<String>> {
            block_on(AsyncRegion::get(self, key))
        }
        fn set(&self, key: &str, value: String) -> Result<()> {
            block_on(AsyncRegion::set(self, key, value))
        }
        fn delete(&self, key: &str) -> Result<bool> {
            block_on(AsyncRegion::delete(self, key))
        }
        fn invalidate(&self, how: Invalidation) {
            AsyncRegion::invalidate(self, how)
        }
        fn mangle(&self, key: &str) -> Result<String> {
            AsyncRegion::mangle(self, key)
        }
        fn cached_fn(
            &self,
            namespace: &str,
            f: Arc<dyn Fn(u64) -> Result<String> + Send + Sync>,
        ) -> Box<dyn CachedOps> {
            Box::new(AsyncRegion::cached_fn(self, namespace, move |n: u64| {
                let f = Arc::clone(&f);
                async move { f(n) }
            }))
        }
    }

    impl CachedOps for AsyncCachedFn<u64, String> {
        fn key(&self, n: u64) -> String {
            AsyncCachedFn::key(self, &n)
        }
        fn call(&self, n: u64) -> Result<String> {
            block_on(AsyncCachedFn::call(self, &n))
        }
        fn get(&self, n: u64) -> Result<Option<String>> {
            block_on(AsyncCachedFn::get(self, &n))
        }
        fn invalidate(&self, n: u64) -> Result<bool> {
            block_on(AsyncCachedFn::invalidate(self, &n))
        }
        fn refresh(&self, n: u64) -> Result<String> {
            block_on(AsyncCachedFn::refresh(self, &n))
        }
        fn set(&self, n: u64, value: String) -> Result<()> {
            block_on(AsyncCachedFn::set(self, &n, value))
        }
    }
}

/// Runs each named scenario (a function generic over [`Face`]) once per face, and on a
/// blocking region that owns its memory cache; scenarios after `shared backend only:` read
/// the backend themselves, so they skip the owned one.
#[macro_export]
macro_rules! on_both_faces {
    ($($scenario:ident),* ; shared backend only: $($shared:ident),* $(,)?) => {
        mod blocking {
            $(#[test] fn $scenario() { super::$scenario::<larder::dogpile::Region<String>>() })*
            $(#[test] fn $shared() { super::$shared::<larder::dogpile::Region<String>>() })*
        }
        mod blocking_owned_memory {
            $(#[test] fn $scenario() { super::$scenario::<super::region_faces::OwnedMemory>() })*
        }
        #[cfg(feature = "tokio")]
        mod asynchronous {
            $(#[test] fn $scenario() { super::$scenario::<larder::dogpile::AsyncRegion<String>>() })*
            $(#[test] fn $shared() { super::$shared::<larder::dogpile::AsyncRegion<String>>() })*
        }
    };
}
