//! Server health and routing for both clients: the ring over the configured servers, which
//! servers are dead, and where a key goes meanwhile ([`FailoverMode`]). Pure bookkeeping
//! under one mutex; no I/O. Times come from the configured [`Clock`](crate::clock::Clock).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::ring::{Ring, ServerAddr};
use super::ClientConfig;
use crate::clock::SharedClock;
use crate::{Error, Result};

/// What happens to the keys of a dead server (non-exhaustive: more modes may come).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailoverMode {
    /// libmemcached's `remove_failed`: the ring is rebuilt without dead servers, so their
    /// keys move to live ones (and come back when the server rejoins; values written to the
    /// stand-in meanwhile stay there until they expire, as with libmemcached). With every
    /// server dead, calls fail at once with [`Error::NoServers`] until a retry is due.
    #[default]
    Rehash,
    /// Calls for a dead server's keys fail at once with [`Error::ServerDead`], no network.
    FailFast,
}

/// When a server is marked dead and when it is tried again: [`default`](Self::default),
/// adjusted with one setter per field (the fields stay readable). Non-exhaustive, so a new
/// option is not a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailoverConfig {
    /// Consecutive transport failures (refused connect, reset, timeout) that mark a server
    /// dead; a success resets the count. Default 2 (pylibmc's `failure_limit`).
    pub failure_limit: u32,
    /// How long a dead server is left alone; then the next call routed to it probes it
    /// (success: it rejoins; failure: dead for another interval). Default 2 s (pylibmc's
    /// `retry_timeout`).
    pub retry_interval: Duration,
    /// What happens to the keys of a dead server.
    pub mode: FailoverMode,
}

impl FailoverConfig {
    /// Sets the consecutive failures that mark a server dead.
    pub fn failure_limit(mut self, failures: u32) -> Self {
        self.failure_limit = failures;
        self
    }

    /// Sets how long a dead server is left alone before it is probed.
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// Sets what happens to the keys of a dead server.
    pub fn mode(mut self, mode: FailoverMode) -> Self {
        self.mode = mode;
        self
    }
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            failure_limit: 2,
            retry_interval: Duration::from_secs(2),
            mode: FailoverMode::Rehash,
        }
    }
}

/// A snapshot of one server's health (non-exhaustive: it may report more).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerHealth {
    /// The server.
    pub addr: ServerAddr,
    /// False while the server is marked dead.
    pub alive: bool,
    /// Transport failures since the last success.
    pub consecutive_failures: u32,
    /// Transport failures since the client was created.
    pub total_failures: u64,
    /// How long the server has been dead (since it was marked, or last probed), when dead.
    pub dead_for: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
struct ServerState {
    consecutive_failures: u32,
    total_failures: u64,
    /// When the server was marked dead or last probed; `None` while alive.
    dead_since: Option<Instant>,
}

#[derive(Debug)]
struct State {
    servers: Vec<ServerState>,
    /// The ring over the live servers (the full ring while all are live).
    live_ring: Ring,
}

/// Keys grouped by server index, in key order within each group.
pub(crate) type ServerGroups<'k> = Vec<(usize, Vec<&'k [u8]>)>;

/// Routing plus health of a client's servers.
#[derive(Debug)]
pub(crate) struct Cluster {
    ring: Ring,
    failover: FailoverConfig,
    clock: SharedClock,
    state: Mutex<State>,
    /// How many servers are marked dead (written under the lock). While none is, keys route
    /// over the full ring without the lock.
    dead: AtomicUsize,
    /// How many servers are dead or have failures since their last success (written under
    /// the lock). While none has, a success has nothing to record and skips the lock.
    troubled: AtomicUsize,
}

