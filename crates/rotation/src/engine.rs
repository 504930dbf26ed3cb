//! The engine: bindings, runs and the scheduler.
//!
//! Crash safety rests on three rules. (1) Every step records its intent in
//! the run before its side effect, and records the result after. (2) A new
//! credential's value exists only in memory until it is stored in the vault
//! (as a *staged* version that readers do not see yet), so after a crash
//! between the two the credential is found by its recorded name and
//! removed, and a fresh one is made. (3) Every step is idempotent, so a
//! resumed run simply repeats the step it was in.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_core::SharedClock;
use lockstep_identity::{Directory, DirectoryError, TokenError, TokenService};
use lockstep_store::{BindingRow, RevocationRow, RunRow, Store, StoreError};
use lockstep_vault::{SetSecret, VaultError, VaultRef, Vaults};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::policy::{Mode, Policy, PolicyError, PolicyInput};
use crate::run::{CreatedCredential, Run, RunState, StepState};
use crate::schedule;

/// Tag on a vault version naming the credential it holds.
pub const TAG_KEY_ID: &str = "lockstep-key-id";
/// Tag on a vault version naming the run that wrote it.
pub const TAG_RUN: &str = "lockstep-run";
/// Tag on a vault version naming its binding.
pub const TAG_BINDING: &str = "lockstep-binding";

/// Where credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// An app registration of Lockstep's own directory.
    BuiltinApp {
        /// Its application (client) id.
        #[serde(rename = "appId")]
        app_id: String,
    },
}

/// Where the current credential is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// A secret of a Lockstep vault.
    BuiltinVault {
        /// Vault name.
        vault: String,
        /// Secret name.
        secret: String,
    },
}

/// A binding as requested.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingInput {
    /// Name (letters, digits, hyphens; 1-63).
    pub name: String,
    /// The credential source.
    pub source: Source,
    /// The secret store.
    pub target: Target,
    /// Policy overrides.
    #[serde(default)]
    pub policy: PolicyInput,
}

/// A binding with its effective policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Name.
    pub name: String,
    /// Tenant.
    pub tenant_id: String,
    /// Source.
    pub source: Source,
    /// Target.
    pub target: Target,
    /// Effective policy.
    pub policy: Policy,
    /// Created.
    pub created: i64,
    /// Updated.
    pub updated: i64,
    /// Next scheduled rotation.
    pub next_due: i64,
    /// Consecutive failures of scheduled runs.
    pub failures: i64,
    /// Most recent run.
    pub last_run: Option<String>,
}

impl Binding {
    fn from_row(row: &BindingRow) -> Result<Self, RotationError> {
        let bad = |e: String| RotationError::Internal(format!("stored binding {}: {e}", row.name));
        Ok(Self {
            name: row.name.clone(),
            tenant_id: row.tenant_id.clone(),
            source: serde_json::from_str(&row.source).map_err(|e| bad(e.to_string()))?,
            target: serde_json::from_str(&row.target).map_err(|e| bad(e.to_string()))?,
            policy: Policy::from_json(
                &serde_json::from_str(&row.policy).map_err(|e| bad(e.to_string()))?,
            )
            .map_err(|e| bad(e.to_string()))?,
            created: row.created,
            updated: row.updated,
            next_due: row.next_due,
            failures: row.failures,
            last_run: row.last_run.clone(),
        })
    }

    fn to_row(&self) -> BindingRow {
        BindingRow {
            name: self.name.clone(),
            tenant_id: self.tenant_id.clone(),
            source: serde_json::to_string(&self.source).unwrap_or_default(),
            target: serde_json::to_string(&self.target).unwrap_or_default(),
            policy: self.policy.to_json().to_string(),
            created: self.created,
            updated: self.updated,
            next_due: self.next_due,
            failures: self.failures,
            last_run: self.last_run.clone(),
        }
    }

    /// The app id of the source.
    pub fn app_id(&self) -> &str {
        match &self.source {
            Source::BuiltinApp { app_id } => app_id,
        }
    }

    /// Vault and secret of the target.
    pub fn vault_secret(&self) -> (&str, &str) {
        match &self.target {
            Target::BuiltinVault { vault, secret } => (vault, secret),
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Invalid input; the message is for the user.
    #[error("{0}")]
    Invalid(String),
    /// No such binding or run.
    #[error("{0} not found")]
    NotFound(String),
    /// The binding already has a run in progress, or the name is taken.
    #[error("{0}")]
    Conflict(String),
    /// A server-side failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for RotationError {
    fn from(e: StoreError) -> Self {
        RotationError::Internal(e.to_string())
    }
}

impl From<PolicyError> for RotationError {
    fn from(e: PolicyError) -> Self {
        RotationError::Invalid(e.to_string())
    }
}

/// Why a rotation was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The scheduler.
    Schedule,
    /// A user asked.
    Manual,
    /// A user asked with immediate revocation.
    Emergency,
    /// A retry of a failed run.
    Retry,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Emergency => "emergency",
            Trigger::Retry => "retry",
        }
    }
}

/// When the previous credential is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeMode {
    /// After the policy's grace period.
    AfterGrace,
    /// As soon as the new credential is current.
    Now,
}

