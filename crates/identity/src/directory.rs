//! Tenants, app registrations, service principals and password credentials.

use std::sync::Arc;

use lockstep_core::{Remembered, SharedClock};
use lockstep_crypto::hash::SecretHasher;
use lockstep_crypto::random;
use lockstep_store::{AppRow, CredentialRow, ServicePrincipalRow, Store, StoreError, TenantRow};
use zeroize::Zeroizing;

/// Errors of directory operations.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No such tenant.
    #[error("tenant '{0}' not found")]
    TenantNotFound(String),
    /// No such application.
    #[error("application '{0}' not found")]
    AppNotFound(String),
    /// No such credential.
    #[error("credential '{0}' not found")]
    CredentialNotFound(String),
    /// Invalid input; the message is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// A requested credential lifetime exceeds the app-management policy.
    #[error("Credential lifetime exceeds the max value allowed as per assigned policy: {0}.")]
    LifetimeOverPolicy(String),
    /// Storage failure.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

/// A password credential just created: the only time its value exists in
/// clear outside the caller's hands.
pub struct NewPassword {
    /// The stored credential (hash only).
    pub credential: CredentialRow,
    /// The secret value, to be shown once.
    pub secret_text: Zeroizing<String>,
}

/// How long a deleted app can be restored (as in Entra).
pub const APP_RESTORE_WINDOW: i64 = 30 * 86_400;

/// Default lifetime of a password credential when none is asked for (2 years).
pub const DEFAULT_PASSWORD_LIFETIME: i64 = 2 * 365 * 86_400;

/// A tenant's app-management policy: restrictions on new client secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppPolicy {
    /// Whether the restrictions apply.
    pub enabled: bool,
    /// Longest allowed password lifetime, in seconds.
    pub password_lifetime: Option<i64>,
    /// Only apps created after this time (Unix seconds) are restricted.
    pub restrict_apps_created_after: Option<i64>,
}

impl AppPolicy {
    /// The longest lifetime allowed for a new secret on `app`, if limited.
    pub fn limit_for(&self, app: &AppRow) -> Option<i64> {
        if !self.enabled {
            return None;
        }
        match self.restrict_apps_created_after {
            Some(after) if app.created < after => None,
            _ => self.password_lifetime,
        }
    }
}

fn policy_key(tenant_id: &str) -> String {
    format!("app-policy/{tenant_id}")
}

/// The directory of tenants, apps and credentials.
pub struct Directory {
    store: Arc<dyn Store>,
    clock: SharedClock,
    hasher: SecretHasher,
    /// Tenants looked up so far. A tenant row never changes and is never
    /// deleted, so an entry stays right; only existing tenants are kept
    /// (bounded by their number). Every token request needs its tenant.
    tenants: Remembered<TenantRow>,
    /// What the token endpoint reads about an app, by application id. Every
    /// change to an app or its credentials made through the directory
    /// empties it after the change is committed and before the change
    /// returns, so a secret removed is refused at once.
    clients: Remembered<Arc<Client>>,
}

/// What authenticating an app needs, read together: the live app, its
/// service principal and its password credentials.
#[derive(Debug)]
pub struct Client {
    /// The app registration.
    pub app: AppRow,
    /// Its service principal.
    pub service_principal: Option<ServicePrincipalRow>,
    /// Its password credentials (salted hashes).
    pub credentials: Vec<CredentialRow>,
}

/// At most this many clients are kept in memory.
const MAX_CACHED_CLIENTS: usize = 100_000;

