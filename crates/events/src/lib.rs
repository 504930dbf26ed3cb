//! Events and webhooks: Lockstep's events in CloudEvents 1.0 JSON (Key
//! Vault's Event Grid names for secret events, `Lockstep.*` for the rest),
//! subscriptions that receive them over HTTPS, HMAC-signed and retried with
//! backoff, and the scan that reports secret versions near or past their
//! expiry. The server calls [`Events::publish`]; it knows nothing about the
//! HTTP API that manages subscriptions (that is in `server::management`).

mod delivery;
pub mod event;
mod expiry;
pub mod retry;
mod service;
pub mod signature;
pub mod subscription;

pub use event::{CloudEvent, EventType};
pub use lockstep_store::{DeliveryAttemptRow, DeliveryLogEntry, DeliveryRow, DeliveryState};
pub use retry::RetryPolicy;
pub use service::{EventStats, Events, EventsConfig, MAX_LOG, MAX_SUBSCRIPTIONS_PER_TENANT};
pub use subscription::{NewSubscription, Subscription, SubscriptionChange};

/// Errors of the events service.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Invalid input (the message says what and is safe to show).
    #[error("{0}")]
    Invalid(String),
    /// No such subscription in the caller's tenant.
    #[error("the subscription was not found")]
    NotFound,
    /// The subscription is disabled.
    #[error("the subscription is disabled")]
    Disabled,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] lockstep_store::StoreError),
    /// A signing secret could not be sealed or opened.
    #[error("signing secret: {0}")]
    Keyring(#[from] lockstep_crypto::KeyringError),
    /// The outbound HTTP client could not be built.
    #[error("{0}")]
    Client(String),
}

#[cfg(test)]
mod tests;
