//! The vault operations.

use std::sync::Arc;

use lockstep_core::{
    Remembered, SecretAttributes, SecretLimits, SecretName, SharedClock, Tags, VersionId,
};
use lockstep_crypto::{DataKey, Kek, SecretBytes, WrappedKey};
use lockstep_store::{Deletion, Store, StoreError, VersionRow};
use zeroize::Zeroizing;

use crate::datakeys::DataKeyCache;
use crate::latest::LatestCache;
use crate::paging::{Page, PageMarker};
use crate::watch::{SecretWatch, Watchers};
use crate::VaultError;

/// Largest page a list operation returns (Key Vault's `maxresults` limit).
pub const MAX_PAGE: usize = 25;

/// The vault a request addresses, resolved by the server from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRef {
    /// Vault name.
    pub name: String,
    /// Owning tenant.
    pub tenant_id: String,
}

/// Input of a set-secret operation.
pub struct SetSecret {
    /// The value (UTF-8 text, at most 25 KB).
    pub value: Zeroizing<String>,
    /// Optional content type.
    pub content_type: Option<String>,
    /// Enabled (default true).
    pub enabled: Option<bool>,
    /// Not before.
    pub nbf: Option<i64>,
    /// Expiry.
    pub exp: Option<i64>,
    /// Tags.
    pub tags: Option<Tags>,
    /// Whether the version is written by Lockstep's rotation engine.
    pub managed: bool,
}

/// Input of an update-secret operation; absent fields are left unchanged.
#[derive(Debug, Default)]
pub struct SecretUpdate {
    /// New content type.
    pub content_type: Option<String>,
    /// New enabled flag.
    pub enabled: Option<bool>,
    /// New not-before (`Some(None)` clears it).
    pub nbf: Option<Option<i64>>,
    /// New expiry (`Some(None)` clears it).
    pub exp: Option<Option<i64>>,
    /// New tags (replace all).
    pub tags: Option<Tags>,
}

/// A version's metadata.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    /// The secret's name as first written.
    pub name: String,
    /// Version id.
    pub version: String,
    /// Attributes.
    pub attributes: SecretAttributes,
    /// Content type.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: Tags,
    /// Whether Lockstep manages it.
    pub managed: bool,
    /// The version that was latest before this one.
    pub previous_version: Option<String>,
}

/// A version with its value.
pub struct Secret {
    /// Metadata.
    pub meta: SecretVersion,
    /// The value; wiped on drop.
    pub value: Zeroizing<String>,
}

/// A deleted secret: its latest version and when it was deleted.
#[derive(Debug, Clone)]
pub struct DeletedSecret {
    /// The latest version's metadata.
    pub meta: SecretVersion,
    /// Deletion and scheduled purge times.
    pub deletion: Deletion,
}

/// The Key Vault secrets service.
pub struct Vaults {
    store: Arc<dyn Store>,
    kek: Arc<Kek>,
    clock: SharedClock,
    keys: DataKeyCache,
    watchers: Watchers,
    /// Vaults resolved so far, by name. A vault's owner never changes while
    /// it exists, so an entry stays right until the vault is deleted, and
    /// deleting a vault calls [`Vaults::forget`]. Only existing vaults are
    /// remembered (bounded by the number of vaults). This saves a database
    /// read on every data-plane request.
    resolved: Remembered<VaultRef>,
    latest: LatestCache,
}

/// Memory for the latest versions of recently read secrets (sealed values
/// and metadata; see `latest.rs`).
const LATEST_CACHE_BYTES: usize = 64 << 20;

fn meta_of(row: &VersionRow) -> SecretVersion {
    SecretVersion {
        name: row.name.clone(),
        version: row.version.clone(),
        attributes: SecretAttributes {
            enabled: row.enabled,
            nbf: row.nbf,
            exp: row.exp,
            created: row.created,
            updated: row.updated,
        },
        content_type: row.content_type.clone(),
        tags: row.tags.clone(),
        managed: row.managed,
        previous_version: row.previous_version.clone(),
    }
}

fn check_times(nbf: Option<i64>, exp: Option<i64>) -> Result<(), VaultError> {
    if let (Some(n), Some(e)) = (nbf, exp) {
        if n > e {
            return Err(VaultError::BadParameter(
                "The 'nbf' attribute must not be later than the 'exp' attribute.".into(),
            ));
        }
    }
    Ok(())
}

