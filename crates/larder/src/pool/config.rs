//! Pool configuration: the [`Strategy`] value, the [`PoolConfig`] that carries it, and the
//! [`Hooks`] run at points of an object's life.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::{Error, Result};

/// How a pool hands out objects. Switching strategy changes no caller code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// One thread-safe object, created on first use and handed to every caller at once.
    /// A checkout is an `Arc` clone. Needs `M::Object: Sync` (see [`Pool::new`]).
    ///
    /// [`Pool::new`]: super::Pool::new
    Shared,
    /// A bounded set of exclusive objects; warm objects are reused last-in first-out.
    Queue(QueueConfig),
    /// One exclusive object per thread, created on the thread's first checkout and dropped
    /// when the thread ends (or at the thread's next checkout after [`Pool::close`]).
    ///
    /// [`Pool::close`]: super::Pool::close
    PerThread,
}

/// The settings of [`Strategy::Queue`]: build with [`QueueConfig::new`] and its setters
/// (new settings may be added without breaking callers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Objects created up front when `eager` is set.
    pub min_size: usize,
    /// Most objects alive at once (idle + checked out); at least 1.
    pub max_size: usize,
    /// How long a caller waits for a free object before [`Error::PoolTimeout`].
    pub wait_timeout: Duration,
    /// An object is retired after this many checkouts.
    pub max_uses: Option<u64>,
    /// An idle object older than this is dropped at the next checkout that finds it.
    pub idle_timeout: Option<Duration>,
    /// Create `min_size` objects when the pool is built (a failure fails the build).
    pub eager: bool,
}

impl QueueConfig {
    /// A lazy queue of at most `max_size` objects, waiting up to 30 s, no retirement, no
    /// idle expiry.
    pub fn new(max_size: usize) -> Self {
        Self {
            min_size: 0,
            max_size,
            wait_timeout: Duration::from_secs(30),
            max_uses: None,
            idle_timeout: None,
            eager: false,
        }
    }

    /// Objects created when the pool is built (with [`eager`](Self::eager)).
    pub fn min_size(mut self, min_size: usize) -> Self {
        self.min_size = min_size;
        self
    }

    /// How long a checkout waits for a free object.
    pub fn wait_timeout(mut self, wait_timeout: Duration) -> Self {
        self.wait_timeout = wait_timeout;
        self
    }

    /// Retires an object after `max_uses` checkouts.
    pub fn max_uses(mut self, max_uses: u64) -> Self {
        self.max_uses = Some(max_uses);
        self
    }

    /// Drops an object idle longer than `idle_timeout` instead of reusing it.
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = Some(idle_timeout);
        self
    }

    /// Creates `min_size` objects when the pool is built.
    pub fn eager(mut self, eager: bool) -> Self {
        self.eager = eager;
        self
    }
}

impl From<QueueConfig> for Strategy {
    fn from(queue: QueueConfig) -> Self {
        Strategy::Queue(queue)
    }
}

impl Strategy {
    /// A lazy queue of at most `max_size` objects ([`QueueConfig::new`]'s defaults).
    pub fn queue(max_size: usize) -> Self {
        Strategy::Queue(QueueConfig::new(max_size))
    }

    /// The strategy's name as written in the code (`Shared`, `Queue`, `PerThread`).
    pub fn kind(&self) -> &'static str {
        match self {
            Strategy::Shared => "Shared",
            Strategy::Queue(_) => "Queue",
            Strategy::PerThread => "PerThread",
        }
    }
}

/// A pool's configuration: its name, its [`Strategy`], leak detection and its clock. Build
/// with [`PoolConfig::new`] and its setters (new settings may be added without breaking
/// callers).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Names the pool in errors and log lines.
    pub name: String,
    /// How objects are handed out.
    pub strategy: Strategy,
    /// A checkout held longer than this is reported once, with a `log::warn!` naming the
    /// pool: when it comes back (`leaks` in [`PoolStats`](super::PoolStats)) or, if it is
    /// still out, at a later `stats` call or checkout (`held_too_long`).
    pub max_hold: Option<Duration>,
    /// The clock used for idle expiry and `max_hold` (a [`ManualClock`] in tests). Wait
    /// timeouts always use real time, since a waiting thread sleeps on it.
    ///
    /// [`ManualClock`]: crate::clock::ManualClock
    pub clock: SharedClock,
}

impl PoolConfig {
    /// A configuration named `name` with `strategy`, no leak detection, the system clock.
    pub fn new(name: impl Into<String>, strategy: Strategy) -> Self {
        Self {
            name: name.into(),
            strategy,
            max_hold: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reports checkouts held longer than `max_hold`.
    pub fn max_hold(mut self, max_hold: Duration) -> Self {
        self.max_hold = Some(max_hold);
        self
    }

    /// Uses `clock` for idle expiry and leak detection.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the numbers are consistent.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Strategy::Queue(QueueConfig {
            min_size, max_size, ..
        }) = self.strategy
        {
            if max_size == 0 {
                return Err(Error::Config(format!(
                    "pool {:?}: Queue max_size must be at least 1",
                    self.name
                )));
            }
            if min_size > max_size {
                return Err(Error::Config(format!(
                    "pool {:?}: Queue min_size {min_size} exceeds max_size {max_size}",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// A hook: a closure given the object at one point of its life.
pub type Hook<T> = Arc<dyn Fn(&mut T) + Send + Sync>;

/// Closures run at points of an object's life, each given `&mut` to the object.
///
/// Under [`Strategy::Shared`] the object is never exclusive while callers use it, so only
/// `on_create` and `on_close` run there. `on_close` is skipped for an object dropped because
/// its holder panicked (a second panic would abort the process).
pub struct Hooks<T> {
    pub(crate) on_create: Option<Hook<T>>,
    pub(crate) on_checkout: Option<Hook<T>>,
    pub(crate) on_return: Option<Hook<T>>,
    pub(crate) on_close: Option<Hook<T>>,
}

impl<T> Hooks<T> {
    /// No hooks.
    pub fn new() -> Self {
        Self {
            on_create: None,
            on_checkout: None,
            on_return: None,
            on_close: None,
        }
    }

    /// Runs `f` on each new object, before its first checkout.
    pub fn on_create(mut self, f: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.on_create = Some(Arc::new(f));
        self
    }

    /// Runs `f` each time an exclusive object is handed to a caller.
    pub fn on_checkout(mut self, f: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.on_checkout = Some(Arc::new(f));
        self
    }

    /// Runs `f` each time an exclusive object comes back (e.g. to reset its state).
    pub fn on_return(mut self, f: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.on_return = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each object the pool drops (retired, broken, expired, closed).
    pub fn on_close(mut self, f: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.on_close = Some(Arc::new(f));
        self
    }
}

impl<T> Default for Hooks<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Hooks<T> {
    fn clone(&self) -> Self {
        Self {
            on_create: self.on_create.clone(),
            on_checkout: self.on_checkout.clone(),
            on_return: self.on_return.clone(),
            on_close: self.on_close.clone(),
        }
    }
}

impl<T> fmt::Debug for Hooks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_create", &self.on_create.is_some())
            .field("on_checkout", &self.on_checkout.is_some())
            .field("on_return", &self.on_return.is_some())
            .field("on_close", &self.on_close.is_some())
            .finish()
    }
}
