//! Deleting blobs: only when nothing pins them and no lease holds them, and
//! only once the removal of their record is durable.

use std::collections::HashMap;

use super::{now_ms, Store, StoreError};
use crate::cas::ContentId;
use crate::index::EntryRecord;

/// What became of a blob a pass tried to delete.
pub(super) enum Release {
    Deleted(u64),
    /// Nothing pins it, but a lease holds it until then.
    Leased {
        size: u64,
        until: u64,
    },
    /// Pinned, or gone already.
    Kept,
}

/// Blobs a pass found held only by leases: id → (size, lease end).
#[derive(Default)]
pub(super) struct Leased(pub HashMap<ContentId, (u64, u64)>);

impl Leased {
    pub fn bytes(&self) -> u64 {
        self.0.values().map(|(size, _)| size).sum()
    }

    pub fn last_end(&self) -> Option<u64> {
        self.0.values().map(|(_, until)| *until).max()
    }
}

/// Blobs and bytes a pass deleted.
#[derive(Default)]
pub(super) struct Freed {
    pub blobs: u64,
    pub bytes: u64,
}

impl Freed {
    fn add(&mut self, outcome: Release, id: ContentId, leased: &mut Leased) {
        match outcome {
            Release::Deleted(size) => {
                self.blobs += 1;
                self.bytes += size;
            }
            Release::Leased { size, until } => {
                leased.0.insert(id, (size, until));
            }
            Release::Kept => {}
        }
    }
}

impl Store {
    /// Deletes every blob that nothing pins and no lease holds; notes the
    /// leased ones in `leased`.
    pub(super) async fn sweep_unpinned(
        &self,
        freed: &mut Freed,
        leased: &mut Leased,
    ) -> Result<(), StoreError> {
        let unpinned: Vec<ContentId> = self
            .index
            .unpinned_blobs()
            .map(|r| r.map(|(id, _)| id))
            .collect::<Result<_, _>>()?;
        for id in unpinned {
            let outcome = self.release_blob(id).await?;
            freed.add(outcome, id, leased);
        }
        Ok(())
    }

    /// Deletes the blobs a removed entry was the last to pin, unless leased.
    pub(super) async fn release_pins(
        &self,
        removed: &EntryRecord,
        freed: &mut Freed,
        leased: &mut Leased,
    ) -> Result<(), StoreError> {
        for pin in &removed.pins {
            let outcome = self.release_blob(*pin).await?;
            freed.add(outcome, *pin, leased);
        }
        Ok(())
    }

    /// Forgets a blob if nothing pins it and no lease holds it, and queues
    /// its file for deletion by `finish_deletes`.
    ///
    /// A file is only deleted once the removal of its record is durable:
    /// otherwise a crash could bring the record back without the file.
    async fn release_blob(&self, id: ContentId) -> Result<Release, StoreError> {
        let Some(rec) = self.index.blob(&id)? else {
            return Ok(Release::Kept);
        };
        if self.index.pin_count(&id)? > 0 {
            return Ok(Release::Kept);
        }
        let touched = rec.touched.max(self.touched_in_memory(&id).unwrap_or(0));
        if let Some(until) = self.leases.held_until(&id, touched, now_ms()) {
            return Ok(Release::Leased {
                size: rec.size,
                until,
            });
        }
        let (index, locks) = (self.index.clone(), self.locks.clone());
        // A touch written to the index since `rec` was read keeps the blob.
        let touched_before = touched.saturating_add(1);
        let removed = tokio::task::spawn_blocking(move || -> Result<Option<u64>, StoreError> {
            let _locked = locks.lock(&id);
            Ok(index
                .remove_unused_blob(&id, touched_before)?
                .map(|rec| rec.size))
        })
        .await
        .map_err(std::io::Error::other)??;
        let Some(size) = removed else {
            return Ok(Release::Kept);
        };
        self.freed_bytes
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        self.pending_deletes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        Ok(Release::Deleted(size))
    }

    /// Makes queued removals durable, then deletes their files. A blob that
    /// was written again meanwhile (its deletion cancelled) keeps its file.
    pub(super) async fn finish_deletes(&self) -> Result<(), StoreError> {
        let ids = std::mem::take(
            &mut *self
                .pending_deletes
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if ids.is_empty() {
            return Ok(());
        }
        self.commit.wait().await?;
        let (cas, index, locks) = (self.cas.clone(), self.index.clone(), self.locks.clone());
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            for id in ids {
                let _locked = locks.lock(&id);
                if index.in_trash(&id)? {
                    index.unlink_all(&id)?;
                    cas.remove(&id)?;
                    index.trash_done(&id)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Finishes deletions a crash interrupted (records gone, files maybe not).
    pub(super) fn empty_trash(&self) -> Result<(), StoreError> {
        for id in self.index.trash()? {
            self.cas.remove(&id)?;
            self.index.unlink_all(&id)?;
            self.index.trash_done(&id)?;
        }
        Ok(())
    }

    /// Removes an entry and, first, every entry that needs it (an index whose
    /// child manifest is deleted would be broken). Returns the removed entries.
    pub async fn remove_entry(&self, id: u64) -> Result<Vec<EntryRecord>, StoreError> {
        let mut removed = Vec::new();
        let mut queue = vec![id];
        while let Some(id) = queue.pop() {
            let Some(entry) = self.index.entry(id)? else {
                continue;
            };
            let parents = self.index.parents_of(&entry.key)?;
            if !parents.is_empty() {
                queue.push(id);
                queue.extend(parents);
                if queue.len() > 100_000 {
                    break; // a cycle cannot form (a child exists before its parent), but stay bounded
                }
                continue;
            }
            if let Some(r) = self.index.remove_entry(id, now_ms())? {
                removed.push(r);
            }
        }
        self.commit.wait().await?;
        Ok(removed)
    }
}
