//! Retry delays: exponential, capped, with jitter so that many consumers
//! that lost the same server do not come back in lockstep.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Retry delays: `initial`, doubling up to `max`, each shortened by a random
/// amount of up to half (so delays lie in `[d/2, d]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), without jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before retry number `attempt`, with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 { 0 } else { random() % nanos };
        half + Duration::from_nanos(jitter)
    }
}

/// A random number from the standard library's per-process hash keys (no
/// extra dependency; good enough for jitter, not for anything secret).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos().into())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let ms: Vec<u128> = (0..6).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_between_half_and_the_full_delay() {
        let b = Backoff::default();
        for attempt in 0..20 {
            let c = b.ceiling(attempt);
            for _ in 0..20 {
                let d = b.delay(attempt);
                assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
            }
        }
    }

    #[test]
    fn jitter_varies() {
        let b = Backoff::default();
        let delays: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(5)).collect();
        assert!(delays.len() > 1);
    }
}
