//! Rows as the store reads and writes them.

use lockstep_core::Tags;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// Tenant id (GUID).
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Creation time (Unix seconds).
    pub created: i64,
}

/// A vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRow {
    /// Vault name (DNS label).
    pub name: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Creation time.
    pub created: i64,
}

/// One sealed version of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// Vault name.
    pub vault: String,
    /// Lowercased secret name (the key).
    pub name_key: String,
    /// The secret name as first written.
    pub name: String,
    /// Monotonic order of versions within the secret.
    pub seq: i64,
    /// 32-hex version id.
    pub version: String,
    /// Whether the value may be read.
    pub enabled: bool,
    /// Not-before (Unix seconds).
    pub nbf: Option<i64>,
    /// Expiry (Unix seconds).
    pub exp: Option<i64>,
    /// Created (Unix seconds).
    pub created: i64,
    /// Updated (Unix seconds).
    pub updated: i64,
    /// Content type.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: Tags,
    /// Whether Lockstep manages this secret (rotation).
    pub managed: bool,
    /// The version that was latest when this one was written.
    pub previous_version: Option<String>,
    /// The KEK that wrapped the data key.
    pub kek_id: String,
    /// The wrapped data key.
    pub wrapped_dek: Vec<u8>,
    /// The sealed value.
    pub ciphertext: Vec<u8>,
}

/// A secret: its deletion state and its latest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// The latest version.
    pub latest: VersionRow,
    /// Set when the secret is soft-deleted.
    pub deleted: Option<Deletion>,
}

/// When a secret was deleted and when it will be purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    /// Deletion time.
    pub deleted_at: i64,
    /// Scheduled purge time.
    pub purge_at: i64,
}

/// An app registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    /// Object id.
    pub object_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Application (client) id.
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// Creation time.
    pub created: i64,
}

/// The service principal of an app in its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipalRow {
    /// Object id (the token's `oid`).
    pub object_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Application id.
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// Creation time.
    pub created: i64,
}

/// A password credential (client secret), stored only as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// Credential key id (GUID).
    pub key_id: String,
    /// The app it belongs to.
    pub app_object_id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// First three characters of the secret.
    pub hint: String,
    /// Per-credential salt.
    pub salt: Vec<u8>,
    /// Keyed hash of the secret.
    pub hash: Vec<u8>,
    /// Valid from.
    pub start: i64,
    /// Valid until.
    pub end: i64,
    /// Creation time.
    pub created: i64,
}

/// A token signing key, sealed like a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// Key id.
    pub kid: String,
    /// Creation time.
    pub created: i64,
    /// KEK that wrapped the data key.
    pub kek_id: String,
    /// Wrapped data key.
    pub wrapped_dek: Vec<u8>,
    /// Sealed PKCS#8 document.
    pub sealed_pkcs8: Vec<u8>,
    /// When it stopped signing (still published until its tokens expire).
    pub retired_at: Option<i64>,
}

/// A role assigned to a principal at a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignmentRow {
    /// Assignment id.
    pub id: String,
    /// Principal object id.
    pub principal_id: String,
    /// Role name.
    pub role: String,
    /// Scope path, e.g. `/` or `/vaults/default`.
    pub scope: String,
    /// Creation time.
    pub created: i64,
}

/// A rotation binding; source, target and policy are JSON documents owned
/// by the rotation crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRow {
    /// Binding name.
    pub name: String,
    /// Tenant.
    pub tenant_id: String,
    /// Credential source (JSON).
    pub source: String,
    /// Secret store target (JSON).
    pub target: String,
    /// Effective policy (JSON).
    pub policy: String,
    /// Created.
    pub created: i64,
    /// Updated.
    pub updated: i64,
    /// When the next scheduled rotation is due.
    pub next_due: i64,
    /// Consecutive failed scheduled runs (for back-off).
    pub failures: i64,
    /// The most recent run.
    pub last_run: Option<String>,
}

/// A rotation run; its steps live in the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Binding name.
    pub binding: String,
    /// pending, running, succeeded, failed or cancelled.
    pub state: String,
    /// Created.
    pub created: i64,
    /// Updated.
    pub updated: i64,
    /// Steps and details (JSON).
    pub body: String,
}

