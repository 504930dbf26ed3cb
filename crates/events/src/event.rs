//! Event types and their CloudEvents 1.0 JSON form.
//!
//! Key Vault's events keep Event Grid's names and data shape
//! (`Microsoft.KeyVault.SecretNewVersionCreated` with `Id`, `VaultName`,
//! `ObjectType`, `ObjectName`, `Version`, `NBF`, `EXP`); Lockstep's own
//! events carry whatever JSON the publisher gives.

use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The kinds of event Lockstep publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A new version of a vault secret was stored.
    SecretNewVersionCreated,
    /// A secret version expires within the notice window (30 days).
    SecretNearExpiry,
    /// A secret version's expiry has passed.
    SecretExpired,
    /// A rotation run finished successfully.
    RotationSucceeded,
    /// A rotation run failed.
    RotationFailed,
    /// A credential (client secret) expires soon.
    CredentialNearExpiry,
    /// A test event sent to one subscription on request.
    SubscriptionTest,
}

impl EventType {
    /// The types a subscription can filter on (the test event is always
    /// delivered to the subscription it was sent to, whatever its filter).
    pub const SUBSCRIBABLE: &'static [EventType] = &[
        Self::SecretNewVersionCreated,
        Self::SecretNearExpiry,
        Self::SecretExpired,
        Self::RotationSucceeded,
        Self::RotationFailed,
        Self::CredentialNearExpiry,
    ];

    /// The CloudEvents `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretNewVersionCreated => "Microsoft.KeyVault.SecretNewVersionCreated",
            Self::SecretNearExpiry => "Microsoft.KeyVault.SecretNearExpiry",
            Self::SecretExpired => "Microsoft.KeyVault.SecretExpired",
            Self::RotationSucceeded => "Lockstep.RotationSucceeded",
            Self::RotationFailed => "Lockstep.RotationFailed",
            Self::CredentialNearExpiry => "Lockstep.CredentialNearExpiry",
            Self::SubscriptionTest => "Lockstep.SubscriptionTest",
        }
    }

    /// Parses a subscribable type: its full name or the part after the last
    /// dot (`SecretExpired`), in any case.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        Self::SUBSCRIBABLE.iter().copied().find(|t| {
            let full = t.as_str();
            let short = full.rsplit('.').next().unwrap_or(full);
            full.eq_ignore_ascii_case(raw) || short.eq_ignore_ascii_case(raw)
        })
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CloudEvents 1.0 event in the structured JSON format.
#[derive(Debug, Clone, Serialize)]
pub struct CloudEvent {
    /// Always `"1.0"`.
    pub specversion: &'static str,
    /// Unique per event; receivers de-duplicate retried deliveries on it.
    pub id: String,
    /// The Lockstep server that published it (its public URL).
    pub source: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// What the event is about, e.g. `/tenants/{t}/vaults/{v}/secrets/{name}`.
    pub subject: String,
    /// When it was published (RFC 3339, UTC).
    pub time: String,
    /// Always `"application/json"`.
    pub datacontenttype: &'static str,
    /// The payload.
    pub data: Value,
}

