//! Cached functions (dogpile.cache's `cache_on_arguments`): [`CachedFn`] over a
//! [`Region`], [`AsyncCachedFn`] over an [`AsyncRegion`](super::AsyncRegion). Both key a
//! call as `"<namespace>:<args as Debug>"`, hashed when that is not a valid key.

use std::fmt::Debug;
use std::sync::Arc;

use crate::dogpile::core::cached_fn_key;
use crate::dogpile::Region;
use crate::Result;

type CachedBody<A, V> = Arc<dyn Fn(&A) -> Result<V> + Send + Sync>;

/// A function whose results are cached in a [`Region`] per argument value. Made by
/// [`Region::cached_fn`].
pub struct CachedFn<A, V> {
    region: Region<V>,
    namespace: String,
    f: CachedBody<A, V>,
}

impl<A, V> Debug for CachedFn<A, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFn")
            .field("region", &self.region)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl<A, V> CachedFn<A, V>
where
    A: Debug + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(region: Region<V>, namespace: String, f: CachedBody<A, V>) -> Self {
        Self {
            region,
            namespace,
            f,
        }
    }

    /// The region key for `args`.
    pub fn key(&self, args: &A) -> String {
        cached_fn_key(&self.namespace, args)
    }

    /// The cached result for `args`, computing it (once, under the region's lock) when
    /// missing or expired.
    pub fn call(&self, args: &A) -> Result<V> {
        let f = Arc::clone(&self.f);
        let owned = args.clone();
        self.region
            .get_or_create(&self.key(args), move || f(&owned))
    }

    /// The cached result for `args` if present and fresh; never computes.
    pub fn get(&self, args: &A) -> Result<Option<V>> {
        self.region.get(&self.key(args))
    }

    /// Forgets the cached result for `args`; `true` when one was there.
    pub fn invalidate(&self, args: &A) -> Result<bool> {
        self.region.delete(&self.key(args))
    }

    /// Computes the result for `args` now, stores and returns it.
    pub fn refresh(&self, args: &A) -> Result<V> {
        let value = (self.f)(args)?;
        self.region.set(&self.key(args), value.clone())?;
        Ok(value)
    }

    /// Stores `value` as the result for `args` without calling the function.
    pub fn set(&self, args: &A, value: V) -> Result<()> {
        self.region.set(&self.key(args), value)
    }
}

#[cfg(feature = "tokio")]
pub use self::asynchronous::AsyncCachedFn;

#[cfg(feature = "tokio")]
mod asynchronous {
    use std::future::Future;
    use std::pin::Pin;

    use super::*;
    use crate::dogpile::AsyncRegion;

    type BoxFuture<V> = Pin<Box<dyn Future<Output = Result<V>> + Send>>;
    pub(crate) type AsyncBody<A, V> = Arc<dyn Fn(A) -> BoxFuture<V> + Send + Sync>;

    /// A function whose results are cached in an [`AsyncRegion`] per argument value. Made
    /// by [`AsyncRegion::cached_fn`]; the function gets its own copy of the arguments, so
    /// its future can outlive the call (as background regeneration needs).
    pub struct AsyncCachedFn<A, V: Send + 'static> {
        region: AsyncRegion<V>,
        namespace: String,
        f: AsyncBody<A, V>,
    }

    impl<A, V: Send + 'static> Debug for AsyncCachedFn<A, V> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AsyncCachedFn")
                .field("region", &self.region)
                .field("namespace", &self.namespace)
                .finish()
        }
    }

    impl<A, V> AsyncCachedFn<A, V>
    where
        A: Debug + Clone + Send + 'static,
        V: Clone + Send + Sync + 'static,
    {
        pub(crate) fn new<F, Fut>(region: AsyncRegion<V>, namespace: String, f: F) -> Self
        where
            F: Fn(A) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<V>> + Send + 'static,
        {
            Self {
                region,
                namespace,
                f: Arc::new(move |args| Box::pin(f(args))),
            }
        }

        /// The region key for `args`.
        pub fn key(&self, args: &A) -> String {
            cached_fn_key(&self.namespace, args)
        }

        /// The cached result for `args`, computing it (once per key, in-process and with
        /// the region's shared mutex) when missing or expired.
        pub async fn call(&self, args: &A) -> Result<V> {
            let f = Arc::clone(&self.f);
            let owned = args.clone();
            self.region
                .get_or_create(&self.key(args), move || f(owned))
                .await
        }

        /// The cached result for `args` if present and fresh; never computes.
        pub async fn get(&self, args: &A) -> Result<Option<V>> {
            self.region.get(&self.key(args)).await
        }

        /// Forgets the cached result for `args`; `true` when one was there.
        pub async fn invalidate(&self, args: &A) -> Result<bool> {
            self.region.delete(&self.key(args)).await
        }

        /// Computes the result for `args` now, stores and returns it.
        pub async fn refresh(&self, args: &A) -> Result<V> {
            let value = (self.f)(args.clone()).await?;
            self.region.set(&self.key(args), value.clone()).await?;
            Ok(value)
        }

        /// Stores `value` as the result for `args` without calling the function.
        pub async fn set(&self, args: &A, value: V) -> Result<()> {
            self.region.set(&self.key(args), value).await
        }
    }
}
