//! [`Proxy`]: a handle declared before its object exists (in a `static`), set at startup,
//! and used by code that only knows the handle — optionally backed by a [`Pool`] so that
//! every use checks an object out.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, PoisonError, RwLock};

use super::{Manager, Pool, Pooled};
use crate::{Error, Result};

/// A pool seen only through the object type it hands out.
trait PoolSource<T>: Send + Sync {
    fn checkout(&self) -> Result<Box<dyn Checkout<T>>>;
}

/// A checked-out pool object seen only through its type.
trait Checkout<T>: Send {
    fn object(&self) -> &T;
    fn object_mut(&mut self) -> Result<&mut T>;
    fn discard(self: Box<Self>);
}

impl<M: Manager> PoolSource<M::Object> for Pool<M> {
    fn checkout(&self) -> Result<Box<dyn Checkout<M::Object>>> {
        Ok(Box::new(self.get_owned()?))
    }
}

impl<M: Manager> Checkout<M::Object> for Pooled<'static, M> {
    fn object(&self) -> &M::Object {
        self
    }
    fn object_mut(&mut self) -> Result<&mut M::Object> {
        self.get_mut()
    }
    fn discard(self: Box<Self>) {
        Pooled::discard(*self);
    }
}

enum Target<T> {
    Object(Arc<T>),
    Pool(Arc<dyn PoolSource<T>>),
}

impl<T> Clone for Target<T> {
    fn clone(&self) -> Self {
        match self {
            Target::Object(obj) => Target::Object(Arc::clone(obj)),
            Target::Pool(pool) => Target::Pool(Arc::clone(pool)),
        }
    }
}

/// A named handle to an object that may not exist yet.
///
/// ```
/// use larder::pool::Proxy;
///
/// static GREETING: Proxy<String> = Proxy::new("greeting");
///
/// assert!(!GREETING.has_obj());
/// assert!(GREETING.get().is_err()); // Error::Unavailable("proxy \"greeting\" is not set")
/// GREETING.set("hello".to_string());
/// assert_eq!(GREETING.with(|g| g.len())?, 5);
/// assert_eq!(&*GREETING.get()?, "hello");
/// # Ok::<(), larder::Error>(())
/// ```
///
/// The target is **replaceable**: [`set`](Proxy::set) and [`set_pool`](Proxy::set_pool) swap
/// it at any time (a web app re-configured between tests), and [`clear`](Proxy::clear)
/// unsets it. A guard taken before a swap keeps the object it got; later uses see the new
/// one. A plain object is shared by every user (`&T` only); a pool-backed proxy checks an
/// object out per use ([`get`](Proxy::get) or [`with`](Proxy::with)) and returns it when the
/// use ends, so its guard gives `&mut` under exclusive strategies (the pool's guard is
/// boxed behind the object type, one small allocation per use). A proxy in a `static`
/// needs `T: Send + Sync`.
pub struct Proxy<T> {
    name: &'static str,
    target: RwLock<Option<Target<T>>>,
}

impl<T> Proxy<T> {
    /// An unset proxy; `const`, so it can be a `static`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            target: RwLock::new(None),
        }
    }

    /// The proxy's name (used in errors).
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn replace(&self, target: Option<Target<T>>) {
        let old = {
            let mut slot = self.target.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *slot, target)
        };
        // The old target (maybe a pool's last handle) drops outside the lock.
        drop(old);
    }

    /// Points the proxy at `obj` (replacing any previous target); every use shares it.
    pub fn set(&self, obj: T)
    where
        T: Send + Sync + 'static,
    {
        self.replace(Some(Target::Object(Arc::new(obj))));
    }

    /// Points the proxy at `pool` (replacing any previous target); each use checks out.
    pub fn set_pool<M>(&self, pool: Pool<M>)
    where
        M: Manager<Object = T>,
    {
        self.replace(Some(Target::Pool(Arc::new(pool))));
    }

    /// Unsets the proxy; later uses fail with [`Error::Unavailable`] until it is set again.
    pub fn clear(&self) {
        self.replace(None);
    }

    /// Whether the proxy is set (without checking anything out).
    pub fn has_obj(&self) -> bool {
        self.target
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Access to the object (a checkout when pool-backed) until the guard drops.
    ///
    /// Errors: [`Error::Unavailable`] when unset; the pool's errors when pool-backed.
    pub fn get(&self) -> Result<ProxyGuard<T>> {
        let target = self
            .target
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match target {
            None => Err(Error::Unavailable(format!(
                "proxy {:?} is not set",
                self.name
            ))),
            Some(Target::Object(obj)) => Ok(ProxyGuard {
                inner: GuardInner::Object(obj),
            }),
            Some(Target::Pool(pool)) => Ok(ProxyGuard {
                inner: GuardInner::Pooled(pool.checkout()?),
            }),
        }
    }

    /// Runs `f` with the object (checked out for the call when pool-backed).
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R> {
        let guard = self.get()?;
        Ok(f(&guard))
    }
}

