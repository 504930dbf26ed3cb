//! Webhook subscriptions: what a subscription is, how its input is
//! validated, and which events it receives.

use std::net::IpAddr;

use lockstep_store::SubscriptionRow;

use crate::event::{subject_tenant, EventType};
use crate::EventsError;

/// Longest subscription name.
pub const MAX_NAME: usize = 100;
/// Longest endpoint URL.
pub const MAX_ENDPOINT: usize = 2048;
/// Longest subject prefix.
pub const MAX_PREFIX: usize = 1024;

/// A subscription as the API shows it (never with its signing secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Id (GUID).
    pub id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Where events are POSTed.
    pub endpoint: String,
    /// Event types delivered (full names; empty = every type).
    pub event_types: Vec<String>,
    /// Only events whose subject starts with this (ASCII case-insensitive).
    pub subject_prefix: Option<String>,
    /// Whether events are delivered.
    pub enabled: bool,
    /// Created (Unix seconds).
    pub created: i64,
    /// Last changed (Unix seconds).
    pub updated: i64,
}

impl From<&SubscriptionRow> for Subscription {
    fn from(r: &SubscriptionRow) -> Self {
        Self {
            id: r.id.clone(),
            tenant_id: r.tenant_id.clone(),
            name: r.name.clone(),
            endpoint: r.endpoint.clone(),
            event_types: r.event_types.clone(),
            subject_prefix: r.subject_prefix.clone(),
            enabled: r.enabled,
            created: r.created,
            updated: r.updated,
        }
    }
}

/// Input of a new subscription.
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    /// Display name (default: the endpoint's host).
    pub name: Option<String>,
    /// Endpoint URL: `https://…`, or `http://` to a loopback address.
    pub endpoint: String,
    /// Event types (full or short names); empty = every type.
    pub event_types: Vec<String>,
    /// Subject prefix; `/vaults/…` and other paths are taken within the tenant.
    pub subject_prefix: Option<String>,
    /// Enabled (default true).
    pub enabled: Option<bool>,
}

/// A change to a subscription; absent fields are left as they are.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionChange {
    /// New name.
    pub name: Option<String>,
    /// New endpoint.
    pub endpoint: Option<String>,
    /// New event types (empty = every type).
    pub event_types: Option<Vec<String>>,
    /// New subject prefix (`Some(None)` removes it).
    pub subject_prefix: Option<Option<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Checks an endpoint URL: absolute, `https`, or `http` only to a loopback
/// address (for local receivers and tests); no user name or password (the
/// signature authenticates deliveries, and URLs are shown in listings).
pub fn validate_endpoint(raw: &str) -> Result<String, EventsError> {
    let raw = raw.trim();
    if raw.len() > MAX_ENDPOINT {
        return Err(EventsError::Invalid(format!(
            "The endpoint URL is longer than {MAX_ENDPOINT} characters."
        )));
    }
    let url = reqwest::Url::parse(raw)
        .map_err(|e| EventsError::Invalid(format!("The endpoint is not a valid URL: {e}.")))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| EventsError::Invalid("The endpoint URL has no host.".into()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EventsError::Invalid(
            "The endpoint URL must not carry a user name or password; verify the signature instead."
                .into(),
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(EventsError::Invalid(
                "The endpoint must use https (http is allowed only to a loopback address).".into(),
            ))
        }
        other => {
            return Err(EventsError::Invalid(format!(
                "The endpoint must use https, not '{}'.",
                other.chars().take(16).collect::<String>()
            )))
        }
    }
    Ok(url.to_string())
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks a list of event types and returns their full names, de-duplicated.
pub fn validate_types(raw: &[String]) -> Result<Vec<String>, EventsError> {
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let parsed = EventType::parse(t).ok_or_else(|| {
            let known: Vec<&str> = EventType::SUBSCRIBABLE.iter().map(|t| t.as_str()).collect();
            EventsError::Invalid(format!(
                "Unknown event type '{}'. Known types: {}.",
                t.chars().take(100).collect::<String>(),
                known.join(", ")
            ))
        })?;
        let name = parsed.as_str().to_owned();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Normalizes a subject prefix within `tenant_id`: `/tenants/{tenant}/…` is
/// kept, any other path (`/vaults/default/secrets/db`) is taken within the
/// tenant, and another tenant's path is refused. An empty prefix is none.
pub fn normalize_prefix(raw: &str, tenant_id: &str) -> Result<Option<String>, EventsError> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "/" {
        return Ok(None);
    }
    if raw.len() > MAX_PREFIX {
        return Err(EventsError::Invalid(format!(
            "The subject prefix is longer than {MAX_PREFIX} characters."
        )));
    }
    if !raw.starts_with('/') {
        return Err(EventsError::Invalid(
            "The subject prefix must be a path such as /vaults/default/secrets/ or /tenants/{tenant}/…"
                .into(),
        ));
    }
    let tenant = tenant_id.to_ascii_lowercase();
    const TENANTS: &str = "/tenants/";
    if let Some(rest) = raw
        .get(..TENANTS.len())
        .filter(|head| head.eq_ignore_ascii_case(TENANTS))
        .and_then(|_| raw.get(TENANTS.len()..))
    {
        let named = rest.split('/').next().unwrap_or("");
        return if named.eq_ignore_ascii_case(&tenant) {
            Ok(Some(format!("/tenants/{tenant}{}", &rest[named.len()..])))
        } else {
            Err(EventsError::Invalid(
                "The subject prefix names another tenant.".into(),
            ))
        };
    }
    Ok(Some(format!("/tenants/{tenant}{raw}")))
}

/// Checks a subscription name.
pub fn validate_name(raw: &str) -> Result<String, EventsError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(EventsError::Invalid(format!(
            "The name must be 1-{MAX_NAME} printable characters."
        )));
    }
    Ok(name.to_owned())
}