impl Vaults {
    /// A vault service over `store`, sealing with `kek`.
    pub fn new(store: Arc<dyn Store>, kek: Arc<Kek>, clock: SharedClock) -> Self {
        Self {
            store,
            kek,
            clock,
            keys: DataKeyCache::new(100_000),
            watchers: Watchers::default(),
            resolved: Remembered::new(usize::MAX),
            latest: LatestCache::new(LATEST_CACHE_BYTES),
        }
    }

    /// Resolves a vault by name.
    pub fn vault(&self, name: &str) -> Result<VaultRef, VaultError> {
        let key = name.to_ascii_lowercase();
        self.resolved
            .get_or_load(&key, || {
                Ok::<_, VaultError>(self.store.vault_get(&key)?.map(|row| VaultRef {
                    name: row.name,
                    tenant_id: row.tenant_id,
                }))
            })?
            .ok_or_else(|| VaultError::VaultNotFound(name.to_owned()))
    }

    /// Drops what [`Vaults::vault`] remembers about vault `name`; called
    /// after the vault is deleted.
    pub fn forget(&self, name: &str) {
        self.resolved.forget(&name.to_ascii_lowercase());
        // Its secrets went with it (a vault of the same name made later
        // starts empty).
        self.latest.clear();
    }

    fn binding(vault: &VaultRef, name_key: &str, version: &str) -> String {
        format!(
            "{}/{}/{}/{}",
            vault.tenant_id, vault.name, name_key, version
        )
    }

    fn data_key(&self, vault: &VaultRef, row: &VersionRow) -> Result<DataKey, VaultError> {
        if let Some(k) = self.keys.get(&row.version, &row.wrapped_dek) {
            return Ok(k);
        }
        let wrapped = WrappedKey {
            kek_id: row.kek_id.clone(),
            sealed: row.wrapped_dek.clone(),
        };
        let key = self
            .kek
            .open_data_key(&Self::binding(vault, &row.name_key, &row.version), &wrapped)?;
        self.keys.put(&row.version, &row.wrapped_dek, key.clone());
        Ok(key)
    }