impl Cluster {
    /// The cluster of `config`'s servers, all alive.
    pub(crate) fn new(config: &ClientConfig) -> Result<Self> {
        let ring = config.ring()?;
        let state = State {
            servers: vec![ServerState::default(); ring.servers().len()],
            live_ring: ring.clone(),
        };
        Ok(Self {
            ring,
            failover: config.failover,
            clock: config.clock.clone(),
            state: Mutex::new(state),
            dead: AtomicUsize::new(0),
            troubled: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain counters: usable even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn addr(&self, server: usize) -> String {
        self.ring
            .servers()
            .get(server)
            .map_or_else(|| format!("#{server}"), |s| s.addr.to_string())
    }

    /// The server that takes `key` now. A dead server whose retry interval has passed is
    /// returned (once per interval) so the call probes it.
    pub(crate) fn route(&self, key: &[u8]) -> Result<usize> {
        if self.dead.load(Ordering::Acquire) == 0 {
            return self.home(key);
        }
        let now = self.clock.now();
        let mut state = self.lock();
        self.route_locked(key, now, &mut state)
    }

    /// [`route`](Self::route) under a lock (and a clock reading) the caller already holds.
    fn route_locked(&self, key: &[u8], now: Instant, state: &mut State) -> Result<usize> {
        let home = self.home(key)?;
        let Some(dead_since) = state.servers[home].dead_since else {
            return Ok(match self.failover.mode {
                // The rebuilt ring (as libmemcached's, which also moves modula's live keys).
                FailoverMode::Rehash => state.live_ring.server_for(key).unwrap_or(home),
                FailoverMode::FailFast => home,
            });
        };
        if now.saturating_duration_since(dead_since) >= self.failover.retry_interval {
            // Half-open: this call probes the server; others wait another interval.
            state.servers[home].dead_since = Some(now);
            return Ok(home);
        }
        match self.failover.mode {
            FailoverMode::FailFast => Err(Error::ServerDead(self.addr(home))),
            FailoverMode::Rehash => state
                .live_ring
                .server_for(key)
                .ok_or_else(|| Error::NoServers("every memcached server is marked dead".into())),
        }
    }

    /// The server of `key` on the full ring.
    fn home(&self, key: &[u8]) -> Result<usize> {
        self.ring
            .server_for(key)
            .ok_or_else(|| Error::NoServers("no memcached servers configured".into()))
    }

    /// Whether `server` may be called for a non-key operation (stats, flush): alive, or due
    /// for a probe (which this call then is).
    pub(crate) fn admit(&self, server: usize) -> Result<()> {
        let now = self.clock.now();
        let mut state = self.lock();
        let Some(s) = state.servers.get_mut(server) else {
            return Err(Error::NoServers(format!("no server #{server}")));
        };
        match s.dead_since {
            None => Ok(()),
            Some(since) if now.saturating_duration_since(since) >= self.failover.retry_interval => {
                s.dead_since = Some(now);
                Ok(())
            }
            Some(_) => Err(Error::ServerDead(self.addr(server))),
        }
    }

    /// Records the outcome of a call to `server`: a transport failure counts toward marking
    /// it dead; anything else (a hit, a miss, a server-side error) proves it alive.
    pub(crate) fn record<T>(&self, server: usize, result: &Result<T>) {
        let failed =
            matches!(result, Err(e) if e.is_transport() && !matches!(e, Error::ServerDead(_)));
        if !failed && self.troubled.load(Ordering::Acquire) == 0 {
            // Every server is alive with no failure to reset.
            return;
        }
        let now = self.clock.now();
        let mut state = self.lock();
        let Some(s) = state.servers.get_mut(server) else {
            return;
        };
        let mut changed = false;
        if failed {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.total_failures += 1;
            if s.dead_since.is_some() {
                // A failed probe: dead for another interval.
                s.dead_since = Some(now);
            } else if s.consecutive_failures >= self.failover.failure_limit {
                s.dead_since = Some(now);
                changed = true;
            }
        } else {
            s.consecutive_failures = 0;
            if s.dead_since.take().is_some() {
                changed = true;
            }
        }
        let troubled = state
            .servers
            .iter()
            .filter(|s| s.consecutive_failures > 0 || s.dead_since.is_some())
            .count();
        self.troubled.store(troubled, Ordering::Release);
        if changed {
            let live: Vec<bool> = state
                .servers
                .iter()
                .map(|s| s.dead_since.is_none())
                .collect();
            state.live_ring = self.ring.without(&live);
            let dead = live.iter().filter(|alive| !**alive).count();
            self.dead.store(dead, Ordering::Release);
        }
    }

    /// Groups `keys` by the server that takes each now; keys whose server failed fast
    /// (FailFast mode, or no live server) are returned apart with the error.
    pub(crate) fn group<'k>(&self, keys: &[&'k [u8]]) -> (ServerGroups<'k>, Option<Error>) {
        let all_live = self.dead.load(Ordering::Acquire) == 0;
        if all_live && self.ring.servers().len() == 1 && !keys.is_empty() {
            // One live server takes every key.
            return (vec![(0, keys.to_vec())], None);
        }
        let n = self.ring.servers().len();
        if all_live {
            return grouped(n, keys, |key| self.home(key));
        }
        let now = self.clock.now();
        let mut state = self.lock();
        grouped(n, keys, |key| self.route_locked(key, now, &mut state))
    }

    /// Groups the indices of `keys` by the server that takes each now; the first fail-fast
    /// refusal (FailFast mode, or no live server) is returned instead.
    pub(crate) fn group_indices(&self, keys: &[&[u8]]) -> Result<Vec<(usize, Vec<usize>)>> {
        let n = self.ring.servers().len();
        let indices: Vec<usize> = (0..keys.len()).collect();
        let (groups, refused) = if self.dead.load(Ordering::Acquire) == 0 {
            grouped(n, &indices, |&i| self.home(keys[i]))
        } else {
            let now = self.clock.now();
            let mut state = self.lock();
            grouped(n, &indices, |&i| {
                self.route_locked(keys[i], now, &mut state)
            })
        };
        match refused {
            Some(e) => Err(e),
            None => Ok(groups),
        }
    }

    /// A health snapshot of every server, in configuration order.
    pub(crate) fn health(&self) -> Vec<ServerHealth> {
        let now = self.clock.now();
        let state = self.lock();
        self.ring
            .servers()
            .iter()
            .zip(&state.servers)
            .map(|(server, s)| ServerHealth {
                addr: server.addr.clone(),
                alive: s.dead_since.is_none(),
                consecutive_failures: s.consecutive_failures,
                total_failures: s.total_failures,
                dead_for: s.dead_since.map(|t| now.saturating_duration_since(t)),
            })
            .collect()
    }
}

impl ServerHealth {
    /// `"alive"` or `"dead"`, for `stats` output (`larder:state`).
    pub fn state_name(&self) -> &'static str {
        if self.alive {
            "alive"
        } else {
            "dead"
        }
    }

