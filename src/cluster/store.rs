//! The cluster's store, composed of the records (`meta`, `names`, …), the
//! object store and the local tier: what the protocols need, with the
//! single node's `Store` semantics. Here: entries with content, pushed
//! blobs and GHA blocks; `store_sessions.rs` has OCI upload sessions,
//! `store_named.rs` REAPI's named ones, `store_uploads.rs` reservations,
//! `store_lookups.rs` entries, blobs and names looked up, `store_reads.rs` reads and
//! readiness, `store_names.rs` links and tags,
//! `store_admin.rs` listings and tokens, `store_upkeep.rs` usage, GC and
//! eviction on demand, `store_record.rs` the one transaction that records
//! a blob with its entry. A
//! write is acknowledged once its object is in the store and its records
//! are committed; any replica then reads it.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::Pool;
use futures_util::Stream;
use tokio_postgres::GenericClient;

use super::memo::{Change, Memo};
use super::objects::{Objects, ObjectsError};
use super::tier::Tier;
use super::tokens::Revoked;
use super::touches::Touches;
use super::uploads::{self, Appended};
use super::{entry_rows, meta, now_ms, ClusterError};
use crate::cache::small::SmallContent;
use crate::cache::{BlobInfo, BlobWrite};
use crate::cas::{ingest_bytes, ingest_stream, BlobMeta, CasError, Digest, Verified};
use crate::index::{EntryKey, EntryRecord, NewEntry};

/// How many times an entry write is run again after the database rolled
/// it back for a concurrent writer's sake (a deadlock).
const TRANSIENT_RETRIES: u32 = 5;

pub struct ClusterStore {
    pub pool: Pool,
    pub objects: Objects,
    pub tier: Tier,
    pub touches: Touches,
    /// The cluster's budget (`storage.max_size`), which the leader evicts
    /// down to and the admin API reports.
    pub max_size: u64,
    pub hard_limit: u64,
    pub max_blob_size: u64,
    /// How long reading an entry, or pushing or reading a blob, leases it.
    pub lease: Duration,
    /// Byte quotas by namespace (`[namespaces.<name>] max_size`), which the
    /// listings show.
    pub quotas: HashMap<String, u64>,
    /// The revoked token ids this replica knows of, which requests check
    /// (`refresh_revocations` keeps it current).
    pub revoked: Revoked,
    /// The leader's timings, which `gc` and `evict_to` on demand keep too.
    pub upkeep: Upkeep,
    /// What `gc` and `evict_to` run through this replica removed.
    pub evicted: EvictedCounts,
    /// What lookups found, while the database's changes are heard
    /// (`listen.rs`); deaf until then.
    pub memo: Memo,
    /// Manifests and small values read or written lately, served without
    /// a file read (`storage.memory_cache`); content never changes under
    /// its id, so nothing here goes stale.
    pub small: SmallContent,
}

/// The timings of the leader's duties (see `Duties`), for the same work
/// asked of a replica directly.
#[derive(Clone, Debug)]
pub struct Upkeep {
    /// How often replicas flush their touches: what was used within two of
    /// these may still have a touch on its way and is never evicted.
    pub flush_interval: Duration,
    /// Uploads idle this long expire.
    pub upload_expiry: Duration,
    /// Objects no record names are swept once this old.
    pub orphan_grace: Duration,
}

impl Default for Upkeep {
    fn default() -> Self {
        Upkeep {
            flush_interval: Duration::from_secs(1),
            upload_expiry: Duration::from_secs(3600),
            orphan_grace: Duration::from_secs(3600),
        }
    }
}

/// Entries and bytes this replica's `gc` and `evict_to` removed since it
/// started (the leader's own rounds are not counted here).
#[derive(Debug, Default)]
pub struct EvictedCounts {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
}

/// Where a verified blob goes besides its own record.
#[derive(Clone, Copy, Default)]
pub(super) struct Placement<'a> {
    /// An entry written with it, in the same transaction.
    pub entry: Option<&'a NewEntry>,
    /// The scope (OCI repository) that may read it from now on.
    pub scope: Option<&'a str>,
    /// The digest it was checked against, kept as an alias when it is one
    /// beyond the SHA-256 every blob has (a sha512).
    pub checked: Option<&'a Digest>,
    /// A name (scope, name) pointed at the entry, in the same transaction.
    pub name: Option<(&'a str, &'a str)>,
}