    fn open_value(
        &self,
        vault: &VaultRef,
        row: &VersionRow,
    ) -> Result<Zeroizing<String>, VaultError> {
        let binding = Self::binding(vault, &row.name_key, &row.version);
        let key = self.data_key(vault, row)?;
        let plain: SecretBytes = key.open(binding.as_bytes(), &row.ciphertext)?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| VaultError::Internal("stored value is not UTF-8".into()))?;
        Ok(Zeroizing::new(text.to_owned()))
    }

    fn seal_row(
        &self,
        vault: &VaultRef,
        name: &SecretName,
        version: &str,
        value: &[u8],
    ) -> Result<(String, Vec<u8>, Vec<u8>), VaultError> {
        let binding = Self::binding(vault, &name.key(), version);
        let (key, wrapped) = self.kek.new_data_key(&binding)?;
        let ciphertext = key.seal(binding.as_bytes(), value)?;
        Ok((wrapped.kek_id, wrapped.sealed, ciphertext))
    }

    /// Validates `input` and seals it as a new version row of `name`
    /// (its `seq` and previous version are assigned by the store).
    fn new_row(
        &self,
        vault: &VaultRef,
        name: &SecretName,
        input: &SetSecret,
    ) -> Result<VersionRow, VaultError> {
        if input.value.len() > SecretLimits::MAX_VALUE_BYTES {
            return Err(VaultError::BadParameter(format!(
                "The secret value exceeds the maximum allowed size of {} bytes.",
                SecretLimits::MAX_VALUE_BYTES
            )));
        }
        if let Some(ct) = &input.content_type {
            SecretLimits::check_content_type(ct).map_err(VaultError::BadParameter)?;
        }
        let tags = input.tags.clone().unwrap_or_default();
        SecretLimits::check_tags(&tags).map_err(VaultError::BadParameter)?;
        check_times(input.nbf, input.exp)?;
        let now = self.clock.unix();
        let version = lockstep_crypto::random::version_id();
        let (kek_id, wrapped_dek, ciphertext) =
            self.seal_row(vault, name, &version, input.value.as_bytes())?;
        Ok(VersionRow {
            vault: vault.name.clone(),
            name_key: name.key(),
            name: name.as_str().to_owned(),
            seq: 0,
            version,
            enabled: input.enabled.unwrap_or(true),
            nbf: input.nbf,
            exp: input.exp,
            created: now,
            updated: now,
            content_type: input.content_type.clone(),
            tags,
            managed: input.managed,
            previous_version: None,
            kek_id,
            wrapped_dek,
            ciphertext,
        })
    }

    /// Stores a new version of a secret (creating the secret if needed).
    pub fn set(
        &self,
        vault: &VaultRef,
        name: &str,
        input: SetSecret,
    ) -> Result<Secret, VaultError> {
        let name = SecretName::parse(name)?;
        let mut row = self.new_row(vault, &name, &input)?;
        match self.store.version_insert(&row) {
            Ok(seq) => row.seq = seq,
            Err(StoreError::DeletedButRecoverable) => {
                return Err(VaultError::DeletedButRecoverable(name.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
        self.changed(&vault.name, &row.name_key);
        // The stored display name and previous version come from the store.
        let stored = self
            .store
            .version_get(&vault.name, &row.name_key, &row.version)?
            .unwrap_or(row);
        Ok(Secret {
            meta: meta_of(&stored),
            value: input.value,
        })
    }

    /// Stores a version that is not yet the latest (rotation's pending
    /// version): readers keep getting the current latest until
    /// [`promote`](Self::promote).
    pub fn stage(
        &self,
        vault: &VaultRef,
        name: &str,
        input: SetSecret,
    ) -> Result<SecretVersion, VaultError> {
        let name = SecretName::parse(name)?;
        let row = self.new_row(vault, &name, &input)?;
        match self.store.version_insert_staged(&row) {
            Ok(_) => {}
            Err(StoreError::DeletedButRecoverable) => {
                return Err(VaultError::DeletedButRecoverable(name.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
        self.meta(vault, name.as_str(), &row.version)
    }

    /// Makes a staged version the latest. Fails with `Conflict` if a newer
    /// version was written in the meantime.
    pub fn promote(&self, vault: &VaultRef, name: &str, version: &str) -> Result<(), VaultError> {
        let name = SecretName::parse(name)?;
        match self
            .store
            .version_promote(&vault.name, &name.key(), version)
        {
            Ok(()) => {
                // Consumers watching the secret learn of the new current
                // version at once.
                self.notify(vault, name.as_str());
                Ok(())
            }
            Err(StoreError::AlreadyExists) => Err(VaultError::AlreadyExists(format!(
                "{name}: a newer version was written while version {version} was staged"
            ))),
            Err(StoreError::NotFound) => Err(not_found(&name, Some(version))),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a staged version that will never be promoted.
    pub fn discard(&self, vault: &VaultRef, name: &str, version: &str) -> Result<(), VaultError> {
        let name = SecretName::parse(name)?;
        match self
            .store
            .version_discard(&vault.name, &name.key(), version)
        {
            Ok(()) | Err(StoreError::NotFound) => {
                self.latest.forget(&vault.name, &name.key());
                self.keys.forget([version.to_owned()]);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A version's metadata, enabled or not, staged or not.
    pub fn meta(
        &self,
        vault: &VaultRef,
        name: &str,
        version: &str,
    ) -> Result<SecretVersion, VaultError> {
        let name = SecretName::parse(name)?;
        self.store
            .version_list_any(&vault.name, &name.key())?
            .iter()
            .find(|v| v.version == version)
            .map(meta_of)
            .ok_or_else(|| not_found(&name, Some(version)))
    }

    /// Every version of a secret (including staged ones), oldest first.
    pub fn all_versions(
        &self,
        vault: &VaultRef,
        name: &str,
    ) -> Result<Vec<SecretVersion>, VaultError> {
        let name = SecretName::parse(name)?;
        Ok(self
            .store
            .version_list_any(&vault.name, &name.key())?
            .iter()
            .map(meta_of)
            .collect())
    }

    /// The latest version's metadata (enabled or not), if the secret is live.
    pub fn latest_meta(
        &self,
        vault: &VaultRef,
        name: &str,
    ) -> Result<Option<SecretVersion>, VaultError> {
        let name = SecretName::parse(name)?;
        Ok(self.latest(vault, &name)?.as_deref().map(meta_of))
    }

    /// A version's value regardless of its enabled flag (for the rotation
    /// engine's own verification).
    pub fn value_of(
        &self,
        vault: &VaultRef,
        name: &str,
        version: &str,
    ) -> Result<Zeroizing<String>, VaultError> {
        let name = SecretName::parse(name)?;
        let row = self
            .store
            .version_list_any(&vault.name, &name.key())?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| not_found(&name, Some(version)))?;
        self.open_value(vault, &row)
    }

    fn find(
        &self,
        vault: &VaultRef,
        name: &SecretName,
        version: Option<&str>,
    ) -> Result<Arc<VersionRow>, VaultError> {
        let found = match version {
            None => self.latest(vault, name)?,
            Some(v) => {
                let v = VersionId::parse(v).map_err(|_| not_found(name, Some(v)))?;
                self.store
                    .version_get(&vault.name, &name.key(), v.as_str())?
                    .map(Arc::new)
            }
        };
        found.ok_or_else(|| not_found(name, version))
    }

    /// Reads a version's value (the latest when `version` is `None`).
    pub fn get(
        &self,
        vault: &VaultRef,
        name: &str,
        version: Option<&str>,
    ) -> Result<Secret, VaultError> {
        let name = SecretName::parse(name)?;
        let row = self.find(vault, &name, version)?;
        if !row.enabled {
            return Err(VaultError::Disabled("get"));
        }
        let value = self.open_value(vault, &row)?;
        Ok(Secret {
            meta: meta_of(&row),
            value,
        })
    }

    /// Wakes every waiter of [`next_version`](Self::next_version) on this
    /// secret so that it re-reads the latest version. Every operation here
    /// that can change the latest version calls it; an operation elsewhere
    /// that changes it (e.g. rotation promoting a version) must call it
    /// after its change is committed.
    pub fn notify(&self, vault: &VaultRef, name: &str) {
        self.changed(&vault.name, name);
    }

    /// After a committed change to a secret: drops its cached latest
    /// version, then wakes its watchers (which re-read it).
    fn changed(&self, vault: &str, name: &str) {
        self.latest.forget(vault, &name.to_ascii_lowercase());
        self.watchers.notify(vault, name);
    }

    /// The latest version of a live secret, from memory when it was read
    /// recently.
    fn latest(
        &self,
        vault: &VaultRef,
        name: &SecretName,
    ) -> Result<Option<Arc<VersionRow>>, VaultError> {
        let key = name.key();
        Ok(self.latest.get_or_load(&vault.name, &key, || {
            self.store.version_latest(&vault.name, &key)
        })?)
    }

    /// A subscription to this secret's change notifications (see
    /// [`notify`](Self::notify)).
    pub fn subscribe(&self, vault: &VaultRef, name: &str) -> SecretWatch {
        self.watchers.subscribe(&vault.name, name)
    }

    /// Number of secrets that have at least one waiter.
    pub fn watched_secrets(&self) -> usize {
        self.watchers.watched()
    }

    /// The latest version, as soon as it is not `after` (at once when it
    /// already differs, or when `after` is `None`). Waits for a
    /// notification otherwise; the caller bounds the wait (drop the future
    /// to stop waiting). Fails as [`get`](Self::get) does: a missing or
    /// deleted secret, or a disabled latest version (when it differs from
    /// `after`).
    pub async fn next_version(
        &self,
        vault: &VaultRef,
        name: &str,
        after: Option<&str>,
    ) -> Result<Secret, VaultError> {
        let parsed = SecretName::parse(name)?;
        // Subscribe before reading, so that a change between the read and
        // the wait is not missed.
        let mut watch = self.watchers.subscribe(&vault.name, &parsed.key());
        loop {
            let row = self.find(vault, &parsed, None)?;
            let unchanged = after.is_some_and(|a| a.eq_ignore_ascii_case(&row.version));
            if !unchanged {
                if !row.enabled {
                    return Err(VaultError::Disabled("get"));
                }
                let value = self.open_value(vault, &row)?;
                return Ok(Secret {
                    meta: meta_of(&row),
                    value,
                });
            }
            watch.changed().await;
        }
    }

    /// Changes a version's attributes, content type or tags.
    pub fn update(
        &self,
        vault: &VaultRef,
        name: &str,
        version: Option<&str>,
        change: SecretUpdate,
    ) -> Result<SecretVersion, VaultError> {
        let name = SecretName::parse(name)?;
        let mut row = VersionRow::clone(&*self.find(vault, &name, version)?);
        if let Some(ct) = change.content_type {
            SecretLimits::check_content_type(&ct).map_err(VaultError::BadParameter)?;
            row.content_type = Some(ct);
        }
        if let Some(tags) = change.tags {
            SecretLimits::check_tags(&tags).map_err(VaultError::BadParameter)?;
            row.tags = tags;
        }
        if let Some(e) = change.enabled {
            row.enabled = e;
        }
        if let Some(nbf) = change.nbf {
            row.nbf = nbf;
        }
        if let Some(exp) = change.exp {
            row.exp = exp;
        }
        check_times(row.nbf, row.exp)?;
        row.updated = self.clock.unix();
        self.store.version_update(&row)?;
        self.changed(&vault.name, &row.name_key);
        Ok(meta_of(&row))
    }

    /// Soft-deletes a secret (all its versions); recoverable for 90 days.
    pub fn delete(&self, vault: &VaultRef, name: &str) -> Result<DeletedSecret, VaultError> {
        let name = SecretName::parse(name)?;
        let row = self.find(vault, &name, None)?;
        let now = self.clock.unix();
        let deletion = Deletion {
            deleted_at: now,
            purge_at: now + SecretLimits::RECOVERABLE_DAYS * 86_400,
        };
        match self.store.secret_delete(
            &vault.name,
            &name.key(),
            deletion.deleted_at,
            deletion.purge_at,
        ) {
            Ok(()) => self.changed(&vault.name, &name.key()),
            Err(StoreError::NotFound) => return Err(not_found(&name, None)),
            Err(e) => return Err(e.into()),
        }
        Ok(DeletedSecret {
            meta: meta_of(&row),
            deletion,
        })
    }

    /// A deleted secret.
    pub fn get_deleted(&self, vault: &VaultRef, name: &str) -> Result<DeletedSecret, VaultError> {
        let name = SecretName::parse(name)?;
        match self.store.secret_get(&vault.name, &name.key())? {
            Some(s) => match s.deleted {
                Some(deletion) => Ok(DeletedSecret {
                    meta: meta_of(&s.latest),
                    deletion,
                }),
                None => Err(VaultError::DeletedSecretNotFound(name.to_string())),
            },
            None => Err(VaultError::DeletedSecretNotFound(name.to_string())),
        }
    }

    /// Makes a deleted secret live again; returns its latest version.
    pub fn recover(&self, vault: &VaultRef, name: &str) -> Result<SecretVersion, VaultError> {
        let deleted = self.get_deleted(vault, name)?;
        match self
            .store
            .secret_recover(&vault.name, &deleted.meta.name.to_ascii_lowercase())
        {
            Ok(()) => {
                self.changed(&vault.name, &deleted.meta.name);
                Ok(deleted.meta)
            }
            Err(StoreError::NotFound) => Err(VaultError::DeletedSecretNotFound(name.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Permanently removes a deleted secret.
    pub fn purge(&self, vault: &VaultRef, name: &str) -> Result<(), VaultError> {
        let name = SecretName::parse(name)?;
        let versions: Vec<String> = match self.store.secret_get(&vault.name, &name.key())? {
            Some(s) if s.deleted.is_some() => self
                .store
                .version_list_any(&vault.name, &name.key())?
                .into_iter()
                .map(|v| v.version)
                .collect(),
            _ => return Err(VaultError::DeletedSecretNotFound(name.to_string())),
        };
        match self.store.secret_purge(&vault.name, &name.key()) {
            Ok(()) => {
                self.keys.forget(versions);
                self.changed(&vault.name, &name.key());
                Ok(())
            }
            Err(StoreError::NotFound) => Err(VaultError::DeletedSecretNotFound(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Purges deleted secrets whose recovery period has ended.
    pub fn purge_expired(&self) -> Result<usize, VaultError> {
        // Only deleted secrets are purged, and a deleted secret is never in
        // the latest-version cache (deleting it dropped its entry).
        Ok(self.store.purge_expired(self.clock.unix())?)
    }

    /// Live secrets, by name.
    pub fn list(
        &self,
        vault: &VaultRef,
        marker: Option<&PageMarker>,
        max: usize,
    ) -> Result<Page<SecretVersion>, VaultError> {
        let after = match marker {
            None => None,
            Some(PageMarker::AfterName(n)) => Some(n.as_str()),
            Some(_) => {
                return Err(VaultError::BadParameter(
                    "The $skiptoken is invalid.".into(),
                ))
            }
        };
        let max = max.clamp(1, MAX_PAGE);
        let mut rows = self.store.secret_list(&vault.name, after, max + 1)?;
        let next = if rows.len() > max {
            rows.truncate(max);
            rows.last()
                .map(|r| PageMarker::AfterName(r.latest.name_key.clone()))
        } else {
            None
        };
        Ok(Page {
            items: rows.iter().map(|r| meta_of(&r.latest)).collect(),
            next,
        })
    }

    /// Versions of a live secret, oldest first.
    pub fn versions(
        &self,
        vault: &VaultRef,
        name: &str,
        marker: Option<&PageMarker>,
        max: usize,
    ) -> Result<Page<SecretVersion>, VaultError> {
        let name = SecretName::parse(name)?;
        let after = match marker {
            None => None,
            Some(PageMarker::AfterSeq(s)) => Some(*s),
            Some(_) => {
                return Err(VaultError::BadParameter(
                    "The $skiptoken is invalid.".into(),
                ))
            }
        };
        let max = max.clamp(1, MAX_PAGE);
        let mut rows = self
            .store
            .version_list(&vault.name, &name.key(), after, max + 1)?;
        if rows.is_empty() && after.is_none() {
            return Err(not_found(&name, None));
        }
        let next = if rows.len() > max {
            rows.truncate(max);
            rows.last().map(|r| PageMarker::AfterSeq(r.seq))
        } else {
            None
        };
        Ok(Page {
            items: rows.iter().map(meta_of).collect(),
            next,
        })
    }

    /// Deleted secrets, by name.
    pub fn list_deleted(
        &self,
        vault: &VaultRef,
        marker: Option<&PageMarker>,
        max: usize,
    ) -> Result<Page<DeletedSecret>, VaultError> {
        let after = match marker {
            None => None,
            Some(PageMarker::AfterName(n)) => Some(n.as_str()),
            Some(_) => {
                return Err(VaultError::BadParameter(
                    "The $skiptoken is invalid.".into(),
                ))
            }
        };
        let max = max.clamp(1, MAX_PAGE);
        let mut rows = self.store.deleted_list(&vault.name, after, max + 1)?;
        let next = if rows.len() > max {
            rows.truncate(max);
            rows.last()
                .map(|r| PageMarker::AfterName(r.latest.name_key.clone()))
        } else {
            None
        };
        Ok(Page {
            items: rows
                .iter()
                .filter_map(|r| {
                    r.deleted.map(|deletion| DeletedSecret {
                        meta: meta_of(&r.latest),
                        deletion,
                    })
                })
                .collect(),
            next,
        })
    }

    /// An encrypted, authenticated backup of every version of a secret.
    pub fn backup(&self, vault: &VaultRef, name: &str) -> Result<Vec<u8>, VaultError> {
        let name = SecretName::parse(name)?;
        let rows = self.store.version_all(&vault.name, &name.key())?;
        if rows.is_empty() {
            return Err(not_found(&name, None));
        }
        let mut versions = Vec::with_capacity(rows.len());
        for row in &rows {
            versions.push(crate::backup::BackupVersion::from_row(
                row,
                self.open_value(vault, row)?,
            ));
        }
        crate::backup::seal(&self.kek, &rows[0].name, versions)
    }

    /// Restores a backup into this vault under the secret's original name.
    pub fn restore(&self, vault: &VaultRef, blob: &[u8]) -> Result<SecretVersion, VaultError> {
        let backup = crate::backup::open(&self.kek, blob)?;
        let name = SecretName::parse(&backup.name)
            .map_err(|_| VaultError::BadParameter(crate::backup::CORRUPT.into()))?;
        let mut rows = Vec::with_capacity(backup.versions.len());
        for v in &backup.versions {
            VersionId::parse(&v.version)
                .map_err(|_| VaultError::BadParameter(crate::backup::CORRUPT.into()))?;
            let (kek_id, wrapped_dek, ciphertext) =
                self.seal_row(vault, &name, &v.version, v.value.as_bytes())?;
            rows.push(v.to_row(vault, &name, kek_id, wrapped_dek, ciphertext));
        }
        match self.store.secret_restore(&rows) {
            Ok(()) => self.changed(&vault.name, &name.key()),
            Err(StoreError::AlreadyExists) => {
                return Err(VaultError::AlreadyExists(name.to_string()))
            }
            Err(StoreError::DeletedButRecoverable) => {
                return Err(VaultError::DeletedButRecoverable(name.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
        let latest = rows
            .iter()
            .max_by_key(|r| r.seq)
            .ok_or_else(|| VaultError::BadParameter(crate::backup::CORRUPT.into()))?;
        Ok(meta_of(latest))
    }
}

fn not_found(name: &SecretName, version: Option<&str>) -> VaultError {
    match version {
        Some(v) => {
            VaultError::SecretNotFound(format!("{name}/{}", v.chars().take(64).collect::<String>()))
        }
        None => VaultError::SecretNotFound(name.to_string()),
    }
}