    /// The `larder:*` entries added to this server's `stats` map.
    pub(crate) fn stats_entries(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("larder:state".to_owned(), self.state_name().to_owned()),
            (
                "larder:consecutive_failures".to_owned(),
                self.consecutive_failures.to_string(),
            ),
            (
                "larder:total_failures".to_owned(),
                self.total_failures.to_string(),
            ),
        ];
        if let Some(d) = self.dead_for {
            out.push(("larder:dead_for_ms".to_owned(), d.as_millis().to_string()));
        }
        out
    }
}

/// The non-empty groups, with their server indices.
/// `items` sorted into the non-empty groups of `n` servers by `home`, each group allocated
/// once at its final size (a multi-get's keys would otherwise regrow every group several
/// times); items `home` refuses are left out and the first refusal is returned.
fn grouped<T: Copy>(
    n: usize,
    items: &[T],
    mut home: impl FnMut(&T) -> Result<usize>,
) -> (Vec<(usize, Vec<T>)>, Option<Error>) {
    let mut refused = None;
    let mut counts = vec![0usize; n];
    let homes: Vec<usize> = items
        .iter()
        .map(|item| match home(item) {
            Ok(i) if i < n => {
                counts[i] += 1;
                i
            }
            Ok(i) => {
                refused.get_or_insert(Error::NoServers(format!("no server #{i}")));
                usize::MAX
            }
            Err(e) => {
                refused.get_or_insert(e);
                usize::MAX
            }
        })
        .collect();
    let mut groups: Vec<Vec<T>> = counts
        .iter()
        .map(|&count| Vec::with_capacity(count))
        .collect();
    for (item, &i) in items.iter().zip(&homes) {
        if let Some(group) = groups.get_mut(i) {
            group.push(*item);
        }
    }
    let groups = groups
        .into_iter()
        .enumerate()
        .filter(|(_, group)| !group.is_empty())
        .collect();
    (groups, refused)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn cluster(mode: FailoverMode) -> (Cluster, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let config = ClientConfig::from_specs("10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211")
            .unwrap()
            .failover(
                FailoverConfig::default()
                    .failure_limit(2)
                    .retry_interval(Duration::from_secs(2))
                    .mode(mode),
            )
            .clock(clock.clone());
        (Cluster::new(&config).unwrap(), clock)
    }

    fn io_err() -> Result<()> {
        Err(Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
    }

    #[test]
    fn marks_dead_after_limit_and_rehashes_then_rejoins_after_interval() {
        let (c, clock) = cluster(FailoverMode::Rehash);
        // "foo" is on server 2 under ketama (see the interop notes).
        assert_eq!(c.route(b"foo").unwrap(), 2);
        c.record(2, &io_err());
        assert!(c.health()[2].alive);
        c.record(2, &io_err());
        let h = c.health();
        assert!(!h[2].alive);
        assert_eq!(h[2].consecutive_failures, 2);
        assert_ne!(c.route(b"foo").unwrap(), 2);
        clock.advance(Duration::from_secs(2));
        // The first call after the interval probes; a concurrent one is rehashed.
        assert_eq!(c.route(b"foo").unwrap(), 2);
        assert_ne!(c.route(b"foo").unwrap(), 2);
        c.record(2, &Ok(()));
        assert!(c.health()[2].alive);
        assert_eq!(c.route(b"foo").unwrap(), 2);
    }

    #[test]
    fn a_success_resets_the_count_and_failed_probe_waits_again() {
        let (c, clock) = cluster(FailoverMode::FailFast);
        c.record(2, &io_err());
        c.record(2, &Ok(()));
        c.record(2, &io_err());
        assert!(c.health()[2].alive);
        c.record(2, &io_err());
        assert!(matches!(c.route(b"foo"), Err(Error::ServerDead(_))));
        clock.advance(Duration::from_secs(3));
        assert_eq!(c.route(b"foo").unwrap(), 2);
        c.record(2, &io_err());
        assert!(matches!(c.route(b"foo"), Err(Error::ServerDead(_))));
        assert_eq!(c.health()[2].total_failures, 4);
        // A miss or a server error is not a transport failure.
        clock.advance(Duration::from_secs(2));
        assert_eq!(c.route(b"foo").unwrap(), 2);
        c.record::<()>(2, &Err(Error::Server("NOT_STORED".into())));
        assert!(c.health()[2].alive);
    }

    #[test]
    fn every_server_dead_fails_at_once() {
        for (mode, want_dead) in [
            (FailoverMode::Rehash, false),
            (FailoverMode::FailFast, true),
        ] {
            let (c, _clock) = cluster(mode);
            for server in 0..3 {
                c.record(server, &io_err());
                c.record(server, &io_err());
            }
            assert!(c.health().iter().all(|h| !h.alive));
            match c.route(b"foo") {
                Err(Error::ServerDead(_)) => assert!(want_dead),
                Err(Error::NoServers(_)) => assert!(!want_dead),
                other => panic!("{mode:?}: {other:?}"),
            }
            assert!(matches!(c.admit(0), Err(Error::ServerDead(_))));
            let (groups, refused) = c.group(&[b"foo".as_slice(), b"bar".as_slice()]);
            assert!(groups.is_empty() && refused.is_some());
            assert!(c.group_indices(&[b"foo".as_slice()]).is_err());
        }
    }
}
