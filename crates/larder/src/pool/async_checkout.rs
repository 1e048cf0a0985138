//! The async checkout (feature `tokio`): [`Pool::get_async`], and running the manager's
//! async code with its panics caught.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use super::{guard, Backend, BoxFuture, Held, Inner, Manager, Pool, Pooled};
use crate::{Error, Result};

impl<M: Manager> Pool<M> {
    /// Checks out an object without blocking the async runtime.
    ///
    /// `Shared` and `Queue` only. Waiting for a free `Queue` object parks the task (not the
    /// thread) and respects `wait_timeout`. [`Manager::create`] is blocking (it usually
    /// connects somewhere), so it runs on tokio's blocking threads via `spawn_blocking`;
    /// `recycle`, `is_broken` and the hooks run inline and should stay cheap. If the
    /// future is dropped while an object is being created, the reserved slot is freed.
    ///
    /// `PerThread` gives [`Error::Unsupported`]: a task moves between worker threads at
    /// every `.await`, so "the current thread's object" means nothing to it, and a guard
    /// held across an `.await` would come back to another thread's slot.
    pub async fn get_async(&self) -> Result<Pooled<'_, M>> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Relaxed) {
            return Err(inner.closed_error());
        }
        let held = match &inner.backend {
            Backend::Shared(s) => match s.slot.get() {
                Some(slot) => Held::Shared(Arc::clone(slot)),
                None if inner.manager.create_async().is_some() => {
                    // Tasks racing here may each create one; the first stored is kept.
                    let made = match inner.manager.create_async() {
                        Some(create) => inner.guarded_async("AsyncManager::create", create).await?,
                        None => inner.guarded("Manager::create", || inner.manager.create())?,
                    };
                    let obj = inner.created(made)?;
                    Held::Shared(Arc::clone(s.slot.get_or_init(|| (s.wrap)(obj))))
                }
                None => {
                    let owner = Arc::clone(inner);
                    let task = tokio::task::spawn_blocking(move || {
                        owner.checkout().map(|held| match held {
                            Held::Shared(slot) => Ok(slot),
                            Held::Exclusive(_) => Err(()),
                        })
                    });
                    match task.await {
                        Ok(Ok(Ok(slot))) => Held::Shared(slot),
                        Ok(Err(e)) => return Err(e),
                        Ok(Ok(Err(()))) => {
                            return Err(Error::Unsupported(format!(
                                "pool {:?}: shared checkout returned an exclusive object",
                                inner.name()
                            )))
                        }
                        Err(join) => return Err(inner.join_error(join)),
                    }
                }
            },
            Backend::Queue(q) => Held::Exclusive(inner.checkout_queue_async(q).await?),
            Backend::PerThread(_) => {
                return Err(Error::Unsupported(format!(
                    "pool {:?}: Strategy::PerThread has no async checkout (tasks move between \
                     threads at each .await); use Queue or Shared",
                    inner.name()
                )))
            }
        };
        Ok(Pooled::new(guard::PoolRef::Borrowed(inner), held))
    }
}

impl<M: Manager> Inner<M> {
    /// A blocking-thread task of the pool that ended without a result.
    pub(crate) fn join_error(&self, join: tokio::task::JoinError) -> Error {
        Error::from_join(
            format!(
                "pool {:?}: creating an object on a blocking thread",
                self.name()
            ),
            join,
        )
    }

    /// Awaits a future of the pool's user (an async `create`); a panic while it is polled
    /// becomes [`Error::Panicked`] naming the pool and `what`.
    pub(crate) async fn guarded_async<R>(
        &self,
        what: &str,
        mut fut: BoxFuture<'_, R>,
    ) -> Result<R> {
        let polled = std::future::poll_fn(|cx| {
            match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
                Ok(Poll::Pending) => Poll::Pending,
                // A future that panicked is dropped, never polled again.
                Err(payload) => Poll::Ready(Err(payload)),
            }
        })
        .await;
        polled.map_err(|payload| self.panicked(what, payload))
    }
}
