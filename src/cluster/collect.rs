//! GC of one blob across the cluster: mark it `deleting` (refused while an
//! entry or lease holds it), delete its object, forget it. A replica that
//! dies between the steps leaves a `deleting` row, which the leader's sweep
//! finishes (`meta::unfinished_deletions`): the object is never deleted
//! while an entry can still come to need it.

use tokio_postgres::Client;

use super::meta;
use super::objects::Objects;
use super::ClusterError;
use crate::cas::ContentId;

#[derive(Debug, PartialEq, Eq)]
pub enum Collected {
    Deleted,
    /// An entry or a lease holds the blob (or it is not recorded).
    Kept,
}

pub async fn collect_blob(
    client: &mut Client,
    objects: &Objects,
    id: &ContentId,
    now_ms: i64,
) -> Result<Collected, ClusterError> {
    let tx = client.transaction().await?;
    let marked = meta::mark_for_deletion(&tx, id, now_ms).await?;
    tx.commit().await?;
    if !marked {
        return Ok(Collected::Kept);
    }
    objects.delete_blob(id).await?;
    meta::forget_blob(client, id).await?;
    Ok(Collected::Deleted)
}
