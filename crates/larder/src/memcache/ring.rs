//! Key placement: which server of a cluster holds a key, computed exactly as the Python
//! clients do, so a Rust service and Python services share one memcached cluster.
//!
//! | [`Distribution`] | placed like | key hash |
//! |---|---|---|
//! | `Ketama` (default) | pylibmc `behaviors={"ketama": True}` (libmemcached) | configured ([`KeyHash`], one-at-a-time by default) |
//! | `KetamaWeighted` | pylibmc `"ketama_weighted": True` | md5 |
//! | `Modula` | pylibmc / libmemcached default | configured |
//! | `PythonMemcached` | python-memcached (weighted crc buckets, dead-server rehash) | crc |
//! | `Rendezvous` | pymemcache `HashClient` (murmur3 rendezvous) | murmur3 |
//!
//! The facts behind each mode (hash functions, point counts, lookup, test vectors) are in
//! the repository's `docs/memcached-interop.md`; the tests below check the vectors, and the
//! interop tests check placement against the real Python clients. A ring is pure: no
//! network, no clock. Dead servers are
//! taken out with [`Ring::without`] (ketama modes rebuild the continuum as libmemcached's
//! `remove_failed` does; `PythonMemcached` rehashes as python-memcached does).

use std::io::Cursor;

use md5::Digest as _;

use crate::{Error, Result};

/// How keys are spread over servers (non-exhaustive: more may come).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Distribution {
    /// libmemcached ketama: 100 points per server, hashed with the configured key hash.
    /// A server weight above 1 silently switches to the weighted continuum (md5 points)
    /// while keeping the configured key hash, as libmemcached does.
    #[default]
    Ketama,
    /// libmemcached ketama weighted: md5 points in proportion to weight, md5 key hash.
    KetamaWeighted,
    /// libmemcached modula: `hash % servers`, weights ignored.
    Modula,
    /// python-memcached: each server repeated `weight` times into buckets, `crc % buckets`.
    PythonMemcached,
    /// pymemcache `HashClient`: rendezvous hashing with murmur3 over `"host:port-key"`.
    Rendezvous,
}

impl std::str::FromStr for Distribution {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "ketama" => Distribution::Ketama,
            "ketama-weighted" => Distribution::KetamaWeighted,
            "modula" => Distribution::Modula,
            "python-memcached" => Distribution::PythonMemcached,
            "pymemcache" | "rendezvous" => Distribution::Rendezvous,
            other => {
                return Err(Error::Config(format!(
                    "unknown distribution {other:?} (ketama, ketama-weighted, modula, \
                     python-memcached, pymemcache)"
                )))
            }
        })
    }
}

/// libmemcached's key hash functions (used by `Ketama` and `Modula`; non-exhaustive: more
/// may come).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyHash {
    /// Bob Jenkins' one-at-a-time over signed bytes (libmemcached's default).
    #[default]
    OneAtATime,
    /// The first four bytes of the md5 digest, little-endian.
    Md5,
    /// `(crc32(key) >> 16) & 0x7fff`, as libmemcached and python-memcached compute it.
    Crc,
}

impl std::str::FromStr for KeyHash {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "one-at-a-time" | "default" => KeyHash::OneAtATime,
            "md5" => KeyHash::Md5,
            "crc" => KeyHash::Crc,
            other => {
                return Err(Error::Config(format!(
                    "unknown hash {other:?} (one-at-a-time, md5, crc)"
                )))
            }
        })
    }
}

impl KeyHash {
    /// Hashes `key`.
    pub fn hash(self, key: &[u8]) -> u32 {
        match self {
            KeyHash::OneAtATime => one_at_a_time(key),
            KeyHash::Md5 => md5_u32(key, 0),
            KeyHash::Crc => crc_hash(key),
        }
    }
}

