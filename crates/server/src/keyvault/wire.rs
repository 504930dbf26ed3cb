//! Key Vault's JSON shapes (api-versions 7.0 to 2026-04-01 share them for
//! secrets).

use lockstep_core::{SecretLimits, Tags};
use lockstep_vault::{DeletedSecret, SecretVersion};
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::KvError;

/// The api-versions the data plane accepts.
pub const API_VERSIONS: &[&str] = &[
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
    "2026-04-01",
];

/// Attributes as Key Vault returns them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    created: i64,
    updated: i64,
    recovery_level: &'static str,
    recoverable_days: i64,
}

fn attributes(meta: &SecretVersion) -> Attributes {
    let a = &meta.attributes;
    Attributes {
        enabled: a.enabled,
        nbf: a.nbf,
        exp: a.exp,
        created: a.created,
        updated: a.updated,
        recovery_level: "Recoverable+Purgeable",
        recoverable_days: SecretLimits::RECOVERABLE_DAYS,
    }
}

/// A secret version, with its value when the operation returns it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBundle<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    attributes: Attributes,
    #[serde(skip_serializing_if = "Tags::is_empty")]
    tags: &'a Tags,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    managed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_version: Option<&'a str>,
}

impl<'a> SecretBundle<'a> {
    /// The bundle of `meta` under `base` (`https://host:port`).
    pub fn new(base: &str, meta: &'a SecretVersion, value: Option<&'a str>) -> Self {
        Self {
            value,
            id: format!("{base}/secrets/{}/{}", meta.name, meta.version),
            content_type: meta.content_type.as_deref(),
            attributes: attributes(meta),
            tags: &meta.tags,
            managed: meta.managed,
            previous_version: meta.previous_version.as_deref(),
        }
    }
}

/// A deleted secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedSecretBundle<'a> {
    recovery_id: String,
    deleted_date: i64,
    scheduled_purge_date: i64,
    #[serde(flatten)]
    bundle: SecretBundle<'a>,
}

impl<'a> DeletedSecretBundle<'a> {
    /// The deleted bundle of `d` under `base`.
    pub fn new(base: &str, d: &'a DeletedSecret) -> Self {
        Self {
            recovery_id: format!("{base}/deletedsecrets/{}", d.meta.name),
            deleted_date: d.deletion.deleted_at,
            scheduled_purge_date: d.deletion.purge_at,
            bundle: SecretBundle::new(base, &d.meta, None),
        }
    }
}

/// An item of a secrets or versions listing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretItem<'a> {
    id: String,
    attributes: Attributes,
    #[serde(skip_serializing_if = "Tags::is_empty")]
    tags: &'a Tags,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    managed: bool,
}

impl<'a> SecretItem<'a> {
    /// A listing item; `with_version` for version listings.
    pub fn new(base: &str, meta: &'a SecretVersion, with_version: bool) -> Self {
        let id = if with_version {
            format!("{base}/secrets/{}/{}", meta.name, meta.version)
        } else {
            format!("{base}/secrets/{}", meta.name)
        };
        Self {
            id,
            attributes: attributes(meta),
            tags: &meta.tags,
            content_type: meta.content_type.as_deref(),
            managed: meta.managed,
        }
    }
}

/// An item of a deleted-secrets listing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedSecretItem<'a> {
    recovery_id: String,
    deleted_date: i64,
    scheduled_purge_date: i64,
    #[serde(flatten)]
    item: SecretItem<'a>,
}

impl<'a> DeletedSecretItem<'a> {
    /// A deleted listing item.
    pub fn new(base: &str, d: &'a DeletedSecret) -> Self {
        Self {
            recovery_id: format!("{base}/deletedsecrets/{}", d.meta.name),
            deleted_date: d.deletion.deleted_at,
            scheduled_purge_date: d.deletion.purge_at,
            item: SecretItem::new(base, &d.meta, false),
        }
    }
}

/// A page of a listing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResult<T: Serialize> {
    pub value: Vec<T>,
    pub next_link: Option<String>,
}

/// Parses a JSON object body.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, KvError> {
    if body.is_empty() {
        return Err(KvError::bad("The request body is missing."));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(KvError::bad("The request body must be a JSON object.")),
        Err(_) => Err(KvError::bad("The request body is not valid JSON.")),
    }
}

/// An optional string property.
pub fn opt_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, KvError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(KvError::bad(format!("Property '{key}' must be a string."))),
    }
}

/// Optional tags: an object of strings.
pub fn opt_tags(map: &Map<String, Value>) -> Result<Option<Tags>, KvError> {
    match map.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => {
            let mut tags = Tags::new();
            for (k, v) in o {
                match v {
                    Value::String(s) => {
                        tags.insert(k.clone(), s.clone());
                    }
                    Value::Null => {
                        tags.insert(k.clone(), String::new());
                    }
                    _ => return Err(KvError::bad("Tag values must be strings.")),
                }
            }
            Ok(Some(tags))
        }
        Some(_) => Err(KvError::bad("Property 'tags' must be an object.")),
    }
}

/// Attribute changes: `enabled`, and `nbf`/`exp` where `Some(None)` clears.
#[derive(Default)]
pub struct AttributeInput {
    pub enabled: Option<bool>,
    pub nbf: Option<Option<i64>>,
    pub exp: Option<Option<i64>>,
}

/// Parses the `attributes` property.
pub fn opt_attributes(map: &Map<String, Value>) -> Result<AttributeInput, KvError> {
    let mut out = AttributeInput::default();
    let attrs = match map.get("attributes") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(KvError::bad("Property 'attributes' must be an object.")),
    };
    out.enabled = match attrs.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(KvError::bad("Attribute 'enabled' must be a boolean.")),
    };
    let time = |key: &str| -> Result<Option<Option<i64>>, KvError> {
        match attrs.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(t) if (0..=253_402_300_799).contains(&t) => Ok(Some(Some(t))),
                _ => Err(KvError::bad(format!(
                    "Attribute '{key}' must be a Unix time in seconds."
                ))),
            },
            Some(_) => Err(KvError::bad(format!(
                "Attribute '{key}' must be a Unix time in seconds."
            ))),
        }
    };
    out.nbf = time("nbf")?;
    out.exp = time("exp")?;
    Ok(out)
}
