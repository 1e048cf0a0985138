//! The eviction policy of a shard: W-TinyLFU (Einziger et al., 2017) in CLOCK form, with a
//! window that grows when the popular keys move and shrinks while they stay.
//!
//! - A new key enters the **window**, a CLOCK queue (an entry read since the hand last
//!   passed goes round again). The window catches recency: bursts and moving hot sets.
//! - An entry leaving the window is a **candidate** for **main**, a CLOCK queue whose
//!   entries count their reads (up to 3) and are spared once per read. When the shard is
//!   full the candidate must beat main's next victim on the frequency [`Sketch`] by more
//!   than one request: the candidate's count already holds the request that brought it in,
//!   while in a loop the victim's next request is the one about to come. That margin is
//!   what keeps a loop slightly larger than the cache near the optimum, where LRU, ARC and
//!   Sieve keep nothing; scans never get in either.
//! - **Spare room** (weighted shards): a light candidate that beats a heavy victim frees
//!   more than it takes. Once the shard has been full, that room goes only to candidates
//!   requested before (sketch count of 2 or more); the others leave as if they had lost.
//!   Handed to whatever left the window next, the room went to keys seen once, and the
//!   byte hit ratio lost 1 to 2 points at 10 % of the bytes. (Not after a shift, while
//!   the window is wide: the sketch has just been cleared, so no key was requested before.)
//! - **The window does not borrow main's room** while the popular keys stay (window under
//!   half the shard). A heavy entry leaving the window leaves it well below its share;
//!   the writes that fill it back up push the shard over its bounds, and evicting main's
//!   victim outright then took a kept entry at each of them (in the weighted loop just
//!   over the cache: 0.6 points of byte hit ratio). Instead the window's next entry is
//!   weighed against main's victim like any candidate. After a shift the window grows by
//!   taking main's victims outright, as it must.
//! - **Adapting to a shift:** the policy watches the hit ratio over periods of about a
//!   shard's worth of requests. A period whose hit ratio falls 10 points below the usual
//!   one means the popular keys changed if the missed keys are being requested again (a
//!   scan's keys never are): a quarter of its inserts are keys requested before (they were
//!   turned away and came back), or a tenth of the entries the window's hand reached had
//!   been read again in the window (a wide window holds the new keys until they hit, so
//!   none come back as misses; that is what a shift looks like once the window is open).
//!   Then the sketch forgets its history, which no longer says anything, and the window
//!   grows to nearly the whole shard, so the cache runs as a CLOCK (near LRU) while the new
//!   keys build up counts. Each quiet period then shrinks the window by 3 %, back towards
//!   pure TinyLFU.
//! - **A shift one shard detects is news to the others.** The shards of a cache see the
//!   same traffic, split by key, and a shard whose missed keys happen to come back a little
//!   less than the bar (a returning share of 0.19 to 0.24 against 0.25) went on in
//!   TinyLFU mode for two more periods while its neighbours had opened their windows. So a
//!   detected shift is counted on a signal the cache's shards share, and a shard that has
//!   not seen it yet, a tenth of a period into its own, takes it as its own if its hit
//!   ratio so far is below its usual one (a shard that kept its hits ignores it).
//! - While the window holds at least half the shard the policy believes the popular keys
//!   move, and a candidate needs only a higher count than the victim: the victim's count
//!   was earned under the traffic that moved away, and demanding the loop margin (below)
//!   of the new keys left main full of the old ones.
//!
//! Why not Caffeine's hill climber (window size moved by steps in the direction that
//! raised the sampled hit ratio): tried on this crate's suite (`bench/hit_ratio`; figures
//! in the README), its samples of ten capacities are too slow to follow a hot set that
//! moves every ten capacities, and shorter samples made the window wander on stationary
//! Zipf traces, which then lost to plain W-TinyLFU. Why not S3-FIFO with an adaptive small queue: its ghost
//! queue forgets a loop's keys before they return. Why CLOCK rather than Caffeine's LRU
//! lists: a list move is a write on every read; a CLOCK read bumps a counter (skipped once
//! saturated) and the sketch increment, under the shard lock the read already holds, so
//! the adaptive part adds no lock to the read path. Shift detection runs on writes.
//!
//! A candidate whose frequency is high but not above the victim's is still admitted one
//! time in 128, so keys crafted to collide in the sketch cannot pin a victim forever.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::shard::{Entry, Shard, UNBOUNDED};
use super::sketch::Sketch;
use super::EvictionCause;

