//! Cluster mode's numbers in the exposition. Every replica reports the
//! cluster's usage, budget and counts (the same on each: aggregate with
//! `max`, not `sum`) under the single node's names, so dashboards work on
//! both, and beside them what is its own: whether it leads, its tier, and
//! whether it reaches the database.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::names::*;
use crate::cache::Protocol;
use crate::cluster::store::ClusterStore;
use crate::cluster::{leader, replica_of, replicas};

/// A heartbeat older than this many intervals is a replica gone.
const GONE_AFTER_BEATS: f64 = 3.0;

#[derive(Debug, Default)]
pub struct ClusterNumbers {
    /// False when the database did not answer: the cluster-wide numbers
    /// are then missing, not zero.
    pub database_up: bool,
    pub used_bytes: u64,
    pub max_bytes: u64,
    pub hard_limit_bytes: u64,
    pub leased_bytes: u64,
    pub blobs: u64,
    pub uploads: u64,
    pub entries: Vec<(Protocol, u64)>,
    pub replicas: u64,
    pub leader: bool,
    pub tier_used_bytes: u64,
    pub tier_capacity_bytes: u64,
    pub memo_listening: bool,
    pub memo_hits: u64,
    pub memo_misses: u64,
}

impl ClusterNumbers {
    /// Reads them for replica `me`, whose heartbeat comes every
    /// `heartbeat_secs`.
    pub async fn read(store: &ClusterStore, me: &str, heartbeat_secs: f64) -> ClusterNumbers {
        let mut n = ClusterNumbers {
            max_bytes: store.max_size,
            hard_limit_bytes: store.hard_limit,
            tier_used_bytes: store.tier.used(),
            tier_capacity_bytes: store.tier.capacity(),
            memo_listening: store.memo.is_hearing(),
            memo_hits: store.memo.hits.load(Ordering::Relaxed),
            memo_misses: store.memo.misses.load(Ordering::Relaxed),
            ..ClusterNumbers::default()
        };
        match n.read_shared(store, me, heartbeat_secs).await {
            Ok(()) => n.database_up = true,
            Err(e) => tracing::warn!(error = %e, "cannot read the cluster's numbers"),
        }
        n
    }

    async fn read_shared(
        &mut self,
        store: &ClusterStore,
        me: &str,
        heartbeat_secs: f64,
    ) -> Result<(), crate::cluster::ClusterError> {
        self.used_bytes = store.usage().await?;
        self.leased_bytes = store.leased_bytes().await?;
        let stats = store.stats().await?;
        (self.blobs, self.uploads) = (stats.blobs, stats.uploads);
        self.entries = store.entry_counts().await?;
        let client = store.pool.get().await?;
        self.leader = (leader::holder(&**client).await?).is_some_and(|h| replica_of(&h) == me);
        self.replicas = (replicas::list(&**client).await?)
            .iter()
            .filter(|r| r.seen_secs_ago < GONE_AFTER_BEATS * heartbeat_secs)
            .count() as u64;
        Ok(())
    }

    pub fn render(&self, out: &mut String, help: impl Fn(&mut String, &str)) {
        let own = [
            (CLUSTER_DATABASE_UP, u64::from(self.database_up)),
            (CLUSTER_LEADER, u64::from(self.leader)),
            (TIER_USED_BYTES, self.tier_used_bytes),
            (TIER_CAPACITY_BYTES, self.tier_capacity_bytes),
            (METADATA_CACHE_LISTENING, u64::from(self.memo_listening)),
            (METADATA_CACHE_HITS, self.memo_hits),
            (METADATA_CACHE_MISSES, self.memo_misses),
            (MAX_BYTES, self.max_bytes),
            (HARD_LIMIT_BYTES, self.hard_limit_bytes),
        ];
        let shared = [
            (CLUSTER_REPLICAS, self.replicas),
            (USED_BYTES, self.used_bytes),
            (
                OVER_BUDGET_BYTES,
                self.used_bytes.saturating_sub(self.max_bytes),
            ),
            (LEASED_BYTES, self.leased_bytes),
            (BLOBS, self.blobs),
            (UPLOADS, self.uploads),
        ];
        let shared = shared.iter().filter(|_| self.database_up);
        for (name, value) in own.iter().chain(shared) {
            help(out, name);
            let _ = writeln!(out, "{name} {value}");
        }
        if self.database_up {
            help(out, ENTRIES);
            for (p, n) in &self.entries {
                let _ = writeln!(out, "{ENTRIES}{{protocol=\"{}\"}} {n}", p.name());
            }
        }
    }
}
