//! Prometheus metrics: counters and gauges kept in memory and rendered in
//! the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

type Key = (&'static str, Vec<(&'static str, String)>);

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    counters: RwLock<BTreeMap<Key, AtomicU64>>,
    help: RwLock<BTreeMap<&'static str, &'static str>>,
}

impl Metrics {
    /// The server's metrics, with their help texts.
    pub fn new() -> Self {
        let m = Self::default();
        m.describe(
            "lockstep_http_requests_total",
            "HTTP requests served, by status class.",
        );
        m.describe(
            "lockstep_token_requests_total",
            "Token endpoint requests, by result.",
        );
        m.describe(
            "lockstep_token_bad_secret_alerts_total",
            "Times an application received more bad client secrets than allowed in a window.",
        );
        m
    }

    /// Registers the help text of a metric.
    pub fn describe(&self, name: &'static str, help: &'static str) {
        self.help
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, help);
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let key: Key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        if let Some(c) = self
            .counters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            c.fetch_add(by, Ordering::Relaxed);
            return;
        }
        self.counters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .fetch_add(by, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    /// The current value of a counter (0 when never incremented).
    #[cfg(test)]
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let key: Key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        self.counters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let counters = self.counters.read().unwrap_or_else(|p| p.into_inner());
        let help = self.help.read().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in counters.iter() {
            if *name != last {
                if let Some(h) = help.get(name) {
                    let _ = writeln!(out, "# HELP {name} {h}");
                }
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = write!(out, "{name}");
            if !labels.is_empty() {
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                let _ = write!(out, "{{{}}}", parts.join(","));
            }
            let _ = writeln!(out, " {}", value.load(Ordering::Relaxed));
        }
        out
    }
}

/// Rotation metrics: run counts by result, run durations, and per-binding
/// next-due and expiry gauges (computed when scraped).
pub fn rotation(state: &crate::state::AppState) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let s = state.engine.stats();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP lockstep_rotations_total Rotation runs that ended, by result."
    );
    let _ = writeln!(out, "# TYPE lockstep_rotations_total counter");
    for (result, v) in [
        ("succeeded", &s.succeeded),
        ("failed", &s.failed),
        ("cancelled", &s.cancelled),
    ] {
        let _ = writeln!(
            out,
            "lockstep_rotations_total{{result=\"{result}\"}} {}",
            v.load(Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP lockstep_rotation_duration_seconds Duration of succeeded rotation runs."
    );
    let _ = writeln!(out, "# TYPE lockstep_rotation_duration_seconds summary");
    let _ = writeln!(
        out,
        "lockstep_rotation_duration_seconds_sum {:.3}",
        s.duration_ms_sum.load(Relaxed) as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "lockstep_rotation_duration_seconds_count {}",
        s.succeeded.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP lockstep_credentials_revoked_total Credentials revoked by the rotation engine."
    );
    let _ = writeln!(out, "# TYPE lockstep_credentials_revoked_total counter");
    let _ = writeln!(
        out,
        "lockstep_credentials_revoked_total {}",
        s.revoked.load(Relaxed)
    );
    let _ = writeln!(out, "# HELP lockstep_rotation_next_due_timestamp_seconds When each binding's next rotation is due.");
    let _ = writeln!(
        out,
        "# TYPE lockstep_rotation_next_due_timestamp_seconds gauge"
    );
    let _ = writeln!(out, "# HELP lockstep_credential_expiry_timestamp_seconds When each binding's current credential expires.");
    let _ = writeln!(
        out,
        "# TYPE lockstep_credential_expiry_timestamp_seconds gauge"
    );
    let tenants = state.store.tenant_list().unwrap_or_default();
    for t in tenants {
        for b in state.engine.schedule(&t.id).unwrap_or_default() {
            let name = b.name.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "lockstep_rotation_next_due_timestamp_seconds{{binding=\"{name}\"}} {}",
                b.next_rotation
            );
            if let Some(exp) = b.current_expires {
                let _ = writeln!(
                    out,
                    "lockstep_credential_expiry_timestamp_seconds{{binding=\"{name}\"}} {exp}"
                );
            }
        }
    }
    out
}

/// The events service's counters in the text exposition format.
pub fn render_events(stats: &lockstep_events::EventStats) -> String {
    format!(
        "# HELP lockstep_events_published_total Events stored for delivery to at least one subscription.\n\
         # TYPE lockstep_events_published_total counter\n\
         lockstep_events_published_total {}\n\
         # HELP lockstep_webhook_attempts_total Webhook delivery attempts, by outcome (retry = failed, will be retried; failed = last attempt failed).\n\
         # TYPE lockstep_webhook_attempts_total counter\n\
         lockstep_webhook_attempts_total{{outcome=\"delivered\"}} {}\n\
         lockstep_webhook_attempts_total{{outcome=\"retry\"}} {}\n\
         lockstep_webhook_attempts_total{{outcome=\"failed\"}} {}\n",
        stats.published, stats.delivered, stats.retried, stats.failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.describe("lockstep_x_total", "Things.");
        m.inc("lockstep_x_total", &[("result", "ok")]);
        m.add("lockstep_x_total", &[("result", "ok")], 2);
        m.inc("lockstep_x_total", &[("result", "a\"b")]);
        let text = m.render();
        assert!(text.contains("# HELP lockstep_x_total Things.\n# TYPE lockstep_x_total counter\n"));
        assert!(text.contains("lockstep_x_total{result=\"ok\"} 3\n"));
        assert!(text.contains("lockstep_x_total{result=\"a\\\"b\"} 1\n"));
        assert_eq!(m.get("lockstep_x_total", &[("result", "ok")]), 3);
    }
}
