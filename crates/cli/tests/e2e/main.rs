//! End-to-end tests: each test starts the real `lockstep serve` (through
//! `lockstep-testkit`) on a free port with its own temporary data directory
//! and talks to it over TLS, as a client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent;
mod client;
mod consumers;
mod watch;
