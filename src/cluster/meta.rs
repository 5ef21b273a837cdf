//! The cluster's invariant-bearing metadata writes, in PostgreSQL: a blob
//! becomes visible, an entry pins live blobs, GC takes an unreferenced one.
//!
//! The race that matters is GC against an entry write that pins the blob
//! being collected. Both take the blob's row lock before they decide: the
//! entry write `FOR SHARE` and then requires the row `live`; GC
//! `FOR UPDATE` and then, in a later statement (so under a snapshot taken
//! after the lock, which READ COMMITTED gives every statement), looks for
//! pins and leases. Whichever locks first wins: the entry commits its pins
//! before GC looks, or GC commits `deleting` before the entry write reads
//! the row and it is refused. A single `UPDATE … WHERE NOT EXISTS (pins)`
//! would not do: its subquery keeps the snapshot from before the wait.

use tokio_postgres::{Client, GenericClient, Transaction};

use super::ClusterError;
use crate::cas::ContentId;
use crate::index::{EntryKey, NewEntry};

/// What recording a blob found.
#[derive(Debug, PartialEq, Eq)]
pub enum BlobPut {
    /// The blob is recorded and live.
    Live,
    /// GC is removing this content (its object may already be gone): wait
    /// until `blob_state` says it is gone, upload the object again, retry.
    Deleting,
    /// Recording it would take the cluster past its hard limit; nothing was
    /// recorded and the caller rolls back. The object stays for the sweep
    /// to remove: another writer of the same bytes may be recording it.
    Full { used: u64 },
}

/// Records blob `id` (its object already written and verified), with the
/// other digests it is known by, in one transaction of its own.
pub async fn put_blob(
    client: &mut Client,
    id: &ContentId,
    size: u64,
    aliases: &[String],
    now_ms: i64,
    hard_limit: u64,
) -> Result<BlobPut, ClusterError> {
    let tx = client.transaction().await?;
    let put = put_blob_in(&tx, id, size, aliases, now_ms, hard_limit).await?;
    if put == BlobPut::Live {
        tx.commit().await?;
    }
    Ok(put)
}

/// `put_blob` in the caller's transaction, which must roll back unless the
/// answer is `Live`.
pub async fn put_blob_in(
    tx: &Transaction<'_>,
    id: &ContentId,
    size: u64,
    aliases: &[String],
    now_ms: i64,
    hard_limit: u64,
) -> Result<BlobPut, ClusterError> {
    // xmax is 0 on a row this statement inserted, not on one it updated.
    let row = tx
        .query_one(
            "INSERT INTO blobs (id, size, created_at, touched_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (id) DO UPDATE
                 SET touched_at = greatest(blobs.touched_at, excluded.touched_at)
             RETURNING state, xmax = 0",
            &[&&id.0[..], &(size as i64), &now_ms],
        )
        .await?;
    if row.get::<_, &str>(0) != "live" {
        return Ok(BlobPut::Deleting);
    }
    if row.get::<_, bool>(1) {
        // The one row every new blob updates: the check and the addition
        // are one step for the whole cluster.
        let room = tx
            .query_opt(
                "UPDATE usage SET bytes = bytes + $1, blobs = blobs + 1
                  WHERE id = 1 AND bytes + $1 <= $2 RETURNING bytes",
                &[&(size as i64), &(hard_limit.min(i64::MAX as u64) as i64)],
            )
            .await?;
        if room.is_none() {
            let used: i64 = tx
                .query_one("SELECT bytes FROM usage WHERE id = 1", &[])
                .await?
                .get(0);
            return Ok(BlobPut::Full { used: used as u64 });
        }
    }
    for alias in aliases {
        tx.execute(
            "INSERT INTO blob_aliases (digest, blob) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[alias, &&id.0[..]],
        )
        .await?;
    }
    Ok(BlobPut::Live)
}

