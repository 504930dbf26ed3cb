//! `lockstep status`: per binding, what is current, what is next, and what
//! has drifted from what Lockstep expects.

use std::collections::HashMap;
use std::sync::Arc;

use lockstep_identity::directory::Client;
use lockstep_store::CredentialRow;
use lockstep_vault::{SecretVersion, VaultRef};
use serde::Serialize;

use crate::engine::{Binding, Engine, RotationError, TAG_KEY_ID};

/// One problem found for a binding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Machine-readable kind.
    pub kind: &'static str,
    /// For people.
    pub message: String,
}

/// The status of one binding.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingStatus {
    /// Binding name.
    pub name: String,
    /// `vault/secret`.
    pub target: String,
    /// The source app id.
    pub app_id: String,
    /// Current vault version.
    pub current_version: Option<String>,
    /// Credential key id the current version holds.
    pub current_key_id: Option<String>,
    /// Expiry of the current credential.
    pub current_expires: Option<i64>,
    /// Next scheduled rotation.
    pub next_rotation: i64,
    /// The most recent run and its state.
    pub last_run: Option<serde_json::Value>,
    /// Credentials waiting for revocation.
    pub pending_revocations: Vec<String>,
    /// Drift and expiry problems.
    pub problems: Vec<Problem>,
}

/// When a binding rotates next and when its current credential expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Binding name.
    pub name: String,
    /// Next scheduled rotation (Unix seconds).
    pub next_rotation: i64,
    /// Expiry of the current credential, if known.
    pub current_expires: Option<i64>,
}

/// What a binding holds now.
struct Current {
    /// Its vault, if it exists.
    vault: Option<VaultRef>,
    /// The secret's latest version.
    version: Option<SecretVersion>,
    /// The credential key id that version holds.
    key_id: Option<String>,
    /// The source app with its credentials, if it exists.
    client: Option<Arc<Client>>,
}

impl Current {
    /// The credential the current version holds, if it still exists.
    fn credential(&self) -> Option<&CredentialRow> {
        let key = self.key_id.as_ref()?;
        self.client
            .as_ref()?
            .credentials
            .iter()
            .find(|c| &c.key_id == key)
    }
}

impl Engine {
    /// Raises `Lockstep.CredentialNearExpiry` once per current credential
    /// that expires within its binding's `notifyBefore`; returns how many
    /// bindings were looked at.
    pub fn notify_expiring(&self, tenants: &[String]) -> Result<usize, RotationError> {
        let mut n = 0;
        for t in tenants {
            for s in self.status(t)? {
                n += 1;
                if !s.problems.iter().any(|p| p.kind == "CredentialNearExpiry") {
                    continue;
                }
                if let (Some(key), Some(exp)) = (&s.current_key_id, s.current_expires) {
                    self.events().publish_once(
                        &format!("credential-near-expiry/{key}"),
                        "Lockstep.CredentialNearExpiry",
                        &format!("/tenants/{t}/rotation/bindings/{}", s.name),
                        serde_json::json!({"binding": s.name, "appId": s.app_id, "keyId": key, "expires": exp, "nextRotation": s.next_rotation}),
                    );
                }
            }
        }
        Ok(n)
    }

    /// The status of every binding of a tenant.
    pub fn status(&self, tenant: &str) -> Result<Vec<BindingStatus>, RotationError> {
        // Read once for all bindings, not once per binding.
        let mut pending: HashMap<String, Vec<String>> = HashMap::new();
        for r in self.pending_revocations()? {
            pending.entry(r.binding).or_default().push(r.key_id);
        }
        self.bindings(tenant)?
            .iter()
            .map(|b| self.status_of(b, pending.remove(&b.name).unwrap_or_default()))
            .collect()
    }

    /// Per binding of a tenant, when it rotates next and when its current
    /// credential expires (the metrics' gauges). Unlike [`status`]
    /// (Self::status) it checks no drift, so it reads only what is kept in
    /// memory once read (the latest version, the app's credentials).
    pub fn schedule(&self, tenant: &str) -> Result<Vec<Scheduled>, RotationError> {
        let mut out = Vec::new();
        for b in self.bindings(tenant)? {
            let current_expires = self.current(&b)?.credential().map(|c| c.end);
            out.push(Scheduled {
                next_rotation: b.next_due,
                current_expires,
                name: b.name,
            });
        }
        Ok(out)
    }

