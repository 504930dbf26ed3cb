//! Opening a data directory: master key, database, key-encryption key, and
//! on first start the default tenant, the `default` vault and the bootstrap
//! admin whose credentials are written once to `bootstrap-admin.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lockstep_audit::{AuditLog, AUDIT_FILE};
use lockstep_core::SharedClock;
use lockstep_crypto::{Kek, KeyringError, MasterKey};
use lockstep_identity::{Authorizer, Directory, Scope};
use lockstep_store::{SqliteStore, Store, VaultRow};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::listener::ServeError;

/// The file holding the bootstrap admin's credentials.
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.json";
const MASTER_KEY_FILE: &str = "master.key";
const DATABASE_FILE: &str = "lockstep.db";

/// The contents of `bootstrap-admin.json`.
#[derive(Serialize, Deserialize)]
pub struct BootstrapAdmin {
    /// Tenant id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret (shown nowhere else).
    pub client_secret: Zeroizing<String>,
    /// Token authority, e.g. `https://localhost:8443`.
    pub authority: String,
    /// URL of the `default` vault.
    pub vault_url: String,
    /// CA certificate to trust, when Lockstep's own CA is in use.
    pub ca_cert: Option<String>,
}

/// What the first start recorded about the directory.
#[derive(Serialize, Deserialize)]
pub struct Installation {
    /// The default tenant.
    pub tenant_id: String,
    /// The bootstrap admin's application id.
    pub admin_app_id: String,
}

/// An opened data directory.
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub kek: Arc<Kek>,
    pub master: MasterKey,
}

/// Writes a file readable by its owner only; refuses to overwrite.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), ServeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ServeError::DataDir(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| ServeError::DataDir(format!("cannot write {}: {e}", path.display())))
}

fn prepare_dir(dir: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                ServeError::DataDir(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
    }
    let probe = dir.join(".lockstep-write-test");
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            ServeError::DataDir(format!(
                "data directory {} is not writable: {e}",
                dir.display()
            ))
        })?;
    std::fs::read_dir(dir).map(|_| ()).map_err(|e| {
        ServeError::DataDir(format!(
            "data directory {} is not readable: {e}",
            dir.display()
        ))
    })
}

fn master_key(
    dir: &Path,
    from_env: Option<&str>,
    new_database: bool,
) -> Result<MasterKey, ServeError> {
    let bad = |e: KeyringError| ServeError::MasterKey(e.to_string());
    if let Some(text) = from_env {
        return MasterKey::from_base64(text).map_err(bad);
    }
    let path = dir.join(MASTER_KEY_FILE);
    if path.exists() {
        let text =
            Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                ServeError::MasterKey(format!("cannot read {}: {e}", path.display()))
            })?);
        return MasterKey::from_base64(&text).map_err(bad);
    }
    if !new_database {
        return Err(ServeError::MasterKey(format!(
            "{} is missing and the database already exists; restore the key file or set LOCKSTEP_MASTER_KEY",
            path.display()
        )));
    }
    let key = MasterKey::generate();
    write_private_file(&path, key.to_base64().as_bytes())?;
    Ok(key)
}

/// Opens the data directory: key file, database and KEK.
pub fn open(dir: &Path, master_from_env: Option<&str>) -> Result<Opened, ServeError> {
    prepare_dir(dir)?;
    let db_path = dir.join(DATABASE_FILE);
    let new_database = !db_path.exists();
    let master = master_key(dir, master_from_env, new_database)?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&db_path)
            .map_err(|e| ServeError::DataDir(format!("cannot open {}: {e}", db_path.display())))?,
    );
    let kek = load_kek(store.as_ref(), &master)?;
    Ok(Opened {
        store,
        kek: Arc::new(kek),
        master,
    })
}

