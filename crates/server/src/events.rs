//! The rotation engine's events, published through the events service
//! (CloudEvents to webhook subscriptions). No secret value is ever in an
//! event.

use std::sync::Arc;

use lockstep_events::{EventType, Events};
use lockstep_rotation::EventSink;

/// Publishes the engine's events.
pub struct EngineEvents(pub Arc<Events>);

impl EngineEvents {
    fn report(result: Result<impl Sized, lockstep_events::EventsError>, event_type: &str) {
        if let Err(e) = result {
            tracing::warn!(event = event_type, error = %e, "could not publish an event");
        }
    }
}

impl EventSink for EngineEvents {
    fn publish(&self, event_type: &str, subject: &str, data: serde_json::Value) {
        match EventType::parse(event_type) {
            Some(t) => Self::report(self.0.publish(t, subject, data), event_type),
            None => tracing::warn!(event = event_type, "unknown event type"),
        }
    }

    fn publish_once(&self, key: &str, event_type: &str, subject: &str, data: serde_json::Value) {
        match EventType::parse(event_type) {
            Some(t) => Self::report(self.0.publish_once(key, t, subject, data), event_type),
            None => tracing::warn!(event = event_type, "unknown event type"),
        }
    }

    fn secret_version_created(
        &self,
        tenant: &str,
        vault: &str,
        secret: &str,
        version: &str,
        exp: Option<i64>,
    ) {
        Self::report(
            self.0.publish_secret(
                EventType::SecretNewVersionCreated,
                tenant,
                vault,
                secret,
                version,
                None,
                exp,
            ),
            "Microsoft.KeyVault.SecretNewVersionCreated",
        );
    }
}
