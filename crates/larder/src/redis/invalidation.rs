//! [`RedisInvalidation`]: cross-instance L1 invalidation for tiered caches over pub/sub.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::config::RedisConfig;
use super::connections::Connections;
use crate::invalidation::{InvalidationBus, Stale as Invalidation};
use crate::{Error, Result};

/// Cross-instance L1 invalidation for [`Tiered`](crate::tiered::Tiered) over Redis pub/sub.
///
/// Each instance gets a random id; messages are `id` + `\n` + `K<key>` or `*`, and an
/// instance ignores its own. A background thread per subscriber reads the channel (with a
/// short read timeout so it notices shutdown, and reconnects after errors); it stops when
/// the bus is dropped. Delivery is as reliable as Redis pub/sub: a message published while
/// a subscriber is disconnected is lost, so keep the L1 cap short.
pub struct RedisInvalidation {
    cons: Connections,
    channel: String,
    id: String,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisInvalidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisInvalidation")
            .field("channel", &self.channel)
            .field("id", &self.id)
            .finish()
    }
}

impl RedisInvalidation {
    /// A bus on `channel` of the server of `config`; it needs blocking connections, so not a
    /// configuration built from a `ConnectionManager`.
    pub fn new(config: RedisConfig, channel: impl Into<String>) -> Result<Self> {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(crate::clock::Clock::unix_time(&crate::clock::SystemClock).as_nanos());
        h.write_u32(std::process::id());
        Ok(Self {
            cons: Connections::new(config, "RedisInvalidation")?,
            channel: channel.into(),
            id: format!("{:016x}", h.finish()),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Drop for RedisInvalidation {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl InvalidationBus for RedisInvalidation {
    fn publish(&self, what: &Invalidation) -> Result<()> {
        let message = match what {
            Invalidation::Key(key) => format!("{}\nK{key}", self.id),
            Invalidation::All => format!("{}\n*", self.id),
        };
        self.cons.with("PUBLISH", |c| {
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(&message)
                .query::<u64>(c)
        })?;
        Ok(())
    }

    fn subscribe(&self, on_remote: Box<dyn Fn(Invalidation) + Send + Sync>) -> Result<()> {
        let subscriber = Subscriber {
            cons: Connections::new(self.cons.config().clone(), "RedisInvalidation")?,
            channel: self.channel.clone(),
            id: self.id.clone(),
            stop: Arc::clone(&self.stop),
        };
        // The thread reports once it is subscribed, so nothing published after `subscribe`
        // returns is missed.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("larder-invalidation-{}", self.channel))
            .spawn(move || subscriber.run(ready_tx, on_remote))
            .map_err(Error::Io)?;
        let bound = self.cons.config().connect_timeout + self.cons.config().response_timeout;
        match ready_rx.recv_timeout(bound) {
            Ok(result) => result,
            Err(_) => {
                self.stop.store(true, Ordering::SeqCst);
                Err(Error::Timeout {
                    what: format!("redis SUBSCRIBE {}", self.channel),
                    after: bound,
                })
            }
        }
    }
}

/// What the subscriber thread owns (no reference back to the bus, so dropping the bus
/// stops the thread within one read timeout).
struct Subscriber {
    cons: Connections,
    channel: String,
    id: String,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    fn parse(&self, payload: &[u8]) -> Option<Invalidation> {
        let text = std::str::from_utf8(payload).ok()?;
        let (from, what) = text.split_once('\n')?;
        if from == self.id {
            return None;
        }
        match what.strip_prefix('K') {
            Some(key) => Some(Invalidation::Key(key.to_owned())),
            None if what == "*" => Some(Invalidation::All),
            None => None,
        }
    }

    fn run(
        self,
        ready: std::sync::mpsc::SyncSender<Result<()>>,
        on_remote: Box<dyn Fn(Invalidation) + Send + Sync>,
    ) {
        let mut ready = Some(ready);
        while !self.stop.load(Ordering::SeqCst) {
            let subscribed = self.cons.open().and_then(|con| {
                con.set_read_timeout(Some(Duration::from_millis(100)))
                    .map_err(|e| self.cons.err("set timeouts", e))?;
                Ok(con)
            });
            let mut con = match subscribed {
                Ok(con) => con,
                Err(e) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(e));
                        return;
                    }
                    log::warn!("invalidation channel {}: {e}", self.channel);
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            let mut pubsub = con.as_pubsub();
            if let Err(e) = pubsub.subscribe(&self.channel) {
                let e = self.cons.err("SUBSCRIBE", e);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                log::warn!("invalidation channel {}: {e}", self.channel);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Ok(()));
                }
                // Whatever was published while we were away is lost: evict everything.
                None => on_remote(Invalidation::All),
            }
            while !self.stop.load(Ordering::SeqCst) {
                match pubsub.get_message() {
                    Ok(msg) => {
                        if let Some(what) = msg
                            .get_payload::<Vec<u8>>()
                            .ok()
                            .and_then(|p| self.parse(&p))
                        {
                            on_remote(what);
                        }
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(e) => {
                        log::warn!("invalidation channel {}: {e}; reconnecting", self.channel);
                        break;
                    }
                }
            }
        }
    }
}