/// Opens `<data-dir>/audit.log` and continues its chain. An incomplete last
/// record (a crash during a write) is moved aside and reported; a log whose
/// last record is invalid stops the server (see docs/audit.md).
pub fn open_audit(dir: &Path, clock: SharedClock) -> Result<AuditLog, ServeError> {
    let path = dir.join(AUDIT_FILE);
    let (log, report) =
        AuditLog::open(&path, clock).map_err(|e| ServeError::Audit(e.to_string()))?;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(
            bytes = torn.bytes,
            saved_to = %torn.saved_to.display(),
            "the audit log ended with an incomplete record (a crash during a write); \
             it was moved aside, recorded, and the chain continues"
        );
    }
    if report.narrowed_permissions {
        tracing::warn!(path = %path.display(), "the audit log was readable by others; its mode is now 0600");
    }
    Ok(log)
}

#[derive(Serialize, Deserialize)]
struct StoredKek {
    id: String,
    wrapped: String,
}

fn load_kek(store: &dyn Store, master: &MasterKey) -> Result<Kek, ServeError> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let db = |e: lockstep_store::StoreError| ServeError::DataDir(e.to_string());
    if store.meta_get("kek").map_err(db)?.is_none() {
        let kek = Kek::generate();
        let stored = StoredKek {
            id: kek.id().to_owned(),
            wrapped: STANDARD.encode(
                master
                    .wrap_kek(&kek)
                    .map_err(|e| ServeError::MasterKey(e.to_string()))?,
            ),
        };
        let json = serde_json::to_vec(&stored).map_err(|e| ServeError::DataDir(e.to_string()))?;
        store.meta_put_new("kek", &json).map_err(db)?;
    }
    let raw = store
        .meta_get("kek")
        .map_err(db)?
        .ok_or_else(|| ServeError::DataDir("key-encryption key missing".into()))?;
    let stored: StoredKek =
        serde_json::from_slice(&raw).map_err(|e| ServeError::DataDir(e.to_string()))?;
    let wrapped = STANDARD
        .decode(stored.wrapped)
        .map_err(|e| ServeError::DataDir(e.to_string()))?;
    master
        .unwrap_kek(&stored.id, &wrapped)
        .map_err(|e| ServeError::MasterKey(e.to_string()))
}

/// Returns the installation record, creating tenant, vault and admin on the
/// first start. `admin_file` receives the admin's credentials then.
pub fn install(
    store: &Arc<dyn Store>,
    directory: &Directory,
    authz: &Authorizer,
    clock: &SharedClock,
    admin_file: impl FnOnce(BootstrapAdmin) -> Result<(), ServeError>,
    urls: (&str, &str, Option<PathBuf>),
) -> Result<(Installation, bool), ServeError> {
    let db = |e: lockstep_store::StoreError| ServeError::DataDir(e.to_string());
    if let Some(raw) = store.meta_get("installation").map_err(db)? {
        let inst: Installation =
            serde_json::from_slice(&raw).map_err(|e| ServeError::DataDir(e.to_string()))?;
        return Ok((inst, false));
    }
    let dir_err = |e: lockstep_identity::DirectoryError| ServeError::DataDir(e.to_string());
    let tenant = directory
        .create_tenant("Default Directory")
        .map_err(dir_err)?;
    store
        .vault_create(&VaultRow {
            name: "default".into(),
            tenant_id: tenant.id.clone(),
            created: clock.unix(),
        })
        .map_err(db)?;
    let (app, sp) = directory
        .create_app(&tenant.id, "Lockstep bootstrap admin")
        .map_err(dir_err)?;
    let password = directory
        .add_password(&app.object_id, Some("bootstrap".into()), None, None)
        .map_err(dir_err)?;
    authz
        .assign(&sp.object_id, "Owner", &Scope::tenant(&tenant.id))
        .map_err(db)?;
    let (authority, vault_url, ca) = urls;
    admin_file(BootstrapAdmin {
        tenant_id: tenant.id.clone(),
        client_id: app.app_id.clone(),
        client_secret: password.secret_text,
        authority: authority.to_owned(),
        vault_url: vault_url.to_owned(),
        ca_cert: ca.map(|p| p.display().to_string()),
    })?;
    let inst = Installation {
        tenant_id: tenant.id,
        admin_app_id: app.app_id,
    };
    let json = serde_json::to_vec(&inst).map_err(|e| ServeError::DataDir(e.to_string()))?;
    store.meta_put_new("installation", &json).map_err(db)?;
    Ok((inst, true))
}