impl Directory {
    /// A directory over `store`, hashing client secrets with `hasher`.
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, hasher: SecretHasher) -> Self {
        Self {
            store,
            clock,
            hasher,
            tenants: Remembered::new(usize::MAX),
            clients: Remembered::new(MAX_CACHED_CLIENTS),
        }
    }

    /// The secret hasher (for authenticating clients).
    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// Creates a tenant.
    pub fn create_tenant(&self, display_name: &str) -> Result<TenantRow, DirectoryError> {
        let row = TenantRow {
            id: random::guid(),
            display_name: display_name.to_owned(),
            created: self.clock.unix(),
        };
        self.store.tenant_create(&row)?;
        Ok(row)
    }

    /// Looks a tenant up.
    pub fn tenant(&self, id: &str) -> Result<Option<TenantRow>, DirectoryError> {
        let key = id.to_ascii_lowercase();
        Ok(self
            .tenants
            .get_or_load(&key, || self.store.tenant_get(&key))?)
    }

    /// Creates an app registration and its service principal.
    pub fn create_app(
        &self,
        tenant_id: &str,
        display_name: &str,
    ) -> Result<(AppRow, ServicePrincipalRow), DirectoryError> {
        let name = display_name.trim();
        if name.is_empty() || name.chars().count() > 256 {
            return Err(DirectoryError::Invalid(
                "displayName must be 1-256 characters long.".into(),
            ));
        }
        if self.store.tenant_get(tenant_id)?.is_none() {
            return Err(DirectoryError::TenantNotFound(tenant_id.to_owned()));
        }
        let now = self.clock.unix();
        let app = AppRow {
            object_id: random::guid(),
            tenant_id: tenant_id.to_owned(),
            app_id: random::guid(),
            display_name: name.to_owned(),
            created: now,
        };
        let sp = ServicePrincipalRow {
            object_id: random::guid(),
            tenant_id: tenant_id.to_owned(),
            app_id: app.app_id.clone(),
            display_name: name.to_owned(),
            created: now,
        };
        self.store.app_create(&app, &sp)?;
        Ok((app, sp))
    }

    /// Adds a password credential to an app. `start`/`end` default to now
    /// and now + 2 years.
    pub fn add_password(
        &self,
        app_object_id: &str,
        display_name: Option<String>,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<NewPassword, DirectoryError> {
        let app = self
            .store
            .app_by_object_id(app_object_id)?
            .ok_or_else(|| DirectoryError::AppNotFound(app_object_id.to_owned()))?;
        let limit = self.app_policy(&app.tenant_id)?.limit_for(&app);
        let now = self.clock.unix();
        let start = start.unwrap_or(now);
        let default_lifetime = limit.map_or(DEFAULT_PASSWORD_LIFETIME, |l| {
            l.min(DEFAULT_PASSWORD_LIFETIME)
        });
        let end = end.unwrap_or(start + default_lifetime);
        if end <= start {
            return Err(DirectoryError::Invalid(
                "endDateTime must be later than startDateTime.".into(),
            ));
        }
        if let Some(max) = limit {
            if end - start > max {
                return Err(DirectoryError::LifetimeOverPolicy(format!(
                    "at most {}",
                    lockstep_core::duration::IsoDuration(max)
                )));
            }
        }
        let secret_text = random::client_secret();
        let salt = random::bytes::<16>().to_vec();
        let hash = self.hasher.hash(&salt, secret_text.as_bytes());
        let credential = CredentialRow {
            key_id: random::guid(),
            app_object_id: app_object_id.to_owned(),
            display_name,
            hint: secret_text.chars().take(3).collect(),
            salt,
            hash,
            start,
            end,
            created: now,
        };
        let inserted = self.store.credential_insert(&credential);
        self.clients.clear();
        inserted?;
        Ok(NewPassword {
            credential,
            secret_text,
        })
    }

    /// The tenant's app-management policy (disabled when never set).
    pub fn app_policy(&self, tenant_id: &str) -> Result<AppPolicy, DirectoryError> {
        Ok(self
            .store
            .meta_get(&policy_key(tenant_id))?
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default())
    }

    /// Replaces the tenant's app-management policy.
    pub fn set_app_policy(
        &self,
        tenant_id: &str,
        policy: &AppPolicy,
    ) -> Result<(), DirectoryError> {
        if policy.password_lifetime.is_some_and(|l| l <= 0) {
            return Err(DirectoryError::Invalid(
                "maxLifetime must be positive.".into(),
            ));
        }
        let raw = serde_json::to_vec(policy).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        Ok(self.store.meta_put(&policy_key(tenant_id), &raw)?)
    }

    /// Removes a password credential; it stops working at once.
    pub fn remove_password(&self, app_object_id: &str, key_id: &str) -> Result<(), DirectoryError> {
        let deleted = self
            .store
            .credential_delete(app_object_id, &key_id.to_ascii_lowercase());
        self.clients.clear();
        match deleted {
            Err(StoreError::NotFound) => Err(DirectoryError::CredentialNotFound(key_id.to_owned())),
            other => Ok(other?),
        }
    }

    /// The service principal of an app, by application id.
    pub fn service_principal(
        &self,
        app_id: &str,
    ) -> Result<Option<ServicePrincipalRow>, DirectoryError> {
        Ok(self.store.sp_by_app_id(app_id)?)
    }

    /// A live app by object id.
    pub fn app(&self, object_id: &str) -> Result<Option<AppRow>, DirectoryError> {
        Ok(self
            .store
            .app_by_object_id(&object_id.to_ascii_lowercase())?)
    }

    /// Apps of a tenant (optionally with exactly `display_name`), by object id.
    pub fn list_apps(
        &self,
        tenant_id: &str,
        display_name: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AppRow>, DirectoryError> {
        Ok(self.store.app_list(tenant_id, display_name, after, limit)?)
    }

    /// Renames an app.
    pub fn rename_app(&self, object_id: &str, display_name: &str) -> Result<(), DirectoryError> {
        let name = display_name.trim();
        if name.is_empty() || name.chars().count() > 256 {
            return Err(DirectoryError::Invalid(
                "displayName must be 1-256 characters long.".into(),
            ));
        }
        let renamed = self.store.app_rename(object_id, name);
        self.clients.clear();
        match renamed {
            Err(StoreError::NotFound) => Err(DirectoryError::AppNotFound(object_id.to_owned())),
            other => Ok(other?),
        }
    }

    /// Deletes an app; its client secrets stop working at once.
    pub fn delete_app(&self, object_id: &str) -> Result<(), DirectoryError> {
        let deleted = self.store.app_soft_delete(object_id, self.clock.unix());
        self.clients.clear();
        match deleted {
            Err(StoreError::NotFound) => Err(DirectoryError::AppNotFound(object_id.to_owned())),
            other => Ok(other?),
        }
    }

    /// A service principal by object id or application id.
    pub fn find_service_principal(
        &self,
        id: &str,
    ) -> Result<Option<ServicePrincipalRow>, DirectoryError> {
        let id = id.to_ascii_lowercase();
        match self.store.sp_by_object_id(&id)? {
            Some(sp) => Ok(Some(sp)),
            None => Ok(self.store.sp_by_app_id(&id)?),
        }
    }

    /// Apps deleted within the last 30 days (restorable), newest first.
    pub fn deleted_apps(&self, tenant_id: &str) -> Result<Vec<(AppRow, i64)>, DirectoryError> {
        let since = self.clock.unix() - APP_RESTORE_WINDOW;
        Ok(self.store.app_list_deleted(tenant_id, since)?)
    }

    /// Restores an app deleted within the last 30 days, with its
    /// credentials as they were.
    pub fn restore_app(&self, tenant_id: &str, object_id: &str) -> Result<AppRow, DirectoryError> {
        let since = self.clock.unix() - APP_RESTORE_WINDOW;
        let known = self
            .store
            .app_list_deleted(tenant_id, since)?
            .iter()
            .any(|(a, _)| a.object_id.eq_ignore_ascii_case(object_id));
        if !known {
            return Err(DirectoryError::AppNotFound(object_id.to_owned()));
        }
        let restored = self
            .store
            .app_restore(&object_id.to_ascii_lowercase(), since);
        self.clients.clear();
        match restored {
            Err(StoreError::NotFound) => Err(DirectoryError::AppNotFound(object_id.to_owned())),
            other => Ok(other?),
        }
    }

    /// A live app by application (client) id.
    pub fn app_by_app_id(&self, app_id: &str) -> Result<Option<AppRow>, DirectoryError> {
        Ok(self.store.app_by_app_id(&app_id.to_ascii_lowercase())?)
    }

    /// A live app with its service principal and credentials, by
    /// application id (from memory when it was read recently).
    pub fn client(&self, app_id: &str) -> Result<Option<Arc<Client>>, DirectoryError> {
        let app_id = app_id.to_ascii_lowercase();
        self.clients.get_or_load(&app_id, || {
            let Some(app) = self.store.app_by_app_id(&app_id)? else {
                return Ok(None);
            };
            Ok(Some(Arc::new(Client {
                service_principal: self.store.sp_by_app_id(&app.app_id)?,
                credentials: self.store.credential_list(&app.object_id)?,
                app,
            })))
        })
    }

    /// The password credentials of an app.
    pub fn credentials(&self, app_object_id: &str) -> Result<Vec<CredentialRow>, DirectoryError> {
        Ok(self.store.credential_list(app_object_id)?)
    }
}
