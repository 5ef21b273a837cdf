//! Eviction: least-recently-used entries go, whatever their age, until usage
//! is under the target. Removing an entry makes it a miss at once; its blobs
//! go as soon as nothing else pins them and no lease holds them (see
//! `leases`), so a client that resolved an entry can still fetch what it
//! pinned. Blobs nothing pins and nothing leases go before any entry.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::release::{Freed, Leased};
use super::{now_ms, Store, StoreError};

/// What one eviction pass did and, when it fell short of its target, what
/// holds the rest.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EvictReport {
    pub target: u64,
    pub entries_removed: u64,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    /// Bytes that no entry pins but leases still hold: they are freed when
    /// the leases end.
    pub bytes_leased: u64,
    /// When the last of those leases ends (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leases_end: Option<u64>,
    /// Bytes of uploads in progress and writes in flight.
    pub bytes_uploading: u64,
    pub usage_after: u64,
    /// Whether usage is at most the target.
    pub reached: bool,
}

impl EvictReport {
    /// One line on what keeps usage above the target.
    pub fn shortfall(&self) -> String {
        let mut why = vec![];
        if self.bytes_leased > 0 {
            let until = self
                .leases_end
                .map(|ms| {
                    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
                    format!(" until {}", humantime::format_rfc3339_seconds(t))
                })
                .unwrap_or_default();
            why.push(format!(
                "{} bytes held by leases of recent reads and writes{until}",
                self.bytes_leased
            ));
        }
        if self.bytes_uploading > 0 {
            why.push(format!(
                "{} bytes in uploads in progress",
                self.bytes_uploading
            ));
        }
        if why.is_empty() {
            why.push("entries that could not be removed".into());
        }
        why.join(", ")
    }
}

/// Eviction reports kept in memory for the dashboard.
pub const RECENT_EVICTIONS: usize = 20;

impl Store {
    /// Evicts until usage is at most `target` bytes (or nothing more can go).
    pub async fn evict_to(&self, target: u64) -> Result<EvictReport, StoreError> {
        let _one = self.budget.evicting.lock().await;
        self.evict_locked(target).await
    }

    /// Evicts down to the low watermark if usage is above the high one. Logs
    /// a run that removed something, and a change between reaching the
    /// target and not: a pass that can free nothing is not news each time.
    pub async fn evict_if_needed(&self) -> Result<Option<EvictReport>, StoreError> {
        if self.usage() <= self.budget.high {
            if self.budget.stuck.swap(false, Ordering::AcqRel) {
                tracing::info!("usage is back under the high watermark");
            }
            return Ok(None);
        }
        let report = self.evict_to(self.budget.low).await?;
        let was_stuck = self.budget.stuck.swap(!report.reached, Ordering::AcqRel);
        if report.entries_removed + report.blobs_removed > 0 {
            tracing::info!(?report, "evicted least recently used entries");
        } else if !report.reached && !was_stuck {
            tracing::warn!(
                usage = report.usage_after,
                target = report.target,
                "over the high watermark and nothing more can be evicted now: {}",
                report.shortfall()
            );
        }
        Ok(Some(report))
    }

    /// Waits until a write pushes usage past the high watermark (or `max_wait`).
    pub async fn pressure(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.budget.pressure.notified()).await;
    }

    /// The eviction pass; the caller holds `budget.evicting`.
    pub(super) async fn evict_locked(&self, target: u64) -> Result<EvictReport, StoreError> {
        self.flush_access().await?;
        let (mut freed, mut leased) = (Freed::default(), Leased::default());
        self.sweep_unpinned(&mut freed, &mut leased).await?;
        let done =
            |store: &Store, leased: &Leased| store.usage().saturating_sub(leased.bytes()) <= target;
        let entries_removed = self
            .evict_entries(None, &mut freed, &mut leased, done)
            .await?;
        self.commit.wait().await?;
        self.finish_deletes().await?;
        let report = self.report(target, entries_removed, &freed, &leased);
        self.note_leased(&leased);
        if report.entries_removed + report.blobs_removed > 0 {
            self.note_eviction(&report);
        }
        Ok(report)
    }

    /// Keeps the last `RECENT_EVICTIONS` passes that removed something, for
    /// the dashboard's health page: (Unix milliseconds, report).
    fn note_eviction(&self, report: &EvictReport) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut recent = self
            .recent_evictions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_EVICTIONS {
            recent.pop_front();
        }
        recent.push_back((at, report.clone()));
    }

    /// The most recent eviction passes that removed something, oldest first.
    pub fn recent_evictions(&self) -> Vec<(u64, EvictReport)> {
        let recent = self
            .recent_evictions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }

    pub(super) fn report(
        &self,
        target: u64,
        entries: u64,
        freed: &Freed,
        leased: &Leased,
    ) -> EvictReport {
        let usage_after = self.usage();
        EvictReport {
            target,
            entries_removed: entries,
            blobs_removed: freed.blobs,
            bytes_freed: freed.bytes,
            bytes_leased: leased.bytes(),
            leases_end: leased.last_end(),
            bytes_uploading: self.uploading(),
            usage_after,
            reached: usage_after <= target,
        }
    }

    /// Removes least-recently-used entries until `done`: of every namespace,
    /// or of one except one entry (its quota pass keeps the entry just
    /// written). A child of another entry (an index's manifest) waits until
    /// its parents are gone, so passes repeat while they remove something.
    /// Returns how many entries went.
    async fn evict_entries(
        &self,
        namespace: Option<(&str, u64)>,
        freed: &mut Freed,
        leased: &mut Leased,
        done: impl Fn(&Store, &Leased) -> bool,
    ) -> Result<u64, StoreError> {
        let mut removed_total = 0;
        loop {
            let mut removed = 0;
            let candidates: Vec<u64> = self
                .index
                .lru_ids(namespace.map(|(ns, _)| ns))
                .collect::<Result<_, _>>()?;
            for id in candidates {
                if done(self, leased) {
                    return Ok(removed_total + removed);
                }
                if namespace.is_some_and(|(_, keep)| keep == id) {
                    continue;
                }
                let Some(entry) = self.index.entry(id)? else {
                    continue;
                };
                if !self.index.parents_of(&entry.key)?.is_empty() {
                    continue;
                }
                let Some(gone) = self.index.remove_entry(id, now_ms())? else {
                    continue;
                };
                removed += 1;
                self.evicted_entries.fetch_add(1, Ordering::Relaxed);
                self.release_pins(&gone, freed, leased).await?;
            }
            removed_total += removed;
            if removed == 0 || done(self, leased) {
                return Ok(removed_total);
            }
        }
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
        let (mut freed, mut leased) = (Freed::default(), Leased::default());
        let ns = namespace.to_owned();
        let done = move |store: &Store, _: &Leased| {
            store
                .index
                .namespace_usage(&ns)
                .map_or(true, |u| u <= target)
        };
        let entries = self
            .evict_entries(Some((namespace, keep)), &mut freed, &mut leased, done)
            .await?;
        self.commit.wait().await?;
        self.finish_deletes().await?;
        let report = self.report(target, entries, &freed, &leased);
        tracing::info!(
            namespace,
            quota,
            ?report,
            "namespace over quota: evicted its least recently used entries"
        );
        Ok(())
    }
}
