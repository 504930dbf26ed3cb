//! The delivery worker: claims due deliveries, POSTs each event to its
//! subscription's endpoint with a signature, records the attempt, and
//! schedules a retry (or gives up) when the endpoint does not answer 2xx.
//! Everything it needs to resume — attempt count, next attempt time — is in
//! the store, so deliveries survive restarts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_store::{DeliveryAttemptRow, DeliveryRow, DeliveryState, StoreError};
use tokio::sync::Semaphore;

use crate::service::{Events, EventsConfig};
use crate::signature::{self, CONTENT_TYPE, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::EventsError;

/// Longest the worker sleeps without looking for due deliveries.
const IDLE: Duration = Duration::from_secs(30);
/// Longest error text kept in the delivery log.
const MAX_ERROR: usize = 300;

/// The outbound HTTP client: system roots plus the optional extra CA,
/// no redirects (a redirect could leave https), a total time limit.
pub(crate) fn client(config: &EventsConfig) -> Result<reqwest::Client, EventsError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("lockstep-webhooks/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)));
    if let Some(pem) = &config.extra_ca_pem {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| EventsError::Client(format!("invalid webhook CA certificate: {e}")))?;
        builder = builder.tls_certs_merge([cert]);
    }
    builder
        .build()
        .map_err(|e| EventsError::Client(e.to_string()))
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(
    events: &Arc<Events>,
    f: impl FnOnce(&Events) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let e = events.clone();
    tokio::task::spawn_blocking(move || f(&e))
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
}

impl Events {
    /// Delivers events until the task is dropped: claims due deliveries
    /// (at most `concurrency` in flight), sends them, and sleeps until the
    /// next one is due or [`publish`](Self::publish) wakes it.
    pub async fn run_deliveries(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        // A claimed delivery is not claimed again until its lease ends: long
        // enough for one attempt, so a crash mid-attempt only delays it.
        let lease = self.config.timeout + Duration::from_secs(5);
        loop {
            let free = slots.available_permits();
            if free == 0 {
                self.wake.notified().await;
                continue;
            }
            let now = self.now_ms();
            let lease_until = now + lease.as_millis() as i64;
            let claimed = blocking(&self, move |e| {
                e.store.delivery_claim(now, lease_until, free)
            })
            .await;
            let claimed = match claimed {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim event deliveries; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let full = claimed.len() == free;
            for delivery in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                tokio::spawn(async move {
                    me.attempt(delivery).await;
                    drop(permit);
                    me.wake.notify_one();
                });
            }
            if full {
                continue;
            }
            let next = blocking(&self, |e| e.store.delivery_next_due())
                .await
                .ok()
                .flatten();
            let wait = match next {
                Some(at) => Duration::from_millis((at - self.now_ms()).max(10) as u64).min(IDLE),
                None => IDLE,
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Makes one attempt of a claimed delivery and records it.
    async fn attempt(self: &Arc<Self>, delivery: DeliveryRow) {
        let (sub_id, event_id) = (delivery.subscription_id.clone(), delivery.event_id.clone());
        let loaded = blocking(self, move |e| {
            Ok((
                e.store.subscription_get(&sub_id)?,
                e.store.event_get(&event_id)?,
            ))
        })
        .await;
        let (sub, event) = match loaded {
            Ok((Some(s), Some(e))) => (s, e),
            // The subscription (and with it the delivery) was deleted.
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(delivery = %delivery.id, error = %e, "cannot load a delivery");
                return;
            }
        };
        let timestamp = self.clock.unix();
        let signed = self
            .signing_secret(&sub)
            .map(|secret| signature::sign(&secret, timestamp, &event.body));
        let at = self.now_ms();
        let started = Instant::now();
        let (status_code, error) = match signed {
            Err(e) => (None, Some(format!("cannot unseal the signing secret: {e}"))),
            Ok(sig) => {
                let sent = self
                    .http
                    .post(&sub.endpoint)
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .header(SIGNATURE_HEADER, sig)
                    .header(TIMESTAMP_HEADER, timestamp.to_string())
                    .header(DELIVERY_HEADER, &delivery.id)
                    .body(event.body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(resp) => (Some(resp.status().as_u16()), None),
                    Err(e) => (None, Some(describe(&e))),
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let number = delivery.attempts + 1;
        let ok = status_code.is_some_and(|s| (200..300).contains(&s));
        let (state, next) = if ok {
            (DeliveryState::Delivered, at)
        } else {
            match self.config.retry.delay_after(number as u32) {
                Some(delay) => (DeliveryState::Pending, at + delay.as_millis() as i64),
                None => (DeliveryState::Failed, at),
            }
        };
        let counter = match state {
            DeliveryState::Delivered => &self.counters.delivered,
            DeliveryState::Pending => &self.counters.retried,
            DeliveryState::Failed => &self.counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match state {
            DeliveryState::Delivered => tracing::debug!(
                delivery = %delivery.id, subscription = %sub.id, attempt = number, "event delivered"
            ),
            DeliveryState::Pending => tracing::info!(
                delivery = %delivery.id, subscription = %sub.id, attempt = number,
                status = ?status_code, error = error.as_deref().unwrap_or(""),
                "event delivery failed; will retry"
            ),
            DeliveryState::Failed => tracing::warn!(
                delivery = %delivery.id, subscription = %sub.id, attempt = number,
                status = ?status_code, error = error.as_deref().unwrap_or(""),
                "event delivery failed for good"
            ),
        }
        let row = DeliveryAttemptRow {
            delivery_id: delivery.id.clone(),
            attempt: number,
            time: at,
            status_code,
            error,
            duration_ms,
        };
        match blocking(self, move |e| e.store.delivery_record(&row, state, next)).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => {
                tracing::warn!(delivery = %delivery.id, error = %e, "cannot record a delivery attempt")
            }
        }
    }
}

/// A transport error in one line, without the URL (it is in the subscription).
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if msg.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    msg
}
