//! Authorization: one check for every request. A principal may perform an
//! action at a scope when one of its role assignments, at that scope or a
//! parent of it, grants a role whose actions include the action.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use lockstep_core::SharedClock;
use lockstep_store::{RoleAssignmentRow, Store, StoreError};

use crate::token::Principal;

/// Action names, in Azure's vocabulary where Azure has one.
pub mod actions {
    /// Read a secret's value.
    pub const SECRET_GET: &str = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
    /// Write a new secret version.
    pub const SECRET_SET: &str = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
    /// Read metadata (list, versions, deleted).
    pub const SECRET_READ_METADATA: &str = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";
    /// Update attributes.
    pub const SECRET_UPDATE: &str = "Microsoft.KeyVault/vaults/secrets/update/action";
    /// Soft-delete.
    pub const SECRET_DELETE: &str = "Microsoft.KeyVault/vaults/secrets/delete";
    /// Back up.
    pub const SECRET_BACKUP: &str = "Microsoft.KeyVault/vaults/secrets/backup/action";
    /// Restore.
    pub const SECRET_RESTORE: &str = "Microsoft.KeyVault/vaults/secrets/restore/action";
    /// Recover a deleted secret.
    pub const SECRET_RECOVER: &str = "Microsoft.KeyVault/vaults/secrets/recover/action";
    /// Purge a deleted secret.
    pub const SECRET_PURGE: &str = "Microsoft.KeyVault/vaults/secrets/purge/action";
    /// Read deleted secrets.
    pub const DELETED_SECRET_READ: &str = "Microsoft.KeyVault/vaults/deletedSecrets/read/action";
    /// Create a vault.
    pub const VAULT_WRITE: &str = "Lockstep/vaults/write";
    /// List or read vaults.
    pub const VAULT_READ: &str = "Lockstep/vaults/read";
    /// Delete a vault.
    pub const VAULT_DELETE: &str = "Lockstep/vaults/delete";
    /// Create an app registration.
    pub const APP_CREATE: &str = "microsoft.directory/applications/create";
    /// Read app registrations and service principals.
    pub const APP_READ: &str = "microsoft.directory/applications/standard/read";
    /// Rename an app registration.
    pub const APP_UPDATE: &str = "microsoft.directory/applications/basic/update";
    /// Delete an app registration.
    pub const APP_DELETE: &str = "microsoft.directory/applications/delete";
    /// Add or remove client secrets.
    pub const APP_CREDENTIALS: &str = "microsoft.directory/applications/credentials/update";
    /// Read the app-management policy.
    pub const APP_POLICY_READ: &str = "microsoft.directory/appManagementPolicies/standard/read";
    /// Change the app-management policy.
    pub const APP_POLICY_WRITE: &str = "microsoft.directory/appManagementPolicies/basic/update";
    /// List role assignments and definitions.
    pub const ROLE_ASSIGNMENT_READ: &str = "Microsoft.Authorization/roleAssignments/read";
    /// Create role assignments.
    pub const ROLE_ASSIGNMENT_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
    /// Remove role assignments.
    pub const ROLE_ASSIGNMENT_DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";
    /// Rotate the token signing key.
    pub const SIGNING_KEY_ROTATE: &str = "Lockstep/signingKeys/rotate";
    /// Read rotation bindings, runs and status.
    pub const ROTATION_READ: &str = "Lockstep/rotation/read";
    /// Create, change and delete rotation bindings.
    pub const ROTATION_WRITE: &str = "Lockstep/rotation/write";
    /// Start, cancel and retry rotations.
    pub const ROTATION_ROTATE: &str = "Lockstep/rotation/rotate/action";
    /// Move a development server's clock.
    pub const DEV_TIME_SHIFT: &str = "Lockstep/dev/timeShift/action";

    /// List or read tenant users.
    pub const USER_READ: &str = "Lockstep/users/read";
    /// Create users, change their name or enabled state, reset their password.
    pub const USER_WRITE: &str = "Lockstep/users/write";
    /// Delete users.
    pub const USER_DELETE: &str = "Lockstep/users/delete";
    /// List or read event subscriptions and their delivery logs.
    pub const SUBSCRIPTION_READ: &str = "Lockstep/subscriptions/read";
    /// Create or change event subscriptions, and send test events.
    pub const SUBSCRIPTION_WRITE: &str = "Lockstep/subscriptions/write";
    /// Delete event subscriptions.
    pub const SUBSCRIPTION_DELETE: &str = "Lockstep/subscriptions/delete";

