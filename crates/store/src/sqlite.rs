//! The embedded store: SQLite in WAL mode. One writer connection with group
//! commit (SQLite allows one writer anyway; concurrent writes share one
//! fsync'd commit, see `group_commit`) and a pool of reader connections, so
//! reads run in parallel and never wait for a write to commit.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::group_commit::GroupWriter;
use crate::*;

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_rotation.sql"),
    include_str!("../migrations/sqlite/0003_users.sql"),
    include_str!("../migrations/sqlite/0004_events.sql"),
    include_str!("../migrations/sqlite/0005_due_bindings.sql"),
];
const MAX_IDLE_READERS: usize = 32;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    writer: GroupWriter,
    readers: Mutex<Vec<Connection>>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        create_private_file(path)?;
        let conn = Connection::open(path).map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;",
        )
        .map_err(backend)?;
        configure(&conn)?;
        migrate(&conn)?;
        Ok(Self {
            path: path.to_owned(),
            writer: GroupWriter::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn open_reader(&self) -> StoreResult<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend)?;
        conn.execute_batch("PRAGMA busy_timeout = 10000;")
            .map_err(backend)?;
        configure(&conn)?;
        Ok(conn)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open_reader()?,
        };
        let result = f(&conn).map_err(backend);
        let mut pool = lock(&self.readers);
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        result
    }

    /// Runs `f` in a write transaction; returns once it is committed.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.writer.write(f)
    }
}

/// Settings of every connection. The query planner stability guarantee
/// (QPSG) keeps cached statements compiled: without it SQLite marks a
/// statement whose plan might depend on a bound value as expired whenever
/// its bindings are cleared (which the statement cache does after each use),
/// and re-prepares it at its next use. The read of a secret's latest
/// version was compiled anew on every request that way (a fifth of the CPU
/// time of a GET). Lockstep's queries are all keyed lookups whose plan does
/// not depend on the values.
fn configure(conn: &Connection) -> StoreResult<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(backend)?;
    Ok(())
}

/// Creates the database file with owner-only permissions before SQLite
/// opens it, so that it (and the WAL/SHM files SQLite derives from it) are
/// never world-readable.
fn create_private_file(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))
}

fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
    )
    .map_err(backend)?;
    let applied: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if applied as usize > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database schema (version {applied}) is newer than this build of Lockstep supports"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = i as i64 + 1;
        let tx = conn.unchecked_transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            [version],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

const VERSION_COLS: &str = "v.vault, v.name_key, s.name, v.seq, v.version, v.enabled, v.nbf, v.exp, \
     v.created, v.updated, v.content_type, v.tags, v.managed, v.kek_id, v.wrapped_dek, v.ciphertext, \
     v.previous_version";

/// The read of a secret's latest version (the hot path of every GET).
fn version_latest_sql() -> String {
    format!(
        "SELECT {VERSION_COLS} FROM secrets s JOIN secret_versions v
           ON v.vault = s.vault AND v.name_key = s.name_key AND v.seq = s.latest_seq
         WHERE s.vault = ?1 AND s.name_key = ?2 AND s.deleted_at IS NULL"
    )
}

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<VersionRow> {
    let tags: String = r.get(11)?;
    Ok(VersionRow {
        vault: r.get(0)?,
        name_key: r.get(1)?,
        name: r.get(2)?,
        seq: r.get(3)?,
        version: r.get(4)?,
        enabled: r.get(5)?,
        nbf: r.get(6)?,
        exp: r.get(7)?,
        created: r.get(8)?,
        updated: r.get(9)?,
        content_type: r.get(10)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        managed: r.get(12)?,
        kek_id: r.get(13)?,
        wrapped_dek: r.get(14)?,
        ciphertext: r.get(15)?,
        previous_version: r.get(16)?,
    })
}

fn secret_from_row(r: &Row<'_>) -> rusqlite::Result<SecretRow> {
    let latest = version_from_row(r)?;
    let deleted_at: Option<i64> = r.get(17)?;
    let purge_at: Option<i64> = r.get(18)?;
    Ok(SecretRow {
        latest,
        deleted: deleted_at.map(|d| Deletion {
            deleted_at: d,
            purge_at: purge_at.unwrap_or(d),
        }),
    })
}

fn tags_json(tags: &lockstep_core::Tags) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "{}".into())
}

fn insert_version_row(
    tx: &Connection,
    v: &VersionRow,
    seq: i64,
    previous: Option<&str>,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO secret_versions (vault, name_key, seq, version, enabled, nbf, exp, created, updated,
             content_type, tags, managed, kek_id, wrapped_dek, ciphertext, previous_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )
    .and_then(|mut st| {
        st.execute(params![
            v.vault,
            v.name_key,
            seq,
            v.version,
            v.enabled,
            v.nbf,
            v.exp,
            v.created,
            v.updated,
            v.content_type,
            tags_json(&v.tags),
            v.managed,
            v.kek_id,
            v.wrapped_dek,
            v.ciphertext,
            previous
        ])
    })
    .map_err(backend)?;
    Ok(())
}

fn role_assignment_from_row(r: &Row<'_>) -> rusqlite::Result<RoleAssignmentRow> {
    Ok(RoleAssignmentRow {
        id: r.get(0)?,
        principal_id: r.get(1)?,
        role: r.get(2)?,
        scope: r.get(3)?,
        created: r.get(4)?,
    })
}

fn sp_from_row(r: &Row<'_>) -> rusqlite::Result<ServicePrincipalRow> {
    Ok(ServicePrincipalRow {
        object_id: r.get(0)?,
        tenant_id: r.get(1)?,
        app_id: r.get(2)?,
        display_name: r.get(3)?,
        created: r.get(4)?,
    })
}

