//! What a pool pools: the [`Manager`] that makes, checks and judges its objects, and the
//! [`AsyncManager`] that makes them on the async runtime (pooled as [`Async`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

#[cfg(doc)]
use super::Pool;
use crate::BoxError;
#[cfg(doc)]
use crate::Error;

/// Makes, checks and judges the objects of a pool.
pub trait Manager: Send + Sync + 'static {
    /// What the pool hands out.
    type Object: Send + 'static;
    /// What `create` and `recycle` fail with.
    type Error: Into<BoxError>;

    /// Makes a new object (blocking; under async it runs on tokio's blocking threads).
    fn create(&self) -> Result<Self::Object, Self::Error>;

    /// Health check before an idle object is reused; an error drops the object and a fresh
    /// one is created in its place. The default accepts every object.
    fn recycle(&self, obj: &mut Self::Object) -> Result<(), Self::Error> {
        let _ = obj;
        Ok(())
    }

    /// [`recycle`](Self::recycle), told how long the object sat idle when the pool knows
    /// (a `Queue` with an `idle_timeout` measures it for its own expiry), so a manager whose
    /// check depends on idle time needs no clock of its own. The default calls `recycle`.
    fn recycle_after(
        &self,
        obj: &mut Self::Object,
        idle: Option<Duration>,
    ) -> Result<(), Self::Error> {
        let _ = idle;
        self.recycle(obj)
    }

    /// Cheap check when an object comes back; `true` drops it instead of keeping it.
    fn is_broken(&self, obj: &mut Self::Object) -> bool {
        let _ = obj;
        false
    }

    /// Makes a new object without blocking, for [`Pool::get_async`]; `None` (the default)
    /// runs the blocking [`create`](Self::create) on tokio's blocking threads instead.
    /// [`Async`] implements it for an [`AsyncManager`].
    fn create_async(&self) -> Option<BoxFuture<'_, Result<Self::Object, Self::Error>>> {
        None
    }
}

/// A boxed future that is `Send`, as [`Manager::create_async`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Makes, checks and judges the objects of a pool, creating them asynchronously (such as
/// connections opened on the async runtime). Pool one with [`Pool::new_async`].
pub trait AsyncManager: Send + Sync + 'static {
    /// What the pool hands out.
    type Object: Send + 'static;
    /// What `create` and `recycle` fail with.
    type Error: Into<BoxError>;

    /// Makes a new object.
    fn create(&self) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Health check before an idle object is reused (see [`Manager::recycle`]).
    fn recycle(&self, obj: &mut Self::Object) -> Result<(), Self::Error> {
        let _ = obj;
        Ok(())
    }

    /// [`recycle`](Self::recycle) with the idle time (see [`Manager::recycle_after`]).
    fn recycle_after(
        &self,
        obj: &mut Self::Object,
        idle: Option<Duration>,
    ) -> Result<(), Self::Error> {
        let _ = idle;
        self.recycle(obj)
    }

    /// Cheap check when an object comes back (see [`Manager::is_broken`]).
    fn is_broken(&self, obj: &mut Self::Object) -> bool {
        let _ = obj;
        false
    }
}

/// An [`AsyncManager`] as the [`Manager`] of a pool: its objects are created by
/// [`Pool::get_async`]. A blocking [`Pool::get`] reuses idle objects, but one that would
/// have to create an object fails with [`Error::PoolCreate`] (an async manager cannot
/// create outside the runtime).
#[derive(Debug, Clone, Default)]
pub struct Async<M>(pub M);

impl<M: AsyncManager> Manager for Async<M> {
    type Object = M::Object;
    type Error = BoxError;

    fn create(&self) -> Result<M::Object, BoxError> {
        Err("this pool's manager creates objects asynchronously: check out with get_async".into())
    }

    fn recycle(&self, obj: &mut M::Object) -> Result<(), BoxError> {
        self.0.recycle(obj).map_err(Into::into)
    }

    fn recycle_after(&self, obj: &mut M::Object, idle: Option<Duration>) -> Result<(), BoxError> {
        self.0.recycle_after(obj, idle).map_err(Into::into)
    }

    fn is_broken(&self, obj: &mut M::Object) -> bool {
        self.0.is_broken(obj)
    }

    fn create_async(&self) -> Option<BoxFuture<'_, Result<M::Object, BoxError>>> {
        Some(Box::pin(async move {
            self.0.create().await.map_err(Into::into)
        }))
    }
}
