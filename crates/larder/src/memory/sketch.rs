//! The frequency sketch of a shard's admission filter (TinyLFU, Einziger et al. 2017): how
//! often each key was requested lately, for keys in the cache and keys long gone, in a few
//! bits per entry of the cache.
//!
//! A count-min sketch of 4-bit counters, four per key, all four in one 64-byte block so an
//! update touches one cache line. Updates are conservative (only the counters at the minimum
//! grow), which keeps estimates close to the truth without more memory. After a sample of
//! a few increments per entry every counter is halved, so the history ages: a key that was
//! hot an hour ago does not keep today's hot keys out.
//!
//! The table grows with the shard's entries (never beyond its entry bound), so a cache
//! bounded far above its contents does not pay for the bound.

/// One cache line of counters: 8 words of 16 four-bit counters.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

/// The largest count a counter holds.
const MAX_COUNT: u64 = 15;
/// Increments per entry of the shard between two halvings (Caffeine uses 10; 5 follows
/// moving hot sets sooner and was no worse on the suite's stationary traces).
const SAMPLE_PER_ENTRY: u64 = 5;
/// The smallest table, in blocks.
const MIN_BLOCKS: usize = 1;
/// The largest table, in blocks (2^27 words: 1 GiB), far beyond any shard's needs.
const MAX_BLOCKS: usize = 1 << 24;

/// A count-min sketch of recent request frequencies (see the module docs).
pub(super) struct Sketch {
    blocks: Vec<Block>,
    /// Increments since the last halving.
    additions: u64,
    /// Increments between two halvings.
    sample: u64,
}

impl Sketch {
    /// An empty sketch of the smallest size.
    pub(super) fn new() -> Self {
        let mut sketch = Self {
            blocks: Vec::new(),
            additions: 0,
            sample: 0,
        };
        sketch.ensure_capacity(1);
        sketch
    }

    fn resize(&mut self, blocks: usize) {
        self.blocks = vec![Block::default(); blocks];
        self.additions = 0;
        self.sample = 0;
    }

    /// Grows the table so it has a counter word per entry for `entries` entries, and ages
    /// the counts every `SAMPLE_PER_ENTRY` increments per entry. Growing forgets the counts
    /// (rare: the size at most doubles each time).
    pub(super) fn ensure_capacity(&mut self, entries: u64) {
        let words = usize::try_from(entries).unwrap_or(usize::MAX);
        let blocks = words.div_ceil(8).clamp(MIN_BLOCKS, MAX_BLOCKS);
        if blocks > self.blocks.len() {
            self.resize(blocks.next_power_of_two().min(MAX_BLOCKS));
        }
        self.sample = self
            .sample
            .max(entries.max(8).saturating_mul(SAMPLE_PER_ENTRY));
    }

    /// The block and the four (word, shift) positions of `hash`'s counters.
    fn positions(&self, hash: u64) -> (usize, [(usize, u32); 4]) {
        // Re-mix: the shard index already fixed some bits of `hash`, and the hash table
        // uses others; the sketch needs all of them independent.
        let h = (hash ^ (hash >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let h = h ^ (h >> 29);
        let block = (h >> 40) as usize & (self.blocks.len() - 1);
        let mut at = [(0usize, 0u32); 4];
        for (i, slot) in at.iter_mut().enumerate() {
            // Row `i` uses words 2i and 2i+1 of the block, so the rows never share a word.
            let word = 2 * i + ((h >> i) & 1) as usize;
            let shift = (((h >> (8 + 4 * i)) & 15) as u32) * 4;
            *slot = (word, shift);
        }
        (block, at)
    }

    /// The estimated recent request count of `hash` (0 to 15).
    pub(super) fn frequency(&self, hash: u64) -> u8 {
        let (block, at) = self.positions(hash);
        let words = &self.blocks[block].0;
        let min = at
            .iter()
            .map(|&(w, s)| (words[w] >> s) & MAX_COUNT)
            .min()
            .unwrap_or(0);
        min as u8
    }

    /// Records one request of `hash`; its estimated count with it.
    pub(super) fn increment(&mut self, hash: u64) -> u8 {
        let (block, at) = self.positions(hash);
        let words = &mut self.blocks[block].0;
        let counts = at.map(|(w, s)| (words[w] >> s) & MAX_COUNT);
        let min = counts.iter().copied().min().unwrap_or(MAX_COUNT);
        if min == MAX_COUNT {
            // Saturated: leave the line clean (hot keys are read by every core).
            return MAX_COUNT as u8;
        }
        for (&(w, s), &count) in at.iter().zip(&counts) {
            if count == min {
                words[w] += 1 << s;
            }
        }
        self.additions += 1;
        if self.additions >= self.sample {
            self.halve();
            return self.frequency(hash);
        }
        (min + 1) as u8
    }

    /// Halves every counter, so that old requests weigh half as much as new ones.
    fn halve(&mut self) {
        for block in &mut self.blocks {
            for word in &mut block.0 {
                *word = (*word >> 1) & 0x7777_7777_7777_7777;
            }
        }
        self.additions /= 2;
    }

    /// Forgets every count: the history no longer describes the traffic.
    pub(super) fn forget(&mut self) {
        self.blocks.fill(Block::default());
        self.additions = 0;
    }

    /// Bytes of counters.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.blocks.len() * std::mem::size_of::<Block>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(1).hash_one(n)
    }

    #[test]
    fn counts_saturate_and_age() {
        let mut s = Sketch::new();
        s.ensure_capacity(1024);
        for _ in 0..5 {
            s.increment(hash(1));
        }
        assert_eq!(s.frequency(hash(1)), 5);
        for _ in 0..100 {
            s.increment(hash(2));
        }
        assert_eq!(s.frequency(hash(2)), 15, "a counter saturates at 15");
        assert_eq!(s.frequency(hash(3)), 0);
        // Enough distinct increments to reach the sample size halve every counter.
        let before = s.frequency(hash(1));
        for n in 1_000..(1_000 + s.sample) {
            s.increment(hash(n));
        }
        assert!(s.frequency(hash(1)) < before, "counts age");
    }

    #[test]
    fn estimates_stay_close_on_a_skewed_stream() {
        let mut s = Sketch::new();
        s.ensure_capacity(1_000);
        // 1,000 keys seen once and key 0 seen 8 times: key 0 must stand out.
        for n in 1..1_000 {
            s.increment(hash(n));
        }
        for _ in 0..8 {
            s.increment(hash(0));
        }
        assert!(s.frequency(hash(0)) >= 8);
        let overestimated = (1..1_000).filter(|&n| s.frequency(hash(n)) > 2).count();
        assert!(overestimated < 20, "{overestimated} of 999 keys read > 2");
        assert!(
            s.bytes() <= 8 * 1024,
            "one counter word per entry: {} bytes",
            s.bytes()
        );
    }
}