/// `live`, `deleting`, or `None` when the blob is not recorded.
pub async fn blob_state(
    client: &impl GenericClient,
    id: &ContentId,
) -> Result<Option<String>, ClusterError> {
    let row = client
        .query_opt("SELECT state FROM blobs WHERE id = $1", &[&&id.0[..]])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Writes entry `e` in transaction `tx`, replacing one under the same key,
/// if its content and every pin are live; otherwise returns the blobs that
/// are not, and the caller rolls back. The blobs stay locked against GC
/// until `tx` ends.
pub async fn put_entry(
    tx: &impl GenericClient,
    e: &NewEntry,
    now_ms: i64,
) -> Result<Result<i64, Vec<ContentId>>, ClusterError> {
    let mut needed: Vec<&[u8]> = e.pins.iter().map(|p| &p.0[..]).collect();
    needed.push(&e.content.0[..]);
    needed.sort_unstable();
    needed.dedup();
    // Sorted, so that two writers lock shared blobs in one order.
    let live: Vec<Vec<u8>> = tx
        .query(
            "SELECT id FROM blobs WHERE id = ANY($1) AND state = 'live'
              ORDER BY id FOR SHARE",
            &[&needed],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if live.len() != needed.len() {
        let missing = needed
            .iter()
            .filter(|n| !live.iter().any(|l| l == *n))
            .filter_map(|n| (*n).try_into().ok().map(ContentId))
            .collect();
        return Ok(Err(missing));
    }
    let key = &e.key;
    let id: i64 = tx
        .query_one(
            "INSERT INTO entries (protocol, namespace, name, content, size, created_at,
                                  last_used, meta)
                  VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
             ON CONFLICT (protocol, namespace, name) DO UPDATE
                 SET content = excluded.content, size = excluded.size,
                     created_at = excluded.created_at, last_used = excluded.last_used,
                     meta = excluded.meta
             RETURNING id",
            &[
                &key.protocol.name(),
                &key.namespace,
                &key.name,
                &&e.content.0[..],
                &(e.size as i64),
                &now_ms,
                &e.meta,
            ],
        )
        .await?
        .get(0);
    tx.execute("DELETE FROM entry_pins WHERE entry = $1", &[&id])
        .await?;
    tx.execute(
        "INSERT INTO entry_pins (entry, blob)
              SELECT $1, p FROM unnest($2::bytea[]) AS p ON CONFLICT DO NOTHING",
        &[&id, &needed],
    )
    .await?;
    tx.execute("DELETE FROM entry_children WHERE parent = $1", &[&id])
        .await?;
    for child in &e.children {
        tx.execute(
            "INSERT INTO entry_children (parent, protocol, namespace, name)
                  VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&id, &child.protocol.name(), &child.namespace, &child.name],
        )
        .await?;
    }
    Ok(Ok(id))
}

/// Removes the entry under `key` and, as a single node does, every entry
/// that needs it (its parents, however deep). Returns how many went.
pub async fn remove_entry(
    client: &impl GenericClient,
    key: &EntryKey,
) -> Result<u64, ClusterError> {
    Ok(client
        .execute(
            &delete_with_parents("protocol = $1 AND namespace = $2 AND name = $3"),
            &[&key.protocol.name(), &key.namespace, &key.name],
        )
        .await?)
}

/// Deletes the entries `seed` selects and every entry that needs one of
/// them, however deep (an index needs its manifests). The deleted rows are
/// `e`, for a `RETURNING` to name.
pub(super) fn delete_with_parents(seed: &str) -> String {
    format!(
        "WITH RECURSIVE doomed(id) AS (
             SELECT id FROM entries WHERE {seed}
             UNION
             SELECT c.parent FROM entry_children c
               JOIN entries e ON c.protocol = e.protocol AND c.namespace = e.namespace
                             AND c.name = e.name
               JOIN doomed d ON d.id = e.id)
         DELETE FROM entries e WHERE e.id IN (SELECT id FROM doomed)"
    )
}

