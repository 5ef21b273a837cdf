//! Recency tracking. Reads record "used now" in memory; a worker flushes the
//! batch to the index, so a lookup never waits for an index write. A crash
//! loses at most one batch of recency, never correctness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{now_ms, BlobInfo, Store, StoreError};
use crate::cas::ContentId;
use crate::index::EntryRecord;

#[derive(Default)]
pub(super) struct Access {
    blobs: Arc<Mutex<HashMap<ContentId, u64>>>,
    /// Entry id → (last read, the blobs it pins, which that read leases).
    entries: Mutex<HashMap<u64, (u64, Vec<ContentId>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Notes that a blob was just read or checked (HEAD/GET): recency, and
    /// a write lease (see `leases`).
    pub fn touch_blob(&self, blob: &BlobInfo) {
        lock(&self.access.blobs).insert(blob.id, now_ms());
    }

    /// Notes that an entry was just read: recency, and a read lease on every
    /// blob it pins, which every deletion takes into account (they all
    /// flush this first).
    pub fn touch_entry(&self, entry: &EntryRecord) {
        let now = now_ms();
        let mut m = lock(&self.access.entries);
        match m.get_mut(&entry.id) {
            Some(seen) => seen.0 = now,
            None => {
                m.insert(entry.id, (now, entry.pins.clone()));
            }
        }
    }

    /// When the blob was last read or checked, if that is not yet in the index.
    pub(super) fn touched_in_memory(&self, id: &ContentId) -> Option<u64> {
        lock(&self.access.blobs).get(id).copied()
    }

    /// Turns entry reads into leases and writes the pending recency updates
    /// and leases to the index; returns how many reads it wrote.
    pub async fn flush_access(&self) -> Result<usize, StoreError> {
        let entries = std::mem::take(&mut *lock(&self.access.entries));
        // Before any await, so a concurrent eviction that finds the map
        // empty already sees the leases.
        for (at, pins) in entries.values() {
            self.leases.hold(pins, *at);
        }
        // Blob touches stay in memory until the index has them: until then
        // they are what holds a write lease.
        let blobs = lock(&self.access.blobs).clone();
        let n = blobs.len() + entries.len();
        let (index, leases) = (self.index.clone(), self.leases.clone());
        let pending = self.access.blobs.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            for (id, at) in &blobs {
                index.touch_blob(id, *at)?;
            }
            let touches: Vec<(u64, u64)> = entries.iter().map(|(id, (at, _))| (*id, *at)).collect();
            index.touch_entries(&touches)?;
            leases.record(&index)?;
            lock(&pending).retain(|id, at| blobs.get(id) != Some(at));
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        Ok(n)
    }
}
