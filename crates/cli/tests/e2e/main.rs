//! End-to-end tests: the real `lockstep` binary, started by the testkit, driven
//! over HTTP and through the CLI. One test binary; one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod events;
