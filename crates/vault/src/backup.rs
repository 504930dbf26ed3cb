//! Secret backups: every version of a secret, with values, serialized and
//! sealed under a fresh data key wrapped by this instance's KEK. A blob from
//! another instance, or with one bit changed, does not open.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lockstep_core::{SecretName, Tags};
use lockstep_crypto::{Kek, WrappedKey};
use lockstep_store::VersionRow;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{VaultError, VaultRef};

/// The message for any blob that does not open.
pub const CORRUPT: &str =
    "Backup blob contains invalid or corrupt data, or was not produced by this Lockstep instance.";
const MAGIC: &[u8; 6] = b"LSBK1\0";
const AAD: &[u8] = b"lockstep/backup/v1";

#[derive(Serialize, Deserialize)]
pub struct BackupVersion {
    pub version: String,
    pub seq: i64,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub content_type: Option<String>,
    pub tags: Tags,
    pub managed: bool,
    pub previous_version: Option<String>,
    pub value: String,
}

impl Drop for BackupVersion {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl BackupVersion {
    pub fn from_row(row: &VersionRow, value: Zeroizing<String>) -> Self {
        Self {
            version: row.version.clone(),
            seq: row.seq,
            enabled: row.enabled,
            nbf: row.nbf,
            exp: row.exp,
            created: row.created,
            updated: row.updated,
            content_type: row.content_type.clone(),
            tags: row.tags.clone(),
            managed: row.managed,
            previous_version: row.previous_version.clone(),
            value: value.to_string(),
        }
    }

    pub fn to_row(
        &self,
        vault: &VaultRef,
        name: &SecretName,
        kek_id: String,
        wrapped_dek: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> VersionRow {
        VersionRow {
            vault: vault.name.clone(),
            name_key: name.key(),
            name: name.as_str().to_owned(),
            seq: self.seq,
            version: self.version.clone(),
            enabled: self.enabled,
            nbf: self.nbf,
            exp: self.exp,
            created: self.created,
            updated: self.updated,
            content_type: self.content_type.clone(),
            tags: self.tags.clone(),
            managed: self.managed,
            previous_version: self.previous_version.clone(),
            kek_id,
            wrapped_dek,
            ciphertext,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct Backup {
    pub name: String,
    pub versions: Vec<BackupVersion>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    kek: String,
    dek: String,
    body: String,
}

/// Seals a backup.
pub fn seal(kek: &Kek, name: &str, versions: Vec<BackupVersion>) -> Result<Vec<u8>, VaultError> {
    let backup = Backup {
        name: name.to_owned(),
        versions,
    };
    let plain = Zeroizing::new(
        serde_json::to_vec(&backup).map_err(|e| VaultError::Internal(e.to_string()))?,
    );
    let (key, wrapped) = kek.new_data_key("backup")?;
    let body = key.seal(AAD, &plain)?;
    let env = Envelope {
        kek: wrapped.kek_id,
        dek: STANDARD.encode(wrapped.sealed),
        body: STANDARD.encode(body),
    };
    let mut out = MAGIC.to_vec();
    out.extend(serde_json::to_vec(&env).map_err(|e| VaultError::Internal(e.to_string()))?);
    Ok(out)
}

/// Opens a backup blob; any failure is the same client error.
pub fn open(kek: &Kek, blob: &[u8]) -> Result<Backup, VaultError> {
    let bad = || VaultError::BadParameter(CORRUPT.into());
    let rest = blob.strip_prefix(MAGIC.as_slice()).ok_or_else(bad)?;
    let env: Envelope = serde_json::from_slice(rest).map_err(|_| bad())?;
    let wrapped = WrappedKey {
        kek_id: env.kek,
        sealed: STANDARD.decode(env.dek).map_err(|_| bad())?,
    };
    let key = kek.open_data_key("backup", &wrapped).map_err(|_| bad())?;
    let body = STANDARD.decode(env.body).map_err(|_| bad())?;
    let plain = key.open(AAD, &body).map_err(|_| bad())?;
    let backup: Backup = serde_json::from_slice(&plain).map_err(|_| bad())?;
    if backup.versions.is_empty() {
        return Err(bad());
    }
    Ok(backup)
}
