//! [`Events`]: publishing events and managing subscriptions. Delivery and
//! the expiry scan live in their own modules.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lockstep_core::SharedClock;
use lockstep_crypto::{Kek, WrappedKey};
use lockstep_store::{DeliveryLogEntry, EventRow, NewDelivery, Store, StoreError, SubscriptionRow};
use serde_json::{json, Value};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::event::{CloudEvent, EventType, SecretEventData};
use crate::retry::RetryPolicy;
use crate::subscription::{self, NewSubscription, Subscription, SubscriptionChange};
use crate::EventsError;

/// Most subscriptions one tenant may have.
pub const MAX_SUBSCRIPTIONS_PER_TENANT: usize = 100;
/// Most deliveries one delivery-log request returns.
pub const MAX_LOG: usize = 500;

/// Settings of the events service.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// The CloudEvents `source` of every event: the server's public URL.
    pub source: String,
    /// A vault's base URL with `{vault}` in place of its name, e.g.
    /// `https://{vault}.vault.localhost:8443` (for Key Vault event data).
    pub vault_url: String,
    /// Retry schedule of failed deliveries.
    pub retry: RetryPolicy,
    /// Time limit of one delivery attempt.
    pub timeout: Duration,
    /// An extra CA (PEM) to trust for endpoints, beside the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// How long before `exp` a version is reported near expiry.
    pub near_expiry: Duration,
    /// Delivery attempts in flight at once.
    pub concurrency: usize,
    /// How long finished deliveries and their events are kept.
    pub retention: Duration,
}

impl EventsConfig {
    /// Defaults: retry 1 s doubling for 10 attempts, 10 s timeout, 30 days'
    /// near-expiry notice, 16 attempts in flight, 30 days' retention.
    pub fn new(source: String, vault_url: String) -> Self {
        Self {
            source,
            vault_url,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            extra_ca_pem: None,
            near_expiry: Duration::from_secs(30 * 86_400),
            concurrency: 16,
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Counts since start, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
}

/// A snapshot of the events service's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventStats {
    /// Events stored for delivery (with at least one subscription).
    pub published: u64,
    /// Deliveries accepted by their endpoint.
    pub delivered: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Deliveries given up after their last attempt.
    pub failed: u64,
}

/// Publishes events, keeps subscriptions, and (see [`Events::run_deliveries`])
/// delivers events to them.
pub struct Events {
    pub(crate) store: Arc<dyn Store>,
    kek: Arc<Kek>,
    pub(crate) clock: SharedClock,
    pub(crate) config: EventsConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) wake: Notify,
    pub(crate) counters: Counters,
}

fn binding(tenant_id: &str, id: &str) -> String {
    format!("event-subscription/{tenant_id}/{id}")
}

impl Events {
    /// The events service over `store`, sealing signing secrets with `kek`.
    pub fn new(
        store: Arc<dyn Store>,
        kek: Arc<Kek>,
        clock: SharedClock,
        config: EventsConfig,
    ) -> Result<Self, EventsError> {
        let http = crate::delivery::client(&config)?;
        Ok(Self {
            store,
            kek,
            clock,
            config,
            http,
            wake: Notify::new(),
            counters: Counters::default(),
        })
    }

    /// Now, in Unix milliseconds, by the server's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Publishes an event to every matching subscription: stores the event
    /// and one delivery per subscription in one transaction, then wakes the
    /// delivery worker. Returns the event id. It does not wait for any
    /// delivery; it does write to the store, so async callers run it on a
    /// blocking thread. With no matching subscription nothing is stored.
    pub fn publish(
        &self,
        event_type: EventType,
        subject: &str,
        data: Value,
    ) -> Result<String, EventsError> {
        let event = CloudEvent::new(
            &self.config.source,
            event_type,
            subject,
            self.clock.now(),
            data,
        );
        let targets = self.matching(event_type, subject)?;
        self.store_event(&event, &targets, None)?;
        Ok(event.id)
    }

    /// Like [`publish`](Self::publish), but at most once per `once_key`
    /// (across restarts); returns whether it was published now.
    pub fn publish_once(
        &self,
        once_key: &str,
        event_type: EventType,
        subject: &str,
        data: Value,
    ) -> Result<bool, EventsError> {
        let event = CloudEvent::new(
            &self.config.source,
            event_type,
            subject,
            self.clock.now(),
            data,
        );
        let targets = self.matching(event_type, subject)?;
        self.store_event(&event, &targets, Some(once_key))
    }