impl<T> fmt::Debug for Proxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("name", &self.name)
            .field("set", &self.has_obj())
            .finish()
    }
}

enum GuardInner<T> {
    Object(Arc<T>),
    Pooled(Box<dyn Checkout<T>>),
}

/// Access to a proxy's object; derefs to it. When the proxy is pool-backed, dropping the
/// guard returns the object to the pool.
pub struct ProxyGuard<T> {
    inner: GuardInner<T>,
}

impl<T> ProxyGuard<T> {
    /// `&mut` to a pool-backed object under an exclusive strategy; [`Error::Unsupported`]
    /// for a plain object (shared by every user) or a `Shared` pool.
    pub fn get_mut(&mut self) -> Result<&mut T> {
        match &mut self.inner {
            GuardInner::Object(_) => Err(Error::Unsupported(
                "a proxy set to a plain object shares it with every user, so there is no &mut; \
                 back the proxy with an exclusive pool"
                    .into(),
            )),
            GuardInner::Pooled(checkout) => checkout.object_mut(),
        }
    }

    /// Drops a pool-backed object instead of returning it (see [`Pooled::discard`]).
    pub fn discard(self) {
        if let GuardInner::Pooled(checkout) = self.inner {
            checkout.discard();
        }
    }
}

impl<T> Deref for ProxyGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.inner {
            GuardInner::Object(obj) => obj,
            GuardInner::Pooled(checkout) => checkout.object(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ProxyGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProxyGuard").field(&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{PoolConfig, Strategy};
    use std::sync::atomic::{AtomicU32, Ordering};

    static NUMBER: Proxy<u32> = Proxy::new("number");

    struct Counting(AtomicU32);
    impl Manager for Counting {
        type Object = u32;
        type Error = std::io::Error;
        fn create(&self) -> std::result::Result<u32, std::io::Error> {
            Ok(self.0.fetch_add(1, Ordering::SeqCst))
        }
    }

    #[test]
    fn unset_proxy_names_itself_then_set_replace_and_clear() {
        let err = NUMBER.get().unwrap_err();
        assert!(matches!(&err, Error::Unavailable(m) if m == "proxy \"number\" is not set"));
        assert!(!NUMBER.has_obj());
        NUMBER.set(1);
        let old = NUMBER.get().unwrap();
        NUMBER.set(2);
        assert_eq!(*old, 1, "a guard keeps the object it got");
        assert_eq!(NUMBER.with(|n| *n).unwrap(), 2);
        NUMBER.clear();
        assert!(NUMBER.with(|n| *n).is_err());
    }

    #[test]
    fn pool_backed_proxy_checks_out_per_use() {
        let proxy: Proxy<u32> = Proxy::new("pooled");
        let pool = Pool::new(
            Counting(AtomicU32::new(10)),
            PoolConfig::new("p", Strategy::queue(2)),
        )
        .unwrap();
        proxy.set_pool(pool.clone());
        {
            let mut a = proxy.get().unwrap();
            let b = proxy.get().unwrap();
            assert_ne!(*a, *b, "two uses at once hold two objects");
            *a.get_mut().unwrap() += 100;
            assert_eq!(pool.stats().in_use, 2);
        }
        assert_eq!(pool.stats().in_use, 0);
        assert_eq!(
            proxy.with(|n| *n).unwrap(),
            110,
            "LIFO: the warm object comes back"
        );
        proxy.get().unwrap().discard();
        assert_eq!(pool.stats().closed, 1);
    }
}