    /// What `b` holds now: the latest version and the app with its
    /// credentials are read from memory when they were read recently.
    fn current(&self, b: &Binding) -> Result<Current, RotationError> {
        let (vaults, directory, _) = self.parts();
        let internal = |e: String| RotationError::Internal(e);
        let (vault, secret) = b.vault_secret();
        let vref = vaults.vault(vault).ok();
        let version = match &vref {
            Some(v) => vaults
                .latest_meta(v, secret)
                .map_err(|e| internal(e.to_string()))?,
            None => None,
        };
        Ok(Current {
            key_id: version
                .as_ref()
                .and_then(|v| v.tags.get(TAG_KEY_ID).cloned()),
            version,
            vault: vref,
            client: directory
                .client(b.app_id())
                .map_err(|e| internal(e.to_string()))?,
        })
    }

    fn status_of(&self, b: &Binding, pending: Vec<String>) -> Result<BindingStatus, RotationError> {
        let (vaults, _, clock) = self.parts();
        let now = clock.unix();
        let (vault, secret) = b.vault_secret();
        let mut problems = Vec::new();
        let held = self.current(b)?;
        let creds: &[CredentialRow] = match &held.client {
            Some(c) => &c.credentials,
            None => {
                problems.push(Problem {
                    kind: "SourceMissing",
                    message: format!("the app {} no longer exists", b.app_id()),
                });
                &[]
            }
        };
        let versions = match &held.vault {
            Some(v) => vaults.all_versions(v, secret).unwrap_or_default(),
            None => Vec::new(),
        };
        let current = held.version.as_ref();
        let current_key = held.key_id.as_ref();
        let current_cred = held.credential();
        match (current, current_key, current_cred) {
            (None, _, _) => problems.push(Problem {
                kind: "SecretMissing",
                message: format!("{vault}/{secret} has no current version"),
            }),
            (Some(_), None, _) => problems.push(Problem {
                kind: "UnmanagedVersion",
                message: "the current version was not written by Lockstep (no lockstep-key-id tag)"
                    .into(),
            }),
            (Some(v), Some(k), None) => problems.push(Problem {
                kind: "CredentialGone",
                message: format!(
                    "the current version {} holds credential {k}, which no longer exists",
                    v.version
                ),
            }),
            _ => {}
        }
        let referenced: std::collections::HashSet<&str> = versions
            .iter()
            .filter_map(|v| v.tags.get(TAG_KEY_ID).map(String::as_str))
            .collect();
        for c in creds {
            if !referenced.contains(c.key_id.as_str()) && !pending.contains(&c.key_id) {
                problems.push(Problem {
                    kind: "OrphanCredential",
                    message: format!(
                        "credential {} ({}) is referenced by no vault version and not scheduled for revocation",
                        c.key_id,
                        c.display_name.as_deref().unwrap_or("unnamed")
                    ),
                });
            }
            if c.end - c.start > b.policy.credential_lifetime {
                problems.push(Problem {
                    kind: "LifetimeOverPolicy",
                    message: format!(
                        "credential {} lives longer than the policy's credentialLifetime",
                        c.key_id
                    ),
                });
            }
        }
        if let Some(c) = current_cred {
            if c.end <= now {
                problems.push(Problem {
                    kind: "CredentialExpired",
                    message: format!("the current credential {} has expired", c.key_id),
                });
            } else if c.end - now <= b.policy.notify_before {
                problems.push(Problem {
                    kind: "CredentialNearExpiry",
                    message: format!(
                        "the current credential {} expires within the notice period",
                        c.key_id
                    ),
                });
            }
        }
        if let Some(exp) = current.and_then(|v| v.attributes.exp) {
            if exp <= now {
                problems.push(Problem {
                    kind: "SecretExpired",
                    message: format!("{vault}/{secret} has expired"),
                });
            }
        }
        let last_run = match &b.last_run {
            Some(id) => self.run(id).ok().map(|r| {
                serde_json::json!({"id": r.id, "state": r.state, "trigger": r.trigger, "created": r.created, "finished": r.finished, "error": r.error})
            }),
            None => None,
        };
        Ok(BindingStatus {
            name: b.name.clone(),
            target: format!("{vault}/{secret}"),
            app_id: b.app_id().to_owned(),
            current_version: current.map(|v| v.version.clone()),
            current_key_id: current_key.cloned(),
            current_expires: current_cred.map(|c| c.end),
            next_rotation: b.next_due,
            last_run,
            pending_revocations: pending,
            problems,
        })
    }
}
