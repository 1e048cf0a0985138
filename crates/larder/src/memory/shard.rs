//! One shard of a [`MemoryCache`](super::MemoryCache): its entries, their S3-FIFO eviction
//! queues and ghost history, the expiry index reclaimed on writes, and its counters.
//!
//! Layout, chosen to keep the read path short and per-entry memory small:
//! - entries live in a slab (`slots`) and are named by a `u32` index;
//! - `index` maps the key's 64-bit hash (computed once by the cache, hashed no further) to
//!   the first slot with that hash; the rare entries that share a full hash are chained
//!   through `Entry::next`, and every lookup compares the key itself, so the key is stored
//!   once, in its entry (inline when short);
//! - `small` and `main` are the two FIFO queues of S3-FIFO (Yang et al., SOSP 2023) holding
//!   slot indices; a removed entry leaves a dead index behind, recycled when its queue pops
//!   it or when dead indices outnumber live entries (the queues are then compacted);
//! - `expiring` orders entries with a time to live by their deadline so that every write
//!   reclaims a bounded number of entries whose deadline has passed.
//!
//! S3-FIFO: a new key enters `small` (10% of the budget) unless the ghost queue remembers it
//! as recently evicted from `small`, in which case it enters `main`. Eviction from `small`
//! promotes an entry read since its insertion to `main` and otherwise evicts it (remembering
//! its hash in the ghost queue). Eviction from `main` gives an entry one more round per
//! recorded read (a frequency capped at 3) and evicts it once its frequency is spent.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;
use crate::value::{as_counter, from_counter};
use crate::{Error, Result};

/// The deadline of an entry that never expires.
pub(super) const NEVER: u64 = u64::MAX;
/// The bound of a limit that is not configured.
pub(super) const UNBOUNDED: u64 = u64::MAX;
/// No slot (end of a hash chain).
const NO_SLOT: u32 = u32::MAX;
/// The most entries a shard holds. Slot indices are `u32`: the slab holds live and dead
/// slots only (free ones are reused first) and dead ones never outnumber live ones by more
/// than `DEAD_SLACK`, so the slab stays below `2 * MAX_ENTRIES + DEAD_SLACK + 1 < u32::MAX`.
pub(super) const MAX_ENTRIES: u64 = 1 << 30;
/// Reads remembered per entry; eviction from `main` spares an entry this many times.
const MAX_FREQ: u8 = 3;
/// An entry leaving `small` moves to `main` when read more than this many times.
const PROMOTE_ABOVE: u8 = 0;
/// Expired entries reclaimed by one write at most, so that no write pays for a backlog.
const SWEEP_BUDGET: usize = 8;
/// Dead queue indices tolerated before the queues are compacted (also bounded by `len`).
const DEAD_SLACK: usize = 64;

/// A `Hasher` for keys that already are well-mixed 64-bit hashes: it passes them through.
#[derive(Default)]
pub(super) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; fold anything else rather than lose it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashIndex<T> = HashMap<u64, T, BuildHasherDefault<PassThroughHasher>>;

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
/// lookup), longer ones in a boxed slice. Only ever compared, never read back as text.
enum StoredKey {
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

    fn as_bytes(&self) -> &[u8] {
        match self {
            StoredKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            StoredKey::Heap(bytes) => bytes,
        }
    }
}

struct Entry<V> {
    key: StoredKey,
    value: V,
    hash: u64,
    deadline: u64,
    weight: u64,
    /// The next slot whose key has the same hash, or `NO_SLOT`.
    next: u32,
    freq: u8,
    in_main: bool,
}

/// Recently evicted hashes (S3-FIFO's ghost queue): a FIFO of hashes plus their counts.
#[derive(Default)]
struct Ghost {
    fifo: VecDeque<u64>,
    members: HashIndex<u32>,
}

impl Ghost {
    fn remember(&mut self, hash: u64, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.fifo.len() >= capacity {
            let Some(old) = self.fifo.pop_front() else {
                break;
            };
            if let MapEntry::Occupied(mut e) = self.members.entry(old) {
                if *e.get() <= 1 {
                    e.remove();
                } else {
                    *e.get_mut() -= 1;
                }
            }
        }
        self.fifo.push_back(hash);
        *self.members.entry(hash).or_insert(0) += 1;
    }

    /// Forgets `hash`; true when it was remembered.
    fn take(&mut self, hash: u64) -> bool {
        self.members.remove(&hash).is_some()
    }
}

