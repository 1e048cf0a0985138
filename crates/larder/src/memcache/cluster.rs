//! Server health and routing for both clients: the ring over the configured servers, which
//! servers are dead, and where a key goes meanwhile ([`FailoverMode`]). Pure bookkeeping
//! under one mutex; no I/O. Times come from the configured [`Clock`](crate::clock::Clock).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::ring::{Ring, ServerAddr, NO_SERVER};
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

/// Keys grouped by server index, in key order within each group, each with its position in
/// the keys grouped.
pub(crate) type ServerGroups<'k> = Grouped<(usize, &'k [u8])>;

/// Items grouped by server: every group's items in one buffer, the non-empty groups in
/// server order, each in item order.
#[derive(Debug)]
pub(crate) struct Grouped<T> {
    items: Vec<T>,
    /// The end of each server's items in `items` (a group starts where the one before it
    /// ends; most servers of a small call may have none).
    ends: Vec<usize>,
}

impl<T> Grouped<T> {
    /// All of `items` on server 0.
    fn one(items: Vec<T>) -> Self {
        let end = items.len();
        Self {
            items,
            ends: vec![end],
        }
    }

    /// How many servers have items.
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// Each non-empty group: its server and its items.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &[T])> + '_ {
        let mut start = 0;
        self.ends
            .iter()
            .enumerate()
            .filter_map(move |(server, &end)| {
                let group = self.items.get(start..end).unwrap_or_default();
                start = end;
                (!group.is_empty()).then_some((server, group))
            })
    }
}

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
    pub(crate) fn group<'k, K: AsRef<[u8]>>(
        &self,
        keys: &'k [K],
    ) -> (ServerGroups<'k>, Option<Error>) {
        if self.one_live_server() {
            let items: Vec<_> = keys.iter().map(AsRef::as_ref).enumerate().collect();
            return (Grouped::one(items), None);
        }
        let (homes, refused) = self.homes(keys);
        (
            homes.sort(keys.iter().map(AsRef::as_ref).enumerate()),
            refused,
        )
    }

    /// Groups the indices of `keys` by the server that takes each now; the first fail-fast
    /// refusal (FailFast mode, or no live server) is returned instead.
    pub(crate) fn group_indices(&self, keys: &[&[u8]]) -> Result<Grouped<usize>> {
        if self.one_live_server() {
            return Ok(Grouped::one((0..keys.len()).collect()));
        }
        match self.homes(keys) {
            (_, Some(e)) => Err(e),
            (homes, None) => Ok(homes.sort(0..keys.len())),
        }
    }

    /// Whether the ring has one server and it is live: it takes every key, in order, with
    /// nothing to hash, count or sort (a multi-key call's grouping is on its critical path,
    /// before the first request goes out).
    fn one_live_server(&self) -> bool {
        self.ring.servers().len() == 1 && self.dead.load(Ordering::Acquire) == 0
    }

    /// The server that takes each of `keys` now, and the first refusal.
    fn homes<K: AsRef<[u8]>>(&self, keys: &[K]) -> (Homes, Option<Error>) {
        let n = self.ring.servers().len();
        let mut homes = Homes::new(n, keys.len());
        if self.dead.load(Ordering::Acquire) == 0 {
            self.ring.servers_for(keys, &mut homes.homes);
            let refused = homes.count();
            return (homes, refused);
        }
        let now = self.clock.now();
        let mut state = self.lock();
        let mut refused = None;
        for key in keys {
            match self.route_locked(key.as_ref(), now, &mut state) {
                Ok(i) => homes.put(i),
                Err(e) => {
                    refused.get_or_insert(e);
                    homes.put(NO_SERVER);
                }
            }
        }
        let beyond = homes.count();
        (homes, refused.or(beyond))
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

/// The refusal of an item sent to `home`, which is no server (built out of the counting loop).
#[cold]
fn refusal(home: usize) -> Error {
    if home == NO_SERVER {
        Error::NoServers("no memcached servers configured".into())
    } else {
        Error::NoServers(format!("no server #{home}"))
    }
}

/// The server of each item of a batch ([`NO_SERVER`] for none), and how many items each
/// server takes: the first pass of a counting sort into [`Grouped`].
struct Homes {
    homes: Vec<usize>,
    counts: Vec<usize>,
}

impl Homes {
    fn new(servers: usize, items: usize) -> Self {
        Self {
            homes: Vec::with_capacity(items),
            counts: vec![0; servers],
        }
    }

    /// The next item goes to `server` (or to [`NO_SERVER`]: it was refused).
    fn put(&mut self, server: usize) {
        self.homes.push(server);
    }

    /// Counts the items of each server; returns the refusal of the items that no server
    /// takes, if some do not.
    fn count(&mut self) -> Option<Error> {
        let mut stray = None;
        for &home in &self.homes {
            match self.counts.get_mut(home) {
                Some(count) => *count += 1,
                None => {
                    stray.get_or_insert(home);
                }
            }
        }
        stray.map(refusal)
    }

    /// `items` (one per home, in the same order) sorted into their servers' groups; the
    /// items that have no server are left out.
    fn sort<T: Copy + Default>(self, items: impl Iterator<Item = T>) -> Grouped<T> {
        let Homes {
            homes, mut counts, ..
        } = self;
        // Each server's count becomes the start of its group, then (as the group fills)
        // its end.
        let mut total = 0;
        for count in &mut counts {
            let n = *count;
            *count = total;
            total += n;
        }
        let mut sorted = vec![T::default(); total];
        for (item, &home) in items.zip(&homes) {
            if let Some(at) = counts.get_mut(home) {
                if let Some(slot) = sorted.get_mut(*at) {
                    *slot = item;
                }
                *at += 1;
            }
        }
        Grouped {
            items: sorted,
            ends: counts,
        }
    }
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
    fn one_live_server_groups_as_the_counting_sort_does() {
        let clock = Arc::new(ManualClock::new());
        let config = ClientConfig::from_specs("10.0.0.1:11211")
            .unwrap()
            .failover(FailoverConfig::default().failure_limit(1))
            .clock(clock.clone());
        let one = Cluster::new(&config).unwrap();
        let keys: Vec<&[u8]> = vec![b"b", b"a", b"b", b"c"];
        let sorted = |c: &Cluster| {
            let (homes, refused) = c.homes(&keys);
            (homes.sort(keys.iter().copied().enumerate()), refused)
        };
        let (fast, refused) = one.group(&keys);
        let (general, general_refused) = sorted(&one);
        assert!(refused.is_none() && general_refused.is_none());
        type Group<'k> = (usize, Vec<(usize, &'k [u8])>);
        fn groups<'k>(g: &ServerGroups<'k>) -> Vec<Group<'k>> {
            g.iter()
                .map(|(server, items)| (server, items.to_vec()))
                .collect()
        }
        assert_eq!(groups(&fast), groups(&general));
        assert_eq!(
            groups(&fast),
            vec![(0, keys.iter().copied().enumerate().collect())]
        );
        let indices = one.group_indices(&keys).unwrap();
        let all: Vec<_> = indices.iter().map(|(s, i)| (s, i.to_vec())).collect();
        assert_eq!(all, vec![(0, vec![0, 1, 2, 3])]);
        // Marked dead, it takes the general path: no live server to rehash to.
        one.record(0, &io_err());
        let (dead, refused) = one.group(&keys);
        assert_eq!(dead.len(), 0);
        assert!(matches!(refused, Some(Error::NoServers(_))), "{refused:?}");
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
            let keys = [b"foo".as_slice(), b"bar".as_slice()];
            let (groups, refused) = c.group(&keys);
            assert!(groups.len() == 0 && refused.is_some());
            assert!(c.group_indices(&[b"foo".as_slice()]).is_err());
        }
    }

    /// Groups as plain vectors: (server, keys) in server order.
    type Plain<'k> = Vec<(usize, Vec<&'k [u8]>)>;

    /// A group's keys, each checked to be the key at its position.
    fn unpositioned<'k>(keys: &[&'k [u8]], group: &[(usize, &'k [u8])]) -> Vec<&'k [u8]> {
        group
            .iter()
            .map(|&(at, key)| {
                assert_eq!(keys[at], key, "position {at}");
                key
            })
            .collect()
    }

    /// What grouping must give: each key routed on its own, in key order.
    fn grouped_one_by_one<'k>(c: &Cluster, keys: &[&'k [u8]]) -> (Plain<'k>, bool) {
        let mut groups: Plain<'k> = Vec::new();
        let mut refused = false;
        for &key in keys {
            match c.route(key) {
                Ok(server) => match groups.iter_mut().find(|(s, _)| *s == server) {
                    Some((_, group)) => group.push(key),
                    None => groups.push((server, vec![key])),
                },
                Err(_) => refused = true,
            }
        }
        groups.sort_by_key(|(server, _)| *server);
        (groups, refused)
    }

    #[test]
    fn grouping_routes_every_key_as_routing_it_alone_does() {
        let owned: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("key:{i}").into_bytes())
            .chain([b"foo".to_vec(), b"foo".to_vec(), b"bin\x00ary".to_vec()])
            .collect();
        let keys: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        for mode in [FailoverMode::Rehash, FailoverMode::FailFast] {
            // No server dead, then 1 of 3, 2 of 3 and all 3 (no clock advance: no probes).
            let (c, _clock) = cluster(mode);
            for dead in 0..=3 {
                if dead > 0 {
                    c.record(dead - 1, &io_err());
                    c.record(dead - 1, &io_err());
                }
                let (want, want_refused) = grouped_one_by_one(&c, &keys);
                let (groups, refused) = c.group(&keys);
                let got: Plain<'_> = groups
                    .iter()
                    .map(|(s, g)| (s, unpositioned(&keys, g)))
                    .collect();
                assert_eq!(got, want, "{mode:?} with {dead} dead");
                assert_eq!(refused.is_some(), want_refused, "{mode:?} with {dead} dead");
                match c.group_indices(&keys) {
                    Ok(indices) => {
                        assert!(!want_refused);
                        let got: Plain<'_> = indices
                            .iter()
                            .map(|(s, g)| (s, g.iter().map(|&i| keys[i]).collect()))
                            .collect();
                        assert_eq!(got, want, "{mode:?} with {dead} dead, indices");
                    }
                    Err(_) => assert!(want_refused),
                }
            }
        }
        // One server: every key to it, none hashed.
        let one = Cluster::new(&ClientConfig::from_specs("10.0.0.1:11211").unwrap()).unwrap();
        let (groups, refused) = one.group(&keys);
        assert!(refused.is_none());
        let got: Plain<'_> = groups
            .iter()
            .map(|(s, g)| (s, unpositioned(&keys, g)))
            .collect();
        assert_eq!(got, [(0, keys.clone())]);
        let (groups, refused) = one.group::<&[u8]>(&[]);
        assert!(groups.len() == 0 && refused.is_none());
    }
}
