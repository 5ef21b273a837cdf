//! The leader's sweep: finishes what a replica that died left half done and
//! expires what nobody will finish. Objects are only removed when no record
//! names them and they are older than `grace`, so a writer between writing
//! an object and recording it is never swept from under.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use tokio_postgres::Client;

use super::objects::Objects;
use super::{meta, uploads, ClusterError};
use crate::cas::ContentId;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// GCs a replica marked but did not finish.
    pub deletions_finished: u64,
    /// The bytes those took.
    pub deletions_freed: u64,
    /// Blob objects no record names (a refused or abandoned write).
    pub orphan_blobs: u64,
    /// Uploads idle past their expiry, with their parts.
    pub expired_uploads: u64,
    /// Staged parts of uploads no record names.
    pub orphan_uploads: u64,
    pub expired_leases: u64,
    /// Blobs nothing held any more, collected (by `Duties::sweep`).
    pub collected: super::evict::Evicted,
}

pub async fn sweep(
    client: &mut Client,
    objects: &Objects,
    now_ms: i64,
    upload_expiry: Duration,
    grace: Duration,
) -> Result<Swept, ClusterError> {
    let mut swept = Swept::default();
    for id in meta::unfinished_deletions(client).await? {
        objects.delete_blob(&id).await?;
        swept.deletions_freed += meta::forget_blob(client, &id).await?;
        swept.deletions_finished += 1;
    }

    let idle_since = now_ms - upload_expiry.as_millis() as i64;
    let idle: Vec<String> = client
        .query(
            "SELECT id FROM uploads WHERE updated_at < $1",
            &[&idle_since],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in idle {
        uploads::remove(client, objects, &id).await?;
        swept.expired_uploads += 1;
    }

    swept.expired_leases = client
        .execute("DELETE FROM leases WHERE until_ms <= $1", &[&now_ms])
        .await?;

    let old_enough = |at: &SystemTime| at.elapsed().is_ok_and(|age| age > grace);
    let candidates: Vec<ContentId> = objects
        .blob_objects()
        .await?
        .into_iter()
        .filter(|(_, at)| old_enough(at))
        .map(|(id, _)| id)
        .collect();
    // In slices, so that a bucket of millions is not one query.
    for slice in candidates.chunks(1000) {
        let keys: Vec<&[u8]> = slice.iter().map(|id| &id.0[..]).collect();
        let recorded: HashSet<Vec<u8>> = client
            .query("SELECT id FROM blobs WHERE id = ANY($1)", &[&keys])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for id in slice.iter().filter(|id| !recorded.contains(&id.0[..])) {
            objects.delete_blob(id).await?;
            swept.orphan_blobs += 1;
        }
    }

    let staged: Vec<String> = objects
        .staged_uploads()
        .await?
        .into_iter()
        .filter(|(_, at)| old_enough(at))
        .map(|(id, _)| id)
        .collect();
    let known: Vec<String> = client
        .query("SELECT id FROM uploads WHERE id = ANY($1)", &[&staged])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in staged.iter().filter(|id| !known.contains(id)) {
        objects.delete_upload(id).await?;
        swept.orphan_uploads += 1;
    }
    Ok(swept)
}
