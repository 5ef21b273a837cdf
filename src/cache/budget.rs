//! The disk budget. Usage = bytes of every blob with a record (a counter the
//! index keeps transactionally) + bytes held by upload sessions + space
//! reserved by writes in flight. A write reserves before its bytes land; if
//! the budget is short, eviction runs first, and if space still cannot be
//! found the write is refused (507) before anything is stored.

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
}

impl Budget {
    pub fn new(config: &StorageConfig) -> Budget {
        let max = config.max_size.bytes();
        Budget {
            max,
            high: (max as f64 * config.high_watermark) as u64,
            low: (max as f64 * config.low_watermark) as u64,
            reserved: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
            admit: Mutex::new(()),
            evicting: tokio::sync::Mutex::new(()),
            pressure: tokio::sync::Notify::new(),
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
    refused: AtomicBool,
}

impl Held<'_> {
    /// True if the write failed because the budget was exhausted.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }

    /// Bytes that went through the metered stream.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

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
        let more = if self.store.try_reserve(step) {
            step
        } else {
            match self.store.reserve(deficit).await {
                Ok(()) => deficit,
                Err(e) => {
                    self.refused.store(true, Ordering::Release);
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

    pub fn max_size(&self) -> u64 {
        self.budget.max
    }

    fn try_reserve(&self, bytes: u64) -> bool {
        let _guard = self.budget.admit.lock().unwrap_or_else(|e| e.into_inner());
        if self.usage().saturating_add(bytes) > self.budget.max {
            return false;
        }
        let now = self.budget.reserved.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if self.usage() > self.budget.high || now > self.budget.high {
            self.budget.pressure.notify_one();
        }
        true
    }

    /// Reserves `bytes`, evicting first if the budget is short.
    async fn reserve(&self, bytes: u64) -> Result<(), StoreError> {
        if self.try_reserve(bytes) {
            return Ok(());
        }
        {
            let _one = self.budget.evicting.lock().await;
            if self.try_reserve(bytes) {
                return Ok(());
            }
            let target = self.budget.max.saturating_sub(bytes).min(self.budget.low);
            self.evict_locked(target).await?;
        }
        if self.try_reserve(bytes) {
            Ok(())
        } else {
            Err(StoreError::Full {
                needed: bytes,
                max: self.budget.max,
            })
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
            refused: AtomicBool::new(false),
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
        if held.refused() {
            StoreError::Full {
                needed: held.used(),
                max: held.store.budget.max,
            }
        } else {
            e
        }
    }
}
