//! Reservations (the Actions cache's uploads): one per scope at a time,
//! named by a number from a sequence, so that replicas racing to reserve
//! the same key get one reservation between them (a unique index decides)
//! and ids stay JavaScript-safe numbers. Their bytes are parts, as an OCI
//! upload's are; staged blocks become parts without being copied.

use tokio_postgres::{Client, GenericClient};

use super::uploads::{blocks, claim};
use super::ClusterError;
use crate::cache::{reservation_id, UploadState};
use crate::cas::CasError;

/// Opens a reservation for `scope` unless one is open (`None`).
pub async fn reserve(
    client: &impl GenericClient,
    scope: &str,
    size: Option<u64>,
    now_ms: i64,
) -> Result<Option<String>, ClusterError> {
    let n: i64 = client
        .query_one("SELECT nextval('reservation_numbers')", &[])
        .await?
        .get(0);
    let id = reservation_id(n as u64);
    let size = size.map(|s| s.min(i64::MAX as u64) as i64);
    // No conflict target: the one-per-scope index or the id, either way
    // the reservation is not ours.
    let made = client
        .execute(
            "INSERT INTO uploads (id, scope, created_at, updated_at, size, reserved)
                  VALUES ($1, $2, $3, $3, $4, true)
             ON CONFLICT DO NOTHING",
            &[&id, &scope, &now_ms, &size],
        )
        .await?;
    Ok((made == 1).then_some(id))
}

/// The open reservation of `scope`.
pub async fn reserved(
    client: &impl GenericClient,
    scope: &str,
) -> Result<Option<String>, ClusterError> {
    let row = client
        .query_opt(
            "SELECT id FROM uploads WHERE scope = $1 AND reserved",
            &[&scope],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The scope and declared size of upload `id`.
pub async fn owner(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<(String, Option<u64>)>, ClusterError> {
    let row = client
        .query_opt("SELECT scope, size FROM uploads WHERE id = $1", &[&id])
        .await?;
    Ok(row.map(|r| (r.get(0), r.get::<_, Option<i64>>(1).map(|s| s as u64))))
}

/// Upload `id` of `scope` and the bytes its parts hold from 0 (where a
/// contiguous chunk goes next); `UploadUnknown` when it is not `scope`'s.
pub async fn state(
    client: &impl GenericClient,
    scope: &str,
    id: &str,
) -> Result<UploadState, ClusterError> {
    let row = client
        .query_opt(
            "SELECT coalesce((SELECT max(\"offset\" + size) FROM upload_parts
                               WHERE upload = u.id), 0)::bigint
               FROM uploads u WHERE id = $1 AND scope = $2",
            &[&id, &scope],
        )
        .await?;
    let row = row.ok_or_else(|| ClusterError::UploadUnknown(id.to_owned()))?;
    Ok(UploadState {
        id: id.to_owned(),
        scope: scope.to_owned(),
        len: row.get::<_, i64>(0) as u64,
    })
}

/// Empties upload `id` (its parts' rows; their objects go with the
/// upload), to be written again from 0.
pub async fn truncate(client: &mut Client, id: &str, now_ms: i64) -> Result<(), ClusterError> {
    let tx = client.transaction().await?;
    if !claim(&tx, id, now_ms).await? {
        return Err(ClusterError::UploadUnknown(id.to_owned()));
    }
    tx.execute("DELETE FROM upload_parts WHERE upload = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Makes upload `id` hold its staged blocks in `order`, and drops them as
/// blocks: the parts point at the blocks' objects, which are never
/// rewritten. Returns the bytes it holds. Changes nothing when a block was
/// never staged (`PartUnknown`) or the whole is over `limit`.
pub async fn adopt_blocks(
    client: &mut Client,
    id: &str,
    order: &[String],
    limit: u64,
    now_ms: i64,
) -> Result<u64, ClusterError> {
    let tx = client.transaction().await?;
    if !claim(&tx, id, now_ms).await? {
        return Err(ClusterError::UploadUnknown(id.to_owned()));
    }
    let staged = blocks(&tx, id, order).await?;
    let (mut offsets, mut sizes, mut objects) = (Vec::new(), Vec::new(), Vec::new());
    let mut end = 0u64;
    for name in order {
        let (size, object) = staged
            .get(name)
            .ok_or_else(|| ClusterError::PartUnknown(name.clone()))?;
        if *size == 0 {
            // It adds no bytes, and its offset would be the next part's.
            continue;
        }
        offsets.push(end.min(i64::MAX as u64) as i64);
        sizes.push(*size as i64);
        objects.push(object.as_str());
        end = end.saturating_add(*size);
    }
    if end > limit {
        return Err(CasError::TooLarge { limit }.into());
    }
    tx.execute("DELETE FROM upload_parts WHERE upload = $1", &[&id])
        .await?;
    tx.execute(
        "INSERT INTO upload_parts (upload, \"offset\", size, object)
              SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[])",
        &[&id, &offsets, &sizes, &objects],
    )
    .await?;
    tx.execute("DELETE FROM upload_blocks WHERE upload = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(end)
}

/// Every block staged for upload `id`: (name, size).
pub async fn staged(
    client: &impl GenericClient,
    id: &str,
) -> Result<Vec<(String, u64)>, ClusterError> {
    let rows = client
        .query(
            "SELECT name, size FROM upload_blocks WHERE upload = $1",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
        .collect())
}
