//! Lockstep's shared vocabulary: names, secret attributes, durations and the
//! clock. No I/O lives here.

pub mod attributes;
pub mod clock;
pub mod duration;
pub mod name;
pub mod remembered;

pub use attributes::{SecretAttributes, SecretLimits, Tags};
pub use clock::{Clock, SharedClock, SystemClock, TestClock};
pub use name::{NameError, SecretName, VaultName, VersionId};
pub use remembered::Remembered;
