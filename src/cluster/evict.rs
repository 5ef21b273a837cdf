//! The leader's eviction under the cluster's one budget: blobs no entry or
//! lease holds are collected first, then least recently used entries go in
//! batches until the live blobs fit. Only what was last used before
//! `settled` (see `touches::settled_before`) is a candidate, so a read
//! whose touch is still in some replica's batch is never undone. A
//! namespace over its quota loses its own entries the same way.

use tokio_postgres::{Client, GenericClient};

use super::collect::{collect_blob, Collected};
use super::objects::Objects;
use super::ClusterError;
use crate::cas::ContentId;

/// Entries dropped per transaction at most.
const BATCH: i64 = 256;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub entries: u64,
    pub blobs: u64,
    pub bytes: u64,
}

impl Evicted {
    pub fn add(&mut self, other: Evicted) {
        self.entries += other.entries;
        self.blobs += other.blobs;
        self.bytes += other.bytes;
    }
}

/// SQL true when blob row `b` is neither an entry's content nor one of its
/// pins: what GC, eviction and the numbers mean by unpinned.
pub const UNPINNED: &str = "NOT EXISTS (SELECT 1 FROM entry_pins p WHERE p.blob = b.id)
     AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.content = b.id)";

/// Bytes of recorded blobs, each counted once however many entries pin it.
pub async fn usage(client: &impl GenericClient) -> Result<u64, ClusterError> {
    let used: i64 = client
        .query_one("SELECT bytes FROM usage WHERE id = 1", &[])
        .await?
        .get(0);
    Ok(used as u64)
}

/// Collects every blob that no entry pins, no lease holds and nobody
/// touched since `settled`.
pub async fn collect_unreferenced(
    client: &mut Client,
    objects: &Objects,
    now_ms: i64,
    settled: i64,
) -> Result<Evicted, ClusterError> {
    let candidates: Vec<(ContentId, i64)> = client
        .query(
            &format!(
                "SELECT id, size FROM blobs b
                  WHERE state = 'live' AND touched_at < $2
                    AND {UNPINNED}
                    AND NOT {} AND NOT {}",
                super::touches::held_by_lease("$1"),
                released_lately("$3"),
            ),
            &[&now_ms, &settled, &(now_ms - settled)],
        )
        .await?
        .iter()
        .filter_map(|r| {
            let id: [u8; 32] = r.get::<_, &[u8]>(0).try_into().ok()?;
            Some((ContentId(id), r.get(1)))
        })
        .collect();
    let mut done = Evicted::default();
    for (id, size) in candidates {
        // Rechecked under the row lock: an entry may have pinned it since.
        if collect_blob(client, objects, &id, now_ms).await? == Collected::Deleted {
            done.blobs += 1;
            done.bytes += size as u64;
        }
    }
    Ok(done)
}

/// Frees space until live blobs take at most `target` bytes, or nothing
/// settled is left to evict.
pub async fn evict_to(
    client: &mut Client,
    objects: &Objects,
    target: u64,
    now_ms: i64,
    settled: i64,
) -> Result<Evicted, ClusterError> {
    evict(client, objects, None, target, now_ms, settled).await
}

/// Evicts namespace `namespace`'s own least recently used entries until
/// they pin at most `quota` bytes, touching no other namespace.
pub async fn evict_namespace(
    client: &mut Client,
    objects: &Objects,
    namespace: &str,
    quota: u64,
    now_ms: i64,
    settled: i64,
) -> Result<Evicted, ClusterError> {
    evict(client, objects, Some(namespace), quota, now_ms, settled).await
}

/// Bytes namespace `namespace`'s entries pin, each blob counted once (as a
/// single node counts a quota).
pub async fn namespace_usage(
    client: &impl GenericClient,
    namespace: &str,
) -> Result<u64, ClusterError> {
    let used: i64 = client
        .query_one(
            "SELECT coalesce(sum(size), 0)::bigint FROM blobs WHERE id IN (
                 SELECT p.blob FROM entry_pins p JOIN entries e ON e.id = p.entry
                  WHERE e.namespace = $1)",
            &[&namespace],
        )
        .await?
        .get(0);
    Ok(used as u64)
}