/// GC's first step, in transaction `tx`: marks blob `id` `deleting` unless
/// an entry holds it (as content or pin) or a lease runs past `now_ms`.
/// After `tx` commits, the object may be deleted, then `forget_blob`.
pub async fn mark_for_deletion(
    tx: &impl GenericClient,
    id: &ContentId,
    now_ms: i64,
) -> Result<bool, ClusterError> {
    let key = &id.0[..];
    let state = tx
        .query_opt("SELECT state FROM blobs WHERE id = $1 FOR UPDATE", &[&key])
        .await?;
    match state.map(|r| r.get::<_, String>(0)) {
        None => return Ok(false),
        Some(s) if s == "deleting" => return Ok(true),
        Some(_) => {}
    }
    // A new statement: its snapshot sees every pin committed before the
    // lock was granted.
    let held: bool = tx
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM entry_pins WHERE blob = $1)
                     OR EXISTS (SELECT 1 FROM entries WHERE content = $1)
                     OR EXISTS (SELECT 1 FROM blobs b WHERE b.id = $1 AND {})",
                super::touches::held_by_lease("$2")
            ),
            &[&key, &now_ms],
        )
        .await?
        .get(0);
    if held {
        return Ok(false);
    }
    tx.execute("UPDATE blobs SET state = 'deleting' WHERE id = $1", &[&key])
        .await?;
    Ok(true)
}

/// GC's last step, once the object is deleted; the bytes it freed.
pub async fn forget_blob(client: &impl GenericClient, id: &ContentId) -> Result<u64, ClusterError> {
    forget(client, id, "AND state = 'deleting'").await
}

/// Deletes blob `id`'s record (`and` narrows which) and takes its bytes
/// off `usage` in the same statement; returns them.
async fn forget(
    client: &impl GenericClient,
    id: &ContentId,
    and: &str,
) -> Result<u64, ClusterError> {
    let freed: i64 = client
        .query_one(
            &format!(
                "WITH gone AS (DELETE FROM blobs WHERE id = $1 {and} RETURNING size)
                 UPDATE usage SET bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone),
                                  blobs = blobs - (SELECT count(*) FROM gone)
                  WHERE id = 1
                 RETURNING (SELECT coalesce(sum(size), 0) FROM gone)::bigint"
            ),
            &[&&id.0[..]],
        )
        .await?
        .get(0);
    Ok(freed as u64)
}

/// Blobs marked `deleting` whose GC did not finish (its replica died
/// between the mark and `forget_blob`): the leader's sweep finishes them.
pub async fn unfinished_deletions(
    client: &impl GenericClient,
) -> Result<Vec<ContentId>, ClusterError> {
    let rows = client
        .query("SELECT id FROM blobs WHERE state = 'deleting'", &[])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<_, &[u8]>(0).try_into().ok().map(ContentId))
        .collect())
}

/// Blob `id`'s object is gone from the store (deleted behind Larder's
/// back): drops every entry that needs it, with their parents, and the
/// blob's record, so that what follows is a clean miss rather than an entry
/// no one can read.
/// Returns how many entries went.
pub async fn forget_lost_blob(client: &mut Client, id: &ContentId) -> Result<u64, ClusterError> {
    let key = &id.0[..];
    let tx = client.transaction().await?;
    let dropped = tx
        .execute(
            &delete_with_parents(
                "content = $1 OR id IN (SELECT entry FROM entry_pins WHERE blob = $1)",
            ),
            &[&key],
        )
        .await?;
    // Off `usage` too: the bytes are gone, whoever deleted them.
    forget(&tx, id, "").await?;
    tx.commit().await?;
    Ok(dropped)
}

/// Every blob an entry needs (content and pins): each must have its object.
pub async fn needed_blobs(client: &impl GenericClient) -> Result<Vec<ContentId>, ClusterError> {
    let rows = client
        .query(
            "SELECT content FROM entries UNION SELECT blob FROM entry_pins",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<_, &[u8]>(0).try_into().ok().map(ContentId))
        .collect())
}
