//! Rows remembered after their first read, and forgotten when they change.
//!
//! The domain services keep a few small, hot lookups in memory (a vault's
//! owner, a tenant, what the token endpoint checks about an app). The
//! service that changes such a row forgets it after the change is committed
//! and before the change returns. A generation counter, bumped by every
//! forget, keeps a read that fetched the row before a change from putting
//! the old row back afterwards. Only rows that exist are remembered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Values by key, remembered after a load and dropped on change.
pub struct Remembered<V> {
    map: RwLock<HashMap<String, V>>,
    generation: AtomicU64,
    /// When this many are held, the next one to remember empties the map.
    max: usize,
}

impl<V: Clone> Remembered<V> {
    /// Remembers at most `max` values.
    pub fn new(max: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            max: max.max(1),
        }
    }

    /// The value of `key`: remembered, or `load`'s answer (remembered if it
    /// exists and nothing was forgotten meanwhile).
    pub fn get_or_load<E>(
        &self,
        key: &str,
        load: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E> {
        if let Some(v) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(Some(v.clone()));
        }
        let before = self.generation.load(Ordering::Acquire);
        let Some(value) = load()? else {
            return Ok(None);
        };
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) == before {
            if map.len() >= self.max {
                map.clear();
            }
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Some(value))
    }

    /// Forgets `key` (after a change to it was committed).
    pub fn forget(&self, key: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(key);
    }

    /// Forgets everything (after a change that may touch many keys).
    pub fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    type R = Result<Option<u32>, ()>;

    #[test]
    fn loads_once_and_again_after_forget() {
        let r = Remembered::new(10);
        let mut loads = 0;
        for _ in 0..3 {
            let v = r
                .get_or_load("a", || -> R {
                    loads += 1;
                    Ok(Some(1))
                })
                .unwrap();
            assert_eq!(v, Some(1));
        }
        assert_eq!(loads, 1);
        r.forget("a");
        assert_eq!(
            r.get_or_load("a", || -> R { Ok(Some(2)) }).unwrap(),
            Some(2)
        );
        r.clear();
        assert_eq!(
            r.get_or_load("a", || -> R { Ok(Some(3)) }).unwrap(),
            Some(3)
        );
    }

    #[test]
    fn missing_values_and_raced_loads_are_not_kept() {
        let r = Remembered::new(10);
        assert_eq!(r.get_or_load("a", || -> R { Ok(None) }).unwrap(), None);
        assert_eq!(
            r.get_or_load("a", || -> R { Ok(Some(1)) }).unwrap(),
            Some(1)
        );
        // A change is committed and forgotten while this read holds the old value.
        let v = r
            .get_or_load("b", || -> R {
                r.forget("b");
                Ok(Some(10))
            })
            .unwrap();
        assert_eq!(v, Some(10));
        assert_eq!(
            r.get_or_load("b", || -> R { Ok(Some(11)) }).unwrap(),
            Some(11)
        );
    }

    #[test]
    fn bounded() {
        let r = Remembered::new(3);
        for i in 0..10u32 {
            r.get_or_load(&i.to_string(), || -> R { Ok(Some(i)) })
                .unwrap();
            assert!(r.map.read().unwrap().len() <= 3);
        }
    }
}
