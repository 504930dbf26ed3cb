//! A rotation run: a persisted state machine whose steps each record their
//! intent before their side effect.

use serde::{Deserialize, Serialize};

/// The steps of every run, in order.
pub const STEPS: [&str; 5] = ["create", "store", "verify", "finish", "revoke-previous"];

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting to be picked up.
    Pending,
    /// Being executed (or resumed after a restart).
    Running,
    /// Done: the new credential is current.
    Succeeded,
    /// Stopped on an error; what it created was removed.
    Failed,
    /// Cancelled by a user; what it created was removed.
    Cancelled,
}

impl RunState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Whether the run will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }
}

/// The state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// Not started.
    Pending,
    /// Intent recorded; the side effect may or may not have happened.
    Started,
    /// Done.
    Done,
    /// Failed.
    Failed,
    /// Will happen later (revocation after the grace period).
    Scheduled,
    /// Not needed.
    Skipped,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Step name.
    pub name: String,
    /// Its state.
    pub state: StepState,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// How many attempts it took (verification retries).
    #[serde(default)]
    pub attempts: u32,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Step-specific facts (credential name, version, due time…).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// The credential a run created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedCredential {
    /// Credential key id.
    pub key_id: String,
    /// Its display name (`lockstep YYYY-MM-DD r-<run id>`).
    pub name: String,
    /// Its expiry.
    pub end: i64,
}

/// A rotation run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// Run id.
    pub id: String,
    /// Binding name.
    pub binding: String,
    /// State.
    pub state: RunState,
    /// `schedule`, `manual`, `emergency` or `retry`.
    pub trigger: String,
    /// `afterGrace` or `now`.
    pub revoke_previous: String,
    /// A credential reported leaked, revoked at once after the new one works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_key_id: Option<String>,
    /// When the run was requested.
    pub created: i64,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    /// The steps.
    pub steps: Vec<Step>,
    /// The credential this run created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CreatedCredential>,
    /// The vault version this run stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Credentials current before this run, newest first (what revoke-previous acts on).
    #[serde(default)]
    pub previous_key_ids: Vec<String>,
    /// For emergency runs: seconds the leaked credential stayed valid after
    /// the rotation was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_valid_for_seconds: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The run this one retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
}

impl Run {
    /// A new pending run.
    pub fn new(
        id: String,
        binding: &str,
        trigger: &str,
        revoke_now: bool,
        leaked: Option<String>,
        now: i64,
    ) -> Self {
        Self {
            id,
            binding: binding.to_owned(),
            state: RunState::Pending,
            trigger: trigger.to_owned(),
            revoke_previous: if revoke_now { "now" } else { "afterGrace" }.to_owned(),
            leaked_key_id: leaked,
            created: now,
            finished: None,
            steps: STEPS
                .iter()
                .map(|n| Step {
                    name: (*n).to_owned(),
                    state: StepState::Pending,
                    started_at: None,
                    finished_at: None,
                    attempts: 0,
                    error: None,
                    detail: serde_json::Value::Null,
                })
                .collect(),
            credential: None,
            version: None,
            previous_key_ids: Vec::new(),
            leaked_valid_for_seconds: None,
            error: None,
            retry_of: None,
        }
    }

    /// The step named `name`.
    pub fn step(&mut self, name: &str) -> &mut Step {
        let i = STEPS.iter().position(|s| *s == name).unwrap_or(0);
        &mut self.steps[i]
    }

    /// Whether revoking happens at once.
    pub fn revoke_now(&self) -> bool {
        self.revoke_previous == "now"
    }
}