/// SQL true when blob row `b` lost its last pin less than the time in
/// parameter `wait` (milliseconds) ago: a read of an entry pinning it on
/// another replica may have a lease on its way (see the schema's trigger).
/// (bytes, when the last lease ends) of blobs no entry pins that a lease
/// holds: one flushed to the database, or one that may be on its way from
/// a replica's memory (the blob lost its last pin within two flush
/// intervals), as eviction counts them.
pub async fn leased(
    client: &impl GenericClient,
    now_ms: i64,
    flush_interval: std::time::Duration,
) -> Result<(u64, Option<u64>), ClusterError> {
    let wait = 2 * flush_interval.as_millis() as i64;
    let row = client
        .query_one(
            &format!(
                "SELECT coalesce(sum(b.size), 0)::bigint,
                        max(greatest(l.until_ms,
                            CASE WHEN b.touched_at > b.pinned_at THEN b.lease_until END,
                            CASE WHEN {lately} THEN b.released_at + $2 END))
                   FROM blobs b LEFT JOIN leases l ON l.blob = b.id AND l.until_ms > $1
                  WHERE b.state = 'live' AND ({held} OR {lately})
                    AND {UNPINNED}",
                held = super::touches::held_by_lease("$1"),
                lately = released_lately("$2"),
            ),
            &[&now_ms, &wait],
        )
        .await?;
    let until: Option<i64> = row.get(1);
    Ok((row.get::<_, i64>(0) as u64, until.map(|t| t as u64)))
}

fn released_lately(wait: &str) -> String {
    format!("b.released_at > larder_now_ms() - {wait}")
}

/// Bytes of blobs no entry pins that a lease holds, or that lost their
/// last pin too lately to go yet: they are freed later, and evicting more
/// entries for them would free nothing now. None for a namespace: its
/// usage counts only what its entries pin.
async fn held_unpinned(
    client: &impl GenericClient,
    namespace: Option<&str>,
    now_ms: i64,
    settled: i64,
) -> Result<u64, ClusterError> {
    if namespace.is_some() {
        return Ok(0);
    }
    let held: i64 = client
        .query_one(
            &format!(
                "SELECT coalesce(sum(size), 0)::bigint FROM blobs b
                  WHERE state = 'live'
                    AND {UNPINNED}
                    AND ({} OR {})",
                super::touches::held_by_lease("$1"),
                released_lately("$2"),
            ),
            &[&now_ms, &(now_ms - settled)],
        )
        .await?
        .get(0);
    Ok(held as u64)
}

async fn evict(
    client: &mut Client,
    objects: &Objects,
    namespace: Option<&str>,
    target: u64,
    now_ms: i64,
    settled: i64,
) -> Result<Evicted, ClusterError> {
    let mut done = collect_unreferenced(client, objects, now_ms, settled).await?;
    loop {
        let used = match namespace {
            Some(ns) => namespace_usage(&*client, ns).await?,
            None => usage(&*client).await?,
        };
        let held = held_unpinned(&*client, namespace, now_ms, settled).await?;
        let used = used.saturating_sub(held);
        if used <= target {
            break;
        }
        // The least recently used entries whose sizes add up to the excess
        // (more go in later rounds when they share blobs). A child of a
        // live entry (an index's manifest) is not a candidate.
        let victims: Vec<i64> = client
            .query(
                "SELECT id FROM (
                     SELECT id, size, (sum(size) OVER (ORDER BY last_used, id))::bigint AS running
                       FROM entries e
                      WHERE last_used < $1 AND ($4::text IS NULL OR namespace = $4)
                        AND NOT EXISTS (
                            SELECT 1 FROM entry_children c
                             WHERE c.protocol = e.protocol AND c.namespace = e.namespace
                               AND c.name = e.name)
                      ORDER BY last_used, id LIMIT $2) v
                  WHERE running - size < $3",
                &[&settled, &BATCH, &((used - target) as i64), &namespace],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if victims.is_empty() {
            break;
        }
        // `last_used` is checked again on each row as it is deleted: a
        // touch flushed meanwhile saves its entry.
        let dropped = client
            .execute(
                "DELETE FROM entries WHERE id = ANY($1) AND last_used < $2",
                &[&victims, &settled],
            )
            .await?;
        done.entries += dropped;
        let freed = collect_unreferenced(client, objects, now_ms, settled).await?;
        let freed_any = freed.blobs > 0;
        done.add(freed);
        if dropped == 0 && !freed_any {
            break;
        }
    }
    Ok(done)
}
