//! The rules of a multi-key `get_or_create`, sans-IO: which keys are served as found, which
//! locks to take (in sorted key order, so concurrent multi-calls cannot deadlock, and how:
//! try for a stale value, wait for a missing one), which keys the creator makes once the
//! locks are held, and how the answers line up with the caller's keys (a repeated key
//! shares its first occurrence's value). Regeneration here is always inline.

use std::collections::HashMap;
use std::time::Instant;

use crate::dogpile::core::{CachedValue, Core, Verdict};
use crate::{Error, Result};

/// How to take one key's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MultiLock {
    /// Only if free; when held, [`MultiPlan::busy`] serves the stale value.
    Try,
    /// Wait (bounded): nothing to serve.
    Wait,
}

/// One multi-key call's state between the face's I/O steps.
pub(crate) struct MultiPlan<'k, V> {
    keys: &'k [&'k str],
    mangled: Vec<String>,
    /// For each position, the first position with the same mangled key.
    first: Vec<usize>,
    out: Vec<Option<V>>,
    stale: Vec<Option<V>>,
    locked: Vec<usize>,
    to_create: Vec<usize>,
}

impl<'k, V: Clone> MultiPlan<'k, V> {
    pub(crate) fn new(core: &Core<V>, keys: &'k [&'k str]) -> Result<Self> {
        let mangled: Vec<String> = keys.iter().map(|k| core.mangle(k)).collect::<Result<_>>()?;
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
        let first = mangled
            .iter()
            .enumerate()
            .map(|(i, m)| *seen.entry(m.as_str()).or_insert(i))
            .collect();
        Ok(Self {
            keys,
            first,
            out: vec![None; keys.len()],
            stale: vec![None; keys.len()],
            mangled,
            locked: Vec::new(),
            to_create: Vec::new(),
        })
    }

    /// The backend keys to read first (each once).
    pub(crate) fn to_fetch(&self) -> Vec<&str> {
        self.unique().map(|i| self.mangled[i].as_str()).collect()
    }

    fn unique(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.keys.len()).filter(|&i| self.first[i] == i)
    }

    /// The backend key at position `i`.
    pub(crate) fn key(&self, i: usize) -> &str {
        &self.mangled[i]
    }

    /// Judges what the first read found; returns the locks to take, in order.
    pub(crate) fn first_look(
        &mut self,
        core: &Core<V>,
        mut found: HashMap<String, CachedValue<V>>,
    ) -> Vec<(usize, MultiLock)> {
        let mut wanted = Vec::new();
        for i in self.unique().collect::<Vec<_>>() {
            match core.judge(found.remove(&self.mangled[i]), core.expiration_ms) {
                Verdict::Fresh(value) => self.out[i] = Some(value),
                Verdict::Stale(value) => {
                    self.stale[i] = Some(value);
                    wanted.push((i, MultiLock::Try));
                }
                Verdict::Missing => wanted.push((i, MultiLock::Wait)),
            }
        }
        wanted.sort_by(|a, b| self.mangled[a.0].cmp(&self.mangled[b.0]));
        wanted
    }

    /// The lock on position `i` is held by someone else: serve its stale value.
    pub(crate) fn busy(&mut self, i: usize) {
        self.out[i] = self.stale[i].take();
    }

    /// This caller holds the lock on position `i`.
    pub(crate) fn locked(&mut self, i: usize) {
        self.locked.push(i);
    }

    /// The backend keys to read again under the locks.
    pub(crate) fn to_recheck(&self) -> Vec<&str> {
        self.locked
            .iter()
            .map(|&i| self.mangled[i].as_str())
            .collect()
    }

    /// Judges the second read; returns the caller's keys the creator must make, in the
    /// order it must return their values.
    pub(crate) fn recheck(
        &mut self,
        core: &Core<V>,
        mut found: HashMap<String, CachedValue<V>>,
    ) -> Vec<&'k str> {
        for &i in &self.locked {
            match core.judge(found.remove(&self.mangled[i]), core.expiration_ms) {
                Verdict::Fresh(value) => self.out[i] = Some(value),
                Verdict::Stale(_) | Verdict::Missing => self.to_create.push(i),
            }
        }
        self.to_create.iter().map(|&i| self.keys[i]).collect()
    }

    /// Takes the creator's `values`; returns the entries to store, by position.
    pub(crate) fn created(
        &mut self,
        core: &Core<V>,
        values: Vec<V>,
        started: Instant,
    ) -> Result<Vec<(usize, CachedValue<V>)>> {
        if values.len() != self.to_create.len() {
            return Err(Error::user(format!(
                "region {:?}: multi creator returned {} values for {} keys",
                core.name,
                values.len(),
                self.to_create.len()
            )));
        }
        let mut entries = Vec::with_capacity(values.len());
        for (&i, value) in self.to_create.iter().zip(values) {
            if let Some(entry) = core.created(&value, started) {
                entries.push((i, entry));
            }
            self.out[i] = Some(value);
        }
        Ok(entries)
    }

    /// The values in the caller's key order.
    pub(crate) fn finish(mut self) -> Result<Vec<V>> {
        for i in 0..self.out.len() {
            if self.first[i] != i {
                self.out[i] = self.out[self.first[i]].clone();
            }
        }
        self.out
            .into_iter()
            .zip(self.keys)
            .map(|(v, k)| {
                v.ok_or_else(|| Error::Unavailable(format!("no value produced for key {k:?}")))
            })
            .collect()
    }
}
