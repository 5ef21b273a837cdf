//! The cluster's numbers and the leader's work on demand (the admin API's
//! usage, stats, GC and eviction), for whichever replica is asked. They
//! are the cluster's, from the database, not this replica's, except the
//! evicted counters (`EvictedCounts`).

use std::sync::atomic::Ordering;

use super::store::ClusterStore;
use super::{evict, evictions, links, now_ms, sweep, touches, ClusterError};
use crate::cache::{BlobInfo, EvictReport, GcReport, StoreStats};
use crate::cas::{ContentId, Digest};

impl ClusterStore {
    /// Bytes of the recorded blobs (the usage row the hard limit is
    /// checked against). Uploads in progress are not counted.
    pub async fn usage(&self) -> Result<u64, ClusterError> {
        let client = self.pool.get().await?;
        evict::usage(&**client).await
    }

    /// Bytes of blobs no entry pins that a lease holds: one flushed to the
    /// database, or one that may be on its way from a replica's memory (the
    /// blob lost its last pin within two flush intervals), as eviction
    /// counts them.
    pub async fn leased_bytes(&self) -> Result<u64, ClusterError> {
        Ok(self.leased().await?.0)
    }

    /// (bytes, when the last lease ends) of what `leased_bytes` counts.
    async fn leased(&self) -> Result<(u64, Option<u64>), ClusterError> {
        let client = self.pool.get().await?;
        evict::leased(&**client, now_ms(), self.upkeep.flush_interval).await
    }

    /// Blobs, entries and uploads (reservations and named sessions
    /// included) of the whole cluster; the evicted counts are what `gc`
    /// and `evict_to` removed through this replica since it started, not
    /// the leader's rounds.
    pub async fn stats(&self) -> Result<StoreStats, ClusterError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT (SELECT blobs FROM usage WHERE id = 1),
                        (SELECT count(*) FROM entries),
                        (SELECT count(*) FROM uploads)",
                &[],
            )
            .await?;
        Ok(StoreStats {
            blobs: row.get::<_, i64>(0) as u64,
            entries: row.get::<_, i64>(1) as u64,
            uploads: row.get::<_, i64>(2) as u64,
            evicted_entries: self.evicted.entries.load(Ordering::Relaxed),
            evicted_bytes: self.evicted.bytes.load(Ordering::Relaxed),
        })
    }

    /// Blob `id` while it is live, and how many entries pin it (as content
    /// or pin). Looking does not lease it.
    pub async fn pinned_blob(
        &self,
        id: &ContentId,
    ) -> Result<(Option<BlobInfo>, u64), ClusterError> {
        let client = self.pool.get().await?;
        let blob = links::blob(&**client, links::BLOB, &Digest::Blake3(id.0), None).await?;
        let pins: i64 = client
            .query_one(
                "SELECT count(*) FROM entry_pins WHERE blob = $1",
                &[&&id.0[..]],
            )
            .await?
            .get(0);
        Ok((blob, pins as u64))
    }

    /// One GC pass now, as the leader's round does it: this replica's
    /// touches are flushed first; the sweep finishes dead replicas' GCs,
    /// expires idle uploads and spent leases and removes objects no record
    /// names; then every blob no entry pins, no lease holds and nobody
    /// used since the touches settled is collected. Entries are not
    /// expired by idleness in a cluster (`entries_expired` is 0), and
    /// eviction above the high watermark is left to the leader.
    pub async fn gc(&self) -> Result<GcReport, ClusterError> {
        self.flush_touches().await?;
        let swept = {
            let mut client = self.pool.get().await?;
            let up = &self.upkeep;
            let now = now_ms();
            (sweep::sweep(
                &mut client,
                &self.objects,
                now,
                up.upload_expiry,
                up.orphan_grace,
            ))
            .await?
        };
        let collected = {
            let mut client = self.pool.get().await?;
            let now = now_ms();
            let settled = touches::settled_before(now, self.upkeep.flush_interval);
            evict::collect_unreferenced(&mut client, &self.objects, now, settled).await?
        };
        // What went is heard of from the database too, but an operator's
        // next request through this replica must not find it.
        self.memo.forget(None);
        let bytes_freed = collected.bytes + swept.deletions_freed;
        self.evicted.bytes.fetch_add(bytes_freed, Ordering::Relaxed);
        Ok(GcReport {
            uploads_expired: swept.expired_uploads,
            entries_expired: 0,
            blobs_removed: collected.blobs + swept.deletions_finished,
            bytes_freed,
            bytes_leased: self.leased_bytes().await?,
            usage_after: self.usage().await?,
        })
    }

    /// Evicts least recently used entries until the recorded blobs take at
    /// most `target` bytes, as the leader does: only among what was last
    /// used before every replica's touches have surely landed, after this
    /// replica's own are flushed.
    pub async fn evict_to(&self, target: u64) -> Result<EvictReport, ClusterError> {
        self.flush_touches().await?;
        let mut client = self.pool.get().await?;
        let now = now_ms();
        let flush = self.upkeep.flush_interval;
        let settled = touches::settled_before(now, flush);
        let done = evict::evict_to(&mut client, &self.objects, target, now, settled).await?;
        self.memo.forget(None);
        self.evicted
            .entries
            .fetch_add(done.entries, Ordering::Relaxed);
        self.evicted.bytes.fetch_add(done.bytes, Ordering::Relaxed);
        evictions::report(&**client, target, &done, now, flush).await
    }

    /// The last eviction passes that removed something, the leader's and
    /// those asked of any replica, oldest first.
    pub async fn recent_evictions(&self) -> Result<Vec<(u64, EvictReport)>, ClusterError> {
        let client = self.pool.get().await?;
        evictions::recent(&**client).await
    }
}
