//! Garbage collection: expired upload sessions, entries idle past
//! `gc.max_idle`, blobs nothing pins or leases, then eviction if usage is
//! above the high watermark.

use serde::Serialize;

use super::release::{Freed, Leased};
use super::{now_ms, Store, StoreError};

/// What one garbage-collection pass did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct GcReport {
    pub uploads_expired: u64,
    pub entries_expired: u64,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    /// Bytes nothing pins that leases still hold.
    pub bytes_leased: u64,
    pub usage_after: u64,
}

impl Store {
    pub async fn gc(&self) -> Result<GcReport, StoreError> {
        let mut report = GcReport {
            uploads_expired: self.expire_uploads(self.gc.upload_expiry.0).await? as u64,
            ..GcReport::default()
        };
        let _one = self.budget.evicting.lock().await;
        self.flush_access().await?;
        let (mut freed, mut leased) = (Freed::default(), Leased::default());
        if let Some(max_idle) = self.gc.max_idle {
            let idle_before = now_ms().saturating_sub(max_idle.0.as_millis() as u64);
            for id in self.index.idle_ids(idle_before)? {
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
                    self.release_pins(&removed, &mut freed, &mut leased).await?;
                }
            }
        }
        self.sweep_unpinned(&mut freed, &mut leased).await?;
        self.note_leased(&leased);
        report.blobs_removed = freed.blobs;
        report.bytes_freed = freed.bytes;
        report.bytes_leased = leased.bytes();
        if self.settled_usage() > self.budget.high {
            let e = self.evict_locked(self.budget.low).await?;
            report.blobs_removed += e.blobs_removed;
            report.bytes_freed += e.bytes_freed;
            report.bytes_leased = e.bytes_leased;
        }
        self.commit.wait().await?;
        self.finish_deletes().await?;
        report.usage_after = self.usage();
        Ok(report)
    }
}
