//! A bounded cache of unwrapped data keys, so that reading a hot secret
//! does not unwrap its key on every request.

use std::collections::HashMap;
use std::sync::RwLock;

use lockstep_crypto::DataKey;

type Entries = HashMap<String, (Vec<u8>, DataKey)>;

/// Unwrapped data keys by version id, each with the wrapped key it was
/// unwrapped from. A version id is not unique across vaults (a backup can be
/// restored into another vault, or into a vault re-created under the same
/// name, with new data keys), so a hit counts only when the row's wrapped key
/// is the one cached.
///
/// Two generations bound it: new keys go into the current one; when it is
/// full it becomes the previous one (the older previous generation is
/// dropped) and a key found in the previous generation moves back to the
/// current one. Keys in use stay; eviction costs O(1) per insert.
pub struct DataKeyCache {
    capacity: usize,
    gens: RwLock<Generations>,
}

#[derive(Default)]
struct Generations {
    current: Entries,
    previous: Entries,
}

impl DataKeyCache {
    /// A cache that holds at most `capacity` keys (two generations of
    /// `capacity / 2`).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: (capacity / 2).max(1),
            gens: RwLock::new(Generations::default()),
        }
    }

    /// The cached key of `version`, if it was unwrapped from `wrapped`.
    pub fn get(&self, version: &str, wrapped: &[u8]) -> Option<DataKey> {
        let hit = |e: &Entries| {
            e.get(version)
                .filter(|(w, _)| w.as_slice() == wrapped)
                .map(|(_, k)| k.clone())
        };
        let (current, previous) = {
            let g = self.gens.read().unwrap_or_else(|p| p.into_inner());
            (hit(&g.current), hit(&g.previous))
        };
        if current.is_some() {
            return current;
        }
        let key = previous?;
        self.put(version, wrapped, key.clone());
        Some(key)
    }

    /// Remembers the key of `version`, unwrapped from `wrapped`.
    pub fn put(&self, version: &str, wrapped: &[u8], key: DataKey) {
        let mut g = self.gens.write().unwrap_or_else(|p| p.into_inner());
        g.previous.remove(version);
        if g.current.len() >= self.capacity && !g.current.contains_key(version) {
            g.previous = std::mem::take(&mut g.current);
        }
        g.current
            .insert(version.to_owned(), (wrapped.to_vec(), key));
    }

    /// Forgets the keys of versions that no longer exist.
    pub fn forget(&self, versions: impl IntoIterator<Item = String>) {
        let mut g = self.gens.write().unwrap_or_else(|p| p.into_inner());
        for v in versions {
            g.current.remove(&v);
            g.previous.remove(&v);
        }
    }

    /// How many keys are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.gens.read().unwrap_or_else(|p| p.into_inner());
        g.current.len() + g.previous.len()
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
