//! The disk budget. Usage = bytes of every blob with a record (a counter the
//! index keeps transactionally) + bytes held by upload sessions + space
//! reserved by writes in flight. A write reserves before its bytes land.
//! `max_size` is soft: past it, the write waits for an eviction pass, and
//! is then admitted up to `hard_limit` (bytes that only leases hold may
//! keep usage above `max_size` for a lease period). Only a write that would
//! cross `hard_limit` is refused (507), before anything is stored.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{Store, StoreError};
use crate::config::StorageConfig;

/// Writes of unknown length reserve space in steps of this size.
const RESERVE_STEP: u64 = 8 << 20;

pub(super) struct Budget {
    pub max: u64,
    pub hard: u64,
    pub high: u64,
    pub low: u64,
    reserved: AtomicU64,
    uploads: AtomicU64,
    /// Serialises the check-then-reserve so concurrent writers cannot both
    /// take the last free bytes.
    admit: Mutex<()>,
    /// One eviction at a time; others wait for its result.
    pub evicting: tokio::sync::Mutex<()>,
    /// Wakes the background evictor when usage crosses the high watermark.
    pub pressure: tokio::sync::Notify,
    /// Whether the last background pass fell short of its target.
    pub stuck: AtomicBool,
    /// Bytes nothing pins that leases hold, as the last full pass found.
    leased: AtomicU64,
    /// Writes refused, by reason (`Refusal`).
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Eviction passes run to admit a write.
    write_evictions: AtomicU64,
}

/// Why a write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than the hard limit itself.
    TooLarge,
    /// Leases of recent reads and writes hold the space.
    Leased,
    /// Uploads in progress and writes in flight hold the space.
    Uploads,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [Refusal::TooLarge, Refusal::Leased, Refusal::Uploads];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::TooLarge => "larger_than_hard_limit",
            Refusal::Leased => "leased",
            Refusal::Uploads => "uploads",
        }
    }
}

impl Budget {
    pub fn new(config: &StorageConfig) -> Budget {
        let max = config.max_size.bytes();
        Budget {
            max,
            hard: config.hard_limit().max(max),
            high: (max as f64 * config.high_watermark) as u64,
            low: (max as f64 * config.low_watermark) as u64,
            reserved: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
            admit: Mutex::new(()),
            evicting: tokio::sync::Mutex::new(()),
            pressure: tokio::sync::Notify::new(),
            stuck: AtomicBool::new(false),
            leased: AtomicU64::new(0),
            refused: Default::default(),
            write_evictions: AtomicU64::new(0),
        }
    }

    pub fn add_uploads(&self, bytes: u64) {
        self.uploads.fetch_add(bytes, Ordering::AcqRel);
    }

    pub fn sub_uploads(&self, bytes: u64) {
        let _ = self
            .uploads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(bytes))
            });
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(bytes))
            });
    }
}

/// Space held for one write; released when dropped.
pub struct Held<'a> {
    store: &'a Store,
    bytes: AtomicU64,
    used: AtomicU64,
    /// Why the budget refused this write: (hard limit, reason).
    refusal: Mutex<Option<(u64, String)>>,
}

impl Held<'_> {
    /// Makes sure `total` bytes are covered, reserving more if needed.
    async fn cover(&self, total: u64) -> Result<(), StoreError> {
        let held = self.bytes.load(Ordering::Acquire);
        if total <= held {
            return Ok(());
        }
        let deficit = total - held;
        // Reserve ahead in steps so long bodies don't check the budget per
        // chunk, but fall back to the exact need when a step does not fit.
        let step = deficit.max(RESERVE_STEP);
        let more = if self.store.try_reserve(step, self.store.budget.max) {
            step
        } else {
            match self.store.reserve(deficit).await {
                Ok(()) => deficit,
                Err(e) => {
                    if let StoreError::Full {
                        hard_limit, why, ..
                    } = &e
                    {
                        *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some((*hard_limit, why.clone()));
                    }
                    return Err(e);
                }
            }
        };
        self.bytes.fetch_add(more, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.store
            .budget
            .release(self.bytes.load(Ordering::Acquire));
    }
}

impl Store {
    /// Bytes counted against the budget right now.
    pub fn usage(&self) -> u64 {
        let blobs = self.index.used_bytes().unwrap_or(0);
        blobs
            + self.budget.uploads.load(Ordering::Acquire)
            + self.budget.reserved.load(Ordering::Acquire)
    }

    /// Usage without the space writes in flight hold. A write's bytes are
    /// recorded a moment before its reservation is released, so `usage`
    /// counts them twice meanwhile; a periodic pass that happened to look
    /// then would evict the entry being written.
    pub(super) fn settled_usage(&self) -> u64 {
        self.index.used_bytes().unwrap_or(0) + self.budget.uploads.load(Ordering::Acquire)
    }

