//! Multi-request uploads shared by the replicas: each part is an object of
//! its own (`objects.rs`) and a row in `upload_parts`, written under the
//! upload's row lock, so that any replica can add the next part or finish
//! the upload, whichever replica began it.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio_postgres::{Client, GenericClient, Transaction};

use super::objects::Objects;
use super::ClusterError;
use crate::cas::{ingest_stream, Cas, Digest, Verified};

#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored; the upload's parts now end here.
    Size(u64),
    /// Refused: not where the upload ends (contiguous), or over bytes
    /// already stored. `size` is where the upload's parts end.
    Conflict { size: u64 },
    /// No such upload (never begun, finished or expired).
    Unknown,
}

pub async fn create(
    client: &impl GenericClient,
    id: &str,
    scope: &str,
    now_ms: i64,
) -> Result<(), ClusterError> {
    client
        .execute(
            "INSERT INTO uploads (id, scope, created_at, updated_at) VALUES ($1, $2, $3, $3)",
            &[&id, &scope, &now_ms],
        )
        .await?;
    Ok(())
}

/// Opens upload `id` of `scope` unless it exists (a session named by its
/// client, which replicas may open at once); false when it existed.
pub async fn create_if_absent(
    client: &impl GenericClient,
    id: &str,
    scope: &str,
    now_ms: i64,
) -> Result<bool, ClusterError> {
    let made = client
        .execute(
            "INSERT INTO uploads (id, scope, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (id) DO NOTHING",
            &[&id, &scope, &now_ms],
        )
        .await?;
    Ok(made == 1)
}