/// The record of an entry just written, read in its transaction.
pub(super) async fn written(
    tx: &impl GenericClient,
    key: &EntryKey,
) -> Result<EntryRecord, ClusterError> {
    let query = entry_rows::ENTRY.as_str();
    entry_rows::entry(tx, query, key)
        .await?
        .ok_or_else(vanished)
}

fn vanished() -> ClusterError {
    ClusterError::Corrupt("an entry vanished as it was written".into())
}

/// `put_entry` in one transaction.
async fn put_entry_once(
    client: &mut deadpool_postgres::Object,
    new: &NewEntry,
) -> Result<EntryRecord, ClusterError> {
    let tx = client.transaction().await?;
    if let Err(missing) = meta::put_entry(&*tx, new, now_ms()).await? {
        return Err(ClusterError::MissingBlobs(missing));
    }
    let rec = written(&*tx, &new.key).await?;
    tx.commit().await?;
    Ok(rec)
}

fn joined(e: tokio::task::JoinError) -> ClusterError {
    ClusterError::Objects(ObjectsError::Local(std::io::Error::other(e)))
}

impl ClusterStore {
    /// Stores entry `new`, replacing one under the same key, in one
    /// transaction that requires its content and every pin live
    /// (`MissingBlobs` otherwise).
    pub async fn put_entry(&self, new: &NewEntry) -> Result<EntryRecord, ClusterError> {
        let mut client = self.pool.get().await?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match put_entry_once(&mut client, new).await {
                Ok(rec) => {
                    self.memo.forget(Some(&Change::Entry(new.key.clone())));
                    self.touches.pinned(&rec.pins, now_ms());
                    return Ok(rec);
                }
                Err(e) if e.is_transient() && attempts < TRANSIENT_RETRIES => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Verifies `content` as `w` says, stores it (readable in `w.scope`)
    /// and the entry `entry` makes of it, replacing one under the same key,
    /// and points `name` (scope, name) at that entry: one transaction for
    /// all the records. The entry's other pins must be live.
    pub async fn put_entry_with_content(
        &self,
        content: Bytes,
        w: BlobWrite<'_>,
        entry: impl FnOnce(&BlobInfo) -> NewEntry + Send + 'static,
        name: Option<(&str, &str)>,
    ) -> Result<(BlobInfo, EntryRecord), ClusterError> {
        let limit = w.limit.min(self.max_blob_size);
        if content.len() as u64 > limit {
            return Err(CasError::TooLarge { limit }.into());
        }
        let cas = self.tier.cas().clone();
        let bytes = content.clone();
        let expected = w.expected.clone();
        let verified = tokio::task::spawn_blocking(move || {
            ingest_bytes(&cas, &bytes, expected.as_ref(), limit)
        })
        .await
        .map_err(joined)??;
        let blob = BlobInfo::from(verified.meta);
        let new = entry(&blob);
        let upload = || self.objects.put_blob_bytes(&blob.id, content.clone());
        upload().await?;
        let placement = Placement {
            entry: Some(&new),
            scope: w.scope,
            checked: w.expected.as_ref(),
            name,
        };
        let rec = self.record(&verified.meta, placement, upload).await?;
        self.keep(verified).await;
        // What was just written is what the next runner asks for.
        self.small.insert(blob.id, content);
        Ok((blob, rec.ok_or_else(vanished)?))
    }

    /// `put_entry_with_content` for a body that arrives as a stream (a
    /// package fetched from upstream, an Actions cache archive), with no
    /// name.
    pub async fn put_entry_with_streamed_content<S, E>(
        &self,
        body: S,
        w: BlobWrite<'_>,
        entry: impl FnOnce(&BlobInfo) -> NewEntry + Send + 'static,
    ) -> Result<(BlobInfo, EntryRecord), ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let limit = w.limit.min(self.max_blob_size);
        if w.size_hint.is_some_and(|n| n > limit) {
            return Err(CasError::TooLarge { limit }.into());
        }
        let verified = ingest_stream(self.tier.cas(), body, w.expected.clone(), limit).await?;
        let blob = BlobInfo::from(verified.meta);
        let new = entry(&blob);
        let placement = Placement {
            entry: Some(&new),
            scope: w.scope,
            checked: w.expected.as_ref(),
            name: None,
        };
        let rec = self.store_verified(&verified, placement).await?;
        self.keep(verified).await;
        Ok((blob, rec.ok_or_else(vanished)?))
    }

    /// Stores a pushed blob from `body`, checked as `w` says and readable
    /// in `w.scope`, and leases it until an entry pins it.
    pub async fn put_blob<S, E>(&self, body: S, w: BlobWrite<'_>) -> Result<BlobInfo, ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let limit = w.limit.min(self.max_blob_size);
        if w.size_hint.is_some_and(|n| n > limit) {
            return Err(CasError::TooLarge { limit }.into());
        }
        let verified = ingest_stream(self.tier.cas(), body, w.expected.clone(), limit).await?;
        let placement = Placement {
            scope: w.scope,
            checked: w.expected.as_ref(),
            ..Placement::default()
        };
        self.store_verified(&verified, placement).await?;
        let blob = verified.meta.into();
        self.keep(verified).await;
        Ok(blob)
    }

    /// Stages block `name` of upload `id` (GHA v2), from any replica.
    pub async fn stage_block(
        &self,
        id: &str,
        name: &str,
        bytes: Bytes,
    ) -> Result<Appended, ClusterError> {
        let mut client = self.pool.get().await?;
        uploads::stage_block(&mut client, &self.objects, id, name, bytes, now_ms()).await
    }

    /// Finishes upload `id` from its blocks in `order`, as `finish_upload`
    /// does from parts.
    pub async fn finish_blocks(
        &self,
        id: &str,
        order: &[String],
        expected: Option<Digest>,
    ) -> Result<BlobMeta, ClusterError> {
        let verified = {
            let client = self.pool.get().await?;
            let cas = self.tier.cas();
            uploads::assemble_blocks(
                &**client,
                &self.objects,
                cas,
                id,
                order,
                expected,
                self.max_blob_size,
            )
            .await?
        };
        self.finish_verified(id, verified, Placement::default())
            .await
    }

    /// A finished upload's blob stored as a push is, and the upload gone.
    pub(super) async fn finish_verified(
        &self,
        id: &str,
        verified: Verified,
        placement: Placement<'_>,
    ) -> Result<BlobMeta, ClusterError> {
        self.store_verified(&verified, placement).await?;
        let blob = verified.meta;
        self.keep(verified).await;
        let client = self.pool.get().await?;
        uploads::remove(&**client, &self.objects, id).await?;
        Ok(blob)
    }

    /// Copies a verified blob to the object store, records it as
    /// `placement` says and leases it until an entry pins it; the entry
    /// written with it, if any.
    pub(super) async fn store_verified(
        &self,
        verified: &Verified,
        placement: Placement<'_>,
    ) -> Result<Option<EntryRecord>, ClusterError> {
        let blob = verified.meta;
        let upload = || async {
            let file = tokio::fs::File::from_std(verified.file()?);
            self.objects.put_blob_file(&blob.id, file).await.map(drop)
        };
        upload().await?;
        self.record(&blob, placement, upload).await
    }

    pub(super) async fn keep(&self, verified: Verified) {
        let tier = self.tier.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || tier.keep(verified)).await {
            tracing::warn!(error = %e, "cannot keep a written blob in the local tier");
        }
    }

    /// Removes the entry under `key` (and every entry that needs it).
    pub async fn remove_entry_by_key(&self, key: &EntryKey) -> Result<bool, ClusterError> {
        let client = self.pool.get().await?;
        let removed = meta::remove_entry(&**client, key).await? > 0;
        self.memo.forget(Some(&Change::Entry(key.clone())));
        Ok(removed)
    }

    /// Writes the uses and leases read since the last flush.
    pub async fn flush_touches(&self) -> Result<(), ClusterError> {
        let client = self.pool.get().await?;
        self.touches.flush(&**client).await?;
        Ok(())
    }
}