    /// Every action, for the role × action table.
    pub const ALL: &[&str] = &[
        SECRET_GET,
        SECRET_SET,
        SECRET_READ_METADATA,
        SECRET_UPDATE,
        SECRET_DELETE,
        SECRET_BACKUP,
        SECRET_RESTORE,
        SECRET_RECOVER,
        SECRET_PURGE,
        DELETED_SECRET_READ,
        VAULT_READ,
        VAULT_WRITE,
        VAULT_DELETE,
        APP_CREATE,
        APP_READ,
        APP_UPDATE,
        APP_DELETE,
        APP_CREDENTIALS,
        APP_POLICY_READ,
        APP_POLICY_WRITE,
        ROLE_ASSIGNMENT_READ,
        ROLE_ASSIGNMENT_WRITE,
        ROLE_ASSIGNMENT_DELETE,
        SIGNING_KEY_ROTATE,
        ROTATION_READ,
        ROTATION_WRITE,
        ROTATION_ROTATE,
        DEV_TIME_SHIFT,
        AUDIT_READ,
        USER_READ,
        USER_WRITE,
        USER_DELETE,
        SUBSCRIPTION_READ,
        SUBSCRIPTION_WRITE,
        SUBSCRIPTION_DELETE,
    ];
    /// Query and verify the audit log.
    pub const AUDIT_READ: &str = "Lockstep/audit/read";
}

/// A built-in role: a name and the actions it grants (`*` = all,
/// `prefix/*` = all under a prefix), minus `not_actions`.
pub struct RoleDefinition {
    /// Role name.
    pub name: &'static str,
    /// Role id (Azure's built-in id where there is one).
    pub id: &'static str,
    /// What the role is for, in one line.
    pub description: &'static str,
    /// Granted actions.
    pub actions: &'static [&'static str],
    /// Actions excluded from `actions`.
    pub not_actions: &'static [&'static str],
}

impl RoleDefinition {
    /// Whether this role grants `action`.
    pub fn grants(&self, action: &str) -> bool {
        self.actions.iter().any(|a| matches(a, action))
            && !self.not_actions.iter().any(|a| matches(a, action))
    }
}

fn matches(pattern: &str, action: &str) -> bool {
    pattern == "*"
        || pattern.eq_ignore_ascii_case(action)
        || pattern.strip_suffix('*').is_some_and(|prefix| {
            action.len() >= prefix.len() && action[..prefix.len()].eq_ignore_ascii_case(prefix)
        })
}

/// The built-in roles. `docs/rbac.md` holds the same table for people; a
/// test keeps the two in step.
pub const BUILTIN_ROLES: &[RoleDefinition] = &[
    RoleDefinition {
        name: "Owner",
        id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        description: "Everything, including assigning roles.",
        actions: &["*"],
        not_actions: &[],
    },
    RoleDefinition {
        name: "Contributor",
        id: "b24988ac-6180-42a0-ab88-20f7382dd24c",
        description: "Everything except managing role assignments and users (and moving a development clock).",
        actions: &["*"],
        // Managing users is excluded: resetting an Owner's password would
        // let a Contributor become Owner.
        not_actions: &[
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            actions::DEV_TIME_SHIFT,
            actions::USER_WRITE,
            actions::USER_DELETE,
        ],
    },
    RoleDefinition {
        name: "Reader",
        id: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        description: "Reads everything except secret values.",
        actions: &[
            actions::VAULT_READ,
            actions::SECRET_READ_METADATA,
            actions::DELETED_SECRET_READ,
            actions::APP_READ,
            actions::APP_POLICY_READ,
            actions::ROLE_ASSIGNMENT_READ,
            actions::ROTATION_READ,
            actions::AUDIT_READ,
            actions::USER_READ,
            actions::SUBSCRIPTION_READ,
        ],
        not_actions: &[],
    },
    RoleDefinition {
        name: "Storage Account Key Operator",
        id: "81a9662b-bebf-436f-a333-f67b29880f12",
        description:
            "Rotates: adds and removes client secrets of apps and stores new secret versions.",
        actions: &[
            actions::VAULT_READ,
            actions::SECRET_READ_METADATA,
            actions::SECRET_SET,
            actions::APP_READ,
            actions::APP_CREDENTIALS,
            actions::ROTATION_READ,
            actions::ROTATION_ROTATE,
        ],
        not_actions: &[],
    },
    RoleDefinition {
        name: "Application Administrator",
        id: "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        description: "Manages app registrations and their credentials.",
        actions: &["microsoft.directory/applications/*"],
        not_actions: &[],
    },
    RoleDefinition {
        name: "Key Vault Administrator",
        id: "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        description: "Every data action on vaults and their secrets.",
        actions: &["Microsoft.KeyVault/vaults/*", actions::VAULT_READ],
        not_actions: &[],
    },
    RoleDefinition {
        name: "Key Vault Secrets Officer",
        id: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        description: "Every action on secrets.",
        actions: &[
            "Microsoft.KeyVault/vaults/secrets/*",
            "Microsoft.KeyVault/vaults/deletedSecrets/*",
            actions::VAULT_READ,
        ],
        not_actions: &[],
    },
    RoleDefinition {
        name: "Key Vault Secrets User",
        id: "4633458b-17de-408a-b874-0445c86b69e6",
        description: "Reads secret values.",
        actions: &[actions::SECRET_GET, actions::SECRET_READ_METADATA],
        not_actions: &[],
    },
    RoleDefinition {
        name: "Key Vault Reader",
        id: "21090545-7ca7-4776-b22c-e363652d74d2",
        description: "Reads secret metadata, never values.",
        actions: &[
            actions::SECRET_READ_METADATA,
            actions::DELETED_SECRET_READ,
            actions::VAULT_READ,
        ],
        not_actions: &[],
    },
];

