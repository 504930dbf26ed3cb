//! A bounded cache of unwrapped data keys, so that reading a hot secret
//! does not unwrap its key on every request.

use std::sync::RwLock;

use lockstep_crypto::DataKey;

use crate::generations::Generations;

/// A cached key and the wrapped key it was unwrapped from.
type Entry = (Vec<u8>, DataKey);

/// Unwrapped data keys by version id, each with the wrapped key it was
/// unwrapped from. A version id is not unique across vaults (a backup can be
/// restored into another vault, or into a vault re-created under the same
/// name, with new data keys), so a hit counts only when the row's wrapped key
/// is the one cached. Bounded by count, in two generations (see
/// `generations.rs`): keys in use stay.
pub struct DataKeyCache {
    gens: RwLock<Generations<Entry>>,
}

impl DataKeyCache {
    /// A cache that holds at most `capacity` keys (two generations of
    /// `capacity / 2`).
    pub fn new(capacity: usize) -> Self {
        Self {
            gens: RwLock::new(Generations::new(capacity, |_| 1)),
        }
    }

    /// The cached key of `version`, if it was unwrapped from `wrapped`.
    pub fn get(&self, version: &str, wrapped: &[u8]) -> Option<DataKey> {
        let hit = |e: Option<&Entry>| {
            e.filter(|(w, _)| w.as_slice() == wrapped)
                .map(|(_, k)| k.clone())
        };
        let in_previous = {
            let g = self.gens.read().unwrap_or_else(|p| p.into_inner());
            if let Some(key) = hit(g.current(version)) {
                return Some(key);
            }
            hit(g.previous(version)).is_some()
        };
        if !in_previous {
            return None;
        }
        let mut g = self.gens.write().unwrap_or_else(|p| p.into_inner());
        let (entry, evicted) = g.revive(version);
        let key = hit(entry);
        drop(g);
        drop(evicted);
        key
    }

    /// Remembers the key of `version`, unwrapped from `wrapped`.
    pub fn put(&self, version: &str, wrapped: &[u8], key: DataKey) {
        let mut g = self.gens.write().unwrap_or_else(|p| p.into_inner());
        let evicted = g.insert(version.to_owned(), (wrapped.to_vec(), key));
        drop(g);
        drop(evicted);
    }

    /// Forgets the keys of versions that no longer exist.
    pub fn forget(&self, versions: impl IntoIterator<Item = String>) {
        let mut g = self.gens.write().unwrap_or_else(|p| p.into_inner());
        for v in versions {
            g.remove(&v);
        }
    }

    /// How many keys are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.gens.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key() -> DataKey {
        lockstep_crypto::Kek::generate()
            .new_data_key("t")
            .unwrap()
            .0
    }

    #[test]
    fn bounded_keeps_keys_in_use_and_checks_the_wrapped_key() {
        let cache = DataKeyCache::new(4);
        cache.put("hot", b"w-hot", key());
        for i in 0..100 {
            cache.put(&format!("v{i}"), b"w", key());
            assert!(cache.get("hot", b"w-hot").is_some(), "a key in use stays");
            assert!(cache.len() <= 4);
        }
        assert!(cache.get("v0", b"w").is_none(), "old keys are evicted");
        assert!(cache.get("v99", b"w").is_some());
        assert!(
            cache.get("hot", b"other").is_none(),
            "another wrapped key misses"
        );
        cache.forget(["hot".to_owned()]);
        assert!(cache.get("hot", b"w-hot").is_none());
    }
}