/// Where an entry sits in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment {
    Window,
    Main,
    /// In no queue: being weighed for admission, or leaving.
    Candidate,
}

/// Reads remembered per entry; main's hand spares an entry this many times.
const MAX_FREQ: u8 = 3;
/// Dead queue indices tolerated before the queues are compacted (also bounded by `len`).
const DEAD_SLACK: usize = 64;
/// The window's share of the budget at the start.
const INITIAL_WINDOW: f64 = 0.01;
/// The window's share after a shift.
const SHIFTED_WINDOW: f64 = 0.99;
/// The window's share is multiplied by this after each quiet period.
const QUIET_SHRINK: f64 = 0.97;
/// A period's hit ratio this far below the usual one may be a shift.
const SHIFT_DROP: f64 = 0.10;
/// ... if at least this share of its misses are keys requested before,
const SHIFT_RETURNING: f64 = 0.25;
/// ... or at least this share of the window entries its hand reached had been read again.
const SHIFT_REREAD: f64 = 0.10;
/// From this window share on, admission drops the margin of one request.
const MOVING_SHARE: f64 = 0.5;
/// Requests per detection period at least (small shards' periods would be noise).
const MIN_PERIOD: u64 = 64;
/// A shard looks for a shift another shard detected once this part of its period is gone
/// (a ratio over fewer requests would be noise)...
const SHARED_SHIFT_AFTER: u64 = 10;
/// ... and takes it as its own if its hit ratio so far is this far below its usual one.
const SHARED_SHIFT_DROP: f64 = 0.001;
/// Sketch frequency from which a losing candidate is still admitted 1 time in 128.
const ADMIT_ANYWAY_FREQ: u8 = 6;

/// A shard's policy state: the two CLOCK queues (slot indices), the window's size, the
/// sketch and the shift detector.
pub(super) struct Policy {
    window: VecDeque<u32>,
    main: VecDeque<u32>,
    /// Indices of removed entries still in a queue (their slots are recycled when popped).
    dead: usize,
    window_len: u64,
    window_weight: u64,
    sketch: Sketch,
    /// The window's share of the budget.
    share: f64,
    /// Hits and requests when the current detection period started.
    period_start: (u64, u64),
    /// Inserts this period of keys requested before.
    returning: u64,
    /// Window entries the window's hand reached this period: read again since they came
    /// in (sent round again) and not (sent on to main's door).
    window_reread: u64,
    window_unread: u64,
    /// The hit ratio of past periods (a moving average); `None` before the first.
    usual_ratio: Option<f64>,
    rng: u64,
    /// Shifts detected by any shard of the cache (see the module docs), and how many of
    /// them this shard has seen.
    shifts: Arc<AtomicU64>,
    seen_shifts: u64,
}

impl Policy {
    pub(super) fn new() -> Self {
        Self {
            window: VecDeque::new(),
            main: VecDeque::new(),
            dead: 0,
            window_len: 0,
            window_weight: 0,
            sketch: Sketch::new(),
            share: INITIAL_WINDOW,
            period_start: (0, 0),
            returning: 0,
            window_reread: 0,
            window_unread: 0,
            usual_ratio: None,
            rng: 0x2545_F491_4F6C_DD1D,
            shifts: Arc::new(AtomicU64::new(0)),
            seen_shifts: 0,
        }
    }

    /// Shares `shifts`, the shift signal of the cache's shards, from now on.
    pub(super) fn share_shifts(&mut self, shifts: Arc<AtomicU64>) {
        self.seen_shifts = shifts.load(Ordering::Relaxed);
        self.shifts = shifts;
    }