    fn matching(&self, event_type: EventType, subject: &str) -> Result<Vec<String>, EventsError> {
        Ok(self
            .store
            .subscription_list()?
            .iter()
            .filter(|s| subscription::accepts(s, event_type, subject))
            .map(|s| s.id.clone())
            .collect())
    }

    fn store_event(
        &self,
        event: &CloudEvent,
        subscriptions: &[String],
        once_key: Option<&str>,
    ) -> Result<bool, EventsError> {
        let row = EventRow {
            id: event.id.clone(),
            event_type: event.event_type.to_owned(),
            subject: event.subject.clone(),
            time: self.now_ms(),
            body: event.to_body(),
        };
        let deliveries: Vec<NewDelivery> = subscriptions
            .iter()
            .map(|s| NewDelivery {
                id: lockstep_crypto::random::guid(),
                subscription_id: s.clone(),
            })
            .collect();
        let stored = self.store.event_insert(&row, &deliveries, once_key)?;
        if stored && !deliveries.is_empty() {
            self.counters.published.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
        }
        Ok(stored)
    }

    /// The data of a Key Vault secret event (Event Grid's shape) for a
    /// version of `name` in `vault`.
    pub fn secret_data(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        nbf: Option<i64>,
        exp: Option<i64>,
    ) -> Value {
        let vault_url = self.config.vault_url.replace("{vault}", vault);
        SecretEventData {
            vault_url: &vault_url,
            vault,
            name,
            version,
            nbf,
            exp,
        }
        .to_json()
    }

