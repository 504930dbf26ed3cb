//! Rotation policies: how often, how long credentials live, when the
//! previous credential is revoked, and when rotations may run.

use lockstep_core::duration::IsoDuration;
use serde::{Deserialize, Serialize};

const DAY: i64 = 86_400;

/// How consecutive credentials overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The previous credential is revoked a grace period after the new one
    /// becomes current.
    Overlap,
    /// Each credential is current for one interval and stays valid for a
    /// second; a rotation revokes the credential two generations back.
    DualPhase,
}

/// When rotations may start (UTC): days of the week and an hour range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// Allowed days (`Mon`…`Sun`); empty = every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// First allowed hour (0-23).
    #[serde(default)]
    pub start_hour: u8,
    /// Hour at which the window closes (1-24, exclusive).
    #[serde(default = "default_end_hour")]
    pub end_hour: u8,
}

fn default_end_hour() -> u8 {
    24
}

/// A policy as written by a user: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyInput {
    /// Time between rotations (ISO 8601, default P70D).
    pub interval: Option<String>,
    /// Lifetime of each new credential.
    pub credential_lifetime: Option<String>,
    /// How long before expiry to warn (default P30D).
    pub notify_before: Option<String>,
    /// How long the previous credential stays valid after a rotation (default P1D).
    pub grace_period: Option<String>,
    /// `overlap` (default) or `dual-phase`.
    pub mode: Option<Mode>,
    /// When rotations may start.
    pub window: Option<Window>,
    /// Upper bound of the deterministic per-binding delay (default PT1H).
    pub jitter: Option<String>,
    /// Most concurrent runs against one credential source (default 4).
    pub max_concurrent: Option<u32>,
    /// URL called with a token from the new credential during verification.
    pub probe_url: Option<String>,
    /// How long verification retries before the run fails (default PT2M).
    pub verify_timeout: Option<String>,
}

/// An effective policy: every field set. Durations are seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Time between rotations.
    pub interval: i64,
    /// Lifetime of each new credential.
    pub credential_lifetime: i64,
    /// How long before expiry to warn.
    pub notify_before: i64,
    /// How long the previous credential stays valid after a rotation.
    pub grace_period: i64,
    /// Overlap mode.
    pub mode: Mode,
    /// When rotations may start.
    pub window: Option<Window>,
    /// Upper bound of the per-binding delay.
    pub jitter: i64,
    /// Most concurrent runs per credential source.
    pub max_concurrent: u32,
    /// Optional probe URL.
    pub probe_url: Option<String>,
    /// Verification deadline.
    pub verify_timeout: i64,
}

/// An invalid policy; the message is for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(pub String);

