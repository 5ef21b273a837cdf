//! Eviction and garbage collection.
//!
//! Eviction is LRU over entries: above the high watermark, least-recently-used
//! entries are removed until usage is under the low watermark. Removing an
//! entry unpins its blobs; a blob nothing pins is deleted once it has not
//! been touched for the grace period, which is what lets a client that just
//! saw a blob (HEAD 200) still reference it. Unpinned blobs past the grace go
//! before any entry.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use super::{now_ms, Store, StoreError};
use crate::cas::ContentId;
use crate::index::EntryRecord;

/// What one eviction pass did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct EvictReport {
    pub entries_removed: u64,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    /// Bytes released by removed entries but still inside the grace period;
    /// garbage collection frees them once it has passed.
    pub bytes_in_grace: u64,
    pub usage_after: u64,
}

/// What one garbage-collection pass did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct GcReport {
    pub uploads_expired: u64,
    pub entries_expired: u64,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    pub usage_after: u64,
}

impl Store {
    /// Evicts until usage is at most `target` bytes (or nothing more can go).
    pub async fn evict_to(&self, target: u64) -> Result<EvictReport, StoreError> {
        let _one = self.budget.evicting.lock().await;
        self.evict_locked(target).await
    }

    /// Evicts down to the low watermark if usage is above the high one.
    pub async fn evict_if_needed(&self) -> Result<Option<EvictReport>, StoreError> {
        if self.usage() <= self.budget.high {
            return Ok(None);
        }
        let report = self.evict_to(self.budget.low).await?;
        tracing::info!(?report, "evicted least recently used entries");
        Ok(Some(report))
    }