/// A run in progress, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    /// Run id.
    pub id: String,
    /// Binding name.
    pub binding: String,
}

/// A credential scheduled for removal after a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    /// Credential key id.
    pub key_id: String,
    /// The app it belongs to.
    pub app_object_id: String,
    /// Binding that scheduled it.
    pub binding: String,
    /// Run that scheduled it.
    pub run_id: String,
    /// When to remove it.
    pub due_at: i64,
    /// When it was removed.
    pub done_at: Option<i64>,
}

/// A tenant user: a human who signs in with a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Object id (GUID; the token's `oid`).
    pub object_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User principal name (`alice@contoso.test`), unique per tenant regardless of case.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// The password's argon2id hash in PHC string format (never the password).
    pub password_hash: String,
    /// Whether the user may sign in (and its tokens are accepted).
    pub enabled: bool,
    /// Creation time.
    pub created: i64,
    /// Last change to any field.
    pub updated: i64,
    /// Last time the password was set.
    pub password_changed: i64,
}

/// A webhook subscription to events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// Subscription id (GUID).
    pub id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Where events are POSTed.
    pub endpoint: String,
    /// Event types delivered (empty = every type).
    pub event_types: Vec<String>,
    /// Only events whose subject starts with this.
    pub subject_prefix: Option<String>,
    /// KEK that wrapped the data key of the signing secret.
    pub kek_id: String,
    /// Wrapped data key.
    pub wrapped_dek: Vec<u8>,
    /// The sealed signing secret.
    pub sealed_secret: Vec<u8>,
    /// Whether events are delivered.
    pub enabled: bool,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Last change (Unix seconds).
    pub updated: i64,
}

/// A published event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Event id (the CloudEvent `id`).
    pub id: String,
    /// Event type.
    pub event_type: String,
    /// Subject.
    pub subject: String,
    /// When it was published (Unix milliseconds).
    pub time: i64,
    /// The CloudEvent JSON, exactly as delivered.
    pub body: Vec<u8>,
}

/// A delivery to create with an event: it starts pending, due at the
/// event's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Delivery id.
    pub id: String,
    /// The subscription it goes to.
    pub subscription_id: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not yet accepted; will be (re)tried at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed; no more retries.
    Failed,
}

impl DeliveryState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Delivery id.
    pub id: String,
    /// The event.
    pub event_id: String,
    /// The event's type (read from the event).
    pub event_type: String,
    /// The event's subject (read from the event).
    pub subject: String,
    /// The subscription.
    pub subscription_id: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due (Unix milliseconds).
    pub next_attempt_at: i64,
    /// Creation time (Unix milliseconds).
    pub created: i64,
    /// Last change (Unix milliseconds).
    pub updated: i64,
}

/// One attempt to deliver an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttemptRow {
    /// The delivery.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// When it was made (Unix milliseconds).
    pub time: i64,
    /// The endpoint's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why it failed without a status (connection, TLS, timeout…).
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}

/// A delivery with its attempts, newest delivery first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLogEntry {
    /// The delivery.
    pub delivery: DeliveryRow,
    /// Its attempts, oldest first.
    pub attempts: Vec<DeliveryAttemptRow>,
}

/// Which expiry notice a version is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryKind {
    /// `exp` is within the notice window.
    NearExpiry,
    /// `exp` has passed.
    Expired,
}

/// A secret version due an expiry notice that has not been published yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryDue {
    /// Which notice.
    pub kind: ExpiryKind,
    /// The key that records the notice as published (see
    /// [`Store::event_insert`](crate::Store::event_insert)); it includes
    /// `exp`, so changing a version's expiry makes it due again.
    pub once_key: String,
    /// The vault's tenant.
    pub tenant_id: String,
    /// Vault name.
    pub vault: String,
    /// Secret name as first written.
    pub name: String,
    /// Version id.
    pub version: String,
    /// Not-before (Unix seconds).
    pub nbf: Option<i64>,
    /// Expiry (Unix seconds).
    pub exp: i64,
}