/// A built-in role by name (case-insensitive) or id.
pub fn role(name_or_id: &str) -> Option<&'static RoleDefinition> {
    BUILTIN_ROLES
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name_or_id) || r.id.eq_ignore_ascii_case(name_or_id))
}

/// A resource path an action applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    /// A whole tenant.
    pub fn tenant(tenant_id: &str) -> Self {
        Self(format!("/tenants/{tenant_id}"))
    }

    /// A vault.
    pub fn vault(tenant_id: &str, vault: &str) -> Self {
        Self(format!("/tenants/{tenant_id}/vaults/{vault}"))
    }

    /// One secret of a vault.
    pub fn secret(tenant_id: &str, vault: &str, name_key: &str) -> Self {
        Self(format!(
            "/tenants/{tenant_id}/vaults/{vault}/secrets/{name_key}"
        ))
    }

    /// An app registration.
    pub fn application(tenant_id: &str, object_id: &str) -> Self {
        Self(format!("/tenants/{tenant_id}/applications/{object_id}"))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an assignment at `assigned` covers this scope.
    fn within(&self, assigned: &str) -> bool {
        let assigned = assigned.trim_end_matches('/');
        assigned.is_empty()
            || self.0 == assigned
            || (self.0.starts_with(assigned)
                && self.0.as_bytes().get(assigned.len()) == Some(&b'/'))
    }
}

/// An authorization refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Caller is not authorized to perform action on resource. Caller: appid={caller};oid={oid} Action: '{action}' Resource: '{scope}'")]
pub struct Denied {
    /// The refused action.
    pub action: String,
    /// The scope it was refused at.
    pub scope: String,
    /// Caller application id (or `-`).
    pub caller: String,
    /// Caller object id.
    pub oid: String,
}

/// Decides whether principals may act.
pub struct Authorizer {
    store: Arc<dyn Store>,
    clock: SharedClock,
    cache: RwLock<HashMap<String, Arc<Vec<RoleAssignmentRow>>>>,
}

fn grants(role_name: &str, action: &str) -> bool {
    role(role_name).is_some_and(|r| r.grants(action))
}

impl Authorizer {
    /// An authorizer over the store's role assignments.
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            cache: RwLock::new(HashMap::new()),
        }
    }

    fn assignments(&self, principal_id: &str) -> Result<Arc<Vec<RoleAssignmentRow>>, StoreError> {
        if let Some(a) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(principal_id)
        {
            return Ok(a.clone());
        }
        let rows = Arc::new(self.store.role_assignments_for(principal_id)?);
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(principal_id.to_owned(), rows.clone());
        Ok(rows)
    }

    /// Allows or denies `principal` performing `action` at `scope`.
    pub fn check(&self, principal: &Principal, action: &str, scope: &Scope) -> Result<(), Denied> {
        let allowed = self
            .assignments(&principal.object_id)
            .map(|rows| {
                rows.iter()
                    .any(|ra| scope.within(&ra.scope) && grants(&ra.role, action))
            })
            .unwrap_or(false);
        if allowed {
            Ok(())
        } else {
            Err(Denied {
                action: action.to_owned(),
                scope: scope.as_str().to_owned(),
                caller: principal.app_id.clone().unwrap_or_else(|| "-".into()),
                oid: principal.object_id.clone(),
            })
        }
    }

    /// Assigns a built-in role to a principal at a scope.
    pub fn assign(
        &self,
        principal_id: &str,
        role_name: &str,
        scope: &Scope,
    ) -> Result<RoleAssignmentRow, StoreError> {
        let def = role(role_name).ok_or(StoreError::NotFound)?;
        let row = RoleAssignmentRow {
            id: lockstep_crypto::random::guid(),
            principal_id: principal_id.to_owned(),
            role: def.name.to_owned(),
            scope: scope.as_str().to_owned(),
            created: self.clock.unix(),
        };
        self.store.role_assignment_insert(&row)?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(principal_id);
        Ok(row)
    }
}