    /// The shift signal this policy counts on (for a shard that starts over).
    pub(super) fn shifts(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shifts)
    }

    /// A shift: the sketch forgets its history and the window opens.
    fn shifted(&mut self) {
        self.sketch.forget();
        self.share = self.share.max(SHIFTED_WINDOW);
    }

    /// Records a read of the stored key hashing to `hash`.
    pub(super) fn record_access(&mut self, hash: u64) {
        self.sketch.increment(hash);
    }

    /// Records a read of a stored entry.
    pub(super) fn record_hit<V>(entry: &mut Entry<V>) -> bool {
        // Skip the store once saturated: hot entries' cache lines stay clean and shared
        // between cores.
        if entry.freq < MAX_FREQ {
            entry.freq += 1;
            return true;
        }
        false
    }

    /// The window's current share of the budget.
    #[cfg(test)]
    pub(super) fn window_share(&self) -> f64 {
        self.share
    }

    /// Slot indices held by the queues, dead ones included.
    #[cfg(test)]
    pub(super) fn queued_slots(&self) -> usize {
        self.window.len() + self.main.len()
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: only needs to be unpredictable enough to break ties now and then.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Ends a detection period with `hits` of `requests`: a shift resets the sketch and
    /// opens the window (and is signalled to the other shards); a quiet period shrinks the
    /// window.
    fn end_period(&mut self, hits: u64, requests: u64) {
        let misses = requests - hits;
        let ratio = hits as f64 / requests.max(1) as f64;
        // Per miss: a look-aside cache inserts what it missed.
        let returning = std::mem::take(&mut self.returning) as f64 / misses.max(1) as f64;
        let reread = std::mem::take(&mut self.window_reread);
        let reached = reread + std::mem::take(&mut self.window_unread);
        let reread = reread as f64 / reached.max(1) as f64;
        let Some(usual) = self.usual_ratio else {
            self.usual_ratio = Some(ratio);
            return;
        };
        let missed_keys_return = returning >= SHIFT_RETURNING || reread >= SHIFT_REREAD;
        if ratio < usual - SHIFT_DROP && missed_keys_return {
            self.shifted();
            self.seen_shifts = self.shifts.fetch_add(1, Ordering::Relaxed) + 1;
        } else {
            self.share *= QUIET_SHRINK;
        }
        self.usual_ratio = Some(usual * 0.75 + ratio * 0.25);
    }
}

impl<V, S: std::hash::BuildHasher + Clone> Shard<V, S> {
    /// A new entry in `slot` (its key hashing to `hash`) enters the window; the write
    /// counts as a request of the key.
    pub(super) fn policy_insert(&mut self, slot: u32, hash: u64, weight: u64) {
        let p = &mut self.policy;
        // 2 or more with this request counted: the key was requested before.
        if p.sketch.increment(hash) >= 2 {
            p.returning += 1;
        }
        p.window.push_back(slot);
        p.window_len += 1;
        p.window_weight = p.window_weight.saturating_add(weight);
        p.sketch.ensure_capacity(self.len.min(self.max_entries));
    }

    /// An entry in `segment` changed weight from `old` to `new`.
    pub(super) fn policy_reweigh(&mut self, segment: Segment, old: u64, new: u64) {
        if segment == Segment::Window {
            let p = &mut self.policy;
            p.window_weight = p.window_weight.saturating_sub(old).saturating_add(new);
        }
    }

    /// The entry that was in `slot` left the shard.
    pub(super) fn policy_detached(&mut self, slot: u32, entry: &Entry<V>) {
        let p = &mut self.policy;
        match entry.segment {
            Segment::Candidate => {
                self.free.push(slot);
                return;
            }
            Segment::Window => {
                p.window_len -= 1;
                p.window_weight = p.window_weight.saturating_sub(entry.weight);
            }
            Segment::Main => {}
        }
        p.dead += 1;
        if p.dead > DEAD_SLACK && p.dead as u64 > self.len {
            self.compact_queues();
        }
    }

    /// Drops dead indices from both queues and recycles their slots.
    fn compact_queues(&mut self) {
        let (slots, free, p) = (&self.slots, &mut self.free, &mut self.policy);
        let mut keep = |slot: &u32| {
            let live = matches!(slots.get(*slot as usize), Some(Some(_)));
            if !live {
                free.push(*slot);
            }
            live
        };
        p.window.retain(&mut keep);
        p.main.retain(&mut keep);
        p.dead = 0;
    }

    /// The window's bounds at its current share: (entries, weight).
    fn window_bounds(&self) -> (u64, u64) {
        let share = self.policy.share;
        let part = |total: u64| {
            if total == UNBOUNDED {
                UNBOUNDED
            } else {
                ((total as f64 * share) as u64).max(1)
            }
        };
        (part(self.max_entries), part(self.max_weight))
    }

