//! Lookups of entries, blobs and names, what most requests begin with:
//! the memo's answer (`memo.rs`), else the database's, remembered for next
//! time. Each counts as a use: recency, and leases on what was found.

use std::future::Future;
use std::sync::atomic::Ordering;

use super::memo::{Known, Ticket};
use super::store::ClusterStore;
use super::{entry_rows, links, names, now_ms, ClusterError};
use crate::cache::BlobInfo;
use crate::cas::Digest;
use crate::index::{EntryKey, EntryRecord};

impl ClusterStore {
    /// What the memo knows (`known`, asked again after catching up when it
    /// knows of a miss), else what `ask` gets from the database, handed to
    /// `remember` with the ticket taken before asking.
    async fn looked_up<T, Ask>(
        &self,
        known: impl Fn() -> Known<T>,
        ask: impl FnOnce() -> Ask,
        remember: impl FnOnce(Ticket, Option<&T>),
    ) -> Result<Option<T>, ClusterError>
    where
        Ask: Future<Output = Result<Option<T>, ClusterError>>,
    {
        let memo = &self.memo;
        let answer = match known() {
            Known::Found(v) => Some(Some(v)),
            Known::Absent if memo.catch_up.caught_up().await => match known() {
                Known::Found(v) => Some(Some(v)),
                Known::Absent => Some(None),
                Known::Unknown => None,
            },
            _ => None,
        };
        if let Some(answer) = answer {
            memo.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(answer);
        }
        memo.misses.fetch_add(1, Ordering::Relaxed);
        let ticket = memo.ticket();
        let found = ask().await?;
        remember(ticket, found.as_ref());
        Ok(found)
    }

    /// The entry under `key`. Reading it counts as a use and leases the
    /// blobs it pins, as on a single node; both reach the database with the
    /// next flush of `touches`.
    pub async fn entry(&self, key: &EntryKey) -> Result<Option<EntryRecord>, ClusterError> {
        let found = self
            .looked_up(
                || self.memo.entry(key),
                || async {
                    let client = self.pool.get().await?;
                    let query = client.prepare_cached(&entry_rows::ENTRY).await?;
                    entry_rows::entry(&**client, &query, key).await
                },
                |t, found| self.memo.remember_entry(t, key, found),
            )
            .await?;
        if let Some(rec) = &found {
            self.touch_entry(rec);
        }
        Ok(found)
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
        let found = self
            .looked_up(
                || self.memo.blob(digest, scope),
                || async {
                    let client = self.pool.get().await?;
                    let query = client.prepare_cached(links::BLOB).await?;
                    links::blob(&**client, &query, digest, scope).await
                },
                |t, found| self.memo.remember_blob(t, digest, found, scope),
            )
            .await?;
        if let Some(blob) = &found {
            self.touch_blob(blob);
        }
        Ok(found)
    }

    /// The entry `name` points at in `scope`.
    pub async fn name(&self, scope: &str, name: &str) -> Result<Option<EntryKey>, ClusterError> {
        self.looked_up(
            || self.memo.name(scope, name),
            || async {
                let client = self.pool.get().await?;
                let query = client.prepare_cached(names::NAME).await?;
                names::name(&**client, &query, scope, name).await
            },
            |t, found| self.memo.remember_name(t, scope, name, found),
        )
        .await
    }
}
