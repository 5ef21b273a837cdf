//! What the leader does: eviction of namespaces over their quotas and, when
//! the recorded blobs pass the high watermark of the cluster's one budget,
//! down to the low one (every few seconds); the sweep (every `interval`). Safety never rests on there being one leader: every step
//! is a transaction that rechecks under row locks, so a deposed leader still
//! finishing a step, or two leaders for a moment, only repeat work.

use std::time::Duration;

use deadpool_postgres::Pool;

use super::objects::Objects;
use super::{evict, evictions, sweep, touches, ClusterError};

#[derive(Clone)]
pub struct Duties {
    pub pool: Pool,
    pub objects: Objects,
    pub max_size: u64,
    pub high_watermark: f64,
    pub low_watermark: f64,
    pub interval: Duration,
    /// How often replicas flush their touches (see `touches`).
    pub flush_interval: Duration,
    pub upload_expiry: Duration,
    /// How old an object no record names must be before it is swept.
    pub orphan_grace: Duration,
    /// Byte quotas by namespace (`[namespaces.<name>] max_size`).
    pub quotas: std::collections::HashMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Round {
    pub swept: sweep::Swept,
    pub evicted: evict::Evicted,
}

impl Duties {
    /// Eviction, then the sweep.
    pub async fn round(&self) -> Result<Round, ClusterError> {
        // Eviction first: a store too slow to list (the sweep's part) must
        // not keep the cluster over its budget.
        let evicted = self.evict().await?;
        let swept = self.sweep().await?;
        Ok(Round { swept, evicted })
    }

    /// Evicts namespaces over their quotas, then the cluster down to the
    /// low watermark once it passed the high one; only entries whose last
    /// use has surely been flushed by every replica.
    pub async fn evict(&self) -> Result<evict::Evicted, ClusterError> {
        let mut client = self.pool.get().await?;
        let now = super::now_ms();
        let settled = touches::settled_before(now, self.flush_interval);
        let mut evicted = evict::Evicted::default();
        for (namespace, quota) in &self.quotas {
            let done =
                evict::evict_namespace(&mut client, &self.objects, namespace, *quota, now, settled)
                    .await?;
            evicted.add(done);
        }
        let high = (self.max_size as f64 * self.high_watermark) as u64;
        if evict::usage(&**client).await? > high {
            let low = (self.max_size as f64 * self.low_watermark) as u64;
            let done = evict::evict_to(&mut client, &self.objects, low, now, settled).await?;
            evictions::report(&**client, low, &done, now, self.flush_interval).await?;
            evicted.add(done);
        }
        Ok(evicted)
    }

    /// Collects blobs nothing holds any more (their entries went a while
    /// ago, see `evict::collect_unreferenced`), finishes GCs a dead replica
    /// left, expires idle uploads and spent leases, and removes objects no
    /// record names.
    pub async fn sweep(&self) -> Result<sweep::Swept, ClusterError> {
        let mut client = self.pool.get().await?;
        let now = super::now_ms();
        let settled = touches::settled_before(now, self.flush_interval);
        let collected =
            evict::collect_unreferenced(&mut client, &self.objects, now, settled).await?;
        let mut swept = sweep::sweep(
            &mut client,
            &self.objects,
            now,
            self.upload_expiry,
            self.orphan_grace,
        )
        .await?;
        swept.collected = collected;
        Ok(swept)
    }
}
