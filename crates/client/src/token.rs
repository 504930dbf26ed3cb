//! The reader's vault token: fetched once, reused until shortly before it
//! expires, dropped when the vault answers 401.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// A cached access token.
pub(crate) struct Token {
    pub(crate) value: Zeroizing<String>,
    refresh_at: Instant,
}

impl Token {
    /// A token obtained at `now` that the server says lives `lifetime`.
    pub(crate) fn new(value: Zeroizing<String>, now: Instant, lifetime: Duration) -> Self {
        Self {
            value,
            refresh_at: now + lifetime.saturating_sub(refresh_margin(lifetime)),
        }
    }

    /// Whether the token should still be used at `now`.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// How long before expiry a token is replaced: a tenth of its lifetime,
/// between 10 s and 5 min, and never more than half of it.
pub(crate) fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10)
        .clamp(Duration::from_secs(10), Duration::from_secs(300))
        .min(lifetime / 2)
}

/// The token slot; one fetch at a time (callers wait on the lock and then
/// find the fresh token).
#[derive(Default)]
pub(crate) struct TokenSlot {
    pub(crate) current: tokio::sync::Mutex<Option<Token>>,
}

impl TokenSlot {
    /// Forgets `failed` if it is still the cached token (a newer one is
    /// kept).
    pub(crate) async fn invalidate(&self, failed: &str) {
        let mut slot = self.current.lock().await;
        if slot.as_ref().is_some_and(|t| t.value.as_str() == failed) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn margins_scale_with_the_lifetime() {
        let s = Duration::from_secs;
        assert_eq!(refresh_margin(s(3600)), s(300));
        assert_eq!(refresh_margin(s(600)), s(60));
        assert_eq!(refresh_margin(s(60)), s(10));
        assert_eq!(refresh_margin(s(10)), s(5));
        assert_eq!(refresh_margin(s(0)), s(0));
    }

    #[test]
    fn a_token_is_replaced_before_it_expires() {
        let now = Instant::now();
        let t = Token::new(Zeroizing::new("t".into()), now, Duration::from_secs(3600));
        assert!(t.is_fresh(now));
        assert!(t.is_fresh(now + Duration::from_secs(3299)));
        assert!(!t.is_fresh(now + Duration::from_secs(3300)));
        let short = Token::new(Zeroizing::new("t".into()), now, Duration::ZERO);
        assert!(!short.is_fresh(now));
    }

    #[tokio::test]
    async fn only_the_failed_token_is_invalidated() {
        let slot = TokenSlot::default();
        let now = Instant::now();
        *slot.current.lock().await = Some(Token::new(
            Zeroizing::new("new".into()),
            now,
            Duration::from_secs(3600),
        ));
        slot.invalidate("old").await;
        assert!(slot.current.lock().await.is_some());
        slot.invalidate("new").await;
        assert!(slot.current.lock().await.is_none());
    }
}