    fn window_over(&self) -> bool {
        let (entries, weight) = self.window_bounds();
        let p = &self.policy;
        p.window_len > 0 && (p.window_len > entries || p.window_weight > weight)
    }

    /// Ends the detection period if it is complete (see [`Policy::end_period`]); before
    /// that, takes up a shift another shard detected (see the module docs).
    fn detect_shift(&mut self) {
        let period = self.len.min(self.max_entries).max(MIN_PERIOD);
        let c = self.counters;
        let p = &mut self.policy;
        let (hits0, requests0) = p.period_start;
        let requests = c.hits + c.misses;
        if c.evictions == 0 {
            // Not full yet: a filling cache's hit ratio says nothing about its traffic.
            p.period_start = (c.hits, requests);
            p.returning = 0;
            return;
        }
        if requests < requests0 + period {
            if requests < requests0 + period / SHARED_SHIFT_AFTER {
                return;
            }
            let signalled = p.shifts.load(Ordering::Relaxed);
            if signalled == p.seen_shifts {
                return;
            }
            p.seen_shifts = signalled;
            let ratio = (c.hits - hits0) as f64 / (requests - requests0) as f64;
            if p.usual_ratio
                .is_some_and(|usual| ratio < usual - SHARED_SHIFT_DROP)
            {
                p.shifted();
                p.period_start = (c.hits, requests);
                p.returning = 0;
                p.window_reread = 0;
                p.window_unread = 0;
            }
            return;
        }
        p.period_start = (c.hits, requests);
        p.end_period(c.hits - hits0, requests - requests0);
    }

    /// Evicts until the shard is within its bounds, moving window entries to main as the
    /// window's share requires.
    pub(super) fn evict_while_over(&mut self) {
        self.detect_shift();
        loop {
            // A window over its share sends its next entry to main's door; so does a
            // window within it while the shard is over and the popular keys stay: that
            // entry must earn main's room (see the module docs) rather than the window
            // taking it from main's victim uncompared.
            let window_goes = self.window_over()
                || (self.over_bounds()
                    && self.policy.share < MOVING_SHARE
                    && self.policy.window_len > 0);
            if window_goes {
                let Some(candidate) = self.pop_clock(true) else {
                    break;
                };
                self.admit(candidate);
            } else if self.over_bounds() {
                // The window is within its share, so main is over its own: shrink it (the
                // window grows after a shift).
                let victim = self.pop_clock(false).or_else(|| self.pop_clock(true));
                let Some(victim) = victim else { break };
                self.evict(victim);
            } else {
                break;
            }
        }
    }

