//! The one settings struct of both region faces, and [`RegionBuilder`], which fills it.
//!
//! The builder is generic over the face's backend (`S`), so each option is written once:
//! `Region::builder` gives a `RegionBuilder<V>`, `AsyncRegion::builder` an
//! [`AsyncRegionBuilder<V>`](super::AsyncRegionBuilder), and the same setters configure
//! both (code generic over `S` can configure either).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::dogpile::backend::{BlockingStore, SharedCodec};
use crate::dogpile::core::{CachedValue, CoreParts, ShouldCache};
use crate::dogpile::early::EarlyExpiration;
use crate::dogpile::lock::DEFAULT_LOCK_WAIT;
use crate::dogpile::mutex::KeyedMutex;
use crate::keys::{KeyEncoder, KeyEncoding};
use crate::{Codec, Expiry};

/// What the settings split into: the core's share, the shared mutex and the codec.
pub(crate) type Split<V> = (
    CoreParts<V>,
    Option<Arc<dyn KeyedMutex>>,
    Option<SharedCodec<V>>,
);

/// Everything a region is configured with, for either face.
pub(crate) struct Settings<V> {
    name: String,
    expiration: Option<Duration>,
    backend_expiry: Expiry,
    lock_wait: Duration,
    keys: Option<KeyEncoder>,
    clock: Option<SharedClock>,
    should_cache: Option<ShouldCache<V>>,
    background_workers: usize,
    early: Option<EarlyExpiration>,
    mutex: Option<Arc<dyn KeyedMutex>>,
    codec: Option<SharedCodec<V>>,
}

impl<V> Settings<V> {
    /// The core's share, the shared mutex and the codec. A region that `owns` its backend
    /// stores keys as they are, but still names its shared locks `"<name>:<key>"`.
    pub(crate) fn split(self, owns: bool) -> Split<V> {
        let name_prefix = format!("{}:", self.name);
        let (keys, plain_prefix, lock_prefix) = match (self.keys, owns) {
            (Some(keys), _) => (keys, None, None),
            (None, false) => (
                super::default_key_encoder(&self.name),
                Some(name_prefix),
                None,
            ),
            (None, true) => (
                KeyEncoder::new(KeyEncoding::Utf8),
                Some(String::new()),
                Some(name_prefix),
            ),
        };
        let parts = CoreParts {
            name: self.name,
            expiration: self.expiration,
            backend_expiry: self.backend_expiry,
            lock_wait: self.lock_wait,
            clock: self.clock,
            keys,
            plain_prefix,
            lock_prefix,
            should_cache: self.should_cache,
            early: self.early,
            background_workers: self.background_workers,
        };
        (parts, self.mutex, self.codec)
    }
}

/// Configures a region: [`Region::builder`](super::Region::builder) (the default `S`) or
/// [`AsyncRegion::builder`](super::AsyncRegion::builder); the options are the same for both.
pub struct RegionBuilder<V, S = BlockingStore<V>> {
    pub(crate) settings: Settings<V>,
    pub(crate) store: S,
}

impl<V, S> std::fmt::Debug for RegionBuilder<V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionBuilder")
            .field("name", &self.settings.name)
            .field("expiration", &self.settings.expiration)
            .finish()
    }
}

impl<V, S> RegionBuilder<V, S> {
    pub(crate) fn new(name: String, store: S) -> Self {
        Self {
            settings: Settings {
                name,
                expiration: None,
                backend_expiry: Expiry::Never,
                lock_wait: DEFAULT_LOCK_WAIT,
                keys: None,
                clock: None,
                should_cache: None,
                background_workers: 0,
                early: None,
                mutex: None,
                codec: None,
            },
            store,
        }
    }

    /// Values older than `expiration` are regenerated (`None`, the default: never by age).
    pub fn expiration(mut self, expiration: Option<Duration>) -> Self {
        self.settings.expiration = expiration;
        self
    }

    /// The TTL given to the backend on every write (default [`Expiry::Never`]); keep it
    /// longer than the expiration so stale values remain to be served.
    pub fn backend_expiry(mut self, expiry: Expiry) -> Self {
        self.settings.backend_expiry = expiry;
        self
    }

    /// A mutex shared with other processes ([`FileMutex`](super::FileMutex) on one host,
    /// [`DistributedMutex`](super::DistributedMutex) across hosts), taken on the mangled
    /// key after the region's in-process lock, so one process regenerates at a time and
    /// threads (or tasks) of one process do not poll it. The async face runs its blocking
    /// calls on tokio's blocking pool. Default: none (in-process only).
    pub fn mutex(mut self, mutex: Arc<dyn KeyedMutex>) -> Self {
        self.settings.mutex = Some(mutex);
        self
    }

    /// The longest a caller waits for another caller's creator, in-process and shared
    /// mutex together (default 30 s; [`Error::LockTimeout`](crate::Error::LockTimeout) past
    /// it).
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.settings.lock_wait = wait;
        self
    }

    /// The key mangler (default: UTF-8 keys prefixed with `"<region name>:"`, or as they are
    /// in a memory cache the region owns). Use `KeyEncoder::new(KeyEncoding::Hash(..))` to
    /// make any key valid.
    pub fn key_encoder(mut self, keys: KeyEncoder) -> Self {
        self.settings.keys = Some(keys);
        self
    }

    /// The clock for creation times, expiration and invalidation (default:
    /// [`CoarseClock`](crate::clock::CoarseClock), the system clock to about a millisecond, which a fresh hit reads
    /// without asking the operating system; [`SystemClock`](crate::clock::SystemClock) for
    /// exact readings).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.settings.clock = Some(clock);
        self
    }

    /// Only values for which `predicate` is true are stored (others are still returned).
    pub fn should_cache(mut self, predicate: impl Fn(&V) -> bool + Send + Sync + 'static) -> Self {
        self.settings.should_cache = Some(Arc::new(predicate));
        self
    }

    /// Background regeneration: the caller that wins the lock on an expired value returns
    /// the stale value at once and the creator runs elsewhere (a new thread, or a tokio
    /// task), at most `max_workers` at a time. When all are busy the winner regenerates
    /// inline, then returns the stale value; a background creator's error is only logged.
    /// The lock is held until the creator finishes. 0 turns it off (the default).
    pub fn background_regeneration(mut self, max_workers: usize) -> Self {
        self.settings.background_workers = max_workers;
        self
    }

    /// Probabilistic early expiration (XFetch) with eagerness `beta` and a generator seeded
    /// with `seed`; needs an expiration.
    pub fn early_expiration(mut self, beta: f64, seed: u64) -> Self {
        self.settings.early = Some(EarlyExpiration::new(beta, seed));
        self
    }

    /// The codec of entries in a backend that stores bytes (default: JSON); ignored by a
    /// backend that stores [`CachedValue`]s itself. For example `PostcardCodec::new()`, or
    /// `Compressed` over it for large values.
    pub fn codec(mut self, codec: impl Codec<CachedValue<V>> + 'static) -> Self {
        self.settings.codec = Some(Arc::new(codec));
        self
    }
}
