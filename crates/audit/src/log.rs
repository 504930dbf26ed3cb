//! The open, append-only audit log of a running server.
//!
//! Writes are serialized by one mutex and handed to the OS (`write(2)`) per
//! call, so a crash of the process loses nothing that was acknowledged.
//! [`AuditLog::sync`] makes them durable (`fdatasync`); the server calls it
//! on a short timer and at shutdown, and intent records are synced before
//! the caller goes on (see [`Durability`]). Syncs are shared: one
//! `fdatasync` makes everything written before it durable, so callers that
//! wait for a sync while another one runs are usually covered by the next
//! one instead of each paying for their own.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use lockstep_core::SharedClock;

use crate::query::{query_reader, Filter, Page, QueryError};
use crate::record::{check_line, claimed_seq, sha256_hex, Entry, Record, GENESIS};
use crate::verify::{verify_reader, BrokenAt, VerifyError, VerifyReport, MAX_LINE};

/// The file name of the audit log in the data directory.
pub const AUDIT_FILE: &str = "audit.log";

/// How durable an append must be before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Written to the OS; synced by the next [`AuditLog::sync`].
    Flushed,
    /// Written and `fdatasync`'d.
    Synced,
}

/// Why the log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file cannot be opened or prepared.
    #[error("cannot open the audit log {path}: {source}")]
    Open {
        /// The log's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The last record cannot be read, so the chain cannot be continued.
    #[error("the audit log {path} cannot be continued: {reason}; check it with `lockstep audit verify --file {path}`")]
    Corrupt {
        /// The log's path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The path no longer names the file this process has open.
    #[error("the audit log {path} was moved, removed or replaced while in use")]
    Replaced {
        /// The log's path.
        path: PathBuf,
    },
    /// Writing or syncing failed.
    #[error("cannot write to the audit log {path}: {source}")]
    Write {
        /// The log's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An earlier failure left the file in a state that cannot be repaired
    /// while running.
    #[error("the audit log {path} is unusable until restart: {reason}")]
    Unavailable {
        /// The log's path.
        path: PathBuf,
        /// The earlier failure.
        reason: String,
    },
    /// A record could not be encoded (does not happen with valid UTF-8).
    #[error("cannot encode an audit record: {0}")]
    Encode(String),
}

/// What opening the log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Records already in the log.
    pub records: u64,
    /// An incomplete last line that was moved aside.
    pub torn_tail: Option<TornTail>,
    /// The file's permissions were wider than 0600 and were narrowed.
    pub narrowed_permissions: bool,
}

/// An incomplete last line found at open (a crash during a write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// How many bytes it had.
    pub bytes: u64,
    /// Where they were saved.
    pub saved_to: PathBuf,
}

/// The end of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    /// `seq` of the last record (0 when empty).
    seq: u64,
    /// `hash` of the last record.
    hash: Option<String>,
    /// SHA-256 of the last line: the next record's `prev`.
    line_hash: String,
    /// File length after the last complete record.
    len: u64,
}

struct Writer {
    file: File,
    head: Head,
    poisoned: Option<String>,
}

/// An open audit log.
pub struct AuditLog {
    path: PathBuf,
    clock: SharedClock,
    writer: Mutex<Writer>,
    /// A second handle on the same open file, for fsync and reads without
    /// holding the writer's lock.
    reader: File,
    identity: (u64, u64),
    /// File length after the last write.
    written: AtomicU64,
    /// File length known durable; its lock is held while syncing.
    synced: Mutex<u64>,
}

/// Reads `[pos, end)` of a file with positioned reads (no shared offset).
struct Snapshot<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Snapshot<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Largest incomplete tail moved aside at open; a longer one is refused.
const MAX_TORN: u64 = 16 * 1024 * 1024;

/// Position of the last `\n` in `[end - limit, end)`, reading backwards.
/// Fails if `limit` bytes were searched without finding one.
fn rfind_newline(file: &File, end: u64, limit: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: u64 = 16 * 1024;
    let stop = end.saturating_sub(limit);
    let mut pos = end;
    let mut buf = vec![0u8; CHUNK as usize];
    while pos > stop {
        let step = CHUNK.min(pos - stop);
        let start = pos - step;
        let chunk = &mut buf[..step as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        pos = start;
    }
    if stop > 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no line end in the last {limit} bytes"),
        ));
    }
    Ok(None)
}