    /// Takes the next entry that the window's (`window`) or main's hand finds unread since
    /// it last passed out of its queue; entries read meanwhile go round again. `None` when
    /// the queue holds no live entry.
    fn pop_clock(&mut self, window: bool) -> Option<u32> {
        loop {
            let p = &mut self.policy;
            let queue = if window { &mut p.window } else { &mut p.main };
            let slot = queue.pop_front()?;
            let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
                p.dead = p.dead.saturating_sub(1);
                self.free.push(slot);
                continue;
            };
            if window {
                if entry.freq > 0 {
                    p.window_reread += 1;
                } else {
                    p.window_unread += 1;
                }
            }
            if entry.freq > 0 {
                entry.freq = if window { 0 } else { entry.freq - 1 };
                queue.push_back(slot);
                continue;
            }
            if window {
                p.window_len -= 1;
                p.window_weight = p.window_weight.saturating_sub(entry.weight);
            }
            entry.segment = Segment::Candidate;
            return Some(slot);
        }
    }

    /// Decides a window candidate's fate: into main while there is room, otherwise against
    /// main's victims one at a time until it fits or loses. Room that the shard has spare
    /// once it has been full is kept for keys requested before (see [`Self::spare_room`]).
    fn admit(&mut self, candidate: u32) {
        if !self.over_bounds() {
            if self.spare_room() && self.policy.sketch.frequency(self.slot_hash(candidate)) < 2 {
                self.evict(candidate);
            } else {
                self.push_main(candidate, false);
            }
            return;
        }
        loop {
            let Some(victim) = self.pop_clock(false) else {
                // Main is empty: the window alone fills the shard.
                self.evict(candidate);
                return;
            };
            if self.candidate_wins(candidate, victim) {
                self.evict(victim);
                if !self.over_bounds() {
                    self.push_main(candidate, false);
                    return;
                }
            } else {
                // The victim stays first in line for the next candidate.
                self.push_main(victim, true);
                self.evict(candidate);
                return;
            }
        }
    }

    /// Whether the shard, after it has been full, is below its bounds with the candidate in
    /// it: the room a heavy victim left when a lighter candidate displaced it, which only a
    /// key requested before may take (the module docs say why). Unweighted shards never
    /// have spare room after an eviction (one entry out for one in), so this only changes
    /// weighted ones (and shards emptied by removals). Not while the window holds half the
    /// shard or more: after a shift the sketch has just forgotten every count.
    fn spare_room(&self) -> bool {
        self.counters.evictions > 0
            && self.policy.share < MOVING_SHARE
            && self.len < self.max_entries
            && self.weight < self.max_weight
    }

    fn slot_hash(&self, slot: u32) -> u64 {
        self.entry(slot).map_or(0, |e| e.hash)
    }

    fn candidate_wins(&mut self, candidate: u32, victim: u32) -> bool {
        let c = self.policy.sketch.frequency(self.slot_hash(candidate));
        let v = self.policy.sketch.frequency(self.slot_hash(victim));
        if c > v.saturating_add(1) {
            return true;
        }
        if c > v && self.policy.share >= MOVING_SHARE {
            return true;
        }
        c >= ADMIT_ANYWAY_FREQ && self.policy.next_random() & 127 == 0
    }

    /// Puts `slot` in main: at the back with no reads counted, or back at the front.
    fn push_main(&mut self, slot: u32, front: bool) {
        if let Some(entry) = self.entry_mut(slot) {
            entry.segment = Segment::Main;
            if front {
                self.policy.main.push_front(slot);
            } else {
                entry.freq = 0;
                self.policy.main.push_back(slot);
            }
        }
    }

    /// Evicts the entry in `slot` (taken out of its queue: a candidate).
    fn evict(&mut self, slot: u32) {
        if let Some(entry) = self.detach(slot) {
            self.counters.evictions += 1;
            self.removed_entry(entry, EvictionCause::Evicted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use foldhash::fast::SeedableRandomState;
    use std::sync::Arc;

    #[test]
    fn spare_room_left_by_a_heavy_victim_goes_to_keys_requested_before() {
        use super::super::shard::{Now, NEVER};
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let mut now = Now::new(&clock, clock.now());
        let hasher = SeedableRandomState::fixed();
        let mut shard: Shard<u64> = Shard::new(UNBOUNDED, 1_000, hasher, false);
        let mut set = |shard: &mut Shard<u64>, key: &str, weight: u64| {
            let hash = shard.hash_key(key.as_bytes());
            shard.set(hash, key, 0, weight, NEVER, &mut now);
        };
        // Full: a heavy entry first in main's line, then light ones.
        set(&mut shard, "heavy", 500);
        for i in 0..50 {
            set(&mut shard, &format!("s{i}"), 10);
        }
        assert_eq!((shard.weight(), shard.counters.evictions), (1_000, 0));
        // A light key requested often displaces the heavy one when it leaves the window.
        let hot = shard.hash_key(b"hot");
        for _ in 0..5 {
            shard.policy.sketch.increment(hot);
        }
        set(&mut shard, "hot", 10);
        set(&mut shard, "n0", 10);
        let contains = |shard: &mut Shard<u64>, key: &str| {
            let hash = shard.hash_key(key.as_bytes());
            let mut now = Now::new(&clock, clock.now());
            shard.peek(hash, key, &mut now).is_some()
        };
        assert!(!contains(&mut shard, "heavy") && contains(&mut shard, "hot"));
        // Keys seen once do not take the room it left; a key requested before does.
        for i in 1..10 {
            set(&mut shard, &format!("n{i}"), 10);
        }
        let again = shard.hash_key(b"again");
        shard.policy.sketch.increment(again);
        set(&mut shard, "again", 10);
        set(&mut shard, "last", 10);
        for i in 0..10 {
            assert!(!contains(&mut shard, &format!("n{i}")), "n{i}");
        }
        assert!(contains(&mut shard, "again"));
        assert!(shard.weight() < 600, "{}", shard.weight());
    }

    #[test]
    fn a_shift_opens_the_window_and_quiet_periods_close_it() {
        let mut p = Policy::new();
        p.end_period(80, 100);
        assert_eq!(
            p.window_share(),
            INITIAL_WINDOW,
            "the first period sets the usual ratio"
        );
        // A drop of 50 points, but every miss a new key: a scan, not a shift.
        p.end_period(30, 100);
        assert!(p.window_share() < INITIAL_WINDOW);
        // The same drop with returning misses: a shift.
        p.returning = 40;
        p.end_period(30, 100);
        assert_eq!(p.window_share(), SHIFTED_WINDOW);
        // A drop while the window is wide: no missed key came back, but the window's hand
        // found a fifth of its entries read again.
        p.share = 0.6;
        p.usual_ratio = Some(0.8);
        (p.window_reread, p.window_unread) = (20, 80);
        p.end_period(50, 100);
        assert_eq!(p.window_share(), SHIFTED_WINDOW);
        // The same drop with nothing read again in the window: a scan.
        p.share = 0.6;
        p.usual_ratio = Some(0.8);
        (p.window_reread, p.window_unread) = (2, 98);
        p.end_period(50, 100);
        assert!(p.window_share() < 0.6);
        for _ in 0..20 {
            p.end_period(80, 100);
        }
        let share = p.window_share();
        assert!(share < 0.6 * SHIFTED_WINDOW, "{share}");
    }

    #[test]
    fn a_cleared_shard_still_takes_up_the_shifts_of_the_others() {
        let signal = Arc::new(AtomicU64::new(0));
        let mut s: Shard<u64> = Shard::new(100, UNBOUNDED, SeedableRandomState::fixed(), false);
        s.share_shifts(Arc::clone(&signal));
        s.clear();
        (s.len, s.counters.evictions) = (100, 1);
        let mut requests = |hits: u64, misses: u64| {
            s.counters.hits += hits;
            s.counters.misses += misses;
            s.detect_shift();
            s.policy.window_share()
        };
        requests(80, 20);
        requests(80, 20);
        // Another shard of the cache detects a shift; this one's hits fell too.
        signal.fetch_add(1, Ordering::Relaxed);
        assert_eq!(requests(3, 7), SHIFTED_WINDOW);
    }

    #[test]
    fn a_shift_one_shard_detects_opens_the_window_of_a_shard_whose_hits_fell_too() {
        let signal = Arc::new(AtomicU64::new(0));
        let shard = || {
            let mut s: Shard<u64> = Shard::new(100, UNBOUNDED, SeedableRandomState::fixed(), false);
            s.share_shifts(Arc::clone(&signal));
            // Full (a period is then 100 requests) and evicting.
            (s.len, s.counters.evictions) = (100, 1);
            s
        };
        let (mut detects, mut fell, mut kept) = (shard(), shard(), shard());
        let requests = |s: &mut Shard<u64>, hits: u64, misses: u64| {
            s.counters.hits += hits;
            s.counters.misses += misses;
            s.detect_shift();
        };
        // Two periods at 80 % hits each: the usual ratio.
        for s in [&mut detects, &mut fell, &mut kept] {
            requests(s, 80, 20);
            requests(s, 80, 20);
            assert!(s.policy.window_share() < INITIAL_WINDOW);
        }
        // The same tenth of a period, before and after the first shard's shift: only the
        // signal differs, and the shard takes it up only if its own hits fell.
        requests(&mut fell, 3, 7);
        assert!(
            fell.policy.window_share() < INITIAL_WINDOW,
            "no shift signalled yet"
        );
        detects.policy.returning = 40;
        requests(&mut detects, 30, 70);
        assert_eq!(detects.policy.window_share(), SHIFTED_WINDOW);
        assert_eq!(signal.load(Ordering::Relaxed), 1);
        requests(&mut fell, 3, 7);
        assert_eq!(fell.policy.window_share(), SHIFTED_WINDOW);
        requests(&mut kept, 16, 4);
        assert!(
            kept.policy.window_share() < INITIAL_WINDOW,
            "its hits held up"
        );
        // Seen once: a later fall in the same period is its own to judge.
        requests(&mut kept, 0, 10);
        assert!(kept.policy.window_share() < INITIAL_WINDOW);
    }
}