fn app_from_row(r: &Row<'_>) -> rusqlite::Result<AppRow> {
    Ok(AppRow {
        object_id: r.get(0)?,
        tenant_id: r.get(1)?,
        app_id: r.get(2)?,
        display_name: r.get(3)?,
        created: r.get(4)?,
    })
}

const USER_COLS: &str = "object_id, tenant_id, user_principal_name, display_name, password_hash, \
     enabled, created, updated, password_changed";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        object_id: r.get(0)?,
        tenant_id: r.get(1)?,
        user_principal_name: r.get(2)?,
        display_name: r.get(3)?,
        password_hash: r.get(4)?,
        enabled: r.get(5)?,
        created: r.get(6)?,
        updated: r.get(7)?,
        password_changed: r.get(8)?,
    })
}

const SUBSCRIPTION_COLS: &str =
    "id, tenant_id, name, endpoint, event_types, subject_prefix, kek_id, \
     wrapped_dek, sealed_secret, enabled, created, updated";

fn subscription_from_row(r: &Row<'_>) -> rusqlite::Result<SubscriptionRow> {
    let types: String = r.get(4)?;
    Ok(SubscriptionRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        endpoint: r.get(3)?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        subject_prefix: r.get(5)?,
        kek_id: r.get(6)?,
        wrapped_dek: r.get(7)?,
        sealed_secret: r.get(8)?,
        enabled: r.get(9)?,
        created: r.get(10)?,
        updated: r.get(11)?,
    })
}

fn strings_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

const DELIVERY_COLS: &str =
    "d.id, d.event_id, e.event_type, e.subject, d.subscription_id, d.state, \
     d.attempts, d.next_attempt_at, d.created, d.updated";

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    let state: String = r.get(5)?;
    Ok(DeliveryRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        event_type: r.get(2)?,
        subject: r.get(3)?,
        subscription_id: r.get(4)?,
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Failed),
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        created: r.get(8)?,
        updated: r.get(9)?,
    })
}

fn attempt_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryAttemptRow> {
    let status: Option<i64> = r.get(3)?;
    Ok(DeliveryAttemptRow {
        delivery_id: r.get(0)?,
        attempt: r.get(1)?,
        time: r.get(2)?,
        status_code: status.and_then(|s| u16::try_from(s).ok()),
        error: r.get(4)?,
        duration_ms: r.get(5)?,
    })
}

/// The `event_once` key of an expiry notice, computed in SQL so that the
/// scan and the record of what was published agree:
/// `{near-expiry|expired}/{vault}/{name_key}/{version}/{exp}`.
const EXPIRY_KEY_SQL: &str = "(CASE WHEN v.exp <= ?1 THEN 'expired/' ELSE 'near-expiry/' END \
     || v.vault || '/' || v.name_key || '/' || v.version || '/' || v.exp)";

impl Store for SqliteStore {
    fn meta_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    fn meta_put_new(&self, key: &str, value: &[u8]) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    params![key, value],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn tenant_create(&self, t: &TenantRow) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO tenants (id, display_name, created) VALUES (?1, ?2, ?3)",
                params![t.id, t.display_name, t.created],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn tenant_get(&self, id: &str) -> StoreResult<Option<TenantRow>> {
        self.read(|c| {
            c.prepare_cached("SELECT id, display_name, created FROM tenants WHERE id = ?1")?
                .query_row([id], |r| {
                    Ok(TenantRow {
                        id: r.get(0)?,
                        display_name: r.get(1)?,
                        created: r.get(2)?,
                    })
                })
                .optional()
        })
    }

    fn tenant_list(&self) -> StoreResult<Vec<TenantRow>> {
        self.read(|c| {
            c.prepare_cached("SELECT id, display_name, created FROM tenants ORDER BY created, id")?
                .query_map([], |r| {
                    Ok(TenantRow {
                        id: r.get(0)?,
                        display_name: r.get(1)?,
                        created: r.get(2)?,
                    })
                })?
                .collect()
        })
    }

