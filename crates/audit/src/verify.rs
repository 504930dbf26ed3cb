//! Walking the chain: every line must be a canonical record whose hash
//! matches its content, whose `seq` follows the previous one and whose
//! `prev` is the hash of the previous line. The first line that fails is
//! named.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::record::{check_line, claimed_seq, sha256_hex, GENESIS};

/// Longest line a reader accepts (records are clipped far below this).
pub(crate) const MAX_LINE: u64 = 1024 * 1024;

/// A log whose chain is intact.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records.
    pub records: u64,
    /// `seq` of the last record (none for an empty log).
    pub last_seq: Option<u64>,
    /// `hash` of the last record: note it down to detect a later truncation.
    pub last_hash: Option<String>,
    /// Bytes read.
    pub bytes: u64,
}

/// The first record that breaks the chain.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line} (seq {}): {reason}", seq.map_or_else(|| "unreadable".to_owned(), |s| s.to_string()))]
pub struct BrokenAt {
    /// 1-based line number.
    pub line: u64,
    /// The `seq` the line claims, when it can be read.
    pub seq: Option<u64>,
    /// What is wrong with it.
    pub reason: String,
}

/// Why verification did not pass.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken.
    #[error("audit log broken at {0}")]
    Broken(BrokenAt),
    /// The file cannot be read.
    #[error("cannot read the audit log: {0}")]
    Io(#[from] std::io::Error),
}

/// Verifies the audit log at `path`.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let file = std::fs::File::open(path)?;
    verify_reader(BufReader::with_capacity(64 * 1024, file))
}

/// Verifies an audit log read from `reader`.
pub fn verify_reader(mut reader: impl BufRead) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport {
        records: 0,
        last_seq: None,
        last_hash: None,
        bytes: 0,
    };
    let mut prev = GENESIS.to_owned();
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(report);
        }
        report.bytes += n as u64;
        let line_no = report.records + 1;
        let broken = |seq: Option<u64>, reason: String| {
            VerifyError::Broken(BrokenAt {
                line: line_no,
                seq,
                reason,
            })
        };
        let Some(line) = buf.strip_suffix(b"\n") else {
            let reason = if n as u64 > MAX_LINE {
                "line is too long to be a record".to_owned()
            } else {
                "incomplete last line (no newline): a crash during a write, an edited \
                 record, or a write in progress (for a running server, use its verify); \
                 the server moves such a tail aside when it next starts"
                    .to_owned()
            };
            return Err(broken(claimed_seq(&buf), reason));
        };
        let record = check_line(line).map_err(|reason| broken(claimed_seq(line), reason))?;
        let expected = report.last_seq.map_or(1, |s| s + 1);
        if record.seq != expected {
            return Err(broken(
                Some(record.seq),
                format!(
                    "seq {} where {expected} was expected (records were removed, inserted or reordered)",
                    record.seq
                ),
            ));
        }
        if record.prev != prev {
            return Err(broken(
                Some(record.seq),
                "prev does not match the hash of the previous line (a record before it was \
                 changed, removed or inserted)"
                    .into(),
            ));
        }
        prev = sha256_hex(line);
        report.records += 1;
        report.last_seq = Some(record.seq);
        report.last_hash = Some(record.hash);
    }
}
