//! End-to-end tests: the real `lockstep serve` (started by `testkit`) and
//! the real `lockstep` CLI, in one test binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod users;
