//! Recency tracking. Reads record "used now" in memory; a worker flushes the
//! batch to the index, so a lookup never waits for an index write. A crash
//! loses at most one batch of recency, never correctness.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{now_ms, BlobInfo, Store, StoreError};
use crate::cas::ContentId;

#[derive(Default)]
pub(super) struct Access {
    blobs: Mutex<HashMap<ContentId, u64>>,
    entries: Mutex<HashMap<u64, u64>>,
}

fn take<K, V>(m: &Mutex<HashMap<K, V>>) -> HashMap<K, V> {
    std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner()))
}

impl Store {
    /// Notes that a blob was just read or checked (HEAD/GET).
    pub fn touch_blob(&self, blob: &BlobInfo) {
        let mut m = self.access.blobs.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(blob.id, now_ms());
    }

    /// Notes that an entry was just looked up.
    pub fn touch_entry(&self, id: u64) {
        let mut m = self
            .access
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.insert(id, now_ms());
    }

    /// True if the blob was read or checked after `cutoff` and that is not
    /// yet in the index.
    pub(super) fn touched_since(&self, id: &ContentId, cutoff: u64) -> bool {
        let m = self.access.blobs.lock().unwrap_or_else(|e| e.into_inner());
        m.get(id).is_some_and(|at| *at >= cutoff)
    }

    /// Writes the pending recency updates to the index; returns how many.
    pub async fn flush_access(&self) -> Result<usize, StoreError> {
        let blobs = take(&self.access.blobs);
        let entries = take(&self.access.entries);
        if blobs.is_empty() && entries.is_empty() {
            return Ok(0);
        }
        let n = blobs.len() + entries.len();
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            for (id, at) in blobs {
                index.touch_blob(&id, at)?;
            }
            index.touch_entries(&entries.into_iter().collect::<Vec<_>>())?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        Ok(n)
    }
}