    fn vault_create(&self, v: &VaultRow) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO vaults (name, tenant_id, created) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO NOTHING",
                    params![v.name, v.tenant_id, v.created],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::AlreadyExists)
            } else {
                Ok(())
            }
        })
    }

    fn vault_get(&self, name: &str) -> StoreResult<Option<VaultRow>> {
        self.read(|c| {
            c.prepare_cached("SELECT name, tenant_id, created FROM vaults WHERE name = ?1")?
                .query_row([name], |r| {
                    Ok(VaultRow {
                        name: r.get(0)?,
                        tenant_id: r.get(1)?,
                        created: r.get(2)?,
                    })
                })
                .optional()
        })
    }

    fn vault_list(&self) -> StoreResult<Vec<VaultRow>> {
        self.read(|c| {
            c.prepare_cached("SELECT name, tenant_id, created FROM vaults ORDER BY name")?
                .query_map([], |r| {
                    Ok(VaultRow {
                        name: r.get(0)?,
                        tenant_id: r.get(1)?,
                        created: r.get(2)?,
                    })
                })?
                .collect()
        })
    }

    fn vault_delete(&self, name: &str) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM secret_versions WHERE vault = ?1", [name])
                .map_err(backend)?;
            tx.execute("DELETE FROM secrets WHERE vault = ?1", [name])
                .map_err(backend)?;
            let n = tx
                .execute("DELETE FROM vaults WHERE name = ?1", [name])
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn version_insert(&self, v: &VersionRow) -> StoreResult<i64> {
        self.write(|tx| {
            let existing: Option<(i64, Option<i64>)> = tx
                .prepare_cached(
                    "SELECT latest_seq, deleted_at FROM secrets WHERE vault = ?1 AND name_key = ?2",
                )
                .and_then(|mut st| {
                    st.query_row(params![v.vault, v.name_key], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(backend)?;
            let (seq, previous) = match existing {
                Some((_, Some(_))) => return Err(StoreError::DeletedButRecoverable),
                Some((latest, None)) => {
                    let max_seq: i64 = tx
                        .prepare_cached(
                            "SELECT COALESCE(MAX(seq), 0) FROM secret_versions WHERE vault = ?1 AND name_key = ?2",
                        )
                        .and_then(|mut st| st.query_row(params![v.vault, v.name_key], |r| r.get(0)))
                        .map_err(backend)?;
                    let next = max_seq.max(latest) + 1;
                    let previous: Option<String> = tx
                        .prepare_cached(
                            "SELECT version FROM secret_versions WHERE vault = ?1 AND name_key = ?2 AND seq = ?3",
                        )
                        .and_then(|mut st| {
                            st.query_row(params![v.vault, v.name_key, latest], |r| r.get(0))
                                .optional()
                        })
                        .map_err(backend)?;
                    tx.prepare_cached(
                        "UPDATE secrets SET latest_seq = ?3 WHERE vault = ?1 AND name_key = ?2",
                    )
                    .and_then(|mut st| st.execute(params![v.vault, v.name_key, next]))
                    .map_err(backend)?;
                    (next, previous)
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO secrets (vault, name_key, name, latest_seq) VALUES (?1, ?2, ?3, 1)",
                    )
                    .and_then(|mut st| st.execute(params![v.vault, v.name_key, v.name]))
                    .map_err(backend)?;
                    (1, None)
                }
            };
            insert_version_row(tx, v, seq, previous.as_deref())?;
            Ok(seq)
        })
    }

    fn version_latest(&self, vault: &str, name_key: &str) -> StoreResult<Option<VersionRow>> {
        self.read(|c| {
            c.prepare_cached(&version_latest_sql())?
                .query_row([vault, name_key], version_from_row)
                .optional()
        })
    }

    fn version_get(
        &self,
        vault: &str,
        name_key: &str,
        version: &str,
    ) -> StoreResult<Option<VersionRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {VERSION_COLS} FROM secrets s JOIN secret_versions v
                   ON v.vault = s.vault AND v.name_key = s.name_key
                 WHERE s.vault = ?1 AND s.name_key = ?2 AND v.version = ?3 AND s.deleted_at IS NULL"
            ))?
            .query_row([vault, name_key, version], version_from_row)
            .optional()
        })
    }

    fn version_update(&self, v: &VersionRow) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE secret_versions SET enabled = ?4, nbf = ?5, exp = ?6, content_type = ?7,
                         tags = ?8, updated = ?9
                     WHERE vault = ?1 AND name_key = ?2 AND version = ?3",
                    params![
                        v.vault,
                        v.name_key,
                        v.version,
                        v.enabled,
                        v.nbf,
                        v.exp,
                        v.content_type,
                        tags_json(&v.tags),
                        v.updated
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn secret_list(
        &self,
        vault: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<SecretRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {VERSION_COLS}, s.deleted_at, s.purge_at FROM secrets s JOIN secret_versions v
                   ON v.vault = s.vault AND v.name_key = s.name_key AND v.seq = s.latest_seq
                 WHERE s.vault = ?1 AND s.deleted_at IS NULL AND s.name_key > ?2
                 ORDER BY s.name_key LIMIT ?3"
            ))?
            .query_map(params![vault, after.unwrap_or(""), limit as i64], secret_from_row)?
            .collect()
        })
    }

    fn version_list(
        &self,
        vault: &str,
        name_key: &str,
        after_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<VersionRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {VERSION_COLS} FROM secrets s JOIN secret_versions v
                   ON v.vault = s.vault AND v.name_key = s.name_key
                 WHERE s.vault = ?1 AND s.name_key = ?2 AND s.deleted_at IS NULL AND v.seq > ?3
                 ORDER BY v.seq LIMIT ?4"
            ))?
            .query_map(
                params![vault, name_key, after_seq.unwrap_or(0), limit as i64],
                version_from_row,
            )?
            .collect()
        })
    }

    fn secret_get(&self, vault: &str, name_key: &str) -> StoreResult<Option<SecretRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {VERSION_COLS}, s.deleted_at, s.purge_at FROM secrets s JOIN secret_versions v
                   ON v.vault = s.vault AND v.name_key = s.name_key AND v.seq = s.latest_seq
                 WHERE s.vault = ?1 AND s.name_key = ?2"
            ))?
            .query_row([vault, name_key], secret_from_row)
            .optional()
        })
    }

    fn secret_delete(
        &self,
        vault: &str,
        name_key: &str,
        deleted_at: i64,
        purge_at: i64,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE secrets SET deleted_at = ?3, purge_at = ?4
                     WHERE vault = ?1 AND name_key = ?2 AND deleted_at IS NULL",
                    params![vault, name_key, deleted_at, purge_at],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn deleted_list(
        &self,
        vault: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<SecretRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {VERSION_COLS}, s.deleted_at, s.purge_at FROM secrets s JOIN secret_versions v
                   ON v.vault = s.vault AND v.name_key = s.name_key AND v.seq = s.latest_seq
                 WHERE s.vault = ?1 AND s.deleted_at IS NOT NULL AND s.name_key > ?2
                 ORDER BY s.name_key LIMIT ?3"
            ))?
            .query_map(params![vault, after.unwrap_or(""), limit as i64], secret_from_row)?
            .collect()
        })
    }

    fn secret_recover(&self, vault: &str, name_key: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE secrets SET deleted_at = NULL, purge_at = NULL
                     WHERE vault = ?1 AND name_key = ?2 AND deleted_at IS NOT NULL",
                    params![vault, name_key],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn secret_purge(&self, vault: &str, name_key: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "DELETE FROM secrets WHERE vault = ?1 AND name_key = ?2 AND deleted_at IS NOT NULL",
                    params![vault, name_key],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute(
                "DELETE FROM secret_versions WHERE vault = ?1 AND name_key = ?2",
                params![vault, name_key],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn purge_expired(&self, now: i64) -> StoreResult<usize> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM secret_versions WHERE (vault, name_key) IN
                   (SELECT vault, name_key FROM secrets WHERE deleted_at IS NOT NULL AND purge_at <= ?1)",
                [now],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM secrets WHERE deleted_at IS NOT NULL AND purge_at <= ?1",
                [now],
            )
            .map_err(backend)
        })
    }

    fn version_list_any(&self, vault: &str, name_key: &str) -> StoreResult<Vec<VersionRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {VERSION_COLS} FROM secrets s JOIN secret_versions v
                   ON v.vault = s.vault AND v.name_key = s.name_key
                 WHERE s.vault = ?1 AND s.name_key = ?2 ORDER BY v.seq"
            ))?
            .query_map([vault, name_key], version_from_row)?
            .collect()
        })
    }

    fn version_all(&self, vault: &str, name_key: &str) -> StoreResult<Vec<VersionRow>> {
        self.version_list(vault, name_key, None, usize::MAX >> 2)
    }

    fn secret_restore(&self, versions: &[VersionRow]) -> StoreResult<()> {
        let Some(first) = versions.first() else {
            return Err(StoreError::NotFound);
        };
        self.write(|tx| {
            let existing: Option<Option<i64>> = tx
                .query_row(
                    "SELECT deleted_at FROM secrets WHERE vault = ?1 AND name_key = ?2",
                    params![first.vault, first.name_key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            match existing {
                Some(Some(_)) => return Err(StoreError::DeletedButRecoverable),
                Some(None) => return Err(StoreError::AlreadyExists),
                None => {}
            }
            let latest = versions.iter().map(|v| v.seq).max().unwrap_or(1);
            tx.execute(
                "INSERT INTO secrets (vault, name_key, name, latest_seq) VALUES (?1, ?2, ?3, ?4)",
                params![first.vault, first.name_key, first.name, latest],
            )
            .map_err(backend)?;
            for v in versions {
                insert_version_row(tx, v, v.seq, v.previous_version.as_deref())?;
            }
            Ok(())
        })
    }

    fn app_create(&self, app: &AppRow, sp: &ServicePrincipalRow) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO apps (object_id, tenant_id, app_id, display_name, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![app.object_id, app.tenant_id, app.app_id, app.display_name, app.created],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO service_principals (object_id, tenant_id, app_id, display_name, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sp.object_id, sp.tenant_id, sp.app_id, sp.display_name, sp.created],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn app_by_app_id(&self, app_id: &str) -> StoreResult<Option<AppRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT object_id, tenant_id, app_id, display_name, created FROM apps
                 WHERE app_id = ?1 AND deleted_at IS NULL",
            )?
            .query_row([app_id], app_from_row)
            .optional()
        })
    }

    fn app_by_object_id(&self, object_id: &str) -> StoreResult<Option<AppRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT object_id, tenant_id, app_id, display_name, created FROM apps
                 WHERE object_id = ?1 AND deleted_at IS NULL",
            )?
            .query_row([object_id], app_from_row)
            .optional()
        })
    }

    fn app_list(
        &self,
        tenant_id: &str,
        display_name: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AppRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT object_id, tenant_id, app_id, display_name, created FROM apps
                 WHERE tenant_id = ?1 AND deleted_at IS NULL AND (?2 IS NULL OR display_name = ?2)
                   AND object_id > ?3
                 ORDER BY object_id LIMIT ?4",
            )?
            .query_map(
                params![tenant_id, display_name, after.unwrap_or(""), limit as i64],
                app_from_row,
            )?
            .collect()
        })
    }

    fn app_rename(&self, object_id: &str, display_name: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE apps SET display_name = ?2 WHERE object_id = ?1 AND deleted_at IS NULL",
                    params![object_id, display_name],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute(
                "UPDATE service_principals SET display_name = ?2
                 WHERE app_id = (SELECT app_id FROM apps WHERE object_id = ?1)",
                params![object_id, display_name],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn app_soft_delete(&self, object_id: &str, now: i64) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE apps SET deleted_at = ?2 WHERE object_id = ?1 AND deleted_at IS NULL",
                    params![object_id, now],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn app_list_deleted(&self, tenant_id: &str, since: i64) -> StoreResult<Vec<(AppRow, i64)>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT object_id, tenant_id, app_id, display_name, created, deleted_at FROM apps
                 WHERE tenant_id = ?1 AND deleted_at IS NOT NULL AND deleted_at >= ?2 ORDER BY deleted_at DESC",
            )?
            .query_map(params![tenant_id, since], |r| Ok((app_from_row(r)?, r.get(5)?)))?
            .collect()
        })
    }

    fn app_restore(&self, object_id: &str, since: i64) -> StoreResult<AppRow> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE apps SET deleted_at = NULL
                     WHERE object_id = ?1 AND deleted_at IS NOT NULL AND deleted_at >= ?2",
                    params![object_id, since],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.query_row(
                "SELECT object_id, tenant_id, app_id, display_name, created FROM apps WHERE object_id = ?1",
                [object_id],
                app_from_row,
            )
            .map_err(backend)
        })
    }

    fn sp_by_app_id(&self, app_id: &str) -> StoreResult<Option<ServicePrincipalRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT object_id, tenant_id, app_id, display_name, created FROM service_principals WHERE app_id = ?1",
            )?
            .query_row([app_id], sp_from_row)
            .optional()
        })
    }

    fn sp_by_object_id(&self, object_id: &str) -> StoreResult<Option<ServicePrincipalRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT object_id, tenant_id, app_id, display_name, created FROM service_principals WHERE object_id = ?1",
            )?
            .query_row([object_id], sp_from_row)
            .optional()
        })
    }

    fn credential_insert(&self, c: &CredentialRow) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO password_credentials (key_id, app_object_id, display_name, hint, salt, hash,
                     start_time, end_time, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![c.key_id, c.app_object_id, c.display_name, c.hint, c.salt, c.hash, c.start, c.end, c.created],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn credential_list(&self, app_object_id: &str) -> StoreResult<Vec<CredentialRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT key_id, app_object_id, display_name, hint, salt, hash, start_time, end_time, created
                 FROM password_credentials WHERE app_object_id = ?1 ORDER BY created, key_id",
            )?
            .query_map([app_object_id], |r| {
                Ok(CredentialRow {
                    key_id: r.get(0)?,
                    app_object_id: r.get(1)?,
                    display_name: r.get(2)?,
                    hint: r.get(3)?,
                    salt: r.get(4)?,
                    hash: r.get(5)?,
                    start: r.get(6)?,
                    end: r.get(7)?,
                    created: r.get(8)?,
                })
            })?
            .collect()
        })
    }

    fn credential_delete(&self, app_object_id: &str, key_id: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "DELETE FROM password_credentials WHERE app_object_id = ?1 AND key_id = ?2",
                    params![app_object_id, key_id],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn signing_key_insert(&self, k: &SigningKeyRow) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO signing_keys (kid, created, kek_id, wrapped_dek, sealed_pkcs8, retired_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.kid, k.created, k.kek_id, k.wrapped_dek, k.sealed_pkcs8, k.retired_at],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn signing_key_rotate(&self, k: &SigningKeyRow, retire_at: i64) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                [retire_at],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO signing_keys (kid, created, kek_id, wrapped_dek, sealed_pkcs8, retired_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                params![k.kid, k.created, k.kek_id, k.wrapped_dek, k.sealed_pkcs8],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn signing_key_list(&self) -> StoreResult<Vec<SigningKeyRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT kid, created, kek_id, wrapped_dek, sealed_pkcs8, retired_at FROM signing_keys ORDER BY created, rowid",
            )?
            .query_map([], |r| {
                Ok(SigningKeyRow {
                    kid: r.get(0)?,
                    created: r.get(1)?,
                    kek_id: r.get(2)?,
                    wrapped_dek: r.get(3)?,
                    sealed_pkcs8: r.get(4)?,
                    retired_at: r.get(5)?,
                })
            })?
            .collect()
        })
    }

    fn role_assignment_insert(&self, ra: &RoleAssignmentRow) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO role_assignments (id, principal_id, role, scope, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ra.id, ra.principal_id, ra.role, ra.scope, ra.created],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn role_assignments_for(&self, principal_id: &str) -> StoreResult<Vec<RoleAssignmentRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, principal_id, role, scope, created FROM role_assignments WHERE principal_id = ?1",
            )?
            .query_map([principal_id], role_assignment_from_row)?
            .collect()
        })
    }

    fn role_assignment_delete(&self, id: &str) -> StoreResult<RoleAssignmentRow> {
        self.write(|tx| {
            let row = tx
                .query_row(
                    "SELECT id, principal_id, role, scope, created FROM role_assignments WHERE id = ?1",
                    [id],
                    role_assignment_from_row,
                )
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            tx.execute("DELETE FROM role_assignments WHERE id = ?1", [id])
                .map_err(backend)?;
            Ok(row)
        })
    }

    fn role_assignment_list(&self) -> StoreResult<Vec<RoleAssignmentRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, principal_id, role, scope, created FROM role_assignments ORDER BY created, id",
            )?
            .query_map([], role_assignment_from_row)?
            .collect()
        })
    }

    fn version_insert_staged(&self, v: &VersionRow) -> StoreResult<i64> {
        self.write(|tx| {
            let existing: Option<(i64, Option<i64>)> = tx
                .query_row(
                    "SELECT latest_seq, deleted_at FROM secrets WHERE vault = ?1 AND name_key = ?2",
                    params![v.vault, v.name_key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            let latest = match existing {
                Some((_, Some(_))) => return Err(StoreError::DeletedButRecoverable),
                Some((latest, None)) => latest,
                None => {
                    tx.execute(
                        "INSERT INTO secrets (vault, name_key, name, latest_seq) VALUES (?1, ?2, ?3, 0)",
                        params![v.vault, v.name_key, v.name],
                    )
                    .map_err(backend)?;
                    0
                }
            };
            let max_seq: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM secret_versions WHERE vault = ?1 AND name_key = ?2",
                    params![v.vault, v.name_key],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let previous: Option<String> = tx
                .query_row(
                    "SELECT version FROM secret_versions WHERE vault = ?1 AND name_key = ?2 AND seq = ?3",
                    params![v.vault, v.name_key, latest],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let seq = max_seq.max(latest) + 1;
            insert_version_row(tx, v, seq, previous.as_deref())?;
            Ok(seq)
        })
    }

    fn version_promote(&self, vault: &str, name_key: &str, version: &str) -> StoreResult<()> {
        self.write(|tx| {
            let (seq, latest): (i64, i64) = tx
                .query_row(
                    "SELECT v.seq, s.latest_seq FROM secret_versions v JOIN secrets s
                       ON s.vault = v.vault AND s.name_key = v.name_key
                     WHERE v.vault = ?1 AND v.name_key = ?2 AND v.version = ?3 AND s.deleted_at IS NULL",
                    params![vault, name_key, version],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            if seq == latest {
                return Ok(());
            }
            let newer: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM secret_versions WHERE vault = ?1 AND name_key = ?2 AND seq > ?3 AND seq <= ?4",
                    params![vault, name_key, seq, latest],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if latest > seq || newer > 0 {
                return Err(StoreError::AlreadyExists);
            }
            tx.execute(
                "UPDATE secrets SET latest_seq = ?3 WHERE vault = ?1 AND name_key = ?2",
                params![vault, name_key, seq],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn version_discard(&self, vault: &str, name_key: &str, version: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "DELETE FROM secret_versions WHERE vault = ?1 AND name_key = ?2 AND version = ?3
                       AND seq > (SELECT latest_seq FROM secrets WHERE vault = ?1 AND name_key = ?2)",
                    params![vault, name_key, version],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn binding_insert(&self, b: &BindingRow) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO rotation_bindings (name, tenant_id, source, target, policy, created, updated, next_due, failures, last_run)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (name) DO NOTHING",
                    params![b.name, b.tenant_id, b.source, b.target, b.policy, b.created, b.updated, b.next_due, b.failures, b.last_run],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::AlreadyExists)
            } else {
                Ok(())
            }
        })
    }

    fn binding_get(&self, name: &str) -> StoreResult<Option<BindingRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {BINDING_COLS} FROM rotation_bindings WHERE name = ?1"
            ))?
            .query_row([name], binding_from_row)
            .optional()
        })
    }

    fn binding_list(&self) -> StoreResult<Vec<BindingRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {BINDING_COLS} FROM rotation_bindings ORDER BY name"
            ))?
            .query_map([], binding_from_row)?
            .collect()
        })
    }

    fn binding_list_due(&self, now: i64) -> StoreResult<Vec<BindingRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {BINDING_COLS} FROM rotation_bindings WHERE next_due <= ?1 ORDER BY next_due, name"
            ))?
            .query_map([now], binding_from_row)?
            .collect()
        })
    }

    fn binding_update(&self, b: &BindingRow) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE rotation_bindings SET source = ?2, target = ?3, policy = ?4, updated = ?5, next_due = ?6,
                         failures = ?7, last_run = ?8 WHERE name = ?1",
                    params![b.name, b.source, b.target, b.policy, b.updated, b.next_due, b.failures, b.last_run],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn binding_delete(&self, name: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute("DELETE FROM rotation_bindings WHERE name = ?1", [name])
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn run_insert(&self, r: &RunRow) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO rotation_runs (id, binding, state, created, updated, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.id, r.binding, r.state, r.created, r.updated, r.body],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn run_get(&self, id: &str) -> StoreResult<Option<RunRow>> {
        self.read(|c| {
            c.prepare_cached("SELECT id, binding, state, created, updated, body FROM rotation_runs WHERE id = ?1")?
                .query_row([id], run_from_row)
                .optional()
        })
    }

    fn run_update(&self, r: &RunRow) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE rotation_runs SET state = ?2, updated = ?3, body = ?4 WHERE id = ?1",
                    params![r.id, r.state, r.updated, r.body],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn run_list(&self, binding: Option<&str>, limit: usize) -> StoreResult<Vec<RunRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, binding, state, created, updated, body FROM rotation_runs
                 WHERE (?1 IS NULL OR binding = ?1) ORDER BY created DESC, rowid DESC LIMIT ?2",
            )?
            .query_map(params![binding, limit as i64], run_from_row)?
            .collect()
        })
    }

    fn runs_active(&self) -> StoreResult<Vec<RunKey>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, binding FROM rotation_runs
                 WHERE state IN ('pending', 'running') ORDER BY created, rowid",
            )?
            .query_map([], |r| {
                Ok(RunKey {
                    id: r.get(0)?,
                    binding: r.get(1)?,
                })
            })?
            .collect()
        })
    }

    fn run_active(&self, binding: &str) -> StoreResult<Option<RunRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, binding, state, created, updated, body FROM rotation_runs
                 WHERE binding = ?1 AND state IN ('pending', 'running')
                 ORDER BY created DESC, rowid DESC LIMIT 1",
            )?
            .query_row([binding], run_from_row)
            .optional()
        })
    }

    fn revocation_upsert(&self, r: &RevocationRow) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO rotation_revocations (key_id, app_object_id, binding, run_id, due_at, done_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (key_id) DO UPDATE SET due_at = MIN(due_at, excluded.due_at), run_id = excluded.run_id",
                params![r.key_id, r.app_object_id, r.binding, r.run_id, r.due_at, r.done_at],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn revocations_due(&self, now: i64) -> StoreResult<Vec<RevocationRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {REVOCATION_COLS} FROM rotation_revocations WHERE done_at IS NULL AND due_at <= ?1 ORDER BY due_at"
            ))?
            .query_map([now], revocation_from_row)?
            .collect()
        })
    }

    fn revocations_pending(&self) -> StoreResult<Vec<RevocationRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {REVOCATION_COLS} FROM rotation_revocations WHERE done_at IS NULL ORDER BY due_at"
            ))?
            .query_map([], revocation_from_row)?
            .collect()
        })
    }

    fn revocation_done(&self, key_id: &str, now: i64) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE rotation_revocations SET done_at = ?2 WHERE key_id = ?1 AND done_at IS NULL",
                params![key_id, now],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn user_insert(&self, u: &UserRow) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO users (object_id, tenant_id, user_principal_name, display_name,
                         password_hash, enabled, created, updated, password_changed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT DO NOTHING",
                    params![
                        u.object_id,
                        u.tenant_id,
                        u.user_principal_name,
                        u.display_name,
                        u.password_hash,
                        u.enabled,
                        u.created,
                        u.updated,
                        u.password_changed
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::AlreadyExists)
            } else {
                Ok(())
            }
        })
    }

    fn user_get(&self, object_id: &str) -> StoreResult<Option<UserRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLS} FROM users WHERE object_id = ?1"
            ))?
            .query_row([object_id], user_from_row)
            .optional()
        })
    }

    fn user_by_upn(&self, tenant_id: &str, upn: &str) -> StoreResult<Option<UserRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 AND user_principal_name = ?2"
            ))?
            .query_row([tenant_id, upn], user_from_row)
            .optional()
        })
    }

    fn user_list(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UserRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLS} FROM users
                 WHERE tenant_id = ?1 AND user_principal_name > ?2
                 ORDER BY user_principal_name LIMIT ?3"
            ))?
            .query_map(
                params![tenant_id, after.unwrap_or(""), limit as i64],
                user_from_row,
            )?
            .collect()
        })
    }

    fn user_update(&self, u: &UserRow) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE users SET display_name = ?2, enabled = ?3, updated = ?4 WHERE object_id = ?1",
                    params![u.object_id, u.display_name, u.enabled, u.updated],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn user_set_password(
        &self,
        object_id: &str,
        expected_hash: Option<&str>,
        new_hash: &str,
        changed_at: Option<i64>,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE users SET password_hash = ?3,
                         password_changed = COALESCE(?4, password_changed),
                         updated = COALESCE(?4, updated)
                     WHERE object_id = ?1 AND (?2 IS NULL OR password_hash = ?2)",
                    params![object_id, expected_hash, new_hash, changed_at],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn user_delete(&self, object_id: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute("DELETE FROM users WHERE object_id = ?1", [object_id])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute(
                "DELETE FROM role_assignments WHERE principal_id = ?1",
                [object_id],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    // --- events ---

    fn subscription_insert(&self, sub: &SubscriptionRow) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO event_subscriptions ({SUBSCRIPTION_COLS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    sub.id,
                    sub.tenant_id,
                    sub.name,
                    sub.endpoint,
                    strings_json(&sub.event_types),
                    sub.subject_prefix,
                    sub.kek_id,
                    sub.wrapped_dek,
                    sub.sealed_secret,
                    sub.enabled,
                    sub.created,
                    sub.updated
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn subscription_get(&self, id: &str) -> StoreResult<Option<SubscriptionRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLS} FROM event_subscriptions WHERE id = ?1"
            ))?
            .query_row([id], subscription_from_row)
            .optional()
        })
    }

    fn subscription_list(&self) -> StoreResult<Vec<SubscriptionRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLS} FROM event_subscriptions ORDER BY created, id"
            ))?
            .query_map([], subscription_from_row)?
            .collect()
        })
    }

    fn subscription_update(&self, sub: &SubscriptionRow) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE event_subscriptions SET name = ?2, endpoint = ?3, event_types = ?4,
                         subject_prefix = ?5, enabled = ?6, updated = ?7
                     WHERE id = ?1",
                    params![
                        sub.id,
                        sub.name,
                        sub.endpoint,
                        strings_json(&sub.event_types),
                        sub.subject_prefix,
                        sub.enabled,
                        sub.updated
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn subscription_delete(&self, id: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute("DELETE FROM event_subscriptions WHERE id = ?1", [id])
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    fn event_insert(
        &self,
        event: &EventRow,
        deliveries: &[NewDelivery],
        once_key: Option<&str>,
    ) -> StoreResult<bool> {
        self.write(|tx| {
            if let Some(key) = once_key {
                let n = tx
                    .execute(
                        "INSERT INTO event_once (key, created) VALUES (?1, ?2)
                         ON CONFLICT (key) DO NOTHING",
                        params![key, event.time],
                    )
                    .map_err(backend)?;
                if n == 0 {
                    return Ok(false);
                }
            }
            if deliveries.is_empty() {
                return Ok(true);
            }
            tx.execute(
                "INSERT INTO events (id, event_type, subject, time, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![event.id, event.event_type, event.subject, event.time, event.body],
            )
            .map_err(backend)?;
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO event_deliveries (id, event_id, subscription_id, state, attempts,
                         next_attempt_at, created, updated)
                     SELECT ?1, ?2, ?3, 'pending', 0, ?4, ?4, ?4
                     WHERE EXISTS (SELECT 1 FROM event_subscriptions WHERE id = ?3)",
                )
                .map_err(backend)?;
            for d in deliveries {
                st.execute(params![d.id, event.id, d.subscription_id, event.time])
                    .map_err(backend)?;
            }
            Ok(true)
        })
    }

    fn event_get(&self, id: &str) -> StoreResult<Option<EventRow>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, event_type, subject, time, body FROM events WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    event_type: r.get(1)?,
                    subject: r.get(2)?,
                    time: r.get(3)?,
                    body: r.get(4)?,
                })
            })
            .optional()
        })
    }

    fn delivery_claim(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRow>> {
        self.write(|tx| {
            let mut rows: Vec<DeliveryRow> = tx
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM event_deliveries d
                       JOIN events e ON e.id = d.event_id
                       JOIN event_subscriptions s ON s.id = d.subscription_id
                     WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 AND s.enabled = 1
                     ORDER BY d.next_attempt_at LIMIT ?2"
                ))
                .and_then(|mut st| {
                    st.query_map(params![now, limit as i64], delivery_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend)?;
            let mut st = tx
                .prepare_cached("UPDATE event_deliveries SET next_attempt_at = ?2 WHERE id = ?1")
                .map_err(backend)?;
            for d in &mut rows {
                st.execute(params![d.id, lease_until]).map_err(backend)?;
                d.next_attempt_at = lease_until;
            }
            Ok(rows)
        })
    }

    fn delivery_next_due(&self) -> StoreResult<Option<i64>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT MIN(d.next_attempt_at) FROM event_deliveries d
                   JOIN event_subscriptions s ON s.id = d.subscription_id
                 WHERE d.state = 'pending' AND s.enabled = 1",
            )?
            .query_row([], |r| r.get(0))
        })
    }

    fn delivery_record(
        &self,
        attempt: &DeliveryAttemptRow,
        state: DeliveryState,
        next_attempt_at: i64,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE event_deliveries SET state = ?2, attempts = ?3, next_attempt_at = ?4,
                         updated = ?5
                     WHERE id = ?1",
                    params![
                        attempt.delivery_id,
                        state.as_str(),
                        attempt.attempt,
                        next_attempt_at,
                        attempt.time
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute(
                "INSERT INTO event_delivery_attempts (delivery_id, attempt, time, status_code,
                     error, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (delivery_id, attempt) DO UPDATE SET time = excluded.time,
                     status_code = excluded.status_code, error = excluded.error,
                     duration_ms = excluded.duration_ms",
                params![
                    attempt.delivery_id,
                    attempt.attempt,
                    attempt.time,
                    attempt.status_code,
                    attempt.error,
                    attempt.duration_ms
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn delivery_log(
        &self,
        subscription_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryLogEntry>> {
        self.read(|c| {
            let deliveries: Vec<DeliveryRow> = c
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM event_deliveries d
                       JOIN events e ON e.id = d.event_id
                     WHERE d.subscription_id = ?1
                     ORDER BY d.created DESC, d.id DESC LIMIT ?2"
                ))?
                .query_map(params![subscription_id, limit as i64], delivery_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut st = c.prepare_cached(
                "SELECT delivery_id, attempt, time, status_code, error, duration_ms
                 FROM event_delivery_attempts WHERE delivery_id = ?1 ORDER BY attempt",
            )?;
            deliveries
                .into_iter()
                .map(|delivery| {
                    let attempts = st
                        .query_map([&delivery.id], attempt_from_row)?
                        .collect::<rusqlite::Result<_>>()?;
                    Ok(DeliveryLogEntry { delivery, attempts })
                })
                .collect()
        })
    }

    fn expiry_due(&self, now: i64, near_before: i64, limit: usize) -> StoreResult<Vec<ExpiryDue>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {EXPIRY_KEY_SQL} AS once_key, vt.tenant_id, v.vault, s.name, v.version,
                        v.nbf, v.exp
                 FROM secret_versions v
                   JOIN secrets s ON s.vault = v.vault AND s.name_key = v.name_key
                   JOIN vaults vt ON vt.name = v.vault
                 WHERE v.exp IS NOT NULL AND v.exp <= ?2 AND s.deleted_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM event_once o WHERE o.key = {EXPIRY_KEY_SQL})
                 ORDER BY v.exp, v.vault, v.name_key, v.seq LIMIT ?3"
            ))?
            .query_map(params![now, near_before, limit as i64], |r| {
                let exp: i64 = r.get(6)?;
                Ok(ExpiryDue {
                    kind: if exp <= now {
                        ExpiryKind::Expired
                    } else {
                        ExpiryKind::NearExpiry
                    },
                    once_key: r.get(0)?,
                    tenant_id: r.get(1)?,
                    vault: r.get(2)?,
                    name: r.get(3)?,
                    version: r.get(4)?,
                    nbf: r.get(5)?,
                    exp,
                })
            })?
            .collect()
        })
    }

    fn events_prune(&self, before: i64) -> StoreResult<usize> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM events WHERE time < ?1 AND NOT EXISTS
                   (SELECT 1 FROM event_deliveries d WHERE d.event_id = events.id AND d.state = 'pending')",
                [before],
            )
            .map_err(backend)
        })
    }
}

