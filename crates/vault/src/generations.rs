//! The bounded map behind the vault's in-memory caches: two generations.
//!
//! New entries go into the current generation; when it would outgrow half
//! the budget it becomes the previous one (the older previous generation is
//! pushed out), and an entry found in the previous generation moves back to
//! the current one. Entries in use stay; eviction costs O(1) per insert.
//! Each entry counts for the weight its cache gives it (1 for a count
//! bound, bytes for a memory bound).

use std::collections::HashMap;

/// A generation pushed out by an insert. Callers drop it after releasing
/// their lock: freeing tens of thousands of entries takes milliseconds.
pub(crate) type Evicted<V> = Option<HashMap<String, V>>;

pub(crate) struct Generations<V> {
    current: HashMap<String, V>,
    current_weight: usize,
    previous: HashMap<String, V>,
    /// The weight one generation may hold.
    half_budget: usize,
    weigh: fn(&V) -> usize,
}

impl<V> Generations<V> {
    /// Holds entries weighing at most about `budget` in all.
    pub(crate) fn new(budget: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            current: HashMap::new(),
            current_weight: 0,
            previous: HashMap::new(),
            half_budget: (budget / 2).max(1),
            weigh,
        }
    }

    /// The entry of `key` in the current generation.
    pub(crate) fn current(&self, key: &str) -> Option<&V> {
        self.current.get(key)
    }

    /// The entry of `key` in the previous generation.
    pub(crate) fn previous(&self, key: &str) -> Option<&V> {
        self.previous.get(key)
    }

    /// Moves the entry of `key` from the previous generation back to the
    /// current one; returns it (if there was one) and what that pushed out.
    pub(crate) fn revive(&mut self, key: &str) -> (Option<&V>, Evicted<V>) {
        let Some((k, v)) = self.previous.remove_entry(key) else {
            return (None, None);
        };
        let evicted = self.insert(k, v);
        (self.current.get(key), evicted)
    }

    /// Puts `value` under `key` in the current generation (replacing any
    /// entry of `key` in either generation); returns what that pushed out.
    pub(crate) fn insert(&mut self, key: String, value: V) -> Evicted<V> {
        self.previous.remove(&key);
        self.remove_current(&key);
        let weight = (self.weigh)(&value);
        let mut evicted = None;
        if self.current_weight + weight > self.half_budget && !self.current.is_empty() {
            let full = std::mem::take(&mut self.current);
            evicted = Some(std::mem::replace(&mut self.previous, full));
            self.current_weight = 0;
        }
        self.current_weight += weight;
        self.current.insert(key, value);
        evicted
    }

    /// Drops the entry of `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        self.remove_current(key);
        self.previous.remove(key);
    }

    fn remove_current(&mut self, key: &str) {
        if let Some(old) = self.current.remove(key) {
            self.current_weight = self.current_weight.saturating_sub((self.weigh)(&old));
        }
    }

    /// Empties both generations; returns the entries for the caller to drop
    /// outside its lock.
    pub(crate) fn take(&mut self) -> (HashMap<String, V>, HashMap<String, V>) {
        self.current_weight = 0;
        (
            std::mem::take(&mut self.current),
            std::mem::take(&mut self.previous),
        )
    }

    /// How many entries are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}