/// Drops upload `id`'s parts from offset `len` on (a chunk that must
/// arrive whole and did not), so that it ends at `len` again. Their
/// objects stay until the upload ends: deleting them after the commit
/// could delete a part another request wrote at the same offset since,
/// and the next part written there replaces the object anyway.
pub async fn cut_back(
    client: &mut Client,
    id: &str,
    len: u64,
    now_ms: i64,
) -> Result<(), ClusterError> {
    let tx = client.transaction().await?;
    if !claim(&tx, id, now_ms).await? {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM upload_parts WHERE upload = $1 AND \"offset\" >= $2",
        &[&id, &(len.min(i64::MAX as u64) as i64)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Locks upload `id`'s row for this transaction and marks it used now (so
/// it does not expire while parts arrive); false when there is no such
/// upload. Parts of one upload are written one at a time under this lock.
pub(super) async fn claim(
    tx: &Transaction<'_>,
    id: &str,
    now_ms: i64,
) -> Result<bool, ClusterError> {
    let claimed = tx
        .execute(
            "UPDATE uploads SET updated_at = $2 WHERE id = $1",
            &[&id, &now_ms],
        )
        .await?;
    Ok(claimed == 1)
}

/// Stores `bytes` at `offset` of upload `id`. `contiguous` (OCI chunks, a
/// streamed body) requires `offset` to be where the upload ends; otherwise
/// (GHA chunks, which arrive in any order) the part must not overlap one
/// already stored.
pub async fn append(
    client: &mut Client,
    objects: &Objects,
    id: &str,
    offset: u64,
    contiguous: bool,
    bytes: Bytes,
    now_ms: i64,
) -> Result<Appended, ClusterError> {
    let tx = client.transaction().await?;
    if !claim(&tx, id, now_ms).await? {
        return Ok(Appended::Unknown);
    }
    let (start, end) = (offset as i64, (offset + bytes.len() as u64) as i64);
    let row = tx
        .query_one(
            "SELECT coalesce(max(\"offset\" + size), 0)::bigint,
                    EXISTS (SELECT 1 FROM upload_parts
                             WHERE upload = $1 AND \"offset\" < $3 AND \"offset\" + size > $2)
               FROM upload_parts WHERE upload = $1",
            &[&id, &start, &end],
        )
        .await?;
    let (size, overlaps): (i64, bool) = (row.get(0), row.get(1));
    if (contiguous && start != size) || (!contiguous && overlaps) {
        return Ok(Appended::Conflict { size: size as u64 });
    }
    // Under the row lock (`claim`): a concurrent part for this upload waits
    // rather than racing us to the same range.
    objects.put_part(id, offset, bytes).await?;
    tx.execute(
        "INSERT INTO upload_parts (upload, \"offset\", size, object) VALUES ($1, $2, $3, $4)",
        &[&id, &start, &(end - start), &format!("{offset:020}")],
    )
    .await?;
    tx.commit().await?;
    Ok(Appended::Size(size.max(end) as u64))
}

/// Stages block `name` of upload `id`, replacing one of that name, under the
/// upload's row lock; `Unknown` when there is no such upload.
pub async fn stage_block(
    client: &mut Client,
    objects: &Objects,
    id: &str,
    name: &str,
    bytes: Bytes,
    now_ms: i64,
) -> Result<Appended, ClusterError> {
    let tx = client.transaction().await?;
    if !claim(&tx, id, now_ms).await? {
        return Ok(Appended::Unknown);
    }
    let size = bytes.len() as i64;
    // A fresh key every time: a part assembled from this name's last block
    // still reads that block's bytes.
    let object = format!("blocks/{:032x}", rand::random::<u128>());
    objects.put_staged(id, &object, bytes).await?;
    tx.execute(
        "INSERT INTO upload_blocks (upload, name, size, object) VALUES ($1, $2, $3, $4)
         ON CONFLICT (upload, name) DO UPDATE SET size = excluded.size, object = excluded.object",
        &[&id, &name, &size, &object],
    )
    .await?;
    tx.commit().await?;
    Ok(Appended::Size(size as u64))
}

/// Joins upload `id`'s blocks in `order` into a verified blob in `cas`, as
/// `assemble` does with parts; refused, changing nothing, when a named
/// block was never staged.
pub async fn assemble_blocks(
    client: &impl GenericClient,
    objects: &Objects,
    cas: &Cas,
    id: &str,
    order: &[String],
    expected: Option<Digest>,
    limit: u64,
) -> Result<Verified, ClusterError> {
    let staged = blocks(client, id, order).await?;
    let mut keys = Vec::with_capacity(order.len());
    for name in order {
        let (_, object) = staged.get(name).ok_or_else(|| {
            ClusterError::Incomplete(format!("upload {id} has no block {name:?}"))
        })?;
        keys.push(object.clone());
    }
    Ok(ingest_stream(cas, staged_body(objects, id, keys), expected, limit).await?)
}

/// The staged blocks of upload `id` among `names`: name → (size, object).
pub(super) async fn blocks(
    client: &impl GenericClient,
    id: &str,
    names: &[String],
) -> Result<HashMap<String, (u64, String)>, ClusterError> {
    let rows = client
        .query(
            "SELECT name, size, object FROM upload_blocks WHERE upload = $1 AND name = ANY($2)",
            &[&id, &names],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get::<_, i64>(1) as u64, r.get(2))))
        .collect())
}

/// The staged objects of upload `id`, read one after another.
fn staged_body(
    objects: &Objects,
    id: &str,
    keys: Vec<String>,
) -> impl futures_util::Stream<Item = Result<Bytes, super::objects::ObjectsError>> + Send {
    let objects = objects.clone();
    let upload = id.to_owned();
    stream::iter(keys)
        .then(move |object| {
            let objects = objects.clone();
            let upload = upload.clone();
            async move { objects.read_staged(&upload, &object).await }
        })
        .try_flatten()
}

/// The upload's parts as `(offset, size)`, in order.
pub async fn parts(client: &impl GenericClient, id: &str) -> Result<Vec<(u64, u64)>, ClusterError> {
    let rows = client
        .query(
            "SELECT \"offset\", size FROM upload_parts WHERE upload = $1 ORDER BY \"offset\"",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
        .collect())
}

/// Joins the parts, in order, into a verified blob in this replica's `cas`
/// temp area (checked against `expected` when given): the caller publishes
/// it locally and to the object store. Refused when the parts leave a gap.
pub async fn assemble(
    client: &impl GenericClient,
    objects: &Objects,
    cas: &Cas,
    id: &str,
    expected: Option<Digest>,
    limit: u64,
) -> Result<Verified, ClusterError> {
    let rows = client
        .query(
            "SELECT \"offset\", size, object FROM upload_parts WHERE upload = $1
              ORDER BY \"offset\"",
            &[&id],
        )
        .await?;
    let mut end = 0;
    let mut keys = Vec::with_capacity(rows.len());
    for r in &rows {
        if r.get::<_, i64>(0) as u64 != end {
            return Err(ClusterError::Incomplete(format!(
                "upload {id} has no bytes at {end}"
            )));
        }
        end += r.get::<_, i64>(1) as u64;
        keys.push(r.get(2));
    }
    Ok(ingest_stream(cas, staged_body(objects, id, keys), expected, limit).await?)
}

/// Forgets upload `id`, then deletes its parts' objects: a replica dying in
/// between leaves objects no row names, which the leader's sweep of
/// `uploads/` removes, never a row whose parts are gone.
pub async fn remove(
    client: &impl GenericClient,
    objects: &Objects,
    id: &str,
) -> Result<(), ClusterError> {
    client
        .execute("DELETE FROM uploads WHERE id = $1", &[&id])
        .await?;
    objects.delete_upload(id).await?;
    Ok(())
}
