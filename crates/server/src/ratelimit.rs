//! Token-bucket rate limiting by key (a client id, an address).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A refusal: when to retry, and whether it is the first refusal since the
/// key was last allowed (so that alerts fire once, not per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until a token is available.
    pub retry_after: u64,
    /// The first refusal of this key since it was last allowed.
    pub first: bool,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    refused: bool,
}

/// A set of token buckets with the same rate and burst.
pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Most keys remembered before idle buckets are dropped.
const MAX_KEYS: usize = 100_000;

impl RateLimiter {
    /// `rate_per_sec` sustained, `burst` at once.
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        Self {
            rate_per_sec,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate_per_sec).min(self.burst);
        b.at = now;
    }

    fn retry_after(&self, tokens: f64) -> u64 {
        ((1.0 - tokens) / self.rate_per_sec).ceil().max(1.0) as u64
    }

    /// Takes one token for `key`, or says when to retry.
    pub fn check(&self, key: &str) -> Result<(), Throttled> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            refused: false,
        });
        self.refill(b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refused = false;
            Ok(())
        } else {
            let first = !b.refused;
            b.refused = true;
            Err(Throttled {
                retry_after: self.retry_after(b.tokens),
                first,
            })
        }
    }

    /// Whether `key` has a token left; a refusal is recorded as by
    /// [`check`](Self::check), but nothing is taken.
    pub fn peek(&self, key: &str) -> Result<(), Throttled> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = buckets.get_mut(key) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            let first = !b.refused;
            b.refused = true;
            Err(Throttled {
                retry_after: self.retry_after(b.tokens),
                first,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_burst_then_limits_per_key_and_flags_the_first_refusal() {
        let l = RateLimiter::new(0.001, 3.0);
        assert!((0..3).all(|_| l.check("a").is_ok()));
        assert_eq!(l.check("a").map_err(|t| t.first), Err(true));
        assert_eq!(l.check("a").map_err(|t| t.first), Err(false));
        assert_eq!(l.peek("a").map_err(|t| t.first), Err(false));
        assert!(l.check("b").is_ok(), "keys are independent");
        assert!(l.peek("c").is_ok());
    }
}
