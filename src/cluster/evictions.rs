//! The last eviction passes that removed something, shared through the
//! database: the leader's rounds and those an operator asked of any
//! replica, which every replica's admin API lists (the dashboard's health
//! page), as a single node lists its own.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::evict::{self, Evicted};
use super::ClusterError;
use crate::cache::{EvictReport, RECENT_EVICTIONS};

/// The report of a pass toward `target` that removed `done`, recorded
/// when it removed anything. Recording is best effort: the pass is done.
pub async fn report(
    client: &impl GenericClient,
    target: u64,
    done: &Evicted,
    now_ms: i64,
    flush_interval: Duration,
) -> Result<EvictReport, ClusterError> {
    let (bytes_leased, leases_end) = evict::leased(client, now_ms, flush_interval).await?;
    let usage_after = evict::usage(client).await?;
    let report = EvictReport {
        target,
        entries_removed: done.entries,
        blobs_removed: done.blobs,
        bytes_freed: done.bytes,
        bytes_leased,
        leases_end: leases_end.filter(|_| bytes_leased > 0),
        // Uploads are not in the cluster's usage.
        bytes_uploading: 0,
        usage_after,
        reached: usage_after <= target,
    };
    if done.entries + done.blobs > 0 {
        if let Err(e) = record(client, now_ms, &report).await {
            tracing::warn!(error = %e, "cannot record an eviction pass for the admin API");
        }
    }
    Ok(report)
}

/// Records `report`, made at `at_ms`, and drops all but the newest
/// `RECENT_EVICTIONS`.
pub async fn record(
    client: &impl GenericClient,
    at_ms: i64,
    report: &EvictReport,
) -> Result<(), ClusterError> {
    let json = serde_json::to_vec(report)
        .map_err(|e| ClusterError::Corrupt(format!("an eviction report: {e}")))?;
    client
        .execute(
            "INSERT INTO evictions (at, report) VALUES ($1, $2)",
            &[&at_ms, &json],
        )
        .await?;
    client
        .execute(
            "DELETE FROM evictions WHERE id <= (
                 SELECT id FROM evictions ORDER BY id DESC OFFSET $1 LIMIT 1)",
            &[&(RECENT_EVICTIONS as i64)],
        )
        .await?;
    Ok(())
}

/// The recorded passes, oldest first: (Unix milliseconds, report). A row
/// this binary cannot read (written by a newer one) is left out.
pub async fn recent(client: &impl GenericClient) -> Result<Vec<(u64, EvictReport)>, ClusterError> {
    let rows = client
        .query(
            "SELECT at, report FROM (
                 SELECT id, at, report FROM evictions ORDER BY id DESC LIMIT $1) newest
              ORDER BY id",
            &[&(RECENT_EVICTIONS as i64)],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let report = serde_json::from_slice(r.get::<_, &[u8]>(1)).ok()?;
            Some((r.get::<_, i64>(0) as u64, report))
        })
        .collect())
}
