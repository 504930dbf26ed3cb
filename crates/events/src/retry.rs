//! When a failed delivery is tried again: exponential backoff (base, 2×base,
//! 4×base …, capped), then give up after a number of attempts.

use std::time::Duration;

/// The retry schedule of webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub cap: Duration,
    /// Attempts in all (the first one included) before a delivery fails.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 1 s, 2 s, 4 s … 256 s: ten attempts over about eight and a half minutes.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The default schedule with another base delay (tests shorten it).
    pub fn with_base(base: Duration) -> Self {
        Self {
            base,
            ..Self::default()
        }
    }

    /// How long to wait after attempt number `attempt` (1 = the first)
    /// failed, or `None` when that was the last attempt.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        Some(
            self.base
                .checked_mul(factor)
                .unwrap_or(self.cap)
                .min(self.cap),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_doubles_then_gives_up() {
        let p = RetryPolicy::default();
        let delays: Vec<u64> = (1..=10)
            .map_while(|a| p.delay_after(a))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256]);
        assert_eq!(p.delay_after(10), None);
        assert_eq!(p.delay_after(0), None);
    }

    #[test]
    fn delays_are_capped_and_never_overflow() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts: 100,
        };
        assert_eq!(p.delay_after(1), Some(Duration::from_millis(100)));
        assert_eq!(p.delay_after(2), Some(Duration::from_millis(200)));
        assert_eq!(p.delay_after(4), Some(Duration::from_millis(800)));
        assert_eq!(p.delay_after(5), Some(Duration::from_secs(1)));
        assert_eq!(p.delay_after(64), Some(Duration::from_secs(1)));
        assert_eq!(p.delay_after(99), Some(Duration::from_secs(1)));
        assert_eq!(p.delay_after(100), None);
    }

    #[test]
    fn a_short_base_keeps_the_shape() {
        let p = RetryPolicy::with_base(Duration::from_millis(50));
        assert_eq!(p.delay_after(1), Some(Duration::from_millis(50)));
        assert_eq!(p.delay_after(3), Some(Duration::from_millis(200)));
        assert_eq!(p.max_attempts, 10);
    }
}
