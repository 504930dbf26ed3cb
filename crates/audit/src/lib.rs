//! The tamper-evident audit log: an append-only JSON-lines file in which
//! every record carries the SHA-256 of the previous line, so that
//! [`verify`] names the first record that was edited, removed or inserted.
//! No HTTP here: the server decides what a request's record says; this
//! crate writes, chains, verifies and searches records. See `docs/audit.md`.

mod log;
mod query;
mod record;
mod verify;

pub use log::{AuditError, AuditLog, Durability, OpenReport, TornTail, AUDIT_FILE};
pub use query::{query_file, query_reader, Filter, Page, QueryError, MAX_LIMIT};
pub use record::{
    format_time, parse_time, sha256_hex, Entry, Outcome, PrincipalKind, Record, RecordResult,
    RecordType, GENESIS, MAX_FIELD, NONE,
};
pub use verify::{verify, verify_reader, BrokenAt, VerifyError, VerifyReport};

#[cfg(test)]
mod tests;