const BINDING_COLS: &str =
    "name, tenant_id, source, target, policy, created, updated, next_due, failures, last_run";

fn binding_from_row(r: &Row<'_>) -> rusqlite::Result<BindingRow> {
    Ok(BindingRow {
        name: r.get(0)?,
        tenant_id: r.get(1)?,
        source: r.get(2)?,
        target: r.get(3)?,
        policy: r.get(4)?,
        created: r.get(5)?,
        updated: r.get(6)?,
        next_due: r.get(7)?,
        failures: r.get(8)?,
        last_run: r.get(9)?,
    })
}

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        binding: r.get(1)?,
        state: r.get(2)?,
        created: r.get(3)?,
        updated: r.get(4)?,
        body: r.get(5)?,
    })
}

const REVOCATION_COLS: &str = "key_id, app_object_id, binding, run_id, due_at, done_at";

fn revocation_from_row(r: &Row<'_>) -> rusqlite::Result<RevocationRow> {
    Ok(RevocationRow {
        key_id: r.get(0)?,
        app_object_id: r.get(1)?,
        binding: r.get(2)?,
        run_id: r.get(3)?,
        due_at: r.get(4)?,
        done_at: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rusqlite::StatementStatus;

    use super::*;

    #[test]
    fn cached_reads_are_not_prepared_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        for _ in 0..5 {
            assert!(store.version_latest("v", "name").unwrap().is_none());
        }
        let reprepared = store
            .read(|c| {
                Ok(c.prepare_cached(&version_latest_sql())?
                    .get_status(StatementStatus::RePrepare))
            })
            .unwrap();
        assert_eq!(reprepared, 0);
    }
}
