//! Probabilistic early expiration (XFetch, Vattani et al. 2015): a caller recomputes a value
//! *before* it expires with a probability that grows as expiry nears and with how long the
//! value took to create, so a hot key is usually refreshed by one caller ahead of time.
//!
//! The rule: refresh when `now - delta * beta * ln(r) >= expiry`, with `r` uniform in
//! (0, 1], `delta` the last creation's duration and `beta` (default 1) the eagerness.

use std::sync::{Mutex, PoisonError};

/// A tiny, seedable xorshift64* generator: enough for early-expiration draws, no dependency.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator from `seed` (a zero seed is replaced by a fixed non-zero one).
    pub fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform draw in (0, 1].
    pub fn next_unit(&mut self) -> f64 {
        // 53 random bits, shifted by one so 0 never comes out (ln(0) is -inf).
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// The XFetch early-expiration policy, with its own seeded generator.
#[derive(Debug)]
pub struct EarlyExpiration {
    beta: f64,
    rng: Mutex<XorShift64>,
}

impl EarlyExpiration {
    /// A policy with eagerness `beta` (1.0 is the paper's default; larger refreshes earlier;
    /// negative or non-finite values are treated as 0, i.e. never early) drawing from a
    /// generator seeded with `seed`.
    pub fn new(beta: f64, seed: u64) -> Self {
        Self {
            beta: if beta.is_finite() && beta > 0.0 {
                beta
            } else {
                0.0
            },
            rng: Mutex::new(XorShift64::new(seed)),
        }
    }

    /// The eagerness factor.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// True when a value expiring at `expires_at_ms` whose creation took `delta_ms` should be
    /// recomputed now (always true at or past expiry).
    pub fn should_refresh(&self, now_ms: u64, expires_at_ms: u64, delta_ms: u64) -> bool {
        if now_ms >= expires_at_ms {
            return true;
        }
        let r = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_unit();
        let ahead = -(delta_ms as f64) * self.beta * r.ln();
        now_ms as f64 + ahead >= expires_at_ms as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_draws_stay_in_range_and_spread() {
        let mut rng = XorShift64::new(7);
        let draws: Vec<f64> = (0..10_000).map(|_| rng.next_unit()).collect();
        assert!(draws.iter().all(|d| *d > 0.0 && *d <= 1.0));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn refresh_probability_follows_the_xfetch_law() {
        // P(refresh) = exp(-gap / (delta * beta)) for a value `gap` ms before expiry.
        let policy = EarlyExpiration::new(1.0, 42);
        let n = 20_000;
        let hits = (0..n)
            .filter(|_| policy.should_refresh(9_900, 10_000, 100))
            .count();
        let rate = hits as f64 / n as f64;
        let expected = (-1.0f64).exp();
        assert!((rate - expected).abs() < 0.02, "rate {rate} vs {expected}");

        // Far from expiry it (practically) never refreshes; at expiry it always does.
        assert_eq!(
            (0..n)
                .filter(|_| policy.should_refresh(0, 10_000, 100))
                .count(),
            0
        );
        assert!(policy.should_refresh(10_000, 10_000, 0));
        // beta = 0 (or a bad beta) is plain expiry.
        let never = EarlyExpiration::new(f64::NAN, 1);
        assert!(!(0..1000).any(|_| never.should_refresh(9_999, 10_000, 1_000)));
    }
}
