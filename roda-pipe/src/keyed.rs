//! [`KeyedStates`]: the per-key state map of the keyed pipes (`stateful`, `delta`,
//! `dedup_by`), with a one-entry cache of the last key used.
//!
//! Streams come in runs: a sensor's readings of one window, an instrument's burst of
//! quotes. When the key of an input equals the key of the previous one, the cache finds
//! its state with one key comparison instead of hashing and probing; any other key costs
//! that comparison on top of the usual lookup. States live in a vector, indexed by a
//! `hashbrown` table of positions, so the cache is a position and keys need only
//! `Hash + Eq` (never `Clone`).

use core::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashTable};

/// States by key, in insertion order, with the last key used cached.
pub(crate) struct KeyedStates<K, V> {
    entries: Vec<(K, V)>,
    /// Positions in `entries`, hashed by their key.
    table: HashTable<usize>,
    hasher: DefaultHashBuilder,
    /// Position of the entry used last (`usize::MAX` before the first).
    last: usize,
}

impl<K: Hash + Eq, V> KeyedStates<K, V> {
    pub(crate) fn new() -> Self {
        KeyedStates {
            entries: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            last: usize::MAX,
        }
    }

    /// Room for `keys` more keys without allocating.
    pub(crate) fn reserve(&mut self, keys: usize) {
        self.entries.reserve(keys);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.table
            .reserve(keys, |&i| hasher.hash_one(&entries[i].0));
    }

    /// Keys seen so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keys that fit without allocating.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity().min(self.table.capacity())
    }

    /// The state of `key`, and whether it was just created by `init` (the key was new).
    #[inline]
    pub(crate) fn get_or_insert_with(
        &mut self,
        key: K,
        init: impl FnOnce() -> V,
    ) -> (&mut V, bool) {
        if let Some((cached, _)) = self.entries.get(self.last) {
            if *cached == key {
                return (&mut self.entries[self.last].1, false);
            }
        }
        self.lookup(key, init)
    }

    #[inline]
    fn lookup(&mut self, key: K, init: impl FnOnce() -> V) -> (&mut V, bool) {
        let hash = self.hasher.hash_one(&key);
        let entries = &self.entries;
        if let Some(&i) = self.table.find(hash, |&i| entries[i].0 == key) {
            self.last = i;
            return (&mut self.entries[i].1, false);
        }
        self.insert(hash, key, init())
    }

    /// A new key: rare once a stream has warmed up, so kept out of the lookup's code.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, hash: u64, key: K, state: V) -> (&mut V, bool) {
        let i = self.entries.len();
        self.entries.push((key, state));
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(&entries[j].0));
        self.last = i;
        (&mut self.entries[i].1, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_a_hash_map_on_runs_and_scattered_keys() {
        let mut keyed = KeyedStates::<u64, u64>::new();
        let mut model = HashMap::<u64, u64>::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Runs of one key half the time, scattered keys otherwise.
            let key = if step % 8 < 4 { step / 8 % 50 } else { x % 200 };
            let (state, new) = keyed.get_or_insert_with(key, || step);
            let expected_new = !model.contains_key(&key);
            assert_eq!(new, expected_new, "key {key} at step {step}");
            let m = model.entry(key).or_insert(step);
            if !new {
                *state += 1;
                *m += 1;
            }
            assert_eq!(*state, *m, "key {key} at step {step}");
        }
        assert_eq!(keyed.len(), model.len());
    }

    #[test]
    fn init_runs_only_for_new_keys() {
        let mut keyed = KeyedStates::<&str, u32>::new();
        let mut inits = 0;
        for key in ["a", "a", "b", "a", "b", "b", "c"] {
            keyed.get_or_insert_with(key, || {
                inits += 1;
                0
            });
        }
        assert_eq!(inits, 3);
        assert_eq!(keyed.len(), 3);
    }

    #[test]
    fn reserve_allocates_up_front() {
        let mut keyed = KeyedStates::<u32, u32>::new();
        keyed.reserve(100);
        let before = keyed.entries.capacity();
        for k in 0..100 {
            keyed.get_or_insert_with(k, || k);
        }
        assert_eq!(keyed.entries.capacity(), before);
        assert!(keyed.table.capacity() >= 100);
    }
}
