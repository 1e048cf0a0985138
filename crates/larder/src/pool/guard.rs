//! [`Pooled`]: the guard a checkout returns. It derefs to the object and gives it back to
//! the pool when dropped.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use super::{Held, Inner, Manager};
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
    /// `None` only inside `Drop`, after the object was taken out.
    held: Option<Held<M::Object>>,
    since: Option<Instant>,
    discard: bool,
}

impl<'a, M: Manager> Pooled<'a, M> {
    #[inline]
    pub(crate) fn new(pool: PoolRef<'a, M>, held: Held<M::Object>) -> Self {
        let since = pool.inner().hold_start();
        Self {
            pool,
            held: Some(held),
            since,
            discard: false,
        }
    }

    #[inline]
    fn held(&self) -> &Held<M::Object> {
        match &self.held {
            Some(held) => held,
            // `held` is emptied only by `Drop::drop`, after which no method can run.
            None => unreachable!("a pool guard was used after being dropped"),
        }
    }

    /// `&mut` to the object under the exclusive strategies (`Queue`, `PerThread`);
    /// [`Error::Unsupported`] under `Shared`, where every caller holds the same object.
    pub fn get_mut(&mut self) -> Result<&mut M::Object> {
        match &mut self.held {
            Some(Held::Exclusive(state)) => Ok(&mut state.obj),
            _ => Err(Error::Unsupported(format!(
                "pool {:?} uses Strategy::Shared: its one object is shared by every caller, \
                 so there is no &mut; use interior mutability or an exclusive strategy",
                self.pool.inner().name()
            ))),
        }
    }

    /// Whether the object is shared with other callers (`Strategy::Shared`).
    pub fn is_shared(&self) -> bool {
        matches!(self.held(), Held::Shared(_))
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
        match self.held() {
            Held::Shared(slot) => slot.object(),
            Held::Exclusive(state) => &state.obj,
        }
    }
}

impl<M: Manager> Drop for Pooled<'_, M> {
    #[inline]
    fn drop(&mut self) {
        let inner = self.pool.inner();
        inner.check_hold(self.since);
        match self.held.take() {
            Some(Held::Exclusive(state)) => inner.give_back(state, self.discard),
            Some(Held::Shared(slot)) => drop(slot),
            None => {}
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