    /// Publishes a Key Vault secret event (for example
    /// [`EventType::SecretNewVersionCreated`] after a version is stored)
    /// with the secret's subject and Event Grid's data shape.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_secret(
        &self,
        event_type: EventType,
        tenant_id: &str,
        vault: &str,
        name: &str,
        version: &str,
        nbf: Option<i64>,
        exp: Option<i64>,
    ) -> Result<String, EventsError> {
        let data = self.secret_data(vault, name, version, nbf, exp);
        self.publish(
            event_type,
            &crate::event::secret_subject(tenant_id, vault, name),
            data,
        )
    }

    /// Counters since start.
    pub fn stats(&self) -> EventStats {
        EventStats {
            published: self.counters.published.load(Ordering::Relaxed),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            retried: self.counters.retried.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    // --- subscriptions ----------------------------------------------------

    /// Creates a subscription in `tenant_id` with a fresh 256-bit signing
    /// secret, returned here once and stored only sealed.
    pub fn create_subscription(
        &self,
        tenant_id: &str,
        input: NewSubscription,
    ) -> Result<(Subscription, Zeroizing<String>), EventsError> {
        let endpoint = subscription::validate_endpoint(&input.endpoint)?;
        let name = match &input.name {
            Some(n) => subscription::validate_name(n)?,
            None => subscription::default_name(&endpoint),
        };
        let event_types = subscription::validate_types(&input.event_types)?;
        let subject_prefix = match &input.subject_prefix {
            Some(p) => subscription::normalize_prefix(p, tenant_id)?,
            None => None,
        };
        let existing = self
            .store
            .subscription_list()?
            .iter()
            .filter(|s| s.tenant_id == tenant_id)
            .count();
        if existing >= MAX_SUBSCRIPTIONS_PER_TENANT {
            return Err(EventsError::Invalid(format!(
                "A tenant may have at most {MAX_SUBSCRIPTIONS_PER_TENANT} subscriptions."
            )));
        }
        let id = lockstep_crypto::random::guid();
        let secret = lockstep_crypto::random::client_secret();
        let b = binding(tenant_id, &id);
        let (key, wrapped) = self.kek.new_data_key(&b)?;
        let sealed_secret = key.seal(b.as_bytes(), secret.as_bytes())?;
        let now = self.clock.unix();
        let row = SubscriptionRow {
            id,
            tenant_id: tenant_id.to_owned(),
            name,
            endpoint,
            event_types,
            subject_prefix,
            kek_id: wrapped.kek_id,
            wrapped_dek: wrapped.sealed,
            sealed_secret,
            enabled: input.enabled.unwrap_or(true),
            created: now,
            updated: now,
        };
        self.store.subscription_insert(&row)?;
        Ok((Subscription::from(&row), secret))
    }

    fn row(&self, tenant_id: &str, id: &str) -> Result<SubscriptionRow, EventsError> {
        self.store
            .subscription_get(&id.to_ascii_lowercase())?
            .filter(|s| s.tenant_id == tenant_id)
            .ok_or(EventsError::NotFound)
    }

    /// A subscription of `tenant_id`.
    pub fn subscription(&self, tenant_id: &str, id: &str) -> Result<Subscription, EventsError> {
        Ok(Subscription::from(&self.row(tenant_id, id)?))
    }

    /// The subscriptions of `tenant_id`, oldest first.
    pub fn subscriptions(&self, tenant_id: &str) -> Result<Vec<Subscription>, EventsError> {
        Ok(self
            .store
            .subscription_list()?
            .iter()
            .filter(|s| s.tenant_id == tenant_id)
            .map(Subscription::from)
            .collect())
    }

    /// Changes a subscription; its signing secret stays the same. Enabling
    /// it resumes its pending deliveries.
    pub fn update_subscription(
        &self,
        tenant_id: &str,
        id: &str,
        change: SubscriptionChange,
    ) -> Result<Subscription, EventsError> {
        let mut row = self.row(tenant_id, id)?;
        if let Some(e) = &change.endpoint {
            row.endpoint = subscription::validate_endpoint(e)?;
        }
        if let Some(n) = &change.name {
            row.name = subscription::validate_name(n)?;
        }
        if let Some(t) = &change.event_types {
            row.event_types = subscription::validate_types(t)?;
        }
        if let Some(p) = &change.subject_prefix {
            row.subject_prefix = match p {
                Some(p) => subscription::normalize_prefix(p, tenant_id)?,
                None => None,
            };
        }
        if let Some(e) = change.enabled {
            row.enabled = e;
        }
        row.updated = self.clock.unix();
        match self.store.subscription_update(&row) {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(EventsError::NotFound),
            Err(e) => return Err(e.into()),
        }
        self.wake.notify_one();
        Ok(Subscription::from(&row))
    }

    /// Deletes a subscription with its pending deliveries and its log.
    pub fn delete_subscription(&self, tenant_id: &str, id: &str) -> Result<(), EventsError> {
        let row = self.row(tenant_id, id)?;
        match self.store.subscription_delete(&row.id) {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(EventsError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// The newest `limit` deliveries of a subscription with their attempts.
    pub fn deliveries(
        &self,
        tenant_id: &str,
        id: &str,
        limit: usize,
    ) -> Result<Vec<DeliveryLogEntry>, EventsError> {
        let row = self.row(tenant_id, id)?;
        Ok(self.store.delivery_log(&row.id, limit.clamp(1, MAX_LOG))?)
    }

    /// Sends a `Lockstep.SubscriptionTest` event to this subscription only,
    /// whatever its filters; returns the event id.
    pub fn send_test(&self, tenant_id: &str, id: &str) -> Result<String, EventsError> {
        let row = self.row(tenant_id, id)?;
        if !row.enabled {
            return Err(EventsError::Disabled);
        }
        let event = CloudEvent::new(
            &self.config.source,
            EventType::SubscriptionTest,
            &format!("/tenants/{}/subscriptions/{}", row.tenant_id, row.id),
            self.clock.now(),
            json!({
                "subscriptionId": row.id,
                "name": row.name,
                "message": "This is a test event from Lockstep.",
            }),
        );
        self.store_event(&event, std::slice::from_ref(&row.id), None)?;
        Ok(event.id)
    }

    /// The signing secret of a subscription, unsealed for one delivery.
    pub(crate) fn signing_secret(
        &self,
        row: &SubscriptionRow,
    ) -> Result<Zeroizing<Vec<u8>>, EventsError> {
        let b = binding(&row.tenant_id, &row.id);
        let wrapped = WrappedKey {
            kek_id: row.kek_id.clone(),
            sealed: row.wrapped_dek.clone(),
        };
        let key = self.kek.open_data_key(&b, &wrapped)?;
        Ok(key.open(b.as_bytes(), &row.sealed_secret)?)
    }
}
