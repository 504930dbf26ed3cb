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
    /// List or read tenant users.
    pub const USER_READ: &str = "Lockstep/users/read";
    /// Create users, change their name or enabled state, reset their password.
    pub const USER_WRITE: &str = "Lockstep/users/write";
    /// Delete users.
    pub const USER_DELETE: &str = "Lockstep/users/delete";
}

/// A built-in role: a name and the actions it grants (`*` = all,
/// `prefix/*` = all under a prefix).
pub struct RoleDefinition {
    /// Role name.
    pub name: &'static str,
    /// Role id (Azure's built-in id where there is one).
    pub id: &'static str,
    /// Granted actions.
    pub actions: &'static [&'static str],
}

/// The built-in roles.
pub const BUILTIN_ROLES: &[RoleDefinition] = &[
    RoleDefinition {
        name: "Owner",
        id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        actions: &["*"],
    },
    RoleDefinition {
        name: "Key Vault Secrets Officer",
        id: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        actions: &[
            "Microsoft.KeyVault/vaults/secrets/*",
            "Microsoft.KeyVault/vaults/deletedSecrets/*",
        ],
    },
    RoleDefinition {
        name: "Key Vault Secrets User",
        id: "4633458b-17de-408a-b874-0445c86b69e6",
        actions: &[actions::SECRET_GET, actions::SECRET_READ_METADATA],
    },
];

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

fn grants(role: &str, action: &str) -> bool {
    BUILTIN_ROLES
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(role))
        .is_some_and(|r| {
            r.actions.iter().any(|a| {
                *a == "*"
                    || a.eq_ignore_ascii_case(action)
                    || a.strip_suffix('*').is_some_and(|prefix| {
                        action.len() >= prefix.len()
                            && action[..prefix.len()].eq_ignore_ascii_case(prefix)
                    })
            })
        })
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
        role: &str,
        scope: &Scope,
    ) -> Result<RoleAssignmentRow, StoreError> {
        let row = RoleAssignmentRow {
            id: lockstep_crypto::random::guid(),
            principal_id: principal_id.to_owned(),
            role: role.to_owned(),
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
    fn roles_grant_their_actions() {
        assert!(grants("Owner", actions::VAULT_DELETE));
        assert!(grants("Key Vault Secrets User", actions::SECRET_GET));
        assert!(!grants("Key Vault Secrets User", actions::SECRET_SET));
        assert!(grants("Key Vault Secrets Officer", actions::SECRET_PURGE));
        assert!(!grants("Key Vault Secrets Officer", actions::VAULT_WRITE));
        assert!(!grants("Nobody", actions::SECRET_GET));
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