/// Receives the engine's events (CloudEvents are built by the caller).
pub trait EventSink: Send + Sync {
    /// Publishes an event of `event_type` about `subject`.
    fn publish(&self, event_type: &str, subject: &str, data: serde_json::Value);

    /// Publishes an event at most once per `key` (for example one expiry
    /// warning per credential).
    fn publish_once(&self, key: &str, event_type: &str, subject: &str, data: serde_json::Value) {
        let _ = key;
        self.publish(event_type, subject, data);
    }

    /// A new version of a vault secret became current.
    fn secret_version_created(
        &self,
        tenant: &str,
        vault: &str,
        secret: &str,
        version: &str,
        exp: Option<i64>,
    ) {
        self.publish(
            "Microsoft.KeyVault.SecretNewVersionCreated",
            &format!("/tenants/{tenant}/vaults/{vault}/secrets/{secret}"),
            serde_json::json!({"VaultName": vault, "ObjectType": "Secret", "ObjectName": secret, "Version": version, "EXP": exp}),
        );
    }
}

/// The subject of a binding's events.
fn binding_subject(tenant: &str, binding: &str) -> String {
    format!("/tenants/{tenant}/rotation/bindings/{binding}")
}

/// Counters the server exports as metrics.
#[derive(Default)]
pub struct RotationStats {
    /// Runs that succeeded.
    pub succeeded: AtomicU64,
    /// Runs that failed.
    pub failed: AtomicU64,
    /// Runs that were cancelled.
    pub cancelled: AtomicU64,
    /// Sum of the durations of finished runs, in milliseconds.
    pub duration_ms_sum: AtomicU64,
    /// Credentials revoked.
    pub revoked: AtomicU64,
}

/// The rotation engine.
pub struct Engine {
    store: Arc<dyn Store>,
    vaults: Arc<Vaults>,
    directory: Arc<Directory>,
    tokens: Arc<TokenService>,
    clock: SharedClock,
    events: Arc<dyn EventSink>,
    http: reqwest::Client,
    /// Bindings whose run request is being admitted (checked for a run in
    /// progress and recorded): one request per binding at a time, requests
    /// for different bindings in parallel.
    admitting: Mutex<HashSet<String>>,
    driving: Mutex<HashSet<String>>,
    cancel_requested: Mutex<HashSet<String>>,
    stats: RotationStats,
    verify_backoff_ms: u64,
}

const NAME_MAX: usize = 63;

/// A binding's place in [`Engine::admitting`], given up on drop.
struct Admission<'a> {
    set: &'a Mutex<HashSet<String>>,
    binding: String,
}

impl<'a> Admission<'a> {
    fn enter(set: &'a Mutex<HashSet<String>>, binding: &str) -> Result<Self, RotationError> {
        if !lock(set).insert(binding.to_owned()) {
            return Err(RotationError::Conflict(format!(
                "binding '{binding}' already has a run being requested"
            )));
        }
        Ok(Self {
            set,
            binding: binding.to_owned(),
        })
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.binding);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn date_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!("[year]-[month]-[day]"))
                .ok()
        })
        .unwrap_or_default()
}

/// A step failed; the run fails and cleans up.
struct StepFailure(String);

impl From<VaultError> for StepFailure {
    fn from(e: VaultError) -> Self {
        StepFailure(e.to_string())
    }
}

impl From<DirectoryError> for StepFailure {
    fn from(e: DirectoryError) -> Self {
        StepFailure(e.to_string())
    }
}

impl From<StoreError> for StepFailure {
    fn from(e: StoreError) -> Self {
        StepFailure(e.to_string())
    }
}

impl From<RotationError> for StepFailure {
    fn from(e: RotationError) -> Self {
        StepFailure(e.to_string())
    }
}

impl Engine {
    /// An engine over the server's services.
    pub fn new(
        store: Arc<dyn Store>,
        vaults: Arc<Vaults>,
        directory: Arc<Directory>,
        tokens: Arc<TokenService>,
        clock: SharedClock,
        events: Arc<dyn EventSink>,
    ) -> Self {
        Self {
            store,
            vaults,
            directory,
            tokens,
            clock,
            events,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            admitting: Mutex::new(HashSet::new()),
            driving: Mutex::new(HashSet::new()),
            cancel_requested: Mutex::new(HashSet::new()),
            stats: RotationStats::default(),
            verify_backoff_ms: 100,
        }
    }

    /// The engine's counters.
    pub fn stats(&self) -> &RotationStats {
        &self.stats
    }

    // --- bindings -----------------------------------------------------------------

    fn app_limit(
        &self,
        tenant: &str,
        app_id: &str,
    ) -> Result<(lockstep_store::AppRow, Option<i64>), RotationError> {
        let app = self
            .directory
            .app_by_app_id(app_id)
            .map_err(|e| RotationError::Internal(e.to_string()))?
            .filter(|a| a.tenant_id == tenant)
            .ok_or_else(|| {
                RotationError::Invalid(format!(
                    "source: no app registration with appId '{app_id}' in this tenant"
                ))
            })?;
        let limit = self
            .directory
            .app_policy(tenant)
            .map_err(|e| RotationError::Internal(e.to_string()))?
            .limit_for(&app);
        Ok((app, limit))
    }

