//! Recording a verified blob whose object is up: its row under the hard
//! limit, with its entry, name and repository link, in one transaction;
//! waiting out a GC of the same bytes, and running again a transaction the
//! database rolled back for a concurrent writer's sake.

use std::future::Future;
use std::time::Duration;

use super::memo::Change;
use super::meta::{self, BlobPut};
use super::objects::ObjectsError;
use super::store::{written, ClusterStore, Placement};
use super::{links, names, now_ms, ClusterError};
use crate::cas::{BlobMeta, Digest};
use crate::index::EntryRecord;

/// How many times a write waits out a GC of the same bytes before giving up.
const DELETING_RETRIES: u32 = 50;

/// How one attempt to record a blob went.
enum Recorded {
    /// Committed, with the entry written, if any.
    Done(Option<EntryRecord>),
    /// GC is deleting these very bytes: wait, and put the object up again.
    Deleting,
}

impl ClusterStore {
    /// Records `blob`, whose object is up, with its entry, name and link
    /// (see `Placement`) in one transaction under the hard limit; the entry
    /// as committed. When GC is deleting these very bytes, waits until it
    /// is done and puts the object up again.
    pub(super) async fn record<F, Fut>(
        &self,
        blob: &BlobMeta,
        placement: Placement<'_>,
        upload: F,
    ) -> Result<Option<EntryRecord>, ClusterError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), ObjectsError>>,
    {
        let mut aliases = vec![format!("sha256:{}", hex::encode(blob.sha256))];
        if let Some(d @ Digest::Sha512(_)) = placement.checked {
            aliases.push(d.to_string());
        }
        let mut client = self.pool.get().await?;
        for _ in 0..DELETING_RETRIES {
            let now = now_ms();
            let recorded = self
                .record_once(&mut client, blob, placement, &aliases, now)
                .await;
            match recorded {
                Ok(Recorded::Done(rec)) => {
                    if let Some(rec) = &rec {
                        self.memo.forget(Some(&Change::Entry(rec.key.clone())));
                        self.touches.pinned(&rec.pins, now);
                    }
                    if let Some((scope, name)) = placement.name {
                        self.forget_name(scope, name);
                    }
                    return Ok(rec);
                }
                Ok(Recorded::Deleting) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if meta::blob_state(&**client, &blob.id).await?.is_none() {
                        upload().await?;
                    }
                }
                // Another writer of the same rows won; this one retries.
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
        }
        Err(ClusterError::Busy(blob.id))
    }

    /// One attempt of `record`, in one transaction.
    async fn record_once(
        &self,
        client: &mut deadpool_postgres::Object,
        blob: &BlobMeta,
        placement: Placement<'_>,
        aliases: &[String],
        now: i64,
    ) -> Result<Recorded, ClusterError> {
        let tx = client.transaction().await?;
        match meta::put_blob_in(&tx, &blob.id, blob.size, aliases, now, self.hard_limit).await? {
            BlobPut::Live => {}
            BlobPut::Full { used } => {
                return Err(ClusterError::Full {
                    needed: blob.size,
                    used,
                    hard_limit: self.hard_limit,
                })
            }
            BlobPut::Deleting => return Ok(Recorded::Deleting),
        }
        if let Some(scope) = placement.scope {
            links::link_in(&*tx, &blob.id, scope).await?;
        }
        let mut rec = None;
        if placement.entry.is_none() {
            // A pushed blob is leased until an entry pins it, from its
            // record on: a replica dying before its next flush must not
            // leave a layer unprotected while its manifest is coming.
            let until = now + self.lease.as_millis() as i64;
            tx.execute(
                "UPDATE blobs SET lease_until = greatest(lease_until, $2) WHERE id = $1",
                &[&&blob.id.0[..], &until],
            )
            .await?;
        }
        if let Some(entry) = placement.entry {
            if let Err(missing) = meta::put_entry(&*tx, entry, now).await? {
                return Err(ClusterError::MissingBlobs(missing));
            }
            if let Some((scope, name)) = placement.name {
                names::set_name(&*tx, scope, name, &entry.key).await?;
            }
            rec = Some(written(&*tx, &entry.key).await?);
        }
        tx.commit().await?;
        Ok(Recorded::Done(rec))
    }
}
