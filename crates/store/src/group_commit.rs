//! Group commit on the embedded store's one writer connection.
//!
//! SQLite has a single writer, and with `synchronous = FULL` every commit
//! waits for an fsync of the WAL, so committing each write on its own bounds
//! writes per second by fsyncs per second. Instead, writers that queue up
//! while another one holds the connection join the transaction it opened:
//! each runs its work inside its own savepoint (a write that fails undoes
//! only itself), and the last writer in line commits once for the whole
//! group. No writer returns before the commit holding its work has ended:
//! an acknowledged write is durable, and a failed commit fails every write
//! of the group (none of them is acknowledged).
//!
//! Writes of one group see each other's effects, in the order they ran:
//! the result is the same as running them one after the other.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::{StoreError, StoreResult};

/// At most this many writes share one commit, which bounds how long the
/// first of them waits for its acknowledgement.
const MAX_GROUP: usize = 128;
/// Failed groups remembered for their waiting writers.
const FAILED_KEPT: usize = 64;

/// The writer connection and its group commit.
pub(crate) struct GroupWriter {
    state: Mutex<State>,
    committed: Condvar,
    /// Writers waiting for the connection.
    queued: AtomicUsize,
}

struct State {
    conn: Connection,
    /// The group whose transaction is open, and how many writes it holds.
    open: Option<(u64, usize)>,
    next: u64,
    /// Every group up to this one has ended (committed or failed).
    ended: u64,
    /// Groups whose commit failed, newest last.
    failed: VecDeque<(u64, String)>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl GroupWriter {
    pub(crate) fn new(conn: Connection) -> Self {
        Self {
            state: Mutex::new(State {
                conn,
                open: None,
                next: 1,
                ended: 0,
                failed: VecDeque::new(),
            }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in a transaction and returns once that transaction is
    /// committed (with `f`'s result) or has failed (with the error).
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut st = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);

        let group = match st.open {
            Some((group, n)) => {
                st.open = Some((group, n + 1));
                group
            }
            None => {
                st.conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
                let group = st.next;
                st.next += 1;
                st.open = Some((group, 1));
                group
            }
        };

        let outcome = run_in_savepoint(&st.conn, f);

        if st.conn.is_autocommit() {
            // SQLite rolled the whole transaction back (some errors, such as
            // a full disk, do that): the group's earlier writes are lost too.
            let reason = match &outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "the transaction was rolled back".to_owned(),
            };
            self.end(&mut st, group, Some(reason));
        } else {
            let size = st.open.map_or(0, |(_, n)| n);
            if self.queued.load(Ordering::SeqCst) == 0 || size >= MAX_GROUP {
                let failure = exec(&st.conn, "COMMIT").err().map(|e| {
                    // Leave no half-open transaction behind a failed commit.
                    let _ = st.conn.execute_batch("ROLLBACK");
                    e.to_string()
                });
                self.end(&mut st, group, failure);
            } else {
                // The next writer in line joins this group; the last one
                // commits it.
                while st.ended < group {
                    st = self.committed.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            }
        }

        let failure = st
            .failed
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, reason)| reason.clone());
        drop(st);
        match outcome {
            Err(payload) => panic::resume_unwind(payload),
            Ok(result) => match failure {
                Some(reason) if result.is_ok() => {
                    Err(StoreError::Backend(format!("the commit failed: {reason}")))
                }
                _ => result,
            },
        }
    }

    fn end(&self, st: &mut State, group: u64, failure: Option<String>) {
        st.open = None;
        st.ended = group;
        if let Some(reason) = failure {
            if st.failed.len() == FAILED_KEPT {
                st.failed.pop_front();
            }
            st.failed.push_back((group, reason));
        }
        self.committed.notify_all();
    }
}

/// Runs one statement of the write protocol, compiled once per connection.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

type Outcome<T> = Result<StoreResult<T>, Box<dyn std::any::Any + Send>>;

/// Runs `f` inside a savepoint: on error (or panic) only `f`'s own changes
/// are undone, and the surrounding group goes on.
fn run_in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> Outcome<T> {
    if let Err(e) = exec(conn, "SAVEPOINT write") {
        return Ok(Err(backend(e)));
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
    let undo = !matches!(outcome, Ok(Ok(_)));
    if !conn.is_autocommit() {
        let undone = if undo {
            conn.execute_batch("ROLLBACK TO write; RELEASE write")
        } else {
            exec(conn, "RELEASE write")
        };
        if let Err(e) = undone {
            if let Ok(Ok(_)) = outcome {
                return Ok(Err(backend(e)));
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn writer(dir: &tempfile::TempDir) -> GroupWriter {
        let conn = Connection::open(dir.path().join("db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);",
        )
        .unwrap();
        GroupWriter::new(conn)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        Connection::open(dir.path().join("db"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn concurrent_writes_are_all_committed_before_they_return() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(writer(&dir));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let w = w.clone();
                let path = dir.path().join("db");
                std::thread::spawn(move || {
                    let other = Connection::open(path).unwrap();
                    for i in 0..50 {
                        let k = t * 1000 + i;
                        w.write(|c| {
                            c.execute("INSERT INTO t VALUES (?1, 'x')", [k])
                                .map_err(backend)
                        })
                        .unwrap();
                        // Acknowledged means committed: another connection sees it.
                        let seen: i64 = other
                            .query_row("SELECT COUNT(*) FROM t WHERE k = ?1", [k], |r| r.get(0))
                            .unwrap();
                        assert_eq!(seen, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(count(&dir), 800);
    }

    #[test]
    fn a_failing_write_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(writer(&dir));
        w.write(|c| {
            c.execute("INSERT INTO t VALUES (1, 'a')", [])
                .map_err(backend)
        })
        .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let k = 10 + t * 100 + i;
                        let r = w.write(|c| {
                            c.execute("INSERT INTO t VALUES (?1, 'ok')", [k])
                                .map_err(backend)?;
                            if i % 3 == 0 {
                                // Fails after changing something: all of it is undone.
                                c.execute("INSERT INTO t VALUES (1, 'dup')", [])
                                    .map_err(backend)?;
                            }
                            Ok(())
                        });
                        assert_eq!(r.is_err(), i % 3 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // 8 threads × (20 − 7 failing) + the first row.
        assert_eq!(count(&dir), 8 * 13 + 1);
    }

    #[test]
    fn a_panicking_write_undoes_itself_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            w.write(|c| {
                c.execute("INSERT INTO t VALUES (1, 'a')", [])
                    .map_err(backend)?;
                panic!("boom");
                #[allow(unreachable_code)]
                Ok(())
            })
        }));
        assert!(r.is_err());
        w.write(|c| {
            c.execute("INSERT INTO t VALUES (2, 'b')", [])
                .map_err(backend)
        })
        .unwrap();
        assert_eq!(count(&dir), 1);
    }
}
