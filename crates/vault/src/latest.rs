//! The latest version of recently read secrets, kept in memory so that a
//! read of the latest version (what every consumer does) does not read the
//! database.
//!
//! Entries hold the version row as stored: metadata and the *sealed* value
//! (no plaintext is cached). Every operation of [`crate::Vaults`] that can
//! change a secret's latest version or its attributes drops the secret's
//! entry after its commit and before it returns, so a read that starts after
//! a change was acknowledged sees it. A generation counter, bumped by every
//! drop, keeps a read that fetched a row before a change from putting the
//! old row back afterwards.
//!
//! Bounded by bytes, in two generations like the data-key cache (see
//! `generations.rs`): secrets in use stay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use lockstep_store::VersionRow;

use crate::generations::Generations;

/// Bytes an entry is counted for besides its sealed value.
const ENTRY_OVERHEAD: usize = 256;

pub(crate) struct LatestCache {
    gens: RwLock<Generations<Arc<VersionRow>>>,
    /// Bumped by every drop, so that a read that fetched a row before a
    /// change does not put it back after.
    generation: AtomicU64,
}

fn key(vault: &str, name_key: &str) -> String {
    let mut k = String::with_capacity(vault.len() + name_key.len() + 1);
    k.push_str(vault);
    k.push('/');
    k.push_str(name_key);
    k
}

fn size(row: &Arc<VersionRow>) -> usize {
    row.ciphertext.len() + row.wrapped_dek.len() + ENTRY_OVERHEAD
}

impl LatestCache {
    /// A cache holding at most about `budget` bytes.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            gens: RwLock::new(Generations::new(budget, size)),
            generation: AtomicU64::new(0),
        }
    }

    /// The cached latest version of a secret, or `load`'s answer (cached if
    /// nothing changed the secret meanwhile).
    pub(crate) fn get_or_load<E>(
        &self,
        vault: &str,
        name_key: &str,
        load: impl FnOnce() -> Result<Option<VersionRow>, E>,
    ) -> Result<Option<Arc<VersionRow>>, E> {
        let k = key(vault, name_key);
        if let Some(row) = self
            .gens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .current(&k)
        {
            return Ok(Some(row.clone()));
        }
        let before = self.generation.load(Ordering::Acquire);
        {
            let mut gens = self.gens.write().unwrap_or_else(|p| p.into_inner());
            let (found, evicted) = gens.revive(&k);
            let found = found.cloned();
            drop(gens);
            drop(evicted);
            if found.is_some() {
                return Ok(found);
            }
        }
        let Some(row) = load()? else {
            return Ok(None);
        };
        let row = Arc::new(row);
        let mut gens = self.gens.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) == before {
            let evicted = gens.insert(k, row.clone());
            drop(gens);
            drop(evicted);
        }
        Ok(Some(row))
    }

    /// Drops a secret's entry (after a change to it was committed).
    pub(crate) fn forget(&self, vault: &str, name_key: &str) {
        let mut gens = self.gens.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        gens.remove(&key(vault, name_key));
    }

    /// Drops every entry (after a change to many secrets).
    pub(crate) fn clear(&self) {
        let mut gens = self.gens.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        let old = gens.take();
        drop(gens);
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(vault: &str, name: &str, version: &str, len: usize) -> VersionRow {
        VersionRow {
            vault: vault.into(),
            name_key: name.into(),
            name: name.into(),
            seq: 1,
            version: version.into(),
            enabled: true,
            nbf: None,
            exp: None,
            created: 0,
            updated: 0,
            content_type: None,
            tags: Default::default(),
            managed: false,
            previous_version: None,
            kek_id: "k".into(),
            wrapped_dek: vec![0; 40],
            ciphertext: vec![0; len],
        }
    }

    type R = Result<Option<VersionRow>, ()>;

    #[test]
    fn loads_once_then_answers_from_memory_until_forgotten() {
        let c = LatestCache::new(1 << 20);
        let mut loads = 0;
        for _ in 0..3 {
            let got = c
                .get_or_load("v", "a", || -> R {
                    loads += 1;
                    Ok(Some(row("v", "a", "1", 10)))
                })
                .unwrap()
                .unwrap();
            assert_eq!(got.version, "1");
        }
        assert_eq!(loads, 1);
        c.forget("v", "a");
        let got = c
            .get_or_load("v", "a", || -> R { Ok(Some(row("v", "a", "2", 10))) })
            .unwrap()
            .unwrap();
        assert_eq!(got.version, "2");
    }

    #[test]
    fn a_load_that_raced_with_a_change_is_not_kept() {
        let c = LatestCache::new(1 << 20);
        let got = c
            .get_or_load("v", "a", || -> R {
                // A change commits and forgets the entry while this read
                // still holds the old row.
                c.forget("v", "a");
                Ok(Some(row("v", "a", "old", 10)))
            })
            .unwrap()
            .unwrap();
        assert_eq!(got.version, "old");
        let got = c
            .get_or_load("v", "a", || -> R { Ok(Some(row("v", "a", "new", 10))) })
            .unwrap()
            .unwrap();
        assert_eq!(got.version, "new");
    }

    #[test]
    fn missing_secrets_are_not_cached_and_clear_drops_everything() {
        let c = LatestCache::new(1 << 20);
        assert!(c
            .get_or_load("v", "a", || -> R { Ok(None) })
            .unwrap()
            .is_none());
        c.get_or_load("v", "b", || -> R { Ok(Some(row("v", "b", "1", 10))) })
            .unwrap();
        c.clear();
        let got = c
            .get_or_load("v", "b", || -> R { Ok(Some(row("v", "b", "2", 10))) })
            .unwrap()
            .unwrap();
        assert_eq!(got.version, "2");
    }

    #[test]
    fn stays_within_its_budget_and_keeps_entries_in_use() {
        // Room for about 8 entries of 1 KiB + overhead per generation.
        let c = LatestCache::new(2 * 8 * (1024 + 40 + ENTRY_OVERHEAD));
        for i in 0..1000 {
            let name = format!("s{i}");
            c.get_or_load("v", &name, || -> R { Ok(Some(row("v", &name, "1", 1024))) })
                .unwrap();
            // "hot" is read between every new entry: it never leaves.
            let mut loaded = false;
            c.get_or_load("v", "hot", || -> R {
                loaded = true;
                Ok(Some(row("v", "hot", "1", 1024)))
            })
            .unwrap();
            assert!(!loaded || i == 0, "hot was evicted at {i}");
        }
        assert!(c.gens.read().unwrap().len() <= 18);
    }
}
