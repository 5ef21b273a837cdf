//! Lookups of entries and blobs, what most requests begin with: the
//! memo's answer (`memo.rs`), else the database's, remembered for next
//! time. Each counts as a use: recency, and leases on what was found.

use super::store::ClusterStore;
use super::{entry_rows, links, now_ms, ClusterError};
use crate::cache::BlobInfo;
use crate::cas::Digest;
use crate::index::{EntryKey, EntryRecord};

impl ClusterStore {
    /// The entry under `key`. Reading it counts as a use and leases the
    /// blobs it pins, as on a single node; both reach the database with the
    /// next flush of `touches`.
    pub async fn entry(&self, key: &EntryKey) -> Result<Option<EntryRecord>, ClusterError> {
        if let Some(rec) = self.memo.entry(key) {
            self.touch_entry(&rec);
            return Ok(Some(rec));
        }
        let ticket = self.memo.ticket();
        let client = self.pool.get().await?;
        let query = client.prepare_cached(&entry_rows::ENTRY).await?;
        let Some(rec) = entry_rows::entry(&**client, &query, key).await? else {
            return Ok(None);
        };
        self.memo.remember_entry(ticket, &rec);
        self.touch_entry(&rec);
        Ok(Some(rec))
    }

    /// Notes that an entry was just read: recency, and a lease on every
    /// blob it pins. Both reach the database with the next flush.
    pub fn touch_entry(&self, entry: &EntryRecord) {
        let now = now_ms();
        self.touches.touch_entry(entry.id as i64, now);
        let until = now + self.lease.as_millis() as i64;
        for pin in &entry.pins {
            self.touches.lease(*pin, until);
        }
    }

    /// Notes that a blob was just read or checked: a lease, so that the
    /// entry a client writes next can still pin it.
    pub fn touch_blob(&self, blob: &BlobInfo) {
        let now = now_ms();
        (self.touches).touch_blob(blob.id, now, now + self.lease.as_millis() as i64);
    }

    /// Looks a blob up by any digest clients use; finding it leases it.
    pub async fn blob(&self, digest: &Digest) -> Result<Option<BlobInfo>, ClusterError> {
        self.blob_seen_from(digest, None).await
    }

    /// `blob`, or `blob_in` when `scope` is given: the memo's answer, else
    /// the database's.
    pub(super) async fn blob_seen_from(
        &self,
        digest: &Digest,
        scope: Option<&str>,
    ) -> Result<Option<BlobInfo>, ClusterError> {
        if let Some(blob) = self.memo.blob(digest, scope) {
            self.touch_blob(&blob);
            return Ok(Some(blob));
        }
        let ticket = self.memo.ticket();
        let client = self.pool.get().await?;
        let query = client.prepare_cached(links::BLOB).await?;
        let found = links::blob(&**client, &query, digest, scope).await?;
        if let Some(blob) = &found {
            self.memo.remember_blob(ticket, digest, blob, scope);
            self.touch_blob(blob);
        }
        Ok(found)
    }
}