impl CloudEvent {
    /// A new event with a fresh id, published at `at`.
    pub fn new(
        source: &str,
        event_type: EventType,
        subject: &str,
        at: OffsetDateTime,
        data: Value,
    ) -> Self {
        // Millisecond precision is plenty and keeps the text short.
        let at = at
            .replace_nanosecond(at.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap_or(at);
        Self {
            specversion: "1.0",
            id: lockstep_crypto::random::guid(),
            source: source.to_owned(),
            event_type: event_type.as_str(),
            subject: subject.to_owned(),
            time: at.format(&Rfc3339).unwrap_or_default(),
            datacontenttype: "application/json",
            data,
        }
    }

    /// The JSON body as it is stored and POSTed (the signature covers these bytes).
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The subject of events about a vault secret: the same path as the
/// secret's RBAC scope, with the secret's name as written.
pub fn secret_subject(tenant_id: &str, vault: &str, name: &str) -> String {
    format!(
        "/tenants/{}/vaults/{}/secrets/{name}",
        tenant_id.to_ascii_lowercase(),
        vault.to_ascii_lowercase()
    )
}

/// The tenant a subject belongs to, when it is a `/tenants/{t}/…` path.
/// Events with such a subject reach only that tenant's subscriptions.
pub fn subject_tenant(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix("/tenants/")?;
    let tenant = rest.split('/').next().unwrap_or(rest);
    (!tenant.is_empty()).then_some(tenant)
}

/// The data of a Key Vault secret event, in Event Grid's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEventData<'a> {
    /// The vault's base URL, e.g. `https://default.vault.localhost:8443`.
    pub vault_url: &'a str,
    /// Vault name.
    pub vault: &'a str,
    /// Secret name.
    pub name: &'a str,
    /// Version id.
    pub version: &'a str,
    /// Not-before (Unix seconds).
    pub nbf: Option<i64>,
    /// Expiry (Unix seconds).
    pub exp: Option<i64>,
}

impl SecretEventData<'_> {
    /// `{"Id","VaultName","ObjectType":"Secret","ObjectName","Version","NBF","EXP"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "Id": format!("{}/secrets/{}/{}", self.vault_url.trim_end_matches('/'), self.name, self.version),
            "VaultName": self.vault,
            "ObjectType": "Secret",
            "ObjectName": self.name,
            "Version": self.version,
            "NBF": self.nbf,
            "EXP": self.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_by_full_or_short_name() {
        assert_eq!(
            EventType::parse("Microsoft.KeyVault.SecretExpired"),
            Some(EventType::SecretExpired)
        );
        assert_eq!(
            EventType::parse("secretnewversioncreated"),
            Some(EventType::SecretNewVersionCreated)
        );
        assert_eq!(
            EventType::parse("Lockstep.RotationFailed"),
            Some(EventType::RotationFailed)
        );
        assert_eq!(EventType::parse("Lockstep.SubscriptionTest"), None);
        assert_eq!(EventType::parse("Microsoft.KeyVault.KeyExpired"), None);
    }

    #[test]
    fn cloud_event_has_the_required_attributes() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let data = SecretEventData {
            vault_url: "https://default.vault.localhost:8443",
            vault: "default",
            name: "db",
            version: "0123456789abcdef0123456789abcdef",
            nbf: None,
            exp: Some(1_900_000_000),
        }
        .to_json();
        let ev = CloudEvent::new(
            "https://localhost:8443",
            EventType::SecretNewVersionCreated,
            &secret_subject("T1", "Default", "db"),
            at,
            data,
        );
        let v: Value = serde_json::from_slice(&ev.to_body()).unwrap_or_default();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "Microsoft.KeyVault.SecretNewVersionCreated");
        assert_eq!(v["source"], "https://localhost:8443");
        assert_eq!(v["subject"], "/tenants/t1/vaults/default/secrets/db");
        assert_eq!(v["time"], "2027-01-15T08:00:00.123Z");
        assert_eq!(v["datacontenttype"], "application/json");
        assert_eq!(v["id"].as_str().map(str::len), Some(36));
        assert_eq!(
            v["data"]["Id"],
            "https://default.vault.localhost:8443/secrets/db/0123456789abcdef0123456789abcdef"
        );
        assert_eq!(v["data"]["ObjectType"], "Secret");
        assert_eq!(v["data"]["NBF"], Value::Null);
        assert_eq!(v["data"]["EXP"], 1_900_000_000);
    }

    #[test]
    fn subjects_name_their_tenant() {
        assert_eq!(subject_tenant("/tenants/t1/vaults/v/secrets/s"), Some("t1"));
        assert_eq!(subject_tenant("/tenants/t1"), Some("t1"));
        assert_eq!(subject_tenant("/tenants/"), None);
        assert_eq!(subject_tenant("bindings/acg"), None);
    }
}