/// One shard: a bounded S3-FIFO cache with per-entry deadlines. Not thread-safe by itself;
/// the cache keeps each shard behind a mutex.
pub(super) struct Shard<V> {
    index: HashIndex<u32>,
    slots: Vec<Option<Entry<V>>>,
    free: Vec<u32>,
    small: VecDeque<u32>,
    main: VecDeque<u32>,
    dead_in_queues: usize,
    ghost: Ghost,
    expiring: BTreeSet<(u64, u32)>,
    len: u64,
    weight: u64,
    small_len: u64,
    small_weight: u64,
    max_entries: u64,
    max_weight: u64,
    pub(super) counters: Counters,
}

impl<V> Shard<V> {
    /// An empty shard holding at most `max_entries` entries of total weight `max_weight`.
    pub(super) fn new(max_entries: u64, max_weight: u64) -> Self {
        Self {
            index: HashIndex::default(),
            slots: Vec::new(),
            free: Vec::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            dead_in_queues: 0,
            ghost: Ghost::default(),
            expiring: BTreeSet::new(),
            len: 0,
            weight: 0,
            small_len: 0,
            small_weight: 0,
            max_entries: max_entries.min(MAX_ENTRIES),
            max_weight,
            counters: Counters::default(),
        }
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

    /// Slot indices held by the queues, dead ones included.
    #[cfg(test)]
    pub(super) fn queued_slots(&self) -> usize {
        self.small.len() + self.main.len()
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

    fn entry(&self, slot: u32) -> Option<&Entry<V>> {
        self.slots.get(slot as usize)?.as_ref()
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry<V>> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The slot holding `key`, expired or not.
    fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let mut slot = *self.index.get(&hash)?;
        loop {
            let entry = self.entry(slot)?;
            if entry.key.as_bytes() == key.as_bytes() {
                return Some(slot);
            }
            if entry.next == NO_SLOT {
                return None;
            }
            slot = entry.next;
        }
    }

    /// The slot holding `key` if its entry has not expired; an expired entry is removed.
    fn find_live(&mut self, hash: u64, key: &str, now: &mut Now<'_>) -> Option<u32> {
        let slot = self.find(hash, key)?;
        let deadline = self.entry(slot)?.deadline;
        if deadline != NEVER && deadline <= now.get() {
            self.remove_queued(slot);
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
        let found = self
            .find_live(hash, key, now)
            .and_then(|slot| self.entry_mut(slot));
        match found {
            Some(entry) => {
                // Skip the store once saturated: hot entries' cache lines stay clean and
                // shared between cores.
                if entry.freq < MAX_FREQ {
                    entry.freq += 1;
                }
                let value = entry.value.clone();
                self.counters.hits += 1;
                Some(value)
            }
            None => {
                self.counters.misses += 1;
                None
            }
        }
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
                self.remove_queued(slot);
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
            if self.remove_queued(slot).is_none() {
                // Not expected: an index entry without its entry. Drop the index entry.
                self.expiring.remove(&(deadline, slot));
            }
            self.counters.expirations += 1;
        }
    }

    /// Removes every entry; keeps the bounds and the event counters.
    pub(super) fn clear(&mut self) {
        let counters = self.counters;
        *self = Self::new(self.max_entries, self.max_weight);
        self.counters = counters;
    }

    fn insert(&mut self, hash: u64, key: &str, value: V, weight: u64, deadline: u64) {
        let to_main = self.ghost.take(hash);
        let next = self.index.get(&hash).copied().unwrap_or(NO_SLOT);
        let entry = Entry {
            key: StoredKey::new(key),
            value,
            hash,
            deadline,
            weight,
            next,
            freq: 0,
            in_main: to_main,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(s) = self.slots.get_mut(slot as usize) {
                    *s = Some(entry);
                }
                slot
            }
            None => match u32::try_from(self.slots.len()) {
                Ok(slot) if slot != NO_SLOT => {
                    self.slots.push(Some(entry));
                    slot
                }
                // Unreachable while `MAX_ENTRIES` holds (see there); store nothing.
                _ => return,
            },
        };
        self.index.insert(hash, slot);
        if deadline != NEVER {
            self.expiring.insert((deadline, slot));
        }
        self.len += 1;
        self.weight = self.weight.saturating_add(weight);
        if to_main {
            self.main.push_back(slot);
        } else {
            self.small.push_back(slot);
            self.small_len += 1;
            self.small_weight = self.small_weight.saturating_add(weight);
        }
    }

    fn overwrite(&mut self, slot: u32, value: V, weight: u64, deadline: u64) {
        self.set_deadline(slot, deadline);
        let Some(entry) = self.entry_mut(slot) else {
            return;
        };
        let old_weight = std::mem::replace(&mut entry.weight, weight);
        // Dropped at the end, so that a panicking `Drop` leaves the books balanced.
        let _old_value = std::mem::replace(&mut entry.value, value);
        let in_main = entry.in_main;
        self.weight = self
            .weight
            .saturating_sub(old_weight)
            .saturating_add(weight);
        if !in_main {
            self.small_weight = self
                .small_weight
                .saturating_sub(old_weight)
                .saturating_add(weight);
        }
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

    /// Takes the entry out of `slot` and out of every index except its queue.
    fn detach(&mut self, slot: u32) -> Option<Entry<V>> {
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        match self.index.get_mut(&entry.hash) {
            Some(head) if *head == slot => {
                if entry.next == NO_SLOT {
                    self.index.remove(&entry.hash);
                } else {
                    *head = entry.next;
                }
            }
            Some(head) => {
                let mut previous = *head;
                while let Some(p) = self.entry_mut(previous) {
                    if p.next == slot {
                        p.next = entry.next;
                        break;
                    }
                    if p.next == NO_SLOT {
                        break;
                    }
                    previous = p.next;
                }
            }
            None => {}
        }
        if entry.deadline != NEVER {
            self.expiring.remove(&(entry.deadline, slot));
        }
        self.len -= 1;
        self.weight = self.weight.saturating_sub(entry.weight);
        if !entry.in_main {
            self.small_len -= 1;
            self.small_weight = self.small_weight.saturating_sub(entry.weight);
        }
        Some(entry)
    }

    /// Removes the entry in `slot`, leaving its index dead in its queue.
    fn remove_queued(&mut self, slot: u32) -> Option<Entry<V>> {
        let entry = self.detach(slot)?;
        self.dead_in_queues += 1;
        if self.dead_in_queues > DEAD_SLACK && self.dead_in_queues as u64 > self.len {
            self.compact_queues();
        }
        Some(entry)
    }

    /// Drops dead indices from both queues and recycles their slots.
    fn compact_queues(&mut self) {
        let (slots, free) = (&self.slots, &mut self.free);
        let mut keep = |slot: &u32| {
            let live = matches!(slots.get(*slot as usize), Some(Some(_)));
            if !live {
                free.push(*slot);
            }
            live
        };
        self.small.retain(&mut keep);
        self.main.retain(&mut keep);
        self.dead_in_queues = 0;
    }

    fn over_bounds(&self) -> bool {
        self.len > self.max_entries || self.weight > self.max_weight
    }

    fn evict_while_over(&mut self) {
        while self.over_bounds() {
            if !self.evict_one() {
                break;
            }
        }
    }

    /// Evicts one entry by S3-FIFO; false when there is nothing left to evict.
    fn evict_one(&mut self) -> bool {
        loop {
            if self.len == 0 {
                return false;
            }
            let small_over =
                self.small_len > self.max_entries / 10 || self.small_weight > self.max_weight / 10;
            let main_len = self.len - self.small_len;
            let from_small = self.small_len > 0 && (small_over || main_len == 0);
            let popped = if from_small {
                self.small.pop_front()
            } else {
                self.main.pop_front()
            };
            let Some(slot) = popped else {
                // Counts say a queue holds live entries but it is empty: give up rather
                // than spin (not expected).
                return false;
            };
            let Some(entry) = self.entry_mut(slot) else {
                // A dead index: recycle its slot.
                self.dead_in_queues = self.dead_in_queues.saturating_sub(1);
                self.free.push(slot);
                continue;
            };
            if from_small {
                if entry.freq > PROMOTE_ABOVE {
                    entry.freq = 0;
                    entry.in_main = true;
                    let weight = entry.weight;
                    self.small_len -= 1;
                    self.small_weight = self.small_weight.saturating_sub(weight);
                    self.main.push_back(slot);
                    continue;
                }
            } else if entry.freq > 0 {
                entry.freq -= 1;
                self.main.push_back(slot);
                continue;
            }
            let Some(evicted) = self.detach(slot) else {
                continue;
            };
            self.free.push(slot);
            if from_small {
                let capacity = if self.max_entries >= MAX_ENTRIES {
                    self.len
                } else {
                    self.max_entries
                };
                self.ghost.remember(
                    evicted.hash,
                    usize::try_from(capacity).unwrap_or(usize::MAX),
                );
            }
            self.counters.evictions += 1;
            return true;
        }
    }
}
