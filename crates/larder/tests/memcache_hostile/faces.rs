//! The two clients behind one interface, and the checks every scenario makes of their
//! answers (a value is the asked key's own, or the call failed).

use std::collections::BTreeMap;
use std::time::Duration;

use larder::memcache::{AsyncClient, Client, ClientConfig, ServerAddr};
use larder::Expiry;

use crate::fakes::*;

// ---------------------------------------------------------------------------------------
// The two clients behind one interface
// ---------------------------------------------------------------------------------------

pub(crate) type Hits = BTreeMap<Vec<u8>, Vec<u8>>;

/// The calls the scenarios make, on either client.
pub(crate) trait Calls {
    fn get(&self, key: &[u8]) -> larder::Result<Option<Vec<u8>>>;
    fn get_multi(&self, keys: &[&[u8]]) -> larder::Result<Hits>;
    fn set(&self, key: &[u8], value: &[u8]) -> larder::Result<()>;
}

pub(crate) struct Blocking(Client);

impl Calls for Blocking {
    fn get(&self, key: &[u8]) -> larder::Result<Option<Vec<u8>>> {
        Ok(self.0.get(key)?.map(|(v, _)| v))
    }
    fn get_multi(&self, keys: &[&[u8]]) -> larder::Result<Hits> {
        let hits = self.0.get_multi(keys)?;
        Ok(hits
            .iter()
            .map(|h| (h.key.to_vec(), h.value.to_vec()))
            .collect())
    }
    fn set(&self, key: &[u8], value: &[u8]) -> larder::Result<()> {
        self.0.set(key, value, 0, Expiry::Never)
    }
}

/// The async client, each call driven to completion on a current-thread runtime of its own
/// (the runtime outlives the client's connections).
pub(crate) struct Async {
    pub(crate) client: AsyncClient,
    pub(crate) rt: tokio::runtime::Runtime,
}

impl Calls for Async {
    fn get(&self, key: &[u8]) -> larder::Result<Option<Vec<u8>>> {
        Ok(self.rt.block_on(self.client.get(key))?.map(|(v, _)| v))
    }
    fn get_multi(&self, keys: &[&[u8]]) -> larder::Result<Hits> {
        let hits = self.rt.block_on(self.client.get_multi(keys))?;
        Ok(hits
            .iter()
            .map(|h| (h.key.to_vec(), h.value.to_vec()))
            .collect())
    }
    fn set(&self, key: &[u8], value: &[u8]) -> larder::Result<()> {
        self.rt
            .block_on(self.client.set(key, value, 0, Expiry::Never))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Blocking,
    Async,
}

impl Kind {
    pub(crate) fn client(self, config: ClientConfig) -> Box<dyn Calls> {
        match self {
            Kind::Blocking => Box::new(Blocking(Client::new(config).unwrap())),
            Kind::Async => Box::new(Async {
                client: AsyncClient::new(config).unwrap(),
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
            }),
        }
    }
}

/// The configuration of the one fake server at `addr`: 2 s I/O timeouts, and a failure limit
/// that never marks it dead (these tests are about each call's answer, not failover).
pub(crate) fn config(addr: &str) -> ClientConfig {
    let mut config = ClientConfig::new(vec![ServerAddr::parse(addr).unwrap()])
        .io_timeout(Duration::from_secs(2));
    config.failover.failure_limit = u32::MAX;
    config
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

pub(crate) fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A get of `key` (which the fake holds) either failed or returned `key`'s own value: never
/// another key's value, never a miss. True when it succeeded.
pub(crate) fn true_or_err(kind: Kind, key: &[u8], got: &larder::Result<Option<Vec<u8>>>) -> bool {
    match got {
        Ok(Some(v)) if *v == value_of(key) => true,
        Err(_) => false,
        Ok(other) => panic!(
            "{kind:?} get({:?}) returned {:?}, not its own value {:?}",
            show(key),
            other.as_deref().map(show),
            show(&value_of(key))
        ),
    }
}

/// A get_multi of `keys` (all held by the fake) either failed or returned exactly their own
/// values. True when it succeeded.
pub(crate) fn multi_true_or_err(kind: Kind, keys: &[&[u8]], got: &larder::Result<Hits>) -> bool {
    let expected: Hits = keys.iter().map(|k| (k.to_vec(), value_of(k))).collect();
    match got {
        Ok(hits) if *hits == expected => true,
        Err(_) => false,
        Ok(hits) => panic!(
            "{kind:?} get_multi({:?}) returned {:?}, expected {:?}",
            keys.iter().map(|k| show(k)).collect::<Vec<_>>(),
            printable(hits),
            printable(&expected)
        ),
    }
}

/// A get's outcome, values as text.
pub(crate) fn describe(got: &larder::Result<Option<Vec<u8>>>) -> String {
    match got {
        Ok(Some(v)) => format!("Ok(Some({:?}))", show(v)),
        Ok(None) => "Ok(None)".to_owned(),
        Err(e) => format!("Err({e:?})"),
    }
}

/// A get_multi's outcome, values as text.
pub(crate) fn describe_hits(got: &larder::Result<Hits>) -> String {
    match got {
        Ok(hits) => format!("Ok({:?})", printable(hits)),
        Err(e) => format!("Err({e:?})"),
    }
}

pub(crate) fn printable(hits: &Hits) -> Vec<(String, String)> {
    hits.iter().map(|(k, v)| (show(k), show(v))).collect()
}

/// After the misbehaviour: the first of these gets may still fail (the client may only now
/// notice a connection out of step), every later one returns its key's own value.
pub(crate) fn recovers(kind: Kind, c: &dyn Calls, keys: &[&str]) {
    for (i, key) in keys.iter().enumerate() {
        let got = c.get(key.as_bytes());
        let ok = true_or_err(kind, key.as_bytes(), &got);
        assert!(
            ok || i == 0,
            "{kind:?}: get({key:?}) #{i} after recovery gave {}",
            describe(&got)
        );
    }
}