fn duration(field: &str, raw: Option<&str>, default: i64) -> Result<i64, PolicyError> {
    match raw {
        None => Ok(default),
        Some(r) => IsoDuration::parse(r)
            .map(IsoDuration::seconds)
            .map_err(|e| PolicyError(format!("{field}: {e}"))),
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Policy {
    /// The effective policy of `input` (on top of `base` when updating).
    /// `max_lifetime` is the app-management policy's limit, if any.
    pub fn resolve(
        input: &PolicyInput,
        base: Option<&Policy>,
        max_lifetime: Option<i64>,
    ) -> Result<Self, PolicyError> {
        let b = base.cloned();
        let interval = duration(
            "interval",
            input.interval.as_deref(),
            b.as_ref().map_or(70 * DAY, |p| p.interval),
        )?;
        if interval < 60 {
            return Err(PolicyError("interval must be at least PT1M".into()));
        }
        let mode = input
            .mode
            .or(b.as_ref().map(|p| p.mode))
            .unwrap_or(Mode::Overlap);
        let notify_before = duration(
            "notifyBefore",
            input.notify_before.as_deref(),
            b.as_ref().map_or(30 * DAY, |p| p.notify_before),
        )?;
        let grace_period = duration(
            "gracePeriod",
            input.grace_period.as_deref(),
            b.as_ref().map_or(DAY, |p| p.grace_period),
        )?;
        let jitter = duration(
            "jitter",
            input.jitter.as_deref(),
            b.as_ref().map_or(3_600, |p| p.jitter),
        )?;
        let verify_timeout = duration(
            "verifyTimeout",
            input.verify_timeout.as_deref(),
            b.as_ref().map_or(120, |p| p.verify_timeout),
        )?;
        // The default lifetime covers the interval plus an overlap long
        // enough for the grace period and the warning period.
        let overlap = grace_period.max(notify_before);
        let default_lifetime = match mode {
            Mode::Overlap => interval + overlap,
            Mode::DualPhase => 2 * interval + overlap,
        };
        let explicit =
            input.credential_lifetime.is_some() || input.interval.is_some() || input.mode.is_some();
        let mut credential_lifetime = match (&input.credential_lifetime, &b) {
            (Some(raw), _) => duration("credentialLifetime", Some(raw), 0)?,
            (None, Some(p)) if !explicit => p.credential_lifetime,
            _ => default_lifetime,
        };
        if let Some(max) = max_lifetime {
            if input.credential_lifetime.is_some() && credential_lifetime > max {
                return Err(PolicyError(format!(
                    "credentialLifetime {} exceeds the app-management policy's limit {}",
                    IsoDuration(credential_lifetime),
                    IsoDuration(max)
                )));
            }
            credential_lifetime = credential_lifetime.min(max);
        }
        let minimum = match mode {
            Mode::Overlap => interval + grace_period,
            Mode::DualPhase => 2 * interval,
        };
        if credential_lifetime < minimum {
            return Err(PolicyError(format!(
                "credentialLifetime {} is shorter than the {} this mode needs ({}); shorten the interval or allow longer credentials",
                IsoDuration(credential_lifetime),
                IsoDuration(minimum),
                if mode == Mode::Overlap { "interval + gracePeriod" } else { "2 × interval" }
            )));
        }
        let window = match &input.window {
            Some(w) => Some(w.clone()),
            None => b.as_ref().and_then(|p| p.window.clone()),
        };
        if let Some(w) = &window {
            if w.start_hour >= w.end_hour || w.end_hour > 24 {
                return Err(PolicyError(
                    "window: startHour must be before endHour (0-24)".into(),
                ));
            }
            if let Some(bad) = w
                .days
                .iter()
                .find(|d| !DAYS.iter().any(|x| x.eq_ignore_ascii_case(d)))
            {
                return Err(PolicyError(format!(
                    "window: unknown day '{bad}' (use Mon..Sun)"
                )));
            }
        }
        let max_concurrent = input
            .max_concurrent
            .or(b.as_ref().map(|p| p.max_concurrent))
            .unwrap_or(4);
        if max_concurrent == 0 {
            return Err(PolicyError("maxConcurrent must be at least 1".into()));
        }
        let probe_url = match &input.probe_url {
            Some(u) if u.is_empty() => None,
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => Some(u.clone()),
            Some(u) => {
                return Err(PolicyError(format!(
                    "probeUrl '{u}' must be an http(s) URL"
                )))
            }
            None => b.as_ref().and_then(|p| p.probe_url.clone()),
        };
        Ok(Self {
            interval,
            credential_lifetime,
            notify_before,
            grace_period,
            mode,
            window,
            jitter,
            max_concurrent,
            probe_url,
            verify_timeout,
        })
    }

    /// The policy as stored and shown (ISO 8601 durations).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "interval": IsoDuration(self.interval).to_string(),
            "credentialLifetime": IsoDuration(self.credential_lifetime).to_string(),
            "notifyBefore": IsoDuration(self.notify_before).to_string(),
            "gracePeriod": IsoDuration(self.grace_period).to_string(),
            "mode": self.mode,
            "window": self.window,
            "jitter": IsoDuration(self.jitter).to_string(),
            "maxConcurrent": self.max_concurrent,
            "probeUrl": self.probe_url,
            "verifyTimeout": IsoDuration(self.verify_timeout).to_string(),
        })
    }

    /// Reads a stored policy.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, PolicyError> {
        let input: PolicyInput =
            serde_json::from_value(v.clone()).map_err(|e| PolicyError(e.to_string()))?;
        Self::resolve(&input, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_seed() {
        let p =
            Policy::resolve(&PolicyInput::default(), None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.interval, 70 * DAY);
        assert_eq!(p.notify_before, 30 * DAY);
        assert_eq!(p.grace_period, DAY);
        assert_eq!(p.credential_lifetime, 100 * DAY);
        assert_eq!(p.mode, Mode::Overlap);
        assert_eq!(Policy::from_json(&p.to_json()), Ok(p));
    }

    #[test]
    fn dual_phase_lives_two_intervals_and_policy_limits_apply() {
        let input = PolicyInput {
            interval: Some("P30D".into()),
            mode: Some(Mode::DualPhase),
            ..Default::default()
        };
        let p = Policy::resolve(&input, None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.credential_lifetime, 90 * DAY);
        let clamped =
            Policy::resolve(&input, None, Some(70 * DAY)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(clamped.credential_lifetime, 70 * DAY);
        assert!(
            Policy::resolve(&input, None, Some(50 * DAY)).is_err(),
            "cannot fit two intervals"
        );
        let explicit = PolicyInput {
            credential_lifetime: Some("P200D".into()),
            ..Default::default()
        };
        assert!(Policy::resolve(&explicit, None, Some(90 * DAY)).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        for input in [
            PolicyInput {
                interval: Some("PT1S".into()),
                ..Default::default()
            },
            PolicyInput {
                interval: Some("70 days".into()),
                ..Default::default()
            },
            PolicyInput {
                credential_lifetime: Some("P1D".into()),
                ..Default::default()
            },
            PolicyInput {
                window: Some(Window {
                    days: vec!["Someday".into()],
                    start_hour: 1,
                    end_hour: 2,
                }),
                ..Default::default()
            },
            PolicyInput {
                window: Some(Window {
                    days: vec![],
                    start_hour: 5,
                    end_hour: 5,
                }),
                ..Default::default()
            },
            PolicyInput {
                probe_url: Some("ftp://x".into()),
                ..Default::default()
            },
        ] {
            assert!(Policy::resolve(&input, None, None).is_err(), "{input:?}");
        }
    }
}
