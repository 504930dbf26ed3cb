//! A bounded cache of unwrapped data keys, so that reading a hot secret
//! does not unwrap its key on every request.

use std::collections::HashMap;
use std::sync::RwLock;

use lockstep_crypto::DataKey;

/// Unwrapped data keys by version id, each with the wrapped key it was
/// unwrapped from. A version id is not unique across vaults (a backup can be
/// restored into another vault, or into a vault re-created under the same
/// name, with new data keys), so a hit counts only when the row's wrapped key
/// is the one cached.
pub struct DataKeyCache {
    capacity: usize,
    keys: RwLock<HashMap<String, (Vec<u8>, DataKey)>>,
}

impl DataKeyCache {
    /// A cache that holds at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// The cached key of a version whose wrapped key is `wrapped`.
    pub fn get(&self, version: &str, wrapped: &[u8]) -> Option<DataKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(version)
            .filter(|(w, _)| w.as_slice() == wrapped)
            .map(|(_, k)| k.clone())
    }

    /// Remembers a key, evicting an arbitrary entry when full.
    pub fn put(&self, version: &str, wrapped: &[u8], key: DataKey) {
        let mut map = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(version) {
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(version.to_owned(), (wrapped.to_vec(), key));
    }

    /// Forgets the keys of versions that no longer exist.
    pub fn forget(&self, versions: impl IntoIterator<Item = String>) {
        let mut map = self.keys.write().unwrap_or_else(|p| p.into_inner());
        for v in versions {
            map.remove(&v);
        }
    }
}
