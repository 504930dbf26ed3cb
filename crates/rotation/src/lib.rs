//! The rotation engine: bindings of a credential source to a secret store
//! under a policy, runs as a persisted state machine (create → store →
//! verify → finish → revoke previous), and the scheduler that starts them.
//! No HTTP server here; the server exposes the engine's operations.

pub mod engine;
pub mod policy;
pub mod run;
pub mod schedule;
pub mod status;

pub use engine::{Binding, BindingInput, Engine, EventSink, RevokeMode, RotationError, Trigger};
pub use policy::{Mode, Policy, PolicyInput, Window};
pub use run::{Run, RunState, Step, StepState};
