//! Entries with small content, on the cluster: what the HTTP caches and
//! manifests need, composed of the records (`meta`), the object store and
//! the local tier. A write is acknowledged once its object is in the store
//! and its records are committed; any replica then reads it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use deadpool_postgres::Pool;
use futures_util::stream::BoxStream;

use super::meta::{self, BlobPut};
use super::objects::{Objects, ObjectsError};
use super::tier::Tier;
use super::touches::Touches;
use super::ClusterError;
use crate::cas::{ingest_bytes, BlobMeta, Digest};
use crate::index::{EntryKey, EntryRecord, NewEntry};

/// How many times a write waits out a GC of the same bytes before giving up.
const DELETING_RETRIES: u32 = 50;

pub struct ClusterStore {
    pub pool: Pool,
    pub objects: Objects,
    pub tier: Tier,
    pub touches: Touches,
    pub hard_limit: u64,
    pub max_blob_size: u64,
    /// How long reading an entry leases the blobs it pins.
    pub lease: Duration,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ClusterStore {
    /// Verifies `content` (against `expected` when given), stores it and the
    /// entry `entry` makes of it, replacing one under the same key. The
    /// entry's other pins must be live.
    pub async fn put_entry_with_content(
        &self,
        content: Bytes,
        expected: Option<Digest>,
        entry: impl FnOnce(&BlobMeta) -> NewEntry,
    ) -> Result<EntryRecord, ClusterError> {
        let cas = self.tier.cas().clone();
        let limit = self.max_blob_size;
        let bytes = content.clone();
        let verified = tokio::task::spawn_blocking(move || {
            ingest_bytes(&cas, &bytes, expected.as_ref(), limit)
        })
        .await
        .map_err(|e| ClusterError::Objects(ObjectsError::Local(std::io::Error::other(e))))??;
        let blob = verified.meta;
        let new = entry(&blob);
        self.objects
            .put_blob_bytes(&blob.id, content.clone())
            .await?;
        let sha256 = format!("sha256:{}", hex::encode(blob.sha256));
        let mut client = self.pool.get().await?;
        let mut waited = 0;
        loop {
            let now = now_ms();
            let tx = client.transaction().await?;
            match meta::put_blob_in(
                &tx,
                &blob.id,
                blob.size,
                std::slice::from_ref(&sha256),
                now,
                self.hard_limit,
            )
            .await?
            {
                BlobPut::Live => {}
                BlobPut::Full { used } => {
                    return Err(ClusterError::Full {
                        needed: blob.size,
                        used,
                        hard_limit: self.hard_limit,
                    })
                }
                BlobPut::Deleting => {
                    drop(tx);
                    // GC is deleting these very bytes: once it is done, the
                    // object goes up again and the record is made anew.
                    waited += 1;
                    if waited > DELETING_RETRIES {
                        return Err(ClusterError::Busy(blob.id));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if meta::blob_state(&**client, &blob.id).await?.is_none() {
                        self.objects
                            .put_blob_bytes(&blob.id, content.clone())
                            .await?;
                    }
                    continue;
                }
            }
            if let Err(missing) = meta::put_entry(&*tx, &new, now).await? {
                return Err(ClusterError::MissingBlobs(missing));
            }
            tx.commit().await?;
            break;
        }
        let tier = self.tier.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || tier.keep(verified)).await {
            tracing::warn!(error = %e, "cannot keep a written blob in the local tier");
        }
        meta::entry(&**client, &new.key)
            .await?
            .ok_or_else(|| ClusterError::Corrupt("an entry vanished as it was written".into()))
    }

    /// The entry under `key`. Reading it counts as a use and leases the
    /// blobs it pins, as on a single node; both reach the database with the
    /// next flush of `touches`.
    pub async fn entry(&self, key: &EntryKey) -> Result<Option<EntryRecord>, ClusterError> {
        let client = self.pool.get().await?;
        let Some(rec) = meta::entry(&**client, key).await? else {
            return Ok(None);
        };
        let now = now_ms();
        self.touches.touch_entry(rec.id as i64, now);
        let until = now + self.lease.as_millis() as i64;
        for pin in &rec.pins {
            self.touches.lease(*pin, until);
        }
        Ok(Some(rec))
    }

    /// The entry's content, or `None` when its object is gone: then the
    /// entry (and what needs it) is dropped and the caller answers a miss.
    pub async fn read_content(
        &self,
        rec: &EntryRecord,
    ) -> Result<Option<BoxStream<'static, Result<Bytes, ObjectsError>>>, ClusterError> {
        match self.tier.read(&rec.content, None).await {
            Ok(stream) => Ok(Some(stream)),
            Err(ObjectsError::Missing(_)) => {
                let mut client = self.pool.get().await?;
                let dropped = meta::forget_lost_blob(&mut client, &rec.content).await?;
                tracing::warn!(
                    blob = %rec.content, entries = dropped,
                    "a blob's object is gone from the store; its entries are dropped"
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the entry under `key` (and every entry that needs it).
    pub async fn remove_entry(&self, key: &EntryKey) -> Result<bool, ClusterError> {
        let client = self.pool.get().await?;
        Ok(meta::remove_entry(&**client, key).await? > 0)
    }

    /// Writes the uses and leases read since the last flush.
    pub async fn flush_touches(&self) -> Result<(), ClusterError> {
        let client = self.pool.get().await?;
        self.touches.flush(&**client).await?;
        Ok(())
    }
}
