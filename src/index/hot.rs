//! Recently read entries by key, in memory. A hit of the HTTP cache, a
//! ByteStream read or a FindMissingBlobs digest looks its entry up by key:
//! two sled reads (key → id, id → record), about a seventh of a small GET's
//! CPU (docs/PERFORMANCE.md). Served from here instead, they cost a hash
//! lookup and a clone.
//!
//! Never stale: every change of an entry (stored, replaced, removed) and
//! every reopen forgets what it touched after it happened, and a lookup
//! only remembers what it read if no change happened between its read and
//! its insert (the generation, checked under the shard's lock, which the
//! forgetting takes too). The one field that may lag is `last_used`, which
//! readers do not use: recency is tracked in memory (`cache::access`) and
//! written to the index, not read back from here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::EntryRecord;

const SHARDS: usize = 16;
/// Entries remembered per shard: 32,768 in all.
const PER_SHARD: usize = 2048;
/// Bytes remembered per shard, roughly: 16 MiB in all, whatever the records
/// carry (an OCI index lists its children, a proxied package its headers).
const SHARD_BYTES: usize = 1 << 20;
/// A record larger than this is always read from the index.
const MAX_RECORD: usize = 16 << 10;

pub(super) struct HotEntries {
    shards: [Mutex<Shard>; SHARDS],
    /// Bumped by every change; a lookup that saw another value before its
    /// read does not remember what it read.
    generation: AtomicU64,
}

#[derive(Default)]
struct Shard {
    records: HashMap<Vec<u8>, EntryRecord>,
    /// Insertion order, for dropping the oldest (a forgotten key may still
    /// be listed: dropping it again is harmless).
    order: VecDeque<Vec<u8>>,
    /// The `footprint` of `records`.
    bytes: usize,
}

/// About what a remembered record holds on the heap.
fn footprint(key: &[u8], r: &EntryRecord) -> usize {
    let children: usize = (r.children.iter())
        .map(|c| c.namespace.len() + c.name.len() + 64)
        .sum();
    2 * key.len() + r.meta.len() + 32 * r.pins.len() + children + 256
}

impl Shard {
    fn remove(&mut self, key: &[u8]) {
        if let Some(r) = self.records.remove(key) {
            self.bytes -= footprint(key, &r);
        }
    }

    /// Holds `record` under `key` in place of what was there, dropping the
    /// oldest to stay within bounds.
    fn keep(&mut self, key: Vec<u8>, record: &EntryRecord) {
        self.remove(&key);
        let size = footprint(&key, record);
        if size > MAX_RECORD {
            return;
        }
        self.bytes += size;
        self.records.insert(key.clone(), record.clone());
        self.order.push_back(key);
        // Keys forgotten and remembered again are listed twice: bound the
        // list too (dropping a key still held costs one miss).
        while self.records.len() > PER_SHARD
            || self.bytes > SHARD_BYTES
            || self.order.len() > 2 * PER_SHARD
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
    }
}

impl HotEntries {
    pub fn new() -> HotEntries {
        HotEntries {
            shards: std::array::from_fn(|_| Mutex::default()),
            generation: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        // FNV-1a: keys are long and mostly alike at the start (protocol,
        // namespace), so every byte counts.
        let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// The generation to hand back to `remember`; read before the index.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &[u8]) -> Option<EntryRecord> {
        self.shard(key).lock().records.get(key).cloned()
    }

    /// Keeps `record`, read from the index under `key`, unless something
    /// changed since `seen` was taken.
    pub fn remember(&self, key: Vec<u8>, record: &EntryRecord, seen: u64) {
        let mut shard = self.shard(&key).lock();
        if self.generation.load(Ordering::Acquire) == seen {
            shard.keep(key, record);
        }
    }

    /// After a write that stored `records` (what the index now holds under
    /// their keys): each replaces what readers remembered of its key, so the
    /// reads that usually follow a write are served from here. `seen` is the
    /// generation taken before the write; once any other change is seen
    /// since then (it may be a later write of one of these keys), the rest
    /// are only forgotten.
    pub fn after_write<'r>(&self, records: impl IntoIterator<Item = &'r EntryRecord>, seen: u64) {
        // Our own bumps are counted; any other one means another change.
        let (mut expected, mut alone) = (seen, true);
        for record in records {
            let key = record.key.encode();
            let mut shard = self.shard(&key).lock();
            alone &= self.generation.fetch_add(1, Ordering::AcqRel) == expected;
            expected += 1;
            if alone {
                shard.keep(key, record);
            } else {
                shard.remove(&key);
            }
        }
    }

