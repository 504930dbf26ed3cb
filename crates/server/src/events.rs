//! Where the rotation engine's events go until webhook delivery is wired:
//! the log (one line per event; no secret values are ever in an event).

use lockstep_rotation::EventSink;

/// Logs events.
pub struct LogEvents;

impl EventSink for LogEvents {
    fn publish(&self, event_type: &str, subject: &str, data: serde_json::Value) {
        tracing::info!(event = event_type, subject, data = %data, "event");
    }
}