/// libmemcached's one-at-a-time: each byte is sign-extended as a C `signed char`.
#[inline]
pub fn one_at_a_time(key: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &b in key {
        // `b as i8 as u32` sign-extends, as libmemcached's `(int)*ptr` on a signed char.
        h = h.wrapping_add(b as i8 as u32);
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

/// The little-endian u32 at `offset` (0, 4, 8 or 12) of md5(`data`).
fn md5_u32(data: &[u8], offset: usize) -> u32 {
    let d = md5::Md5::digest(data);
    u32::from_le_bytes([d[offset], d[offset + 1], d[offset + 2], d[offset + 3]])
}

/// python-memcached's (and libmemcached's) crc hash.
pub fn crc_hash(key: &[u8]) -> u32 {
    (crc32fast::hash(key) >> 16) & 0x7fff
}

fn murmur3_32(data: &[u8]) -> u32 {
    // Reading from an in-memory cursor cannot fail.
    murmur3::murmur3_32(&mut Cursor::new(data), 0).unwrap_or(0)
}

/// The largest server weight accepted (python-memcached repeats a server `weight` times).
pub const MAX_WEIGHT: u32 = 10_000;

/// Where a server is, as a ring sees it (names only; no DNS).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    /// A TCP server: host (name, IPv4 or IPv6 literal without brackets) and port.
    Tcp {
        /// Host as written.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix socket path.
    Unix(String),
}

impl ServerAddr {
    /// Parses `HOST:PORT`, `[IPv6]:PORT`, a bare host (port 11211) or a Unix socket path
    /// (anything starting with `/`), each optionally followed by `:WEIGHT`; returns the
    /// address and the weight (1 when absent).
    pub fn parse_weighted(spec: &str) -> Result<(ServerAddr, u32)> {
        let bad = |why: &str| Error::Config(format!("bad server {spec:?}: {why}"));
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(path) = spec
            .strip_prefix("unix:")
            .or(Some(spec).filter(|s| s.starts_with('/')))
        {
            let (path, weight) = match path.rsplit_once(':') {
                Some((p, w)) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
                    (p, w.parse().map_err(|_| bad("weight out of range"))?)
                }
                _ => (path, 1),
            };
            return Ok((ServerAddr::Unix(path.to_owned()), weight));
        }
        let (host, rest) = if let Some(after) = spec.strip_prefix('[') {
            let (host, rest) = after.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            (host.to_owned(), rest.strip_prefix(':').unwrap_or(rest))
        } else {
            match spec.split_once(':') {
                Some((h, rest)) => (h.to_owned(), rest),
                None => (spec.to_owned(), ""),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let mut parts = rest.split(':').filter(|p| !p.is_empty());
        let port = match parts.next() {
            Some(p) => p.parse().map_err(|_| bad("port is not a number 0-65535"))?,
            None => 11211,
        };
        let weight = match parts.next() {
            Some(w) => w
                .parse()
                .map_err(|_| bad("weight is not a positive number"))?,
            None => 1,
        };
        if parts.next().is_some() {
            return Err(bad("too many ':' (write IPv6 hosts as [addr]:port)"));
        }
        if weight == 0 || weight > MAX_WEIGHT {
            return Err(bad(&format!("weight must be 1 to {MAX_WEIGHT}")));
        }
        Ok((ServerAddr::Tcp { host, port }, weight))
    }

    /// Parses one address without a weight (see [`parse_weighted`](Self::parse_weighted);
    /// a weight given here is an error).
    pub fn parse(spec: &str) -> Result<ServerAddr> {
        match Self::parse_weighted(spec)? {
            (addr, 1) => Ok(addr),
            (_, w) => Err(Error::Config(format!(
                "server {spec:?} has a weight ({w}) where none is allowed"
            ))),
        }
    }

    /// Parses a comma-separated list of `HOST:PORT[:WEIGHT]` specs into (address, weight).
    pub fn parse_list(text: &str) -> Result<Vec<(ServerAddr, u32)>> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse_weighted)
            .collect()
    }

    /// libmemcached's name of the server on the ketama continuum (before `-i`).
    fn ketama_name(&self) -> String {
        match self {
            ServerAddr::Tcp { host, port: 11211 } => host.clone(),
            ServerAddr::Tcp { host, port } => format!("{host}:{port}"),
            ServerAddr::Unix(path) => format!("{path}:0"),
        }
    }

    /// pymemcache's node name.
    fn pymemcache_name(&self) -> String {
        match self {
            ServerAddr::Tcp { host, port } => format!("{host}:{port}"),
            ServerAddr::Unix(path) => path.clone(),
        }
    }
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ServerAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            ServerAddr::Unix(path) => f.write_str(path),
        }
    }
}

