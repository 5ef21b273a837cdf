//! A map bounded by the bytes its items take, dropping what was least
//! recently used roughly: the memo's store (`memo.rs`).

use std::collections::HashMap;
use std::hash::Hash;
use std::mem;

/// A map of at most about `cap` bytes that drops what was least recently
/// used, roughly: items live in a young generation; when it is full it
/// becomes the old one (the previous old one is dropped) and an item found
/// in the old one moves back to the young. O(1) per operation, no list to
/// keep in order.
pub struct Generations<K, V> {
    young: HashMap<K, (V, usize)>,
    old: HashMap<K, (V, usize)>,
    young_bytes: usize,
    cap: usize,
}

impl<K: Hash + Eq, V> Generations<K, V> {
    pub fn new(cap: usize) -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            young_bytes: 0,
            cap,
        }
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if !self.young.contains_key(k) {
            let (k, (v, w)) = self.old.remove_entry(k)?;
            self.insert(k, v, w);
        }
        self.young.get_mut(k).map(|(v, _)| v)
    }

    pub fn take(&mut self, k: &K) -> Option<V> {
        let young = self.young.remove(k).map(|(v, w)| {
            self.young_bytes -= w;
            v
        });
        let old = self.old.remove(k).map(|(v, _)| v);
        young.or(old)
    }

    pub fn remove(&mut self, k: &K) {
        self.take(k);
    }

    pub fn insert(&mut self, k: K, v: V, weight: usize) {
        self.remove(&k);
        if weight > self.cap / 2 {
            return;
        }
        if self.young_bytes + weight > self.cap / 2 {
            self.old = mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += weight;
        self.young.insert(k, (v, weight));
    }

    /// How many items it holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
    }
}
