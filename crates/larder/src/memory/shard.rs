//! One shard of a [`MemoryCache`](super::MemoryCache): its entries, the hash index over
//! them, the expiry index reclaimed on writes, its counters, and the removed entries waiting
//! for the eviction listener. Which entry leaves when the shard is full is decided in
//! [`policy`](super::policy).
//!
//! Layout, chosen to keep the read path short and per-entry memory small:
//! - entries live in a slab (`slots`) and are named by a `u32` index; the slab grows by
//!   doubling but never past the entry bound, so a full cache carries no spare slots;
//! - `index` is a hash table of slot indices only (4 bytes and a control byte per bucket);
//!   the key's hash lives in the entry (for the table's rehash and the policy), and every
//!   lookup compares the key itself, so keys sharing a hash coexist;
//! - `expiring` orders entries with a time to live by their deadline so that every write
//!   reclaims a bounded number of entries whose deadline has passed.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

use foldhash::fast::SeedableRandomState;
use hashbrown::HashTable;

use super::policy::{Policy, Segment};
use super::EvictionCause;
use crate::clock::Clock;
use crate::value::{as_counter, from_counter};
use crate::{Error, Result};

/// The deadline of an entry that never expires.
pub(super) const NEVER: u64 = u64::MAX;
/// The bound of a limit that is not configured.
pub(super) const UNBOUNDED: u64 = u64::MAX;
/// The most entries a shard holds. Slot indices are `u32`: the slab holds live and dead
/// slots only (free ones are reused first) and dead ones never outnumber live ones by more
/// than the policy's slack, so the slab stays far below `u32::MAX`.
pub(super) const MAX_ENTRIES: u64 = 1 << 30;
/// Expired entries reclaimed by one write at most, so that no write pays for a backlog.
const SWEEP_BUDGET: usize = 8;

/// Event counters of one shard (summed into [`MemoryStats`](super::MemoryStats)).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counters {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    pub expirations: u64,
}

/// The current time in nanoseconds since the cache's base instant, read from the clock at
/// most once per operation and only when an operation needs it.
pub(super) struct Now<'a> {
    clock: &'a Arc<dyn Clock>,
    base: Instant,
    nanos: Option<u64>,
}

impl<'a> Now<'a> {
    pub(super) fn new(clock: &'a Arc<dyn Clock>, base: Instant) -> Self {
        Self {
            clock,
            base,
            nanos: None,
        }
    }

    pub(super) fn get(&mut self) -> u64 {
        let (clock, base) = (self.clock, self.base);
        *self.nanos.get_or_insert_with(|| {
            let elapsed = clock.now().saturating_duration_since(base);
            u64::try_from(elapsed.as_nanos()).unwrap_or(NEVER - 1)
        })
    }

    /// The time left until `deadline`, as an [`Expiry`](crate::Expiry).
    pub(super) fn remaining(&mut self, deadline: u64) -> crate::Expiry {
        if deadline == NEVER {
            crate::Expiry::Never
        } else {
            crate::Expiry::After(std::time::Duration::from_nanos(
                deadline.saturating_sub(self.get()),
            ))
        }
    }

    /// The deadline of an entry written now with `expiry`.
    pub(super) fn deadline(&mut self, expiry: crate::Expiry) -> u64 {
        match expiry.ttl() {
            None => NEVER,
            Some(ttl) => {
                let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(NEVER);
                self.get().saturating_add(ttl).min(NEVER - 1)
            }
        }
    }
}

/// Longest key stored inside its entry rather than in a separate allocation.
const INLINE_KEY: usize = 22;