impl Authorizer {
    /// Role assignments at or under `scope`.
    pub fn list(&self, scope: &Scope) -> Result<Vec<RoleAssignmentRow>, StoreError> {
        Ok(self
            .store
            .role_assignment_list()?
            .into_iter()
            .filter(|ra| Scope(ra.scope.clone()).within(scope.as_str()))
            .collect())
    }

    /// Removes an assignment; returns it.
    pub fn remove(&self, id: &str) -> Result<RoleAssignmentRow, StoreError> {
        let row = self.store.role_assignment_delete(id)?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&row.principal_id);
        Ok(row)
    }
}

impl Scope {
    /// Parses a scope path: `/tenants/{t}[/vaults/{v}[/secrets/{s}] | /applications/{id}]`.
    /// Shorthands without the tenant (`/`, `/vaults/…`, `/applications/…`)
    /// are taken in `tenant_id`.
    pub fn parse(raw: &str, tenant_id: &str) -> Option<Self> {
        let raw = raw.trim().trim_end_matches('/');
        let full = if raw.is_empty() {
            format!("/tenants/{tenant_id}")
        } else if raw.starts_with("/tenants/") {
            raw.to_owned()
        } else if raw.starts_with("/vaults/") || raw.starts_with("/applications/") {
            format!("/tenants/{tenant_id}{raw}")
        } else {
            return None;
        };
        let parts: Vec<&str> = full.trim_start_matches('/').split('/').collect();
        let ok_segment =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let valid = match parts.as_slice() {
            ["tenants", t] => ok_segment(t),
            ["tenants", t, "vaults", v] => ok_segment(t) && ok_segment(v),
            ["tenants", t, "vaults", v, "secrets", s] => {
                ok_segment(t) && ok_segment(v) && ok_segment(s)
            }
            ["tenants", t, "applications", a] => ok_segment(t) && ok_segment(a),
            _ => false,
        };
        valid.then(|| Self(full.to_ascii_lowercase()))
    }