    /// Waits until a write pushes usage past the high watermark (or `max_wait`).
    pub async fn pressure(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.budget.pressure.notified()).await;
    }

    fn grace_cutoff(&self) -> u64 {
        now_ms().saturating_sub(self.gc.grace.0.as_millis() as u64)
    }

    /// The eviction pass; the caller holds `budget.evicting`.
    pub(super) async fn evict_locked(&self, target: u64) -> Result<EvictReport, StoreError> {
        self.flush_access().await?;
        let cutoff = self.grace_cutoff();
        let mut report = EvictReport::default();

        // Blobs nothing uses, past the grace, go first.
        let (blobs, bytes) = self.sweep_unpinned(cutoff, Some(target)).await?;
        report.blobs_removed += blobs;
        report.bytes_freed += bytes;

        // Then entries, least recently used first.
        let done = |store: &Store, r: &EvictReport| {
            store.usage().saturating_sub(r.bytes_in_grace) <= target
        };
        self.evict_entries(None, cutoff, &mut report, done).await?;
        self.commit.wait().await?;
        self.finish_deletes().await?;
        report.usage_after = self.usage();
        Ok(report)
    }

    /// Deletes unpinned blobs untouched since `cutoff`, stopping once usage
    /// is at most `target` when one is given. Returns (blobs, bytes) freed.
    async fn sweep_unpinned(
        &self,
        cutoff: u64,
        target: Option<u64>,
    ) -> Result<(u64, u64), StoreError> {
        let unpinned: Vec<ContentId> = self
            .index
            .unpinned_blobs()
            .map(|r| r.map(|(id, _)| id))
            .collect::<Result<_, _>>()?;
        let (mut blobs, mut bytes) = (0, 0);
        for id in unpinned {
            if target.is_some_and(|t| self.usage() <= t) {
                break;
            }
            if let Some(size) = self.delete_blob_if_unused(id, cutoff).await? {
                blobs += 1;
                bytes += size;
            }
        }
        Ok((blobs, bytes))
    }

    /// Removes least-recently-used entries until `done`: all namespaces, or
    /// one namespace except one entry (its quota pass keeps the new entry). A child of another entry (an index's manifest) waits until its
    /// parents are gone; an entry whose removal would free nothing now is kept.
    async fn evict_entries(
        &self,
        namespace: Option<(&str, u64)>,
        cutoff: u64,
        report: &mut EvictReport,
        done: impl Fn(&Store, &EvictReport) -> bool,
    ) -> Result<(), StoreError> {
        let mut in_grace: HashSet<ContentId> = HashSet::new();
        let candidates: Vec<u64> = self
            .index
            .lru_ids(namespace.map(|(ns, _)| ns))
            .collect::<Result<_, _>>()?;
        for id in candidates {
            if done(self, report) {
                break;
            }
            if namespace.is_some_and(|(_, keep)| keep == id) {
                continue;
            }
            let Some(entry) = self.index.entry(id)? else {
                continue;
            };
            let quota_pass = namespace.is_some();
            if !self.index.parents_of(&entry.key)?.is_empty()
                || (!quota_pass && !self.frees_space(&entry, cutoff)?)
            {
                continue;
            }
            let Some(removed) = self.index.remove_entry(id, now_ms())? else {
                continue;
            };
            report.entries_removed += 1;
            self.evicted_entries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.release_pins(&removed, cutoff, report, &mut in_grace)
                .await?;
        }
        Ok(())
    }

    /// Brings a namespace over its quota back to the low watermark of it, by
    /// its own least-recently-used entries. `keep` (the entry just written)
    /// is never chosen.
    pub(super) async fn enforce_quota(&self, namespace: &str, keep: u64) -> Result<(), StoreError> {
        let Some(quota) = self.quotas.get(namespace).copied() else {
            return Ok(());
        };
        if self.index.namespace_usage(namespace)? <= quota {
            return Ok(());
        }
        let target = (quota as f64 * self.budget.low as f64 / self.budget.max.max(1) as f64) as u64;
        let _one = self.budget.evicting.lock().await;
        self.flush_access().await?;
        let cutoff = self.grace_cutoff();
        let mut report = EvictReport::default();
        let ns = namespace.to_owned();
        let done = move |store: &Store, _: &EvictReport| {
            store
                .index
                .namespace_usage(&ns)
                .map_or(true, |u| u <= target)
        };
        self.evict_entries(Some((namespace, keep)), cutoff, &mut report, done)
            .await?;
        self.commit.wait().await?;
        self.finish_deletes().await?;
        tracing::info!(
            namespace,
            quota,
            ?report,
            "namespace over quota: evicted its least recently used entries"
        );
        Ok(())
    }

    /// Whether removing `entry` would free bytes now: some blob it alone pins
    /// is past the grace. Entries whose blobs are all fresh (or shared) are
    /// kept, since evicting them would lose cache hits and gain no space.
    fn frees_space(&self, entry: &EntryRecord, cutoff: u64) -> Result<bool, StoreError> {
        for pin in &entry.pins {
            if self.index.pin_count(pin)? != 1 || self.touched_since(pin, cutoff) {
                continue;
            }
            if self.index.blob(pin)?.is_some_and(|b| b.touched < cutoff) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Deletes the blobs a removed entry was the last to pin, or notes them
    /// as in grace.
    async fn release_pins(
        &self,
        removed: &EntryRecord,
        cutoff: u64,
        report: &mut EvictReport,
        in_grace: &mut HashSet<ContentId>,
    ) -> Result<(), StoreError> {
        for pin in &removed.pins {
            if self.index.pin_count(pin)? > 0 {
                continue;
            }
            match self.delete_blob_if_unused(*pin, cutoff).await? {
                Some(size) => {
                    report.blobs_removed += 1;
                    report.bytes_freed += size;
                }
                None => {
                    if in_grace.insert(*pin) {
                        if let Some(rec) = self.index.blob(pin)? {
                            report.bytes_in_grace += rec.size;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets a blob if nothing pins it and nobody touched it since `cutoff`
    /// (in the index or in not-yet-flushed recency), and queues its file for
    /// deletion by `finish_deletes`. Returns its size.
    ///
    /// A file is only deleted once the removal of its record is durable:
    /// otherwise a crash could bring the record back without the file.
    async fn delete_blob_if_unused(
        &self,
        id: ContentId,
        cutoff: u64,
    ) -> Result<Option<u64>, StoreError> {
        if self.touched_since(&id, cutoff) {
            return Ok(None);
        }
        let (index, locks) = (self.index.clone(), self.locks.clone());
        let removed = tokio::task::spawn_blocking(move || -> Result<Option<u64>, StoreError> {
            let _locked = locks.lock(&id);
            Ok(index.remove_unused_blob(&id, cutoff)?.map(|rec| rec.size))
        })
        .await
        .map_err(std::io::Error::other)??;
        if let Some(size) = removed {
            self.freed_bytes
                .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            self.pending_deletes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(id);
        }
        Ok(removed)
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

    /// One garbage-collection pass: expired upload sessions, entries idle
    /// past `gc.max_idle`, unpinned blobs past the grace, then eviction if
    /// usage is above the high watermark.
    pub async fn gc(&self) -> Result<GcReport, StoreError> {
        let mut report = GcReport {
            uploads_expired: self.expire_uploads(self.gc.upload_expiry.0).await? as u64,
            ..GcReport::default()
        };
        let _one = self.budget.evicting.lock().await;
        self.flush_access().await?;
        let cutoff = self.grace_cutoff();
        if let Some(max_idle) = self.gc.max_idle {
            let idle_before = now_ms().saturating_sub(max_idle.0.as_millis() as u64);
            let candidates = self.index.idle_ids(idle_before)?;
            let mut scratch = EvictReport::default();
            let mut in_grace = HashSet::new();
            for id in candidates {
                let Some(entry) = self.index.entry(id)? else {
                    continue;
                };
                if entry.last_used >= idle_before {
                    break;
                }
                for removed in self.remove_entry(id).await? {
                    report.entries_expired += 1;
                    self.evicted_entries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.release_pins(&removed, cutoff, &mut scratch, &mut in_grace)
                        .await?;
                }
            }
            report.blobs_removed += scratch.blobs_removed;
            report.bytes_freed += scratch.bytes_freed;
        }
        let (blobs, bytes) = self.sweep_unpinned(cutoff, None).await?;
        report.blobs_removed += blobs;
        report.bytes_freed += bytes;
        if self.usage() > self.budget.high {
            let e = self.evict_locked(self.budget.low).await?;
            report.blobs_removed += e.blobs_removed;
            report.bytes_freed += e.bytes_freed;
        }
        self.commit.wait().await?;
        self.finish_deletes().await?;
        report.usage_after = self.usage();
        Ok(report)
    }
}
