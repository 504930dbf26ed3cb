//! The expiry scan: publishes `Microsoft.KeyVault.SecretNearExpiry` once per
//! version when its `exp` comes within the notice window (30 days) and
//! `Microsoft.KeyVault.SecretExpired` once when `exp` passes. What was
//! published is recorded with the event, in one transaction, so a restart
//! neither repeats nor loses a notice. "Now" is the server's clock, so a
//! development time shift moves the scan with it.

use std::sync::Arc;
use std::time::Duration;

use lockstep_store::ExpiryKind;

use crate::event::{secret_subject, EventType};
use crate::service::Events;
use crate::EventsError;

/// Versions handled per store query.
const BATCH: usize = 200;
/// Most batches per scan (a later scan picks up the rest).
const MAX_BATCHES: usize = 50;
/// How often old deliveries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Events {
    /// Publishes every expiry notice that is due; returns how many.
    pub fn scan_expiry(&self) -> Result<usize, EventsError> {
        let now = self.clock.unix();
        let near_before = now.saturating_add(self.config.near_expiry.as_secs() as i64);
        let mut published = 0;
        for _ in 0..MAX_BATCHES {
            let due = self.store.expiry_due(now, near_before, BATCH)?;
            for v in &due {
                let event_type = match v.kind {
                    ExpiryKind::NearExpiry => EventType::SecretNearExpiry,
                    ExpiryKind::Expired => EventType::SecretExpired,
                };
                let data = self.secret_data(&v.vault, &v.name, &v.version, v.nbf, Some(v.exp));
                let subject = secret_subject(&v.tenant_id, &v.vault, &v.name);
                if self.publish_once(&v.once_key, event_type, &subject, data)? {
                    published += 1;
                }
            }
            if due.len() < BATCH {
                break;
            }
        }
        Ok(published)
    }

    /// Removes finished deliveries (and their events) older than the
    /// retention period; returns how many events were removed.
    pub fn prune(&self) -> Result<usize, EventsError> {
        let before = self
            .now_ms()
            .saturating_sub(self.config.retention.as_millis() as i64);
        Ok(self.store.events_prune(before)?)
    }

    /// Scans for expiry notices every `every` (and once at once), and prunes
    /// old deliveries hourly, until the task is dropped.
    pub async fn run_expiry_scanner(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let me = self.clone();
            let prune = last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
            if prune {
                last_prune = Some(tokio::time::Instant::now());
            }
            let result = tokio::task::spawn_blocking(move || {
                let pruned = if prune { me.prune()? } else { 0 };
                Ok::<_, EventsError>((me.scan_expiry()?, pruned))
            })
            .await;
            match result {
                Ok(Ok((published, pruned))) => {
                    if published > 0 {
                        tracing::info!(published, "published secret expiry events");
                    }
                    if pruned > 0 {
                        tracing::info!(pruned, "pruned old events and their delivery logs");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "expiry scan failed"),
                Err(e) => tracing::warn!(error = %e, "expiry scan panicked"),
            }
        }
    }
}