    fn vault_ref(&self, tenant: &str, vault: &str) -> Result<VaultRef, RotationError> {
        self.vaults
            .vault(vault)
            .ok()
            .filter(|v| v.tenant_id == tenant)
            .ok_or_else(|| {
                RotationError::Invalid(format!("target: no vault named '{vault}' in this tenant"))
            })
    }

    /// Creates a binding. Its first rotation is due one interval after the
    /// secret's current version was written (at once when there is none).
    pub fn bind(&self, tenant: &str, input: BindingInput) -> Result<Binding, RotationError> {
        let name = input.name.trim();
        if name.is_empty()
            || name.len() > NAME_MAX
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(RotationError::Invalid(format!(
                "binding name must be 1-{NAME_MAX} letters, digits or hyphens"
            )));
        }
        let Source::BuiltinApp { app_id } = &input.source;
        let (_, limit) = self.app_limit(tenant, app_id)?;
        let Target::BuiltinVault { vault, secret } = &input.target;
        let vref = self.vault_ref(tenant, vault)?;
        lockstep_core::SecretName::parse(secret)
            .map_err(|e| RotationError::Invalid(format!("target: {e}")))?;
        let policy = Policy::resolve(&input.policy, None, limit)?;
        let now = self.clock.unix();
        let current = self
            .vaults
            .latest_meta(&vref, secret)
            .map_err(|e| RotationError::Internal(e.to_string()))?;
        let next_due = match current {
            Some(v) => schedule::next_due(name, &policy, v.attributes.created),
            None => now,
        };
        let binding = Binding {
            name: name.to_owned(),
            tenant_id: tenant.to_owned(),
            source: input.source,
            target: Target::BuiltinVault {
                vault: vref.name,
                secret: secret.clone(),
            },
            policy,
            created: now,
            updated: now,
            next_due,
            failures: 0,
            last_run: None,
        };
        match self.store.binding_insert(&binding.to_row()) {
            Ok(()) => Ok(binding),
            Err(StoreError::AlreadyExists) => Err(RotationError::Conflict(format!(
                "a binding named '{name}' already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A binding by name.
    pub fn binding(&self, name: &str) -> Result<Binding, RotationError> {
        let row = self
            .store
            .binding_get(name)?
            .ok_or_else(|| RotationError::NotFound(format!("binding '{name}'")))?;
        Binding::from_row(&row)
    }

    /// Every binding of a tenant.
    pub fn bindings(&self, tenant: &str) -> Result<Vec<Binding>, RotationError> {
        self.store
            .binding_list()?
            .iter()
            .filter(|r| r.tenant_id == tenant)
            .map(Binding::from_row)
            .collect()
    }

    /// Changes a binding's policy; the next due time follows the new interval.
    pub fn update_policy(&self, name: &str, input: &PolicyInput) -> Result<Binding, RotationError> {
        let mut b = self.binding(name)?;
        let (_, limit) = self.app_limit(&b.tenant_id, b.app_id())?;
        let policy = Policy::resolve(input, Some(&b.policy), limit)?;
        if policy.interval != b.policy.interval
            || policy.jitter != b.policy.jitter
            || policy.window != b.policy.window
        {
            let base =
                b.next_due - b.policy.interval - schedule::jitter_offset(&b.name, b.policy.jitter);
            b.next_due = schedule::next_due(&b.name, &policy, base);
        }
        b.policy = policy;
        b.updated = self.clock.unix();
        self.store.binding_update(&b.to_row())?;
        Ok(b)
    }

    /// Deletes a binding (credentials and versions are left as they are).
    pub fn unbind(&self, name: &str) -> Result<(), RotationError> {
        if self.active_run(name)?.is_some() {
            return Err(RotationError::Conflict(format!(
                "binding '{name}' has a run in progress: cancel it first"
            )));
        }
        match self.store.binding_delete(name) {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(RotationError::NotFound(format!("binding '{name}'"))),
            Err(e) => Err(e.into()),
        }
    }

    // --- runs -------------------------------------------------------------------------

    fn load(&self, id: &str) -> Result<Run, RotationError> {
        let row = self
            .store
            .run_get(id)?
            .ok_or_else(|| RotationError::NotFound(format!("run '{id}'")))?;
        serde_json::from_str(&row.body)
            .map_err(|e| RotationError::Internal(format!("stored run {id}: {e}")))
    }

    fn save(&self, run: &Run) -> Result<(), RotationError> {
        let row = RunRow {
            id: run.id.clone(),
            binding: run.binding.clone(),
            state: run.state.as_str().to_owned(),
            created: run.created,
            updated: self.clock.unix(),
            body: serde_json::to_string(run).map_err(|e| RotationError::Internal(e.to_string()))?,
        };
        Ok(self.store.run_update(&row)?)
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Result<Run, RotationError> {
        self.load(id)
    }

    /// Recent runs, newest first.
    pub fn runs(&self, binding: Option<&str>, limit: usize) -> Result<Vec<Run>, RotationError> {
        self.store
            .run_list(binding, limit)?
            .iter()
            .map(|r| {
                serde_json::from_str(&r.body).map_err(|e| RotationError::Internal(e.to_string()))
            })
            .collect()
    }

    fn active_run(&self, binding: &str) -> Result<Option<Run>, RotationError> {
        match self.store.run_active(binding)? {
            Some(r) => Ok(Some(self.load(&r.id)?)),
            None => Ok(None),
        }
    }

    /// Starts a rotation of `binding`; returns the run id. Refused while the
    /// binding has another run in progress.
    pub fn request(
        &self,
        binding: &str,
        trigger: Trigger,
        revoke: RevokeMode,
        leaked_key_id: Option<String>,
    ) -> Result<String, RotationError> {
        self.request_run(binding, trigger, revoke, leaked_key_id, None)
    }

    fn request_run(
        &self,
        binding: &str,
        trigger: Trigger,
        revoke: RevokeMode,
        leaked_key_id: Option<String>,
        retry_of: Option<String>,
    ) -> Result<String, RotationError> {
        let _admission = Admission::enter(&self.admitting, binding)?;
        let mut b = self.binding(binding)?;
        if let Some(active) = self.active_run(binding)? {
            return Err(RotationError::Conflict(format!(
                "binding '{binding}' already has run {} in progress",
                active.id
            )));
        }
        if let Some(k) = &leaked_key_id {
            let (app, _) = self.app_limit(&b.tenant_id, b.app_id())?;
            let creds = self
                .directory
                .credentials(&app.object_id)
                .map_err(|e| RotationError::Internal(e.to_string()))?;
            if !creds.iter().any(|c| c.key_id.eq_ignore_ascii_case(k)) {
                return Err(RotationError::Invalid(format!(
                    "the app has no credential with keyId '{k}'"
                )));
            }
        }
        let now = self.clock.unix();
        let id = lockstep_crypto::random::hex(&lockstep_crypto::random::bytes::<8>());
        let trigger = if revoke == RevokeMode::Now && trigger == Trigger::Manual {
            Trigger::Emergency
        } else {
            trigger
        };
        let mut run = Run::new(
            id.clone(),
            binding,
            trigger.as_str(),
            revoke == RevokeMode::Now,
            leaked_key_id.map(|k| k.to_ascii_lowercase()),
            now,
        );
        run.retry_of = retry_of;
        self.store.run_insert(&RunRow {
            id: id.clone(),
            binding: binding.to_owned(),
            state: "pending".into(),
            created: now,
            updated: now,
            body: serde_json::to_string(&run)
                .map_err(|e| RotationError::Internal(e.to_string()))?,
        })?;
        b.last_run = Some(id.clone());
        self.store.binding_update(&b.to_row())?;
        Ok(id)
    }

    /// Asks a run to stop; what it created is removed. A run that already
    /// made its credential current cannot be cancelled.
    pub fn cancel(&self, id: &str) -> Result<Run, RotationError> {
        let run = self.load(id)?;
        if run.state.is_terminal() {
            return Err(RotationError::Conflict(format!(
                "run {id} is already {}",
                run.state.as_str()
            )));
        }
        if run.steps[3].state == StepState::Done {
            return Err(RotationError::Conflict(format!(
                "run {id} already made its credential current; it can no longer be cancelled"
            )));
        }
        lock(&self.cancel_requested).insert(id.to_owned());
        if !lock(&self.driving).contains(id) {
            // Nobody is executing it: clean up here.
            let mut run = run;
            self.abandon(&mut run, RunState::Cancelled, "cancelled by a user".into());
            if run.trigger == "schedule" {
                self.back_off(&run.binding);
            }
        }
        self.load(id)
    }

    /// Starts a fresh run for the binding of a failed or cancelled run (a
    /// retry never reuses the previous attempt's credential).
    pub fn retry(&self, id: &str) -> Result<String, RotationError> {
        let old = self.load(id)?;
        if !matches!(old.state, RunState::Failed | RunState::Cancelled) {
            return Err(RotationError::Conflict(format!(
                "run {id} is {}: only failed or cancelled runs can be retried",
                old.state.as_str()
            )));
        }
        let revoke = if old.revoke_now() {
            RevokeMode::Now
        } else {
            RevokeMode::AfterGrace
        };
        self.request_run(
            &old.binding,
            Trigger::Retry,
            revoke,
            old.leaked_key_id.clone(),
            Some(id.to_owned()),
        )
    }

    /// Executes (or resumes) a run to a terminal state. Blocking: call it
    /// from a blocking thread.
    pub fn execute(&self, id: &str) {
        if !lock(&self.driving).insert(id.to_owned()) {
            return; // someone else is driving it
        }
        let result = self.execute_inner(id);
        lock(&self.driving).remove(id);
        lock(&self.cancel_requested).remove(id);
        if let Err(e) = result {
            tracing::error!(run = id, error = %e, "rotation run could not be executed");
        }
    }

    fn execute_inner(&self, id: &str) -> Result<(), RotationError> {
        let mut run = self.load(id)?;
        if run.state.is_terminal() {
            return Ok(());
        }
        let binding = match self.binding(&run.binding) {
            Ok(b) => b,
            Err(e) => {
                self.abandon(
                    &mut run,
                    RunState::Failed,
                    format!("binding unavailable: {e}"),
                );
                return Ok(());
            }
        };
        run.state = RunState::Running;
        self.save(&run)?;
        let started = std::time::Instant::now();
        match self.steps(&mut run, &binding) {
            Ok(()) => {
                run.state = RunState::Succeeded;
                run.finished = Some(self.clock.unix());
                self.save(&run)?;
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .duration_ms_sum
                    .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                self.events.publish(
                    "Lockstep.RotationSucceeded",
                    &binding_subject(&binding.tenant_id, &binding.name),
                    serde_json::json!({
                        "binding": binding.name,
                        "runId": run.id,
                        "trigger": run.trigger,
                        "keyId": run.credential.as_ref().map(|c| c.key_id.clone()),
                        "version": run.version,
                        "leakedValidForSeconds": run.leaked_valid_for_seconds,
                    }),
                );
                tracing::info!(binding = %binding.name, run = %run.id, "rotation succeeded");
            }
            Err(StepFailure(message)) => {
                let cancelled = lock(&self.cancel_requested).contains(&run.id);
                let state = if cancelled {
                    RunState::Cancelled
                } else {
                    RunState::Failed
                };
                self.abandon(&mut run, state, message);
                // A scheduled run that failed or was cancelled is not
                // restarted at the next tick: the binding backs off.
                if run.trigger == "schedule" {
                    self.back_off(&binding.name);
                }
            }
        }
        Ok(())
    }

    /// Ends a run that did not finish: removes the credential and the staged
    /// version it made, and records why. The current credential and version
    /// are untouched.
    fn abandon(&self, run: &mut Run, state: RunState, message: String) {
        let binding = self.binding(&run.binding).ok();
        if let Some(b) = &binding {
            if let Some(cred) = run.credential.take() {
                if let Ok((app, _)) = self.app_limit(&b.tenant_id, b.app_id()) {
                    match self.directory.remove_password(&app.object_id, &cred.key_id) {
                        Ok(()) | Err(DirectoryError::CredentialNotFound(_)) => {}
                        Err(e) => {
                            tracing::warn!(run = %run.id, error = %e, "could not remove the run's credential")
                        }
                    }
                }
                run.step("create").detail["removed"] = serde_json::json!(cred.key_id);
            }
            // A credential whose creation was started but not recorded.
            if run.steps[0].state == StepState::Started {
                if let Some(name) = run.steps[0]
                    .detail
                    .get("name")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                {
                    let _ = self.remove_by_name(b, &name);
                }
            }
            if let Some(version) = run.version.take() {
                let (vault, secret) = b.vault_secret();
                if let Ok(vref) = self.vault_ref(&b.tenant_id, vault) {
                    if let Err(e) = self.vaults.discard(&vref, secret, &version) {
                        tracing::warn!(run = %run.id, error = %e, "could not discard the staged version");
                    }
                }
                run.step("store").detail["discarded"] = serde_json::json!(version);
            }
        }
        run.state = state;
        run.finished = Some(self.clock.unix());
        run.error = Some(message.clone());
        if let Err(e) = self.save(run) {
            tracing::error!(run = %run.id, error = %e, "could not record the end of a run");
        }
        match state {
            RunState::Cancelled => {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let tenant = binding
                    .as_ref()
                    .map(|b| b.tenant_id.clone())
                    .unwrap_or_default();
                self.events.publish(
                    "Lockstep.RotationFailed",
                    &binding_subject(&tenant, &run.binding),
                    serde_json::json!({"binding": run.binding, "runId": run.id, "error": message}),
                );
                tracing::warn!(binding = %run.binding, run = %run.id, error = %message, "rotation failed; the current credential is unchanged");
            }
        }
    }

    fn back_off(&self, binding: &str) {
        if let Ok(mut b) = self.binding(binding) {
            b.failures += 1;
            let delay = (300i64 << (b.failures - 1).clamp(0, 10))
                .min(b.policy.interval / 2)
                .max(60);
            b.next_due = self.clock.unix() + delay;
            if let Err(e) = self.store.binding_update(&b.to_row()) {
                tracing::error!(binding, error = %e, "could not record back-off");
            }
        }
    }

    fn check_cancel(&self, run: &Run) -> Result<(), StepFailure> {
        if lock(&self.cancel_requested).contains(&run.id) {
            Err(StepFailure("cancelled by a user".into()))
        } else {
            Ok(())
        }
    }

    fn remove_by_name(&self, b: &Binding, name: &str) -> Result<usize, StepFailure> {
        let (app, _) = self.app_limit(&b.tenant_id, b.app_id())?;
        let mut removed = 0;
        for c in self.directory.credentials(&app.object_id)? {
            if c.display_name.as_deref() == Some(name) {
                match self.directory.remove_password(&app.object_id, &c.key_id) {
                    Ok(()) | Err(DirectoryError::CredentialNotFound(_)) => removed += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(removed)
    }

    fn begin(
        &self,
        run: &mut Run,
        step: &str,
        detail: Option<serde_json::Value>,
    ) -> Result<(), StepFailure> {
        self.check_cancel(run)?;
        let now = self.clock.unix();
        let s = run.step(step);
        if s.started_at.is_none() {
            s.started_at = Some(now);
        }
        s.state = StepState::Started;
        s.attempts += 1;
        if let Some(d) = detail {
            s.detail = d;
        }
        Ok(self.save(run)?)
    }

    /// Marks a step ended. Not saved on its own: the next step's
    /// [`begin`](Self::begin) (its intent record, written before its effect)
    /// or the run's end saves it, which halves the writes of a run. A crash
    /// before that save finds the step started, and every step is safe to
    /// run again from there (see `steps`).
    fn done(&self, run: &mut Run, step: &str, state: StepState) -> Result<(), StepFailure> {
        let now = self.clock.unix();
        let s = run.step(step);
        s.state = state;
        s.finished_at = Some(now);
        Ok(())
    }

    fn steps(&self, run: &mut Run, b: &Binding) -> Result<(), StepFailure> {
        let (app, limit) = self.app_limit(&b.tenant_id, b.app_id())?;
        let (vault, secret) = b.vault_secret();
        let vref = self.vault_ref(&b.tenant_id, vault)?;
        let mut value: Option<Zeroizing<String>> = None;

        // --- create -------------------------------------------------------------------
        if run.steps[1].state != StepState::Done && run.steps[0].state != StepState::Pending {
            // Resumed after a crash before the value was stored: the value
            // is gone, so the credential (found by key id or by its
            // recorded name) is removed and a fresh one made.
            if let Some(cred) = run.credential.take() {
                match self.directory.remove_password(&app.object_id, &cred.key_id) {
                    Ok(()) | Err(DirectoryError::CredentialNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(name) = run.steps[0]
                .detail
                .get("name")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
            {
                self.remove_by_name(b, &name)?;
            }
            if run.steps[1].state == StepState::Started {
                // The value may have reached the vault as a staged version.
                if let Some(v) = self.find_run_version(&vref, secret, &run.id)? {
                    self.vaults.discard(&vref, secret, &v)?;
                }
            }
            run.steps[0].state = StepState::Pending;
            run.steps[1].state = StepState::Pending;
        }
        if run.steps[0].state == StepState::Pending {
            let now = self.clock.unix();
            let name = format!("lockstep {} r-{}", date_of(now), run.id);
            let lifetime = limit.map_or(b.policy.credential_lifetime, |l| {
                l.min(b.policy.credential_lifetime)
            });
            self.begin(run, "create", Some(serde_json::json!({ "name": name })))?;
            let created = self.directory.add_password(
                &app.object_id,
                Some(name.clone()),
                Some(now),
                Some(now + lifetime),
            )?;
            run.credential = Some(CreatedCredential {
                key_id: created.credential.key_id.clone(),
                name: name.clone(),
                end: created.credential.end,
            });
            run.step("create").detail = serde_json::json!({
                "name": name,
                "keyId": created.credential.key_id,
                "hint": created.credential.hint,
                "endDateTime": created.credential.end,
            });
            value = Some(created.secret_text);
            self.done(run, "create", StepState::Done)?;
        }
        let cred = run
            .credential
            .clone()
            .ok_or_else(|| StepFailure("the run has no credential".into()))?;

        // --- store (staged: readers keep the current version) --------------------
        if run.steps[1].state != StepState::Done {
            self.begin(
                run,
                "store",
                Some(serde_json::json!({ "vault": vault, "secret": secret })),
            )?;
            let v = value
                .as_ref()
                .ok_or_else(|| StepFailure("the new credential's value is not available".into()))?;
            let mut tags = lockstep_core::Tags::new();
            tags.insert(TAG_KEY_ID.into(), cred.key_id.clone());
            tags.insert(TAG_RUN.into(), run.id.clone());
            tags.insert(TAG_BINDING.into(), b.name.clone());
            let staged = self.vaults.stage(
                &vref,
                secret,
                SetSecret {
                    value: v.clone(),
                    content_type: Some("application/x-client-secret".into()),
                    enabled: Some(true),
                    nbf: None,
                    exp: Some(cred.end),
                    tags: Some(tags),
                    managed: true,
                },
            )?;
            run.version = Some(staged.version.clone());
            run.step("store").detail = serde_json::json!({
                "vault": vault, "secret": secret, "version": staged.version, "exp": cred.end,
            });
            self.done(run, "store", StepState::Done)?;
        }
        let version = run
            .version
            .clone()
            .ok_or_else(|| StepFailure("the run has no stored version".into()))?;

        // --- verify ---------------------------------------------------------------------
        if run.steps[2].state != StepState::Done {
            self.begin(run, "verify", None)?;
            let v = match value.take() {
                Some(v) => v,
                None => self.vaults.value_of(&vref, secret, &version)?,
            };
            let attempts = self.verify(run, b, &v)?;
            run.step("verify").attempts = attempts;
            self.done(run, "verify", StepState::Done)?;
        }

        // --- finish: the new version becomes current ------------------------------
        if run.steps[3].state != StepState::Done {
            if run.previous_key_ids.is_empty() {
                run.previous_key_ids = self.previous_keys(&vref, secret, &version)?;
            }
            self.begin(run, "finish", None)?;
            self.vaults.promote(&vref, secret, &version)?;
            let now = self.clock.unix();
            if let Ok(mut fresh) = self.binding(&b.name) {
                fresh.next_due = schedule::next_due(&b.name, &fresh.policy, now);
                fresh.failures = 0;
                self.store.binding_update(&fresh.to_row())?;
            }
            run.step("finish").detail = serde_json::json!({ "current": version });
            self.done(run, "finish", StepState::Done)?;
            self.events.secret_version_created(
                &b.tenant_id,
                vault,
                secret,
                &version,
                Some(cred.end),
            );
        }

        // --- revoke previous --------------------------------------------------------
        if !matches!(
            run.steps[4].state,
            StepState::Done | StepState::Scheduled | StepState::Skipped
        ) {
            self.revoke_previous(run, b, &app.object_id, &cred.key_id)?;
        }
        Ok(())
    }

    /// Credentials that were current before this run, newest first, from the
    /// tags of the versions before `version`.
    fn previous_keys(
        &self,
        vref: &VaultRef,
        secret: &str,
        version: &str,
    ) -> Result<Vec<String>, StepFailure> {
        let all = self.vaults.all_versions(vref, secret)?;
        let mut keys = Vec::new();
        for v in all.iter().rev().filter(|v| v.version != version) {
            if let Some(k) = v.tags.get(TAG_KEY_ID) {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            if keys.len() == 2 {
                break;
            }
        }
        Ok(keys)
    }

    fn find_run_version(
        &self,
        vref: &VaultRef,
        secret: &str,
        run_id: &str,
    ) -> Result<Option<String>, StepFailure> {
        Ok(self
            .vaults
            .all_versions(vref, secret)?
            .into_iter()
            .find(|v| v.tags.get(TAG_RUN).map(String::as_str) == Some(run_id))
            .map(|v| v.version))
    }

    /// Gets a token with the new secret, retrying with back-off until the
    /// policy's deadline (a new credential may take a moment to work), then
    /// calls the probe URL with it if one is set.
    fn verify(&self, run: &Run, b: &Binding, secret: &str) -> Result<u32, StepFailure> {
        let deadline =
            std::time::Instant::now() + Duration::from_secs(b.policy.verify_timeout.max(1) as u64);
        let mut delay = self.verify_backoff_ms;
        let mut attempts = 0;
        let token = loop {
            self.check_cancel(run)?;
            attempts += 1;
            match self.tokens.client_credentials(
                &b.tenant_id,
                b.app_id(),
                secret,
                "api://lockstep/.default",
            ) {
                Ok(t) => break t.access_token,
                Err(
                    e @ (TokenError::InvalidSecret(_)
                    | TokenError::ExpiredSecret(_)
                    | TokenError::Internal(_)
                    | TokenError::Throttled(_)),
                ) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StepFailure(format!(
                            "verification failed after {attempts} attempts: {e}"
                        )));
                    }
                }
                Err(e) => return Err(StepFailure(format!("verification failed: {e}"))),
            }
            std::thread::sleep(Duration::from_millis(delay));
            delay = (delay * 2).min(5_000);
        };
        if let Some(url) = &b.policy.probe_url {
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|_| StepFailure("no runtime for the probe".into()))?;
            loop {
                self.check_cancel(run)?;
                let status = handle.block_on(async {
                    self.http
                        .get(url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map(|r| r.status())
                });
                match status {
                    Ok(s) if s.is_success() => break,
                    other => {
                        if std::time::Instant::now() >= deadline {
                            return Err(StepFailure(format!("probe {url} failed: {other:?}")));
                        }
                    }
                }
                attempts += 1;
                std::thread::sleep(Duration::from_millis(delay));
                delay = (delay * 2).min(5_000);
            }
        }
        Ok(attempts)
    }

    fn revoke_previous(
        &self,
        run: &mut Run,
        b: &Binding,
        app_object_id: &str,
        new_key: &str,
    ) -> Result<(), StepFailure> {
        let now = self.clock.unix();
        // Overlap: the previous credential goes. Dual-phase: the previous
        // one stays valid for its second interval; the one before it goes.
        // Emergency: everything before goes, at once.
        let mut targets: Vec<String> = match (b.policy.mode, run.revoke_now()) {
            (_, true) => run.previous_key_ids.clone(),
            (Mode::Overlap, false) => run.previous_key_ids.iter().take(1).cloned().collect(),
            (Mode::DualPhase, false) => run
                .previous_key_ids
                .iter()
                .skip(1)
                .take(1)
                .cloned()
                .collect(),
        };
        if let Some(leaked) = &run.leaked_key_id {
            if !targets.contains(leaked) {
                targets.push(leaked.clone());
            }
        }
        targets.retain(|k| k != new_key);
        if targets.is_empty() {
            run.step("revoke-previous").detail = serde_json::json!({ "keys": [] });
            return self.done(run, "revoke-previous", StepState::Skipped);
        }
        if run.revoke_now() {
            self.begin(
                run,
                "revoke-previous",
                Some(serde_json::json!({ "keys": targets, "when": "now" })),
            )?;
            for k in &targets {
                match self.directory.remove_password(app_object_id, k) {
                    Ok(()) => {
                        self.stats.revoked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(DirectoryError::CredentialNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            run.leaked_valid_for_seconds = Some(self.clock.unix() - run.created);
            self.done(run, "revoke-previous", StepState::Done)
        } else {
            let due = now + b.policy.grace_period;
            self.begin(
                run,
                "revoke-previous",
                Some(serde_json::json!({ "keys": targets, "dueAt": due })),
            )?;
            for k in &targets {
                self.store.revocation_upsert(&RevocationRow {
                    key_id: k.clone(),
                    app_object_id: app_object_id.to_owned(),
                    binding: b.name.clone(),
                    run_id: run.id.clone(),
                    due_at: due,
                    done_at: None,
                })?;
            }
            self.done(run, "revoke-previous", StepState::Scheduled)
        }
    }

    // --- scheduler ----------------------------------------------------------------------

    /// Revokes credentials whose grace period has ended; returns how many.
    pub fn revoke_due(&self) -> Result<usize, RotationError> {
        let now = self.clock.unix();
        let due = self.store.revocations_due(now)?;
        let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &due {
            match self.directory.remove_password(&r.app_object_id, &r.key_id) {
                Ok(()) => {
                    self.stats.revoked.fetch_add(1, Ordering::Relaxed);
                }
                Err(DirectoryError::CredentialNotFound(_))
                | Err(DirectoryError::AppNotFound(_)) => {}
                Err(e) => return Err(RotationError::Internal(e.to_string())),
            }
            self.store.revocation_done(&r.key_id, now)?;
            by_run
                .entry(r.run_id.clone())
                .or_default()
                .push(r.key_id.clone());
        }
        for (run_id, _) in by_run {
            if let Ok(mut run) = self.load(&run_id) {
                if run.steps[4].state == StepState::Scheduled {
                    let pending = self
                        .store
                        .revocations_pending()?
                        .iter()
                        .any(|r| r.run_id == run_id);
                    if !pending {
                        run.steps[4].state = StepState::Done;
                        run.steps[4].finished_at = Some(now);
                        self.save(&run)?;
                    }
                }
            }
        }
        Ok(due.len())
    }

    /// Runs that should be executed now: pending or interrupted ones
    /// nobody is driving, and new runs for due bindings (inside their
    /// window, within the per-source concurrency limit, one per binding).
    pub fn due_runs(&self) -> Result<Vec<String>, RotationError> {
        let now = self.clock.unix();
        let driving = lock(&self.driving).clone();
        let active = self.store.runs_active()?;
        let mut out: Vec<String> = active
            .iter()
            .filter(|r| !driving.contains(&r.id))
            .map(|r| r.id.clone())
            .collect();
        let busy: HashSet<&str> = active.iter().map(|r| r.binding.as_str()).collect();
        let due: Vec<Binding> = self
            .store
            .binding_list_due(now)?
            .iter()
            .filter_map(|r| Binding::from_row(r).ok())
            .filter(|b| !busy.contains(b.name.as_str()))
            .collect();
        if due.is_empty() {
            return Ok(out);
        }
        // Runs in progress per source, for the concurrency limit.
        let mut per_source: BTreeMap<String, u32> = BTreeMap::new();
        for name in &busy {
            if let Some(b) = self
                .store
                .binding_get(name)?
                .and_then(|r| Binding::from_row(&r).ok())
            {
                *per_source.entry(b.app_id().to_owned()).or_default() += 1;
            }
        }
        for b in &due {
            if let Some(w) = &b.policy.window {
                if !schedule::in_window(w, now) {
                    let mut moved = b.clone();
                    moved.next_due =
                        schedule::align(w, now, schedule::jitter_offset(&b.name, b.policy.jitter));
                    self.store.binding_update(&moved.to_row())?;
                    continue;
                }
            }
            let count = per_source.entry(b.app_id().to_owned()).or_default();
            if *count >= b.policy.max_concurrent {
                continue;
            }
            match self.request(&b.name, Trigger::Schedule, RevokeMode::AfterGrace, None) {
                Ok(id) => {
                    *count += 1;
                    out.push(id);
                }
                Err(RotationError::Conflict(_)) => {}
                Err(e) => {
                    tracing::warn!(binding = %b.name, error = %e, "could not start a scheduled rotation")
                }
            }
        }
        Ok(out)
    }

    /// Pending revocations (for status).
    pub fn pending_revocations(&self) -> Result<Vec<RevocationRow>, RotationError> {
        Ok(self.store.revocations_pending()?)
    }

    /// Where events go.
    pub(crate) fn events(&self) -> &Arc<dyn EventSink> {
        &self.events
    }

    /// The services the status report reads.
    pub(crate) fn parts(&self) -> (&Arc<Vaults>, &Arc<Directory>, &SharedClock) {
        (&self.vaults, &self.directory, &self.clock)
    }

    /// Sets the first verification retry delay (tests use a short one).
    pub fn set_verify_backoff_ms(&mut self, ms: u64) {
        self.verify_backoff_ms = ms.max(1);
    }
}