    /// Forgets `key`; call after the change to it is made.
    pub fn forget(&self, key: &[u8]) {
        let mut shard = self.shard(key).lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        shard.remove(key);
    }

    /// Forgets everything (the database was reopened).
    pub fn clear(&self) {
        let mut shards: Vec<_> = self.shards.iter().map(|s| s.lock()).collect();
        self.generation.fetch_add(1, Ordering::AcqRel);
        for s in &mut shards {
            s.records.clear();
            s.order.clear();
            s.bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cas::ContentId;
    use crate::index::{EntryKey, Protocol};

    fn record(id: u64) -> EntryRecord {
        EntryRecord {
            id,
            key: EntryKey {
                protocol: Protocol::Http,
                namespace: "ns".into(),
                name: format!("k{id}"),
            },
            content: ContentId([id as u8; 32]),
            size: 1,
            created: 0,
            last_used: 0,
            pins: Vec::new(),
            meta: Vec::new(),
            children: Vec::new(),
        }
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_remembered() {
        let hot = HotEntries::new();
        let seen = hot.generation();
        hot.forget(b"other key"); // any change in between
        hot.remember(b"k".to_vec(), &record(1), seen);
        assert!(hot.get(b"k").is_none());
        let seen = hot.generation();
        hot.remember(b"k".to_vec(), &record(1), seen);
        assert_eq!(hot.get(b"k").map(|r| r.id), Some(1));
        hot.forget(b"k");
        assert!(hot.get(b"k").is_none());
    }

    #[test]
    fn a_write_replaces_what_was_remembered_unless_another_change_came_between() {
        let hot = HotEntries::new();
        let (a, b) = (record(1), record(2));
        let (ka, kb) = (a.key.encode(), b.key.encode());
        hot.remember(ka.clone(), &a, hot.generation());
        let mut a2 = record(1);
        a2.id = 10;
        hot.after_write([&a2, &b], hot.generation());
        assert_eq!(hot.get(&ka).map(|r| r.id), Some(10));
        assert_eq!(hot.get(&kb).map(|r| r.id), Some(2));
        // A reader that read before that write does not bring back the old.
        let before = hot.generation();
        hot.after_write([&a2], hot.generation());
        hot.remember(ka.clone(), &a, before);
        assert_eq!(hot.get(&ka).map(|r| r.id), Some(10));
        // Another change between the write and this call: nothing is kept.
        let seen = hot.generation();
        hot.forget(b"other key");
        hot.after_write([&a, &b], seen);
        assert!(hot.get(&ka).is_none());
        assert!(hot.get(&kb).is_none());
    }

    #[test]
    fn stays_within_its_bound_and_clears() {
        let hot = HotEntries::new();
        for i in 0..(SHARDS * PER_SHARD * 2) as u64 {
            hot.remember(i.to_be_bytes().to_vec(), &record(i), hot.generation());
        }
        let held: usize = hot.shards.iter().map(|s| s.lock().records.len()).sum();
        assert!(held <= SHARDS * PER_SHARD, "{held}");
        // Large records: bounded by bytes first; one too large is not kept.
        let mut big = record(1);
        big.meta = vec![0; 8 << 10];
        for i in 0..SHARDS * PER_SHARD {
            hot.remember(i.to_be_bytes().to_vec(), &big, hot.generation());
        }
        for s in &hot.shards {
            let s = s.lock();
            assert!(s.bytes <= SHARD_BYTES, "{}", s.bytes);
            let counted: usize = s.records.iter().map(|(k, r)| footprint(k, r)).sum();
            assert_eq!(s.bytes, counted);
        }
        big.meta = vec![0; MAX_RECORD];
        hot.remember(b"huge".to_vec(), &big, hot.generation());
        assert!(hot.get(b"huge").is_none());
        hot.clear();
        assert!(hot.shards.iter().all(|s| s.lock().records.is_empty()));
    }
}