/// The end of the last complete line (0 if none) and that line.
fn last_line(file: &File, len: u64) -> std::io::Result<(u64, Option<Vec<u8>>)> {
    let Some(end) = rfind_newline(file, len, MAX_TORN)? else {
        return Ok((0, None));
    };
    let start = rfind_newline(file, end, MAX_LINE)?.map_or(0, |p| p + 1);
    let mut line = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
    file.read_exact_at(&mut line, start)?;
    Ok((end + 1, Some(line)))
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log at `path` and continues its
    /// chain. An incomplete last line is moved to `<path>.torn-<unix time>`
    /// and recorded as an `AuditTornTailRecovered` event; a last line that is
    /// complete but not a valid record is an error (the log is not touched).
    pub fn open(path: &Path, clock: SharedClock) -> Result<(Self, OpenReport), AuditError> {
        let open_err = |source| AuditError::Open {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        let mut report = OpenReport::default();
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(open_err)?;
            report.narrowed_permissions = true;
        }
        let len = if meta.is_file() { meta.len() } else { 0 };
        let (complete_end, last) = last_line(&file, len).map_err(open_err)?;
        if complete_end < len {
            report.torn_tail = Some(move_aside(path, &file, complete_end, len, &clock)?);
        }
        let head = match last {
            None => Head {
                seq: 0,
                hash: None,
                line_hash: GENESIS.to_owned(),
                len: complete_end,
            },
            Some(line) => {
                let record = check_line(&line).map_err(|reason| AuditError::Corrupt {
                    path: path.to_owned(),
                    reason: format!(
                        "its last record (seq {}) is invalid: {reason}",
                        claimed_seq(&line).map_or_else(|| "?".into(), |s| s.to_string())
                    ),
                })?;
                Head {
                    seq: record.seq,
                    hash: Some(record.hash),
                    line_hash: sha256_hex(&line),
                    len: complete_end,
                }
            }
        };
        report.records = head.seq;
        let len = head.len;
        let reader = file.try_clone().map_err(open_err)?;
        let log = AuditLog {
            path: path.to_owned(),
            clock,
            writer: Mutex::new(Writer {
                file,
                head,
                poisoned: None,
            }),
            reader,
            identity: (meta.dev(), meta.ino()),
            written: AtomicU64::new(len),
            synced: Mutex::new(len),
        };
        if let Some(torn) = &report.torn_tail {
            log.append(
                &[Entry::system(
                    "AuditTornTailRecovered",
                    &torn.saved_to.display().to_string(),
                )],
                Durability::Synced,
            )?;
        }
        Ok((log, report))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks that the path still names the file this log has open.
    pub fn check_identity(&self) -> Result<(), AuditError> {
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.identity => Ok(()),
            _ => Err(AuditError::Replaced {
                path: self.path.clone(),
            }),
        }
    }

    /// Appends `entries` as consecutive records, all or none. Returns the
    /// `seq` of the last one.
    pub fn append(&self, entries: &[Entry], durability: Durability) -> Result<u64, AuditError> {
        // Everything that does not depend on the chain's head is done before
        // taking the writer's lock, which every request waits for.
        self.check_identity()?;
        let now = self.clock.now();
        let prepared = entries
            .iter()
            .map(|e| Record::prepare(e, now))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuditError::Encode(e.to_string()))?;
        let mut w = self.lock();
        if let Some(reason) = &w.poisoned {
            return Err(AuditError::Unavailable {
                path: self.path.clone(),
                reason: reason.clone(),
            });
        }
        let mut head = w.head.clone();
        let mut buf = Vec::with_capacity(512 * entries.len());
        for record in &prepared {
            let (line, hash) = record.line(head.seq + 1, &head.line_hash);
            head.seq += 1;
            head.line_hash = sha256_hex(&line);
            head.hash = Some(hash);
            buf.extend_from_slice(&line);
            buf.push(b'\n');
        }
        head.len += buf.len() as u64;
        if let Err(source) = write_all(&mut w, &buf) {
            return Err(AuditError::Write {
                path: self.path.clone(),
                source,
            });
        }
        let seq = head.seq;
        let end = head.len;
        w.head = head;
        self.written.fetch_max(end, Ordering::AcqRel);
        drop(w);
        if durability == Durability::Synced {
            self.sync_to(end)?;
        }
        Ok(seq)
    }

    /// Makes every record written so far durable (no-op when nothing new
    /// was written). A failed sync makes the log unusable until restart:
    /// after a failed `fsync` the OS may have dropped the data.
    pub fn sync(&self) -> Result<(), AuditError> {
        self.sync_to(self.written.load(Ordering::Acquire))
    }

    /// Makes the file durable at least up to `end`. Whoever holds the lock
    /// syncs everything written so far, so callers queued behind it find
    /// their records already durable.
    fn sync_to(&self, end: u64) -> Result<(), AuditError> {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= end {
            return Ok(());
        }
        if let Some(reason) = &self.lock().poisoned {
            return Err(AuditError::Unavailable {
                path: self.path.clone(),
                reason: reason.clone(),
            });
        }
        let target = self.written.load(Ordering::Acquire);
        self.reader.sync_data().map_err(|source| {
            self.lock().poisoned = Some(format!("fsync failed: {source}"));
            AuditError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        *synced = target;
        Ok(())
    }

    /// `seq` of the last record written (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.lock().head.seq
    }

    fn snapshot(&self) -> (Head, BufReader<Snapshot<'_>>) {
        let head = self.lock().head.clone();
        let reader = BufReader::with_capacity(
            64 * 1024,
            Snapshot {
                file: &self.reader,
                pos: 0,
                end: head.len,
            },
        );
        (head, reader)
    }

    /// Queries the records written so far.
    pub fn query(&self, filter: &Filter) -> Result<Page, QueryError> {
        let (_, reader) = self.snapshot();
        query_reader(reader, filter)
    }

    /// Verifies the chain of the open file up to the last record this
    /// process wrote, and that the file still ends with that record (so a
    /// truncation of the tail is detected too).
    pub fn verify(&self) -> Result<VerifyReport, VerifyError> {
        let (head, reader) = self.snapshot();
        let report = verify_reader(reader)?;
        let broken = |reason: String| {
            VerifyError::Broken(BrokenAt {
                line: report.records,
                seq: report.last_seq,
                reason,
            })
        };
        if report.bytes < head.len {
            return Err(broken(format!(
                "the file ends after {} bytes but this server wrote {} (records were removed from the end)",
                report.bytes, head.len
            )));
        }
        if report.last_seq.unwrap_or(0) != head.seq || report.last_hash != head.hash {
            return Err(broken(format!(
                "the last record is not the last record this server wrote (seq {}); the tail was rewritten",
                head.seq
            )));
        }
        if self.check_identity().is_err() {
            return Err(VerifyError::Broken(BrokenAt {
                line: 0,
                seq: None,
                reason: format!(
                    "{} is no longer the file this server writes to (moved, removed or replaced)",
                    self.path.display()
                ),
            }));
        }
        Ok(report)
    }
}