impl std::str::FromStr for ServerAddr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(ServerAddr::parse_weighted(s)?.0)
    }
}

/// One server of a ring: its address and weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingServer {
    /// The address.
    pub addr: ServerAddr,
    /// The weight (1 when unweighted).
    pub weight: u32,
}

/// Maps keys to server indices (positions in the list the ring was built from).
#[derive(Debug, Clone)]
pub struct Ring {
    distribution: Distribution,
    key_hash: KeyHash,
    servers: Vec<RingServer>,
    live: Vec<bool>,
    placement: Placement,
}

#[derive(Debug, Clone)]
enum Placement {
    /// No live server.
    Empty,
    /// Exactly one live server among the configured ones (libmemcached hashes nothing).
    Single(usize),
    /// Sorted (point, server index) pairs, with an index by the hash's top bits.
    Continuum(Continuum),
    /// Live server indices, for modula.
    Modula(Vec<usize>),
    /// python-memcached's buckets (server indices, each repeated weight times).
    Buckets(Vec<usize>),
    /// Live (index, pymemcache node name).
    Rendezvous(Vec<(usize, String)>),
}

impl Ring {
    /// Builds a ring over `servers` (all live); weights must be 1 to [`MAX_WEIGHT`].
    pub fn new(
        servers: Vec<RingServer>,
        distribution: Distribution,
        key_hash: KeyHash,
    ) -> Result<Self> {
        if let Some(s) = servers
            .iter()
            .find(|s| s.weight == 0 || s.weight > MAX_WEIGHT)
        {
            return Err(Error::Config(format!(
                "server {} has weight {}, allowed 1 to {MAX_WEIGHT}",
                s.addr, s.weight
            )));
        }
        let live = vec![true; servers.len()];
        Ok(Self::build(servers, live, distribution, key_hash))
    }

