//! [`Pooled`]: the guard a checkout returns. It derefs to the object and gives it back to
//! the pool when dropped.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use super::queue::ObjectState;
use super::{Held, Inner, Manager, SharedSlot};
use crate::{Error, Result};

/// How a guard reaches its pool: borrowed from a `Pool` ([`Pool::get`]) or owning a handle
/// ([`Pool::get_owned`]).
///
/// [`Pool::get`]: super::Pool::get
/// [`Pool::get_owned`]: super::Pool::get_owned
pub(crate) enum PoolRef<'a, M: Manager> {
    Borrowed(&'a Inner<M>),
    Owned(Arc<Inner<M>>),
}

impl<M: Manager> PoolRef<'_, M> {
    fn inner(&self) -> &Inner<M> {
        match self {
            PoolRef::Borrowed(inner) => inner,
            PoolRef::Owned(inner) => inner,
        }
    }
}

/// A checked-out object. Derefs to it; dropping the guard returns it to the pool — or
/// drops it when the holder is panicking, when [`discard`](Pooled::discard) was called, or
/// when the manager finds it broken.
pub struct Pooled<'a, M: Manager> {
    pool: PoolRef<'a, M>,
    /// Exactly one of `shared` and `exclusive` is set, until `Drop` takes it. (Two
    /// options rather than one enum: the niche-optimised `Arc` moves as a bare pointer,
    /// which keeps the `Shared` checkout close to an `Arc` clone.)
    shared: Option<Arc<dyn SharedSlot<M::Object>>>,
    exclusive: Option<ObjectState<M::Object>>,
    /// When a `Shared` checkout started, under leak detection.
    since: Option<Instant>,
    discard: bool,
}

impl<'a, M: Manager> Pooled<'a, M> {
    #[inline]
    pub(crate) fn new(pool: PoolRef<'a, M>, held: Held<M::Object>) -> Self {
        match held {
            Held::Shared(slot) => Self::shared(pool, slot),
            // An exclusive object's checkout start is in its hold cell.
            Held::Exclusive(state) => Self::exclusive(pool, state),
        }
    }

    /// A guard of the `Shared` object.
    #[inline]
    pub(crate) fn shared(pool: PoolRef<'a, M>, slot: Arc<dyn SharedSlot<M::Object>>) -> Self {
        let since = pool.inner().hold_start();
        Self {
            pool,
            shared: Some(slot),
            exclusive: None,
            since,
            discard: false,
        }
    }

    /// A guard of an exclusive object.
    #[inline]
    pub(crate) fn exclusive(pool: PoolRef<'a, M>, state: ObjectState<M::Object>) -> Self {
        Self {
            pool,
            shared: None,
            exclusive: Some(state),
            since: None,
            discard: false,
        }
    }

    /// `&mut` to the object under the exclusive strategies (`Queue`, `PerThread`);
    /// [`Error::Unsupported`] under `Shared`, where every caller holds the same object.
    pub fn get_mut(&mut self) -> Result<&mut M::Object> {
        match &mut self.exclusive {
            Some(state) => Ok(&mut state.obj),
            None => Err(Error::Unsupported(format!(
                "pool {:?} uses Strategy::Shared: its one object is shared by every caller, \
                 so there is no &mut; use interior mutability or an exclusive strategy",
                self.pool.inner().name()
            ))),
        }
    }

    /// Whether the object is shared with other callers (`Strategy::Shared`).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Drops the object instead of returning it (e.g. a connection that saw an I/O error);
    /// the pool creates a new one when needed. Under `Shared` this only releases the guard:
    /// the one object stays, since other callers may be using it.
    pub fn discard(mut self) {
        self.discard = true;
    }

    /// The name of the pool the object came from.
    pub fn pool_name(&self) -> &str {
        self.pool.inner().name()
    }
}

impl<M: Manager> Deref for Pooled<'_, M> {
    type Target = M::Object;

    #[inline]
    fn deref(&self) -> &M::Object {
        if let Some(slot) = &self.shared {
            return slot.object();
        }
        match &self.exclusive {
            Some(state) => &state.obj,
            // Both are emptied only by `Drop::drop`, after which no method can run.
            None => unreachable!("a pool guard was used after being dropped"),
        }
    }
}

impl<M: Manager> Drop for Pooled<'_, M> {
    #[inline]
    fn drop(&mut self) {
        let inner = self.pool.inner();
        if let Some(state) = &self.exclusive {
            if let Some(cell) = &state.hold {
                inner.hold_back(cell);
            }
            inner.give_back(&mut self.exclusive, self.discard);
        } else {
            inner.check_hold(self.since);
        }
    }
}

impl<M: Manager> fmt::Debug for Pooled<'_, M>
where
    M::Object: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("pool", &self.pool.inner().name())
            .field("object", &**self)
            .finish()
    }
}