/// A key's bytes: short keys live inside the entry (no allocation, no extra cache miss on a
/// lookup), longer ones in a boxed slice. Always the bytes of a `str`.
pub(super) enum StoredKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl StoredKey {
    fn new(key: &str) -> Self {
        let key = key.as_bytes();
        if key.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            // Fits: `key.len() <= INLINE_KEY < 256`.
            let len = key.len() as u8;
            StoredKey::Inline { len, bytes }
        } else {
            StoredKey::Heap(key.into())
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            StoredKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            StoredKey::Heap(bytes) => bytes,
        }
    }

    fn to_text(&self) -> String {
        // Stored from a `str`, so this never replaces anything.
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

/// One entry. Aligned to a cache line: with a small value it fills one line, so a lookup
/// reads one line instead of the two that a 56-byte entry straddles most of the time.
#[repr(align(64))]
pub(super) struct Entry<V> {
    pub(super) key: StoredKey,
    pub(super) value: V,
    /// The key's hash (the line has room for it: the policy and the index need it).
    pub(super) hash: u64,
    pub(super) deadline: u64,
    pub(super) weight: u64,
    /// Reads since the policy last looked (capped; see the policy).
    pub(super) freq: u8,
    pub(super) segment: Segment,
}

/// An entry that left the shard, kept until the shard's lock is released so the eviction
/// listener never runs under it.
pub(super) type Removed<V> = (String, V, EvictionCause);

/// One shard: a bounded cache with per-entry deadlines. Not thread-safe by itself; the cache
/// keeps each shard behind a mutex.
pub(super) struct Shard<V, S = SeedableRandomState> {
    index: HashTable<u32>,
    pub(super) slots: Vec<Option<Entry<V>>>,
    pub(super) free: Vec<u32>,
    expiring: BTreeSet<(u64, u32)>,
    pub(super) len: u64,
    pub(super) weight: u64,
    pub(super) max_entries: u64,
    pub(super) max_weight: u64,
    hasher: S,
    pub(super) policy: Policy,
    pub(super) counters: Counters,
    /// Whether removed entries are kept for a listener (otherwise dropped at once).
    notify: bool,
    removed: Vec<Removed<V>>,
}

impl<V, S: BuildHasher + Clone> Shard<V, S> {
    /// An empty shard holding at most `max_entries` entries of total weight `max_weight`,
    /// hashing keys as the cache does; `notify` keeps removed entries for a listener.
    pub(super) fn new(max_entries: u64, max_weight: u64, hasher: S, notify: bool) -> Self {
        Self {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            expiring: BTreeSet::new(),
            len: 0,
            weight: 0,
            max_entries: max_entries.min(MAX_ENTRIES),
            max_weight,
            hasher,
            policy: Policy::new(),
            counters: Counters::default(),
            notify,
            removed: Vec::new(),
        }
    }

    /// Shares `shifts`, the shift signal of the cache's shards (see the policy's docs).
    pub(super) fn share_shifts(&mut self, shifts: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        self.policy.share_shifts(shifts);
    }

    /// Live (stored, possibly expired but not yet reclaimed) entries.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Total weight of the stored entries.
    pub(super) fn weight(&self) -> u64 {
        self.weight
    }

    /// The most entries this shard holds.
    #[cfg(test)]
    pub(super) fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// Bytes of bookkeeping a slot adds to its value.
    #[cfg(test)]
    pub(super) fn slot_overhead() -> usize {
        std::mem::size_of::<Option<Entry<V>>>() - std::mem::size_of::<V>()
    }

    /// The heaviest entry this shard can hold.
    pub(super) fn max_weight(&self) -> u64 {
        self.max_weight
    }

    /// The entries removed since the last call, for the eviction listener.
    pub(super) fn take_removed(&mut self) -> Vec<Removed<V>> {
        std::mem::take(&mut self.removed)
    }

    /// True when removed entries wait for the listener.
    pub(super) fn has_removed(&self) -> bool {
        !self.removed.is_empty()
    }

    /// The hash the cache computes for a key with these bytes.
    #[cfg(test)]
    pub(super) fn hash_key(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn entry(&self, slot: u32) -> Option<&Entry<V>> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub(super) fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry<V>> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The slot holding `key`, expired or not.
    fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&slot| {
                matches!(slots.get(slot as usize), Some(Some(e)) if e.key.as_bytes() == key.as_bytes())
            })
            .copied()
    }

    /// The slot holding `key` if its entry has not expired; an expired entry is removed.
    fn find_live(&mut self, hash: u64, key: &str, now: &mut Now<'_>) -> Option<u32> {
        let slot = self.find(hash, key)?;
        let deadline = self.entry(slot)?.deadline;
        if deadline != NEVER && deadline <= now.get() {
            self.remove(slot, EvictionCause::Expired);
            self.counters.expirations += 1;
            return None;
        }
        Some(slot)
    }

    /// Reads `key`, recording the read for eviction; counts a hit or a miss.
    pub(super) fn get(&mut self, hash: u64, key: &str, now: &mut Now<'_>) -> Option<V>
    where
        V: Clone,
    {
        self.get_with_deadline(hash, key, now)
            .map(|(value, _)| value)
    }

    /// [`get`](Self::get), with the entry's deadline (`NEVER` when it does not expire).
    pub(super) fn get_with_deadline(
        &mut self,
        hash: u64,
        key: &str,
        now: &mut Now<'_>,
    ) -> Option<(V, u64)>
    where
        V: Clone,
    {
        self.read_entry(hash, key, now, |entry| {
            (entry.value.clone(), entry.deadline)
        })
    }

    /// `f` of the live value under `key`, counted as [`get`](Self::get) counts.
    pub(super) fn read<R>(
        &mut self,
        hash: u64,
        key: &str,
        now: &mut Now<'_>,
        f: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        self.read_entry(hash, key, now, |entry| f(&entry.value))
    }

    #[inline]
    fn read_entry<R>(
        &mut self,
        hash: u64,
        key: &str,
        now: &mut Now<'_>,
        f: impl FnOnce(&Entry<V>) -> R,
    ) -> Option<R> {
        let found = self.find_live(hash, key, now);
        let Some(entry) = found.and_then(|slot| self.entry_mut(slot)) else {
            // Not counted in the sketch here but when the key is stored: a miss costs a
            // lookup only, and look-aside callers store what they missed.
            self.counters.misses += 1;
            return None;
        };
        let counted = Policy::record_hit(entry);
        let out = f(entry);
        self.counters.hits += 1;
        if counted {
            self.policy.record_access(hash);
        }
        Some(out)
    }

    /// The live value under `key` without recording a read (no counters, no frequency).
    pub(super) fn peek(&mut self, hash: u64, key: &str, now: &mut Now<'_>) -> Option<V>
    where
        V: Clone,
    {
        let slot = self.find_live(hash, key, now)?;
        self.entry(slot).map(|e| e.value.clone())
    }

    /// Stores `value` under `key`, overwriting any entry; then evicts down to the bounds.
    pub(super) fn set(
        &mut self,
        hash: u64,
        key: &str,
        value: V,
        weight: u64,
        deadline: u64,
        now: &mut Now<'_>,
    ) {
        match self.find_live(hash, key, now) {
            Some(slot) => self.overwrite(slot, value, weight, deadline),
            None => self.insert(hash, key, value, weight, deadline),
        }
        self.counters.inserts += 1;
        self.evict_while_over();
    }

    /// Stores only when `key` is absent (or expired); true when stored.
    pub(super) fn add(
        &mut self,
        hash: u64,
        key: &str,
        value: V,
        weight: u64,
        deadline: u64,
        now: &mut Now<'_>,
    ) -> bool {
        if self.find_live(hash, key, now).is_some() {
            return false;
        }
        self.insert(hash, key, value, weight, deadline);
        self.counters.inserts += 1;
        self.evict_while_over();
        true
    }

    /// Stores only when `key` is present; true when stored.
    pub(super) fn replace(
        &mut self,
        hash: u64,
        key: &str,
        value: V,
        weight: u64,
        deadline: u64,
        now: &mut Now<'_>,
    ) -> bool {
        let Some(slot) = self.find_live(hash, key, now) else {
            return false;
        };
        self.overwrite(slot, value, weight, deadline);
        self.counters.inserts += 1;
        self.evict_while_over();
        true
    }

    /// Removes `key`; true when it held an entry that had not expired.
    pub(super) fn delete(&mut self, hash: u64, key: &str, now: &mut Now<'_>) -> bool {
        match self.find_live(hash, key, now) {
            Some(slot) => {
                self.remove(slot, EvictionCause::Removed);
                true
            }
            None => false,
        }
    }

    /// Gives `key` a new deadline; true when it was present.
    pub(super) fn touch(&mut self, hash: u64, key: &str, deadline: u64, now: &mut Now<'_>) -> bool {
        let Some(slot) = self.find_live(hash, key, now) else {
            return false;
        };
        self.set_deadline(slot, deadline);
        true
    }

    /// Applies `op` to the counter stored under `key`, keeping the value's type and the
    /// entry's deadline; `Ok(None)` when the key is missing.
    pub(super) fn update_counter(
        &mut self,
        hash: u64,
        key: &str,
        now: &mut Now<'_>,
        op: impl FnOnce(u64) -> u64,
        weigh: impl FnOnce(&V) -> u64,
    ) -> Result<Option<u64>>
    where
        V: 'static,
    {
        let not_a_number = || Error::NotANumber {
            key: key.to_owned(),
        };
        let Some(slot) = self.find_live(hash, key, now) else {
            return Ok(None);
        };
        let Some(entry) = self.entry(slot) else {
            return Ok(None);
        };
        let current = as_counter(&entry.value).ok_or_else(not_a_number)?;
        let next = op(current);
        let value: V = from_counter(next).ok_or_else(not_a_number)?;
        let weight = weigh(&value);
        let deadline = entry.deadline;
        self.overwrite(slot, value, weight, deadline);
        self.evict_while_over();
        Ok(Some(next))
    }

    /// Reclaims up to [`SWEEP_BUDGET`] entries whose deadline has passed.
    pub(super) fn sweep_expired(&mut self, now: &mut Now<'_>) {
        for _ in 0..SWEEP_BUDGET {
            let Some(&(deadline, slot)) = self.expiring.first() else {
                return;
            };
            if deadline > now.get() {
                return;
            }
            if self.remove(slot, EvictionCause::Expired).is_none() {
                // Not expected: an index entry without its entry. Drop the index entry.
                self.expiring.remove(&(deadline, slot));
            }
            self.counters.expirations += 1;
        }
    }

    /// Removes every entry; keeps the bounds and the event counters.
    pub(super) fn clear(&mut self) {
        let counters = self.counters;
        let mut removed = std::mem::take(&mut self.removed);
        if self.notify {
            for entry in std::mem::take(&mut self.slots).into_iter().flatten() {
                removed.push((entry.key.to_text(), entry.value, EvictionCause::Removed));
            }
        }
        let hasher = self.hasher.clone();
        let shifts = self.policy.shifts();
        *self = Self::new(self.max_entries, self.max_weight, hasher, self.notify);
        self.share_shifts(shifts);
        self.counters = counters;
        self.removed = removed;
    }

    fn insert(&mut self, hash: u64, key: &str, value: V, weight: u64, deadline: u64) {
        let entry = Entry {
            key: StoredKey::new(key),
            value,
            hash,
            deadline,
            weight,
            freq: 0,
            segment: Segment::Window,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(s) = self.slots.get_mut(slot as usize) {
                    *s = Some(entry);
                }
                slot
            }
            None => match u32::try_from(self.slots.len()) {
                Ok(slot) if slot != u32::MAX => {
                    self.grow_slab();
                    self.slots.push(Some(entry));
                    slot
                }
                // Unreachable while `MAX_ENTRIES` holds (see there); store nothing.
                _ => return,
            },
        };
        let slots = &self.slots;
        self.index
            .insert_unique(hash, slot, |&s| match slots.get(s as usize) {
                Some(Some(e)) => e.hash,
                _ => 0,
            });
        if deadline != NEVER {
            self.expiring.insert((deadline, slot));
        }
        self.len += 1;
        self.weight = self.weight.saturating_add(weight);
        self.policy_insert(slot, hash, weight);
    }

    /// Makes room for one more slot: doubling, but stopping at the entry bound (plus the
    /// one entry a write holds before it evicts), so a full cache has no spare slots.
    fn grow_slab(&mut self) {
        let (len, capacity) = (self.slots.len(), self.slots.capacity());
        if len < capacity {
            return;
        }
        let bound = usize::try_from(self.max_entries.saturating_add(1)).unwrap_or(usize::MAX);
        let doubled = capacity.saturating_mul(2).max(8);
        let target = if len < bound {
            doubled.min(bound)
        } else {
            len + len / 8 + 8
        };
        self.slots.reserve_exact(target.saturating_sub(len).max(1));
    }

    fn overwrite(&mut self, slot: u32, value: V, weight: u64, deadline: u64) {
        self.set_deadline(slot, deadline);
        let Some(entry) = self.entry_mut(slot) else {
            return;
        };
        let old_weight = std::mem::replace(&mut entry.weight, weight);
        let old_value = std::mem::replace(&mut entry.value, value);
        let segment = entry.segment;
        self.weight = self
            .weight
            .saturating_sub(old_weight)
            .saturating_add(weight);
        self.policy_reweigh(segment, old_weight, weight);
        if self.notify {
            let key = self
                .entry(slot)
                .map(|e| e.key.to_text())
                .unwrap_or_default();
            self.removed.push((key, old_value, EvictionCause::Replaced));
        }
        // Otherwise `old_value` drops here, after the books are balanced, so that a
        // panicking `Drop` leaves the shard consistent.
    }

    fn set_deadline(&mut self, slot: u32, deadline: u64) {
        let Some(entry) = self.entry_mut(slot) else {
            return;
        };
        let old = std::mem::replace(&mut entry.deadline, deadline);
        if old == deadline {
            return;
        }
        if old != NEVER {
            self.expiring.remove(&(old, slot));
        }
        if deadline != NEVER {
            self.expiring.insert((deadline, slot));
        }
    }

    /// Takes the entry out of `slot` and out of every index except the policy's queues
    /// (the policy learns of it through `policy_detached`).
    pub(super) fn detach(&mut self, slot: u32) -> Option<Entry<V>> {
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        if let Ok(found) = self.index.find_entry(entry.hash, |&s| s == slot) {
            found.remove();
        }
        if entry.deadline != NEVER {
            self.expiring.remove(&(entry.deadline, slot));
        }
        self.len -= 1;
        self.weight = self.weight.saturating_sub(entry.weight);
        self.policy_detached(slot, &entry);
        Some(entry)
    }

    /// Removes the entry in `slot` for `cause`, handing it to the listener if there is one.
    pub(super) fn remove(&mut self, slot: u32, cause: EvictionCause) -> Option<()> {
        let entry = self.detach(slot)?;
        self.removed_entry(entry, cause);
        Some(())
    }

    /// Disposes of an entry that left the shard: kept for the listener, or dropped.
    pub(super) fn removed_entry(&mut self, entry: Entry<V>, cause: EvictionCause) {
        if self.notify {
            self.removed.push((entry.key.to_text(), entry.value, cause));
        }
    }

    pub(super) fn over_bounds(&self) -> bool {
        self.len > self.max_entries || self.weight > self.max_weight
    }
}