    /// The tenant the scope belongs to.
    pub fn tenant_id(&self) -> &str {
        self.0
            .trim_start_matches("/tenants/")
            .split('/')
            .next()
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn scopes_nest_on_segment_boundaries() {
        let s = Scope::secret("t1", "default", "db");
        assert!(s.within("/tenants/t1"));
        assert!(s.within("/tenants/t1/vaults/default"));
        assert!(!s.within("/tenants/t1/vaults/def"));
        assert!(!s.within("/tenants/t2"));
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(Scope::parse("/", "t1"), Some(Scope::tenant("t1")));
        assert_eq!(
            Scope::parse("/vaults/default", "t1"),
            Some(Scope::vault("t1", "default"))
        );
        assert_eq!(
            Scope::parse("/tenants/t2/vaults/a/secrets/B", "t1"),
            Some(Scope::secret("t2", "a", "b"))
        );
        assert_eq!(
            Scope::parse("/applications/x-1", "t1").map(|s| s.tenant_id().to_owned()),
            Some("t1".into())
        );
        for bad in [
            "vaults",
            "/vaults",
            "/tenants/t/keys/k",
            "/vaults/a b",
            "/tenants/t/vaults/v/secrets",
        ] {
            assert!(Scope::parse(bad, "t1").is_none(), "{bad}");
        }
    }

    #[test]
    fn roles_grant_their_actions() {
        assert!(grants("Owner", actions::VAULT_DELETE));
        assert!(grants("Key Vault Secrets User", actions::SECRET_GET));
        assert!(!grants("Key Vault Secrets User", actions::SECRET_SET));
        assert!(grants("Key Vault Secrets Officer", actions::SECRET_PURGE));
        assert!(!grants("Key Vault Secrets Officer", actions::VAULT_WRITE));
        assert!(grants("Owner", actions::AUDIT_READ));
        assert!(!grants("Key Vault Secrets Officer", actions::AUDIT_READ));
        assert!(!grants("Key Vault Secrets User", actions::AUDIT_READ));
        assert!(!grants("Nobody", actions::SECRET_GET));
        // not_actions are honoured by the check itself, not only by the table.
        assert!(grants("Contributor", actions::VAULT_WRITE));
        assert!(!grants("Contributor", actions::ROLE_ASSIGNMENT_WRITE));
        assert!(!grants("Contributor", actions::ROLE_ASSIGNMENT_DELETE));
        assert!(!grants("Contributor", actions::USER_WRITE));
        assert!(grants("Contributor", actions::USER_READ));
    }

    #[test]
    fn users_hold_roles_like_any_principal() {
        use crate::token::{Principal, PrincipalKind};
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(lockstep_store::SqliteStore::open(&dir.path().join("db")).unwrap());
        let clock: SharedClock = Arc::new(lockstep_core::TestClock::at(1_800_000_000));
        let authz = Authorizer::new(store, clock);
        let user = Principal {
            object_id: "u1".into(),
            tenant_id: "t1".into(),
            app_id: None,
            kind: PrincipalKind::User,
        };
        let denied = authz
            .check(&user, actions::USER_READ, &Scope::tenant("t1"))
            .unwrap_err();
        assert_eq!(denied.caller, "-");
        assert_eq!(denied.oid, "u1");
        authz.assign("u1", "Owner", &Scope::tenant("t1")).unwrap();
        for action in [
            actions::USER_READ,
            actions::USER_WRITE,
            actions::USER_DELETE,
            actions::VAULT_READ,
        ] {
            authz.check(&user, action, &Scope::tenant("t1")).unwrap();
        }
        assert!(authz
            .check(&user, actions::USER_READ, &Scope::tenant("t2"))
            .is_err());
    }
}

#[cfg(test)]
mod table {
    //! Keeps `docs/rbac.md` and [`BUILTIN_ROLES`] in step: the role × action
    //! table in the document must match what the code grants, cell by cell.

    use super::*;

    const DOC: &str = include_str!("../../../docs/rbac.md");

    /// The table's header and rows (between the `<!-- rbac-table -->` markers).
    fn parse() -> (Vec<String>, Vec<(String, Vec<bool>)>) {
        let body = DOC
            .split("<!-- rbac-table:start -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- rbac-table:end -->").next())
            .unwrap_or_default();
        let mut lines = body.lines().map(str::trim).filter(|l| l.starts_with('|'));
        let cells = |l: &str| -> Vec<String> {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        };
        let header = lines.next().map(cells).unwrap_or_default();
        let _separator = lines.next();
        let rows = lines
            .map(|l| {
                let c = cells(l);
                let action = c[0].trim_matches('`').to_owned();
                (action, c[1..].iter().map(|x| x == "✓").collect())
            })
            .collect();
        (header, rows)
    }

    #[test]
    fn document_matches_code() {
        let (header, rows) = parse();
        let roles: Vec<&str> = BUILTIN_ROLES.iter().map(|r| r.name).collect();
        assert_eq!(
            &header[1..],
            roles.as_slice(),
            "columns are the built-in roles, in order"
        );
        let documented: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(documented, actions::ALL, "rows are every action, in order");
        for (action, cells) in &rows {
            for (role, granted) in BUILTIN_ROLES.iter().zip(cells) {
                assert_eq!(
                    role.grants(action),
                    *granted,
                    "docs/rbac.md says {} {} {action}",
                    role.name,
                    if *granted { "may" } else { "may not" }
                );
            }
        }
    }

    #[test]
    #[ignore = "prints the table for docs/rbac.md"]
    fn print_table() {
        let mut out = String::from("| action |");
        for r in BUILTIN_ROLES {
            out.push_str(&format!(" {} |", r.name));
        }
        out.push_str("\n|---|");
        for _ in BUILTIN_ROLES {
            out.push_str("---|");
        }
        for a in actions::ALL {
            out.push_str(&format!("\n| `{a}` |"));
            for r in BUILTIN_ROLES {
                out.push_str(if r.grants(a) { " ✓ |" } else { "  |" });
            }
        }
        println!("{out}");
    }
}