/// The default name of a subscription: its endpoint's host.
pub fn default_name(endpoint: &str) -> String {
    reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "webhook".into())
}

/// Whether `sub` receives an event of `event_type` about `subject`: it is
/// enabled, its type filter is empty or names the type, its subject prefix
/// (if any) starts the subject, and the subject is not another tenant's.
pub fn accepts(sub: &SubscriptionRow, event_type: EventType, subject: &str) -> bool {
    if !sub.enabled {
        return false;
    }
    if let Some(t) = subject_tenant(subject) {
        if !t.eq_ignore_ascii_case(&sub.tenant_id) {
            return false;
        }
    }
    let type_ok = sub.event_types.is_empty()
        || sub
            .event_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(event_type.as_str()));
    let prefix_ok = sub.subject_prefix.as_deref().is_none_or(|p| {
        subject.len() >= p.len() && subject.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    });
    type_ok && prefix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(types: &[&str], prefix: Option<&str>) -> SubscriptionRow {
        SubscriptionRow {
            id: "s1".into(),
            tenant_id: "t1".into(),
            name: "n".into(),
            endpoint: "https://example.com/hook".into(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            subject_prefix: prefix.map(str::to_owned),
            kek_id: String::new(),
            wrapped_dek: Vec::new(),
            sealed_secret: Vec::new(),
            enabled: true,
            created: 0,
            updated: 0,
        }
    }

    const DB: &str = "/tenants/t1/vaults/default/secrets/db";

    #[test]
    fn empty_filters_accept_everything_in_the_tenant() {
        let s = sub(&[], None);
        for t in EventType::SUBSCRIBABLE {
            assert!(accepts(&s, *t, DB));
        }
        assert!(accepts(&s, EventType::RotationFailed, "bindings/acg"));
        assert!(!accepts(
            &s,
            EventType::SecretExpired,
            "/tenants/t2/vaults/v/secrets/db"
        ));
    }

    #[test]
    fn type_filter_selects_types() {
        let s = sub(&["Microsoft.KeyVault.SecretNewVersionCreated"], None);
        assert!(accepts(&s, EventType::SecretNewVersionCreated, DB));
        assert!(!accepts(&s, EventType::SecretExpired, DB));
        assert!(!accepts(&s, EventType::RotationSucceeded, DB));
    }

    #[test]
    fn subject_prefix_selects_subjects_case_insensitively() {
        let s = sub(&[], Some("/tenants/t1/vaults/default/secrets/DB"));
        assert!(accepts(&s, EventType::SecretExpired, DB));
        assert!(accepts(
            &s,
            EventType::SecretExpired,
            &format!("{DB}-password")
        ));
        assert!(!accepts(
            &s,
            EventType::SecretExpired,
            "/tenants/t1/vaults/default/secrets/d"
        ));
        assert!(!accepts(
            &s,
            EventType::SecretExpired,
            "/tenants/t1/vaults/other/secrets/db"
        ));
        assert!(!accepts(&s, EventType::RotationFailed, "bindings/acg"));
    }

    #[test]
    fn disabled_subscriptions_accept_nothing() {
        let mut s = sub(&[], None);
        s.enabled = false;
        assert!(!accepts(&s, EventType::SecretNewVersionCreated, DB));
    }

    #[test]
    fn endpoints_must_be_https_or_loopback_http() {
        for ok in [
            "https://example.com/hook",
            "https://example.com:8443/a?b=c",
            "http://127.0.0.1:9000/hook",
            "http://127.8.0.1/",
            "http://localhost:1234",
            "http://[::1]:80/x",
        ] {
            assert!(validate_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/hook",
            "http://10.0.0.1/hook",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "/relative",
            "https://",
            "file:///etc/passwd",
        ] {
            assert!(validate_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn types_are_validated_and_canonical() {
        let t = validate_types(&[
            "secretexpired".into(),
            "Microsoft.KeyVault.SecretExpired".into(),
            "Lockstep.RotationFailed".into(),
        ]);
        assert_eq!(
            t.ok(),
            Some(vec![
                "Microsoft.KeyVault.SecretExpired".to_owned(),
                "Lockstep.RotationFailed".to_owned()
            ])
        );
        assert!(validate_types(&["Nope".into()]).is_err());
    }

    #[test]
    fn prefixes_are_taken_within_the_tenant() {
        let n = |p: &str| normalize_prefix(p, "T1").ok().flatten();
        assert_eq!(
            n("/vaults/default/secrets/"),
            Some("/tenants/t1/vaults/default/secrets/".into())
        );
        assert_eq!(
            n("/TENANTS/t1/vaults/x"),
            Some("/tenants/t1/vaults/x".into())
        );
        assert_eq!(n("/tenants/t1"), Some("/tenants/t1".into()));
        assert_eq!(n(""), None);
        assert_eq!(n("/"), None);
        assert!(normalize_prefix("/tenants/t2/vaults", "t1").is_err());
        assert!(normalize_prefix("vaults/x", "t1").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("  hook ").ok(), Some("hook".into()));
        assert!(validate_name("").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name(&"x".repeat(101)).is_err());
        assert_eq!(
            default_name("https://hooks.example.com/x"),
            "hooks.example.com"
        );
    }
}