    pub fn max_size(&self) -> u64 {
        self.budget.max
    }

    pub fn hard_limit(&self) -> u64 {
        self.budget.hard
    }

    /// Bytes of uploads in progress and writes in flight.
    pub(super) fn uploading(&self) -> u64 {
        self.budget.uploads.load(Ordering::Acquire) + self.budget.reserved.load(Ordering::Acquire)
    }

    /// Bytes nothing pins that leases hold, as the last full pass found.
    pub fn leased_bytes(&self) -> u64 {
        self.budget.leased.load(Ordering::Relaxed)
    }

    pub(super) fn note_leased(&self, leased: &super::release::Leased) {
        self.budget.leased.store(leased.bytes(), Ordering::Relaxed);
    }

    /// Eviction passes run so far to admit a write.
    pub fn write_evictions(&self) -> u64 {
        self.budget.write_evictions.load(Ordering::Relaxed)
    }

    /// Writes refused so far, by reason.
    pub fn refusals(&self) -> Vec<(Refusal, u64)> {
        Refusal::ALL
            .iter()
            .zip(&self.budget.refused)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Reserves `bytes` if usage stays at most `limit`.
    fn try_reserve(&self, bytes: u64, limit: u64) -> bool {
        let _guard = self.budget.admit.lock().unwrap_or_else(|e| e.into_inner());
        if self.usage().saturating_add(bytes) > limit {
            return false;
        }
        let now = self.budget.reserved.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if self.usage() > self.budget.high || now > self.budget.high {
            self.budget.pressure.notify_one();
        }
        true
    }

    /// Reserves `bytes`: within `max_size` at once; past it after an
    /// eviction pass, up to `hard_limit`.
    async fn reserve(&self, bytes: u64) -> Result<(), StoreError> {
        let max = self.budget.max;
        if self.try_reserve(bytes, max) {
            return Ok(());
        }
        if bytes > self.budget.hard {
            return Err(self.refuse(Refusal::TooLarge, bytes, None));
        }
        let _one = self.budget.evicting.lock().await;
        if self.try_reserve(bytes, max) {
            return Ok(());
        }
        let target = max.saturating_sub(bytes).min(self.budget.low);
        let report = self.evict_locked(target).await?;
        self.budget.write_evictions.fetch_add(1, Ordering::Relaxed);
        if report.entries_removed + report.blobs_removed > 0 {
            tracing::info!(?report, needed = bytes, "evicted to admit a write");
        }
        if self.try_reserve(bytes, self.budget.hard) {
            return Ok(());
        }
        let reason = if report.bytes_leased > 0 {
            Refusal::Leased
        } else {
            Refusal::Uploads
        };
        Err(self.refuse(reason, bytes, Some(&report)))
    }

    fn refuse(
        &self,
        reason: Refusal,
        needed: u64,
        report: Option<&super::EvictReport>,
    ) -> StoreError {
        self.budget.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
        let why = match report {
            Some(r) => format!("; {}", r.shortfall()),
            None => " than the whole hard limit".into(),
        };
        if !self.budget.stuck.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                needed,
                reason = reason.name(),
                "refusing writes: storage is full{why}"
            );
        }
        StoreError::Full {
            needed,
            hard_limit: self.budget.hard,
            why,
        }
    }

    /// Starts a metered write: `hint` (a Content-Length) is reserved up front
    /// so an impossible write fails before reading its body.
    pub(super) async fn hold(&self, hint: Option<u64>) -> Result<Held<'_>, StoreError> {
        self.disk.check_writable()?;
        let held = Held {
            store: self,
            bytes: AtomicU64::new(0),
            used: AtomicU64::new(0),
            refusal: Mutex::new(None),
        };
        if let Some(n) = hint.filter(|n| *n > 0) {
            held.cover(n).await?;
        }
        Ok(held)
    }

    /// Wraps a body so every byte is covered by `held` before it is written.
    pub(super) fn metered<'a, S, E>(
        &'a self,
        body: S,
        held: &'a Held<'a>,
    ) -> impl Stream<Item = Result<Bytes, String>> + Send + 'a
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'a,
        E: std::fmt::Display,
    {
        body.map(|chunk| chunk.map_err(|e| e.to_string()))
            .then(move |chunk| async move {
                let chunk = chunk?;
                let total =
                    held.used.fetch_add(chunk.len() as u64, Ordering::AcqRel) + chunk.len() as u64;
                held.cover(total).await.map_err(|e| e.to_string())?;
                Ok(chunk)
            })
    }

    /// Maps an ingest failure to `Full` when the budget caused it.
    pub(super) fn budget_error(held: &Held<'_>, e: StoreError) -> StoreError {
        match held
            .refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some((hard_limit, why)) => StoreError::Full {
                needed: held.used.load(Ordering::Acquire),
                hard_limit,
                why,
            },
            None => e,
        }
    }
}