/// Writes `buf` at the end of the log. On failure, cuts the file back to
/// the last complete record so that the chain stays continuable; if even
/// that fails, the log is poisoned.
fn write_all(w: &mut Writer, buf: &[u8]) -> std::io::Result<()> {
    let mut written = 0;
    while written < buf.len() {
        match w.file.write(&buf[written..]) {
            Ok(0) => {
                return finish_failed(
                    w,
                    written,
                    std::io::Error::new(std::io::ErrorKind::WriteZero, "no bytes written"),
                )
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return finish_failed(w, written, e),
        }
    }
    Ok(())
}

fn finish_failed(w: &mut Writer, written: usize, e: std::io::Error) -> std::io::Result<()> {
    if written > 0 {
        if let Err(cut) = w.file.set_len(w.head.len) {
            w.poisoned = Some(format!(
                "a failed write left a partial record that could not be removed ({e}; {cut})"
            ));
        }
    }
    Err(e)
}

fn move_aside(
    path: &Path,
    file: &File,
    complete_end: u64,
    len: u64,
    clock: &SharedClock,
) -> Result<TornTail, AuditError> {
    let open_err = |source| AuditError::Open {
        path: path.to_owned(),
        source,
    };
    let mut torn = vec![0u8; usize::try_from(len - complete_end).unwrap_or(0)];
    file.read_exact_at(&mut torn, complete_end)
        .map_err(open_err)?;
    let name = format!(
        "{}.torn-{}",
        path.file_name()
            .map_or_else(|| AUDIT_FILE.into(), |n| n.to_string_lossy()),
        clock.unix()
    );
    let saved_to = path.with_file_name(name);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&saved_to)
        .map_err(open_err)?;
    out.write_all(&torn)
        .and_then(|_| out.sync_all())
        .map_err(open_err)?;
    file.set_len(complete_end).map_err(open_err)?;
    file.sync_all().map_err(open_err)?;
    Ok(TornTail {
        bytes: torn.len() as u64,
        saved_to,
    })
}
