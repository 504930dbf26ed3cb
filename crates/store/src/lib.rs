//! Persistence. [`Store`] is what the domain crates need; [`SqliteStore`] is
//! the embedded implementation (one SQLite database in WAL mode, one writer
//! with group commit, a pool of readers so that reads never wait on a
//! global lock).

mod group_commit;
mod records;
mod sqlite;

pub use records::*;
pub use sqlite::SqliteStore;

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The secret exists but is deleted (recoverable); its name cannot be reused.
    #[error("the secret is deleted but recoverable")]
    DeletedButRecoverable,
    /// A row with this key already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The database failed.
    #[error("database error: {0}")]
    Backend(String),
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything Lockstep persists. Calls are blocking; async callers run
/// writes on a blocking thread.
pub trait Store: Send + Sync + 'static {
    // --- meta -----------------------------------------------------------
    /// Reads an opaque metadata value.
    fn meta_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Writes a metadata value only if the key is absent; returns whether it was written.
    fn meta_put_new(&self, key: &str, value: &[u8]) -> StoreResult<bool>;

    /// Writes (inserts or replaces) a metadata value.
    fn meta_put(&self, key: &str, value: &[u8]) -> StoreResult<()>;

    // --- tenants and vaults ---------------------------------------------
    /// Creates a tenant.
    fn tenant_create(&self, tenant: &TenantRow) -> StoreResult<()>;
    /// Looks a tenant up by id.
    fn tenant_get(&self, id: &str) -> StoreResult<Option<TenantRow>>;
    /// All tenants, oldest first.
    fn tenant_list(&self) -> StoreResult<Vec<TenantRow>>;
    /// Creates a vault; [`StoreError::AlreadyExists`] if the name is taken.
    fn vault_create(&self, vault: &VaultRow) -> StoreResult<()>;
    /// Looks a vault up by name.
    fn vault_get(&self, name: &str) -> StoreResult<Option<VaultRow>>;
    /// All vaults by name.
    fn vault_list(&self) -> StoreResult<Vec<VaultRow>>;
    /// Deletes a vault and every secret in it.
    fn vault_delete(&self, name: &str) -> StoreResult<()>;

    // --- secrets ----------------------------------------------------------
    /// Adds a version (its `seq` is assigned here and returned), creating the
    /// secret if needed; refuses a deleted secret.
    fn version_insert(&self, version: &VersionRow) -> StoreResult<i64>;
    /// The latest version of a live secret.
    fn version_latest(&self, vault: &str, name_key: &str) -> StoreResult<Option<VersionRow>>;
    /// One version of a live secret.
    fn version_get(
        &self,
        vault: &str,
        name_key: &str,
        version: &str,
    ) -> StoreResult<Option<VersionRow>>;
    /// Updates a version's mutable attributes (enabled, nbf, exp, contentType, tags, updated).
    fn version_update(&self, version: &VersionRow) -> StoreResult<()>;
    /// Live secrets ordered by name key, after `after`, at most `limit`; each with its latest version.
    fn secret_list(
        &self,
        vault: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<SecretRow>>;
    /// Versions of a live secret ordered by sequence, after `after_seq`.
    fn version_list(
        &self,
        vault: &str,
        name_key: &str,
        after_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<VersionRow>>;
    /// Whether the secret exists (live or deleted).
    fn secret_get(&self, vault: &str, name_key: &str) -> StoreResult<Option<SecretRow>>;
    /// Marks a live secret deleted.
    fn secret_delete(
        &self,
        vault: &str,
        name_key: &str,
        deleted_at: i64,
        purge_at: i64,
    ) -> StoreResult<()>;
    /// Deleted secrets ordered by name key.
    fn deleted_list(
        &self,
        vault: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<SecretRow>>;
    /// Makes a deleted secret live again.
    fn secret_recover(&self, vault: &str, name_key: &str) -> StoreResult<()>;
    /// Removes a deleted secret and its versions for good.
    fn secret_purge(&self, vault: &str, name_key: &str) -> StoreResult<()>;
    /// Removes every deleted secret whose purge time is at or before `now`; returns how many.
    fn purge_expired(&self, now: i64) -> StoreResult<usize>;
    /// Every version of a secret, live or deleted, oldest first.
    fn version_list_any(&self, vault: &str, name_key: &str) -> StoreResult<Vec<VersionRow>>;
    /// Every version of a live secret, oldest first (for backup).
    fn version_all(&self, vault: &str, name_key: &str) -> StoreResult<Vec<VersionRow>>;
    /// Restores a secret's versions; refuses if the name exists (live or deleted).
    fn secret_restore(&self, versions: &[VersionRow]) -> StoreResult<()>;

    // --- applications and credentials ----------------------------------------
    /// Creates an app registration with its service principal.
    fn app_create(&self, app: &AppRow, sp: &ServicePrincipalRow) -> StoreResult<()>;
    /// A live app by its application (client) id.
    fn app_by_app_id(&self, app_id: &str) -> StoreResult<Option<AppRow>>;
    /// A live app by its object id.
    fn app_by_object_id(&self, object_id: &str) -> StoreResult<Option<AppRow>>;
    /// Live apps of a tenant ordered by object id, optionally only those
    /// with exactly `display_name`, after `after`, at most `limit`.
    fn app_list(
        &self,
        tenant_id: &str,
        display_name: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AppRow>>;
    /// Renames an app (and its service principal).
    fn app_rename(&self, object_id: &str, display_name: &str) -> StoreResult<()>;
    /// Soft-deletes an app at `now`; its credentials stop working.
    fn app_soft_delete(&self, object_id: &str, now: i64) -> StoreResult<()>;
    /// Deleted apps of a tenant deleted at or after `since`, with their deletion time.
    fn app_list_deleted(&self, tenant_id: &str, since: i64) -> StoreResult<Vec<(AppRow, i64)>>;
    /// Restores an app deleted at or after `since`.
    fn app_restore(&self, object_id: &str, since: i64) -> StoreResult<AppRow>;
    /// The service principal of an application id.
    fn sp_by_app_id(&self, app_id: &str) -> StoreResult<Option<ServicePrincipalRow>>;
    /// A service principal by object id.
    fn sp_by_object_id(&self, object_id: &str) -> StoreResult<Option<ServicePrincipalRow>>;
    /// Adds a password credential to an app.
    fn credential_insert(&self, cred: &CredentialRow) -> StoreResult<()>;
    /// The password credentials of an app.
    fn credential_list(&self, app_object_id: &str) -> StoreResult<Vec<CredentialRow>>;
    /// Removes a password credential.
    fn credential_delete(&self, app_object_id: &str, key_id: &str) -> StoreResult<()>;

    // --- signing keys and roles -------------------------------------------------
    /// Stores a new signing key.
    fn signing_key_insert(&self, key: &SigningKeyRow) -> StoreResult<()>;
    /// Schedules every unretired signing key to retire at `retire_at` and
    /// stores `next`.
    fn signing_key_rotate(&self, next: &SigningKeyRow, retire_at: i64) -> StoreResult<()>;
    /// Every signing key, oldest first.
    fn signing_key_list(&self) -> StoreResult<Vec<SigningKeyRow>>;
    /// Adds a role assignment.
    fn role_assignment_insert(&self, ra: &RoleAssignmentRow) -> StoreResult<()>;
    /// Removes a role assignment and returns it.
    fn role_assignment_delete(&self, id: &str) -> StoreResult<RoleAssignmentRow>;
    /// Every role assignment.
    fn role_assignment_list(&self) -> StoreResult<Vec<RoleAssignmentRow>>;
    /// The role assignments of a principal.
    fn role_assignments_for(&self, principal_id: &str) -> StoreResult<Vec<RoleAssignmentRow>>;

    // --- staged versions (rotation) ---------------------------------------------
    /// Adds a version that does not become the latest until promoted
    /// (creating the secret, invisible, if needed); returns its seq.
    fn version_insert_staged(&self, version: &VersionRow) -> StoreResult<i64>;
    /// Makes a staged version the latest; [`StoreError::AlreadyExists`] if a
    /// newer version was written meanwhile.
    fn version_promote(&self, vault: &str, name_key: &str, version: &str) -> StoreResult<()>;
    /// Removes a version that was never promoted.
    fn version_discard(&self, vault: &str, name_key: &str, version: &str) -> StoreResult<()>;

    // --- rotation ----------------------------------------------------------------
    /// Creates a binding; [`StoreError::AlreadyExists`] if the name is taken.
    fn binding_insert(&self, b: &BindingRow) -> StoreResult<()>;
    /// A binding by name.
    fn binding_get(&self, name: &str) -> StoreResult<Option<BindingRow>>;
    /// Every binding, by name.
    fn binding_list(&self) -> StoreResult<Vec<BindingRow>>;
    /// Bindings whose next rotation is due at or before `now`, soonest first.
    fn binding_list_due(&self, now: i64) -> StoreResult<Vec<BindingRow>>;
    /// Replaces a binding.
    fn binding_update(&self, b: &BindingRow) -> StoreResult<()>;
    /// Deletes a binding.
    fn binding_delete(&self, name: &str) -> StoreResult<()>;
    /// Creates a run.
    fn run_insert(&self, r: &RunRow) -> StoreResult<()>;
    /// A run by id.
    fn run_get(&self, id: &str) -> StoreResult<Option<RunRow>>;
    /// Replaces a run.
    fn run_update(&self, r: &RunRow) -> StoreResult<()>;
    /// Runs, newest first, optionally of one binding.
    fn run_list(&self, binding: Option<&str>, limit: usize) -> StoreResult<Vec<RunRow>>;
    /// Runs in progress (pending or running), oldest first.
    fn runs_active(&self) -> StoreResult<Vec<RunKey>>;
    /// The run in progress of `binding`, if any.
    fn run_active(&self, binding: &str) -> StoreResult<Option<RunRow>>;
    /// Schedules (or reschedules) a credential's removal.
    fn revocation_upsert(&self, r: &RevocationRow) -> StoreResult<()>;
    /// Revocations not done and due at or before `now`.
    fn revocations_due(&self, now: i64) -> StoreResult<Vec<RevocationRow>>;
    /// Revocations not yet done.
    fn revocations_pending(&self) -> StoreResult<Vec<RevocationRow>>;
    /// Marks a revocation done.
    fn revocation_done(&self, key_id: &str, now: i64) -> StoreResult<()>;

    // --- users ------------------------------------------------------------------
    /// Creates a user; [`StoreError::AlreadyExists`] if its tenant already
    /// has a user with the same principal name in any letter case.
    fn user_insert(&self, user: &UserRow) -> StoreResult<()>;
    /// A user by object id.
    fn user_get(&self, object_id: &str) -> StoreResult<Option<UserRow>>;
    /// A user of a tenant by principal name, in any letter case.
    fn user_by_upn(&self, tenant_id: &str, upn: &str) -> StoreResult<Option<UserRow>>;
    /// Users of a tenant ordered by principal name (ignoring case), after
    /// the name `after`, at most `limit`.
    fn user_list(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UserRow>>;
    /// Writes a user's display name, enabled flag and `updated` time.
    fn user_update(&self, user: &UserRow) -> StoreResult<()>;
    /// Replaces a user's password hash, only if the stored hash is still
    /// `expected_hash` when one is given (so that two changes made from the
    /// same current password cannot both succeed). `changed_at` records a
    /// password change (None for a rehash of the same password).
    /// [`StoreError::NotFound`] if no row matched.
    fn user_set_password(
        &self,
        object_id: &str,
        expected_hash: Option<&str>,
        new_hash: &str,
        changed_at: Option<i64>,
    ) -> StoreResult<()>;
    /// Deletes a user and its role assignments.
    fn user_delete(&self, object_id: &str) -> StoreResult<()>;

    // --- events ---
    /// Creates a webhook subscription.
    fn subscription_insert(&self, sub: &SubscriptionRow) -> StoreResult<()>;
    /// A subscription by id.
    fn subscription_get(&self, id: &str) -> StoreResult<Option<SubscriptionRow>>;
    /// Every subscription, oldest first.
    fn subscription_list(&self) -> StoreResult<Vec<SubscriptionRow>>;
    /// Replaces a subscription's name, endpoint, filters, enabled flag and
    /// update time ([`StoreError::NotFound`] if it is gone).
    fn subscription_update(&self, sub: &SubscriptionRow) -> StoreResult<()>;
    /// Removes a subscription with its deliveries and their attempts.
    fn subscription_delete(&self, id: &str) -> StoreResult<()>;
    /// Stores an event with one pending delivery per entry of `deliveries`,
    /// due at the event's time; with no deliveries the event itself is not
    /// kept. With `once_key`, first records the key and, if it was already
    /// recorded, stores nothing and returns `false` (publish at most once).
    fn event_insert(
        &self,
        event: &EventRow,
        deliveries: &[NewDelivery],
        once_key: Option<&str>,
    ) -> StoreResult<bool>;
    /// An event by id.
    fn event_get(&self, id: &str) -> StoreResult<Option<EventRow>>;
    /// Claims up to `limit` pending deliveries of enabled subscriptions due
    /// at or before `now`: moves their next attempt to `lease_until`, so
    /// that no other claim picks them up while they are being sent (and a
    /// crash mid-attempt only delays them until the lease ends).
    fn delivery_claim(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRow>>;
    /// When the earliest pending delivery of an enabled subscription is due.
    fn delivery_next_due(&self) -> StoreResult<Option<i64>>;
    /// Records an attempt and the delivery's new state and next attempt time.
    fn delivery_record(
        &self,
        attempt: &DeliveryAttemptRow,
        state: DeliveryState,
        next_attempt_at: i64,
    ) -> StoreResult<()>;
    /// The newest `limit` deliveries of a subscription with their attempts.
    fn delivery_log(
        &self,
        subscription_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryLogEntry>>;
    /// Versions of live secrets that are due an expiry notice not yet
    /// published: expired ones (`exp <= now`) and those expiring at or
    /// before `near_before`; at most `limit`, soonest expiry first.
    fn expiry_due(&self, now: i64, near_before: i64, limit: usize) -> StoreResult<Vec<ExpiryDue>>;
    /// Removes events published before `before` (Unix milliseconds) that
    /// have no pending delivery, with their deliveries and attempts;
    /// returns how many events were removed.
    fn events_prune(&self, before: i64) -> StoreResult<usize>;
}
