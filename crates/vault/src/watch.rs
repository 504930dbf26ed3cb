//! Change notification for secrets: a waiter subscribes to one secret and is
//! woken whenever something may have changed its latest version (set,
//! restore, recover, delete, purge, or an explicit
//! [`Vaults::notify`](crate::Vaults::notify)). Slots are created on the first
//! subscription and removed when the last subscriber leaves, so an idle
//! secret costs nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The registry of per-secret notification slots, keyed by vault and
/// lower-cased secret name.
#[derive(Default)]
pub(crate) struct Watchers {
    slots: Arc<Mutex<HashMap<SlotKey, watch::Sender<u64>>>>,
}

type SlotKey = (String, String);

fn key(vault: &str, name: &str) -> SlotKey {
    (vault.to_ascii_lowercase(), name.to_ascii_lowercase())
}

impl Watchers {
    /// A subscription to `vault`/`name`; it sees every signal sent after
    /// this call returns.
    pub(crate) fn subscribe(&self, vault: &str, name: &str) -> SecretWatch {
        let key = key(vault, name);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let rx = match slots.get(&key) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0u64);
                slots.insert(key.clone(), tx);
                rx
            }
        };
        SecretWatch {
            rx: Some(rx),
            key,
            slots: Arc::clone(&self.slots),
        }
    }

    /// Wakes every subscriber of `vault`/`name` (no-op when there is none).
    pub(crate) fn notify(&self, vault: &str, name: &str) {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = slots.get(&key(vault, name)) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Number of secrets with at least one subscriber.
    pub(crate) fn watched(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// One subscriber's view of a secret's notifications. Dropping it
/// unsubscribes (and frees the slot when it was the last subscriber).
pub struct SecretWatch {
    rx: Option<watch::Receiver<u64>>,
    key: SlotKey,
    slots: Arc<Mutex<HashMap<SlotKey, watch::Sender<u64>>>>,
}

impl SecretWatch {
    /// Waits for the next signal since the previous call (or since the
    /// subscription). Never fails: the registry outlives its subscribers.
    pub async fn changed(&mut self) {
        match self.rx.as_mut() {
            Some(rx) => {
                if rx.changed().await.is_err() {
                    // The slot's sender is gone (cannot happen while we are
                    // subscribed); never report a change we did not see.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

impl Drop for SecretWatch {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots
            .get(&self.key)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn ready<F: Future>(f: F) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(pin!(f).poll(&mut cx), Poll::Ready(_))
    }

    #[test]
    fn a_signal_wakes_every_subscriber_of_that_secret_only() {
        let w = Watchers::default();
        let mut a = w.subscribe("default", "Db-Password");
        let mut b = w.subscribe("DEFAULT", "db-password");
        let mut other = w.subscribe("default", "api-key");
        assert_eq!(w.watched(), 2);
        w.notify("default", "DB-PASSWORD");
        assert!(ready(a.changed()));
        assert!(ready(b.changed()));
        assert!(!ready(other.changed()));
        // A signal is consumed once per subscriber.
        assert!(!ready(a.changed()));
    }

    #[test]
    fn a_signal_sent_before_subscribing_is_not_seen() {
        let w = Watchers::default();
        let _keep = w.subscribe("v", "s");
        w.notify("v", "s");
        let mut late = w.subscribe("v", "s");
        assert!(!ready(late.changed()));
        w.notify("v", "s");
        assert!(ready(late.changed()));
    }

    #[test]
    fn slots_are_freed_with_their_last_subscriber() {
        let w = Watchers::default();
        let a = w.subscribe("v", "s");
        let b = w.subscribe("v", "s");
        drop(a);
        assert_eq!(w.watched(), 1);
        drop(b);
        assert_eq!(w.watched(), 0);
        // Notifying an unwatched secret does not create a slot.
        w.notify("v", "s");
        assert_eq!(w.watched(), 0);
    }
}