    /// Parses `HOST:PORT[:WEIGHT]` specs (see [`ServerAddr::parse_weighted`]) into a ring.
    pub fn from_specs<S: AsRef<str>>(
        specs: &[S],
        distribution: Distribution,
        key_hash: KeyHash,
    ) -> Result<Self> {
        let servers = specs
            .iter()
            .map(|s| {
                let (addr, weight) = ServerAddr::parse_weighted(s.as_ref())?;
                Ok(RingServer { addr, weight })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(servers, distribution, key_hash)
    }

    /// The same ring with only the servers for which `live[i]` is true taking keys.
    /// Ketama and modula rebuild over the live servers (libmemcached's remove_failed);
    /// python-memcached keeps its buckets and rehashes past dead ones; rendezvous skips them.
    pub fn without(&self, live: &[bool]) -> Self {
        let live: Vec<bool> = (0..self.servers.len())
            .map(|i| live.get(i).copied().unwrap_or(true))
            .collect();
        Self::build(self.servers.clone(), live, self.distribution, self.key_hash)
    }

    fn build(
        servers: Vec<RingServer>,
        live: Vec<bool>,
        distribution: Distribution,
        key_hash: KeyHash,
    ) -> Self {
        let live_idx: Vec<usize> = (0..servers.len()).filter(|&i| live[i]).collect();
        let placement = if live_idx.is_empty() {
            Placement::Empty
        } else {
            match distribution {
                Distribution::PythonMemcached => Placement::Buckets(
                    servers
                        .iter()
                        .enumerate()
                        .flat_map(|(i, s)| std::iter::repeat_n(i, s.weight as usize))
                        .collect(),
                ),
                Distribution::Rendezvous => Placement::Rendezvous(
                    live_idx
                        .iter()
                        .map(|&i| (i, servers[i].addr.pymemcache_name()))
                        .collect(),
                ),
                _ if live_idx.len() == 1 => Placement::Single(live_idx[0]),
                Distribution::Modula => Placement::Modula(live_idx),
                Distribution::Ketama | Distribution::KetamaWeighted => {
                    let weighted = distribution == Distribution::KetamaWeighted
                        || servers.iter().any(|s| s.weight > 1);
                    Placement::Continuum(Continuum::new(continuum(
                        &servers, &live_idx, weighted, key_hash,
                    )))
                }
            }
        };
        Self {
            distribution,
            key_hash,
            servers,
            live,
            placement,
        }
    }

    /// The servers, in configuration order.
    pub fn servers(&self) -> &[RingServer] {
        &self.servers
    }

    /// The distribution.
    pub fn distribution(&self) -> Distribution {
        self.distribution
    }

    /// The hash used for keys (`KetamaWeighted` always uses md5, `PythonMemcached` crc,
    /// `Rendezvous` murmur3, whatever is configured).
    pub fn key_hash(&self) -> KeyHash {
        self.key_hash
    }

    /// The index of the server that holds `key`, or `None` when no server is live.
    pub fn server_for(&self, key: &[u8]) -> Option<usize> {
        match &self.placement {
            Placement::Empty => None,
            Placement::Single(i) => Some(*i),
            Placement::Modula(live) => Some(live[self.key_hash.hash(key) as usize % live.len()]),
            Placement::Continuum(points) => {
                let h = if self.distribution == Distribution::KetamaWeighted {
                    KeyHash::Md5.hash(key)
                } else {
                    self.key_hash.hash(key)
                };
                points.server_for(h)
            }
            Placement::Buckets(buckets) => {
                let mut h = crc_hash(key);
                for i in 0..10 {
                    let server = buckets[h as usize % buckets.len()];
                    if self.live[server] {
                        return Some(server);
                    }
                    h = crc_hash(format!("{h}{i}").as_bytes());
                }
                None
            }
            Placement::Rendezvous(nodes) => {
                let mut best: Option<(u32, &str, usize)> = None;
                for (i, name) in nodes {
                    let probe = pymemcache_probe(name, key);
                    let score = murmur3_32(&probe);
                    let wins = match best {
                        None => true,
                        Some((s, n, _)) => score > s || (score == s && name.as_str() > n),
                    };
                    if wins {
                        best = Some((score, name, *i));
                    }
                }
                best.map(|(_, _, i)| i)
            }
        }
    }
}

/// What [`Ring::servers_for`] gives a key that no server takes.
pub(crate) const NO_SERVER: usize = usize::MAX;

impl Ring {
    /// Appends to `out` the server of each of `keys`, in order: exactly
    /// [`server_for`](Self::server_for) of each key, [`NO_SERVER`] for `None`. A multi-get
    /// routes all its keys at once, so the placement and the key hash are matched once for
    /// the batch and the hash is inlined into the loop instead of dispatched per key.
    pub(crate) fn servers_for<K: AsRef<[u8]>>(&self, keys: &[K], out: &mut Vec<usize>) {
        match &self.placement {
            Placement::Empty => out.extend(keys.iter().map(|_| NO_SERVER)),
            Placement::Single(i) => out.extend(keys.iter().map(|_| *i)),
            Placement::Modula(live) => {
                hashed(keys, self.key_hash, out, |h| live[h as usize % live.len()])
            }
            Placement::Continuum(points) => {
                let hash = if self.distribution == Distribution::KetamaWeighted {
                    KeyHash::Md5
                } else {
                    self.key_hash
                };
                hashed(keys, hash, out, |h| {
                    points.server_for(h).unwrap_or(NO_SERVER)
                })
            }
            // Hashes dominate these placements' cost; per key is no slower.
            Placement::Buckets(_) | Placement::Rendezvous(_) => out.extend(
                keys.iter()
                    .map(|k| self.server_for(k.as_ref()).unwrap_or(NO_SERVER)),
            ),
        }
    }
}

/// Appends `place(hash(key))` for each of `keys`, the hash function chosen once.
#[inline(always)]
fn hashed<K: AsRef<[u8]>>(
    keys: &[K],
    hash: KeyHash,
    out: &mut Vec<usize>,
    place: impl Fn(u32) -> usize,
) {
    match hash {
        KeyHash::OneAtATime => out.extend(keys.iter().map(|k| place(one_at_a_time(k.as_ref())))),
        KeyHash::Md5 => out.extend(keys.iter().map(|k| place(md5_u32(k.as_ref(), 0)))),
        KeyHash::Crc => out.extend(keys.iter().map(|k| place(crc_hash(k.as_ref())))),
    }
}

/// The bytes pymemcache's pure-Python murmur3 actually hashes for `f"{node}-{key}"`: it
/// walks the *str* one code point at a time and keeps the low byte of each (`ord(c) & 0xFF`),
/// so a non-ASCII key hashes differently from its UTF-8 bytes. A key that is not UTF-8
/// (pymemcache would hash the `repr` of a bytes key) is hashed by its raw bytes.
fn pymemcache_probe(node: &str, key: &[u8]) -> Vec<u8> {
    let mut probe = Vec::with_capacity(node.len() + 1 + key.len());
    probe.extend(node.chars().map(|c| c as u32 as u8));
    probe.push(b'-');
    match std::str::from_utf8(key) {
        Ok(text) => probe.extend(text.chars().map(|c| c as u32 as u8)),
        Err(_) => probe.extend_from_slice(key),
    }
    probe
}

/// libmemcached's continuum: the first point at or after a key's hash takes the key, the
/// first point of all when the hash is past the last one.
///
/// `start[b]` is the first point whose top bits are at least `b`, so a lookup searches
/// only the points that share the hash's top bits (about one) instead of all of them.
#[derive(Debug, Clone)]
struct Continuum {
    points: Vec<(u32, usize)>,
    start: Vec<u32>,
    shift: u32,
}

impl Continuum {
    /// Most index bits: 2^16 entries cover rings of any realistic size.
    const MAX_BITS: u32 = 16;

    /// Indexes `points`, which must be sorted.
    fn new(points: Vec<(u32, usize)>) -> Self {
        let bits = points
            .len()
            .next_power_of_two()
            .trailing_zeros()
            .clamp(1, Self::MAX_BITS);
        let shift = 32 - bits;
        let mut start = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0usize;
        for bucket in 0..=(1u64 << bits) {
            let low = bucket << shift;
            while at < points.len() && u64::from(points[at].0) < low {
                at += 1;
            }
            // Point counts are far below u32::MAX (weights are capped).
            start.push(at as u32);
        }
        Self {
            points,
            start,
            shift,
        }
    }

    #[inline(always)]
    fn server_for(&self, hash: u32) -> Option<usize> {
        let bucket = (hash >> self.shift) as usize;
        let &[lo, hi] = self.start.get(bucket..bucket + 2)? else {
            return None;
        };
        let lo = lo as usize;
        let candidates = self.points.get(lo..hi as usize)?;
        // A bucket holds about one point: a scan beats a binary search's set-up there,
        // while a crowded bucket keeps the logarithmic search.
        let at = lo
            + if candidates.len() <= 4 {
                candidates.iter().take_while(|&&(p, _)| p < hash).count()
            } else {
                candidates.partition_point(|&(p, _)| p < hash)
            };
        self.points
            .get(at)
            .or(self.points.first())
            .map(|&(_, server)| server)
    }
}

/// Builds libmemcached's sorted continuum over the live servers.
fn continuum(
    servers: &[RingServer],
    live_idx: &[usize],
    weighted: bool,
    key_hash: KeyHash,
) -> Vec<(u32, usize)> {
    let mut points = Vec::new();
    if weighted {
        let total: u64 = live_idx.iter().map(|&i| u64::from(servers[i].weight)).sum();
        let live = live_idx.len() as f32;
        for &i in live_idx {
            // libmemcached computes this in float: floor(pct * 40 * live + 1e-10) * 4.
            let pct = servers[i].weight as f32 / total as f32;
            let groups = (pct * 40.0 * live + 0.000_000_000_1_f32).floor() as u32;
            let name = servers[i].addr.ketama_name();
            for j in 0..groups {
                let d = md5::Md5::digest(format!("{name}-{j}").as_bytes());
                for k in 0..4 {
                    let o = k * 4;
                    points.push((u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]), i));
                }
            }
        }
    } else {
        for &i in live_idx {
            let name = servers[i].addr.ketama_name();
            for j in 0..100 {
                points.push((key_hash.hash(format!("{name}-{j}").as_bytes()), i));
            }
        }
    }
    points.sort_unstable();
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_continuum_index_finds_what_a_search_of_all_points_finds() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in [1usize, 2, 3, 7, 300, 1000, 4000] {
            let mut points: Vec<(u32, usize)> = (0..len).map(|i| (next() as u32, i % 5)).collect();
            // Clustered points and the edges of the hash space too.
            points.extend([(0, 1), (0, 2), (u32::MAX, 3), (1 << 31, 4), (1 << 31, 0)]);
            points.sort_unstable();
            let ring = Continuum::new(points.clone());
            let hashes = (0..5000).map(|_| next() as u32).chain(
                points
                    .iter()
                    .flat_map(|&(p, _)| [p, p.wrapping_add(1), p.wrapping_sub(1)]),
            );
            for h in hashes {
                let at = points.partition_point(|&(p, _)| p < h);
                let want = points.get(at).unwrap_or(&points[0]).1;
                assert_eq!(ring.server_for(h), Some(want), "hash {h} over {len} points");
            }
        }
        assert_eq!(Continuum::new(Vec::new()).server_for(7), None);
    }

    const KEYS: [&str; 5] = ["foo", "bar", "baz", "hello", "user:42"];
    const SERVERS: [&str; 3] = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"];

    fn placed(dist: Distribution, hash: KeyHash, servers: &[&str]) -> Vec<usize> {
        let ring = Ring::from_specs(servers, dist, hash).unwrap();
        KEYS.iter()
            .map(|k| ring.server_for(k.as_bytes()).unwrap())
            .collect()
    }

    /// The vectors of `docs/memcached-interop.md`, read off pylibmc and pymemcache.
    #[test]
    fn notes_vectors() {
        use Distribution::*;
        use KeyHash::*;
        assert_eq!(placed(Modula, OneAtATime, &SERVERS), [0, 1, 1, 0, 0]);
        assert_eq!(placed(Modula, Crc, &SERVERS), [1, 1, 0, 1, 1]);
        assert_eq!(placed(Ketama, OneAtATime, &SERVERS), [2, 0, 1, 1, 1]);
        assert_eq!(placed(Ketama, Md5, &SERVERS), [1, 2, 1, 0, 2]);
        assert_eq!(
            placed(KetamaWeighted, OneAtATime, &SERVERS),
            [1, 1, 0, 1, 0]
        );
        let py = ["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"];
        assert_eq!(placed(Rendezvous, OneAtATime, &py), [2, 0, 1, 1, 1]);
    }

    #[test]
    fn parses_server_specs() {
        let p = |s| ServerAddr::parse_weighted(s).unwrap();
        assert_eq!(
            p("h:1"),
            (
                ServerAddr::Tcp {
                    host: "h".into(),
                    port: 1
                },
                1
            )
        );
        assert_eq!(
            p("h"),
            (
                ServerAddr::Tcp {
                    host: "h".into(),
                    port: 11211
                },
                1
            )
        );
        assert_eq!(
            p("h:1:5"),
            (
                ServerAddr::Tcp {
                    host: "h".into(),
                    port: 1
                },
                5
            )
        );
        assert_eq!(
            p("[::1]:11212:3"),
            (
                ServerAddr::Tcp {
                    host: "::1".into(),
                    port: 11212
                },
                3
            )
        );
        assert_eq!(
            p("/tmp/mc.sock"),
            (ServerAddr::Unix("/tmp/mc.sock".into()), 1)
        );
        assert_eq!(
            p("/tmp/mc.sock:4"),
            (ServerAddr::Unix("/tmp/mc.sock".into()), 4)
        );
        for bad in [
            "",
            "h:x",
            "h:1:0",
            "h:1:10001",
            "h:99999",
            "::1:11211",
            "[::1:1",
        ] {
            assert!(ServerAddr::parse_weighted(bad).is_err(), "{bad}");
        }
        assert_eq!(p("[::1]:11212").0.to_string(), "[::1]:11212");
    }

    #[test]
    fn one_server_and_no_server() {
        let ring = Ring::from_specs(&["a:1"], Distribution::Ketama, KeyHash::OneAtATime).unwrap();
        assert_eq!(ring.server_for(b"anything"), Some(0));
        assert_eq!(ring.without(&[false]).server_for(b"anything"), None);
    }

    #[test]
    fn dead_server_moves_only_its_keys_under_ketama() {
        let ring = Ring::from_specs(&SERVERS, Distribution::Ketama, KeyHash::OneAtATime).unwrap();
        let degraded = ring.without(&[true, false, true]);
        for i in 0..2000 {
            let key = format!("key{i}");
            let before = ring.server_for(key.as_bytes()).unwrap();
            let after = degraded.server_for(key.as_bytes()).unwrap();
            assert_ne!(after, 1);
            if before != 1 {
                assert_eq!(before, after, "{key} moved although its server lives");
            }
        }
    }

    #[test]
    fn batched_routing_places_every_key_as_server_for_does() {
        use Distribution::*;
        let owned: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("k{i}:{}", "x".repeat(i % 40)).into_bytes())
            .chain([
                Vec::new(),
                b"foo".to_vec(),
                "caf\u{e9}:\u{1f600}".as_bytes().to_vec(),
                vec![0xff, 0x00, 0x80, b' '],
                vec![b'z'; 250],
            ])
            .collect();
        let keys: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let server_sets: [&[&str]; 4] = [
            &["10.0.0.1:11211"],
            &SERVERS,
            &["a:1:3", "b:2", "c:3:2", "/tmp/mc.sock:5"],
            &["h1:1", "h2:2", "h3:3", "h4:4", "h5:5", "h6:6", "h7:7"],
        ];
        for dist in [Ketama, KetamaWeighted, Modula, PythonMemcached, Rendezvous] {
            for hash in [KeyHash::OneAtATime, KeyHash::Md5, KeyHash::Crc] {
                for servers in server_sets {
                    let ring = Ring::from_specs(servers, dist, hash).unwrap();
                    let n = servers.len();
                    // Every server live, each one dead alone, all but the first dead, all dead.
                    let masks = std::iter::once(vec![true; n])
                        .chain((0..n).map(|d| (0..n).map(|i| i != d).collect()))
                        .chain([(0..n).map(|i| i == 0).collect(), vec![false; n]]);
                    for live in masks {
                        let ring = ring.without(&live);
                        let mut got = vec![7];
                        ring.servers_for(&keys, &mut got);
                        let want: Vec<usize> = std::iter::once(7)
                            .chain(keys.iter().map(|k| ring.server_for(k).unwrap_or(NO_SERVER)))
                            .collect();
                        assert_eq!(got, want, "{dist:?} {hash:?} {servers:?} live {live:?}");
                    }
                }
            }
        }
    }
}
