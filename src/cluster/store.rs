//! The cluster's store, composed of the records (`meta`, `names`, …), the
//! object store and the local tier: what the protocols need, with the
//! single node's `Store` semantics. Here: entries with content, pushed
//! blobs and the uploads of the OCI API; `store_uploads.rs` has
//! reservations, `store_admin.rs` links, listings, names and tokens. A
//! write is acknowledged once its object is in the store and its records
//! are committed; any replica then reads it.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::Pool;
use futures_util::stream::BoxStream;
use futures_util::Stream;

use super::meta::{self, BlobPut};
use super::objects::{Objects, ObjectsError};
use super::tier::Tier;
use super::tokens::Revoked;
use super::touches::Touches;
use super::uploads::{self, Appended};
use super::{links, now_ms, reservations, ClusterError};
use crate::cache::{BlobInfo, BlobWrite};
use crate::cas::{ingest_bytes, ingest_stream, BlobMeta, CasError, ContentId, Digest, Verified};
use crate::index::{EntryKey, EntryRecord, NewEntry};

/// How many times a write waits out a GC of the same bytes before giving up.
const DELETING_RETRIES: u32 = 50;

pub type ByteStream = BoxStream<'static, Result<Bytes, ObjectsError>>;

pub struct ClusterStore {
    pub pool: Pool,
    pub objects: Objects,
    pub tier: Tier,
    pub touches: Touches,
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
}

impl<'a> Placement<'a> {
    pub fn entry(entry: &'a NewEntry) -> Self {
        Placement {
            entry: Some(entry),
            ..Placement::default()
        }
    }
}

fn joined(e: tokio::task::JoinError) -> ClusterError {
    ClusterError::Objects(ObjectsError::Local(std::io::Error::other(e)))
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
        .map_err(joined)??;
        let blob = verified.meta;
        let new = entry(&blob);
        let upload = || self.objects.put_blob_bytes(&blob.id, content.clone());
        upload().await?;
        self.record(&blob, Placement::entry(&new), upload).await?;
        self.keep(verified).await;
        self.written(&new.key).await
    }

    /// `put_entry_with_content` for a body that arrives as a stream (a
    /// package fetched from upstream, an Actions cache archive).
    pub async fn put_entry_with_streamed_content<S, E>(
        &self,
        body: S,
        expected: Option<Digest>,
        entry: impl FnOnce(&BlobMeta) -> NewEntry,
    ) -> Result<EntryRecord, ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let verified = ingest_stream(self.tier.cas(), body, expected, self.max_blob_size).await?;
        let new = entry(&verified.meta);
        self.store_verified(&verified, Placement::entry(&new))
            .await?;
        self.keep(verified).await;
        self.written(&new.key).await
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
            entry: None,
            scope: w.scope,
            checked: w.expected.as_ref(),
        };
        let blob = self.store_verified(&verified, placement).await?;
        self.keep(verified).await;
        Ok(blob.into())
    }

    /// Begins a multi-request upload any replica can continue.
    pub async fn create_upload(&self, id: &str, scope: &str) -> Result<(), ClusterError> {
        let client = self.pool.get().await?;
        uploads::create(&**client, id, scope, now_ms()).await
    }

    /// Adds `bytes` at `offset` of upload `id` (see `uploads::append`).
    pub async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        contiguous: bool,
        bytes: Bytes,
    ) -> Result<Appended, ClusterError> {
        let mut client = self.pool.get().await?;
        uploads::append(
            &mut client,
            &self.objects,
            id,
            offset,
            contiguous,
            bytes,
            now_ms(),
        )
        .await
    }

    /// Finishes upload `id` of `scope`: its parts, joined and verified
    /// against `expected`, become a blob readable in `scope` as a push does,
    /// and the upload goes. A failed verification keeps the upload, which
    /// the client may retry or cancel.
    pub async fn finish_upload(
        &self,
        scope: &str,
        id: &str,
        expected: Digest,
    ) -> Result<BlobInfo, ClusterError> {
        let verified = {
            let client = self.pool.get().await?;
            reservations::state(&**client, scope, id).await?;
            uploads::assemble(
                &**client,
                &self.objects,
                self.tier.cas(),
                id,
                Some(expected.clone()),
                self.max_blob_size,
            )
            .await?
        };
        let placement = Placement {
            entry: None,
            scope: Some(scope),
            checked: Some(&expected),
        };
        Ok(self.finish_verified(id, verified, placement).await?.into())
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
        let blob = self.store_verified(&verified, placement).await?;
        self.keep(verified).await;
        let client = self.pool.get().await?;
        uploads::remove(&**client, &self.objects, id).await?;
        Ok(blob)
    }

    /// Copies a verified blob to the object store, records it as
    /// `placement` says and leases it until an entry pins it.
    async fn store_verified(
        &self,
        verified: &Verified,
        placement: Placement<'_>,
    ) -> Result<BlobMeta, ClusterError> {
        let blob = verified.meta;
        let upload = || async {
            let file = tokio::fs::File::from_std(verified.file()?);
            self.objects.put_blob_file(&blob.id, file).await.map(drop)
        };
        upload().await?;
        self.record(&blob, placement, upload).await?;
        self.touch_blob(&blob.into());
        Ok(blob)
    }

    /// Records `blob`, whose object is up, with its entry and link (see
    /// `Placement`) in one transaction under the hard limit. When GC is
    /// deleting these very bytes, waits until it is done and puts the
    /// object up again.
    async fn record<F, Fut>(
        &self,
        blob: &BlobMeta,
        placement: Placement<'_>,
        upload: F,
    ) -> Result<(), ClusterError>
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
            let tx = client.transaction().await?;
            match meta::put_blob_in(&tx, &blob.id, blob.size, &aliases, now, self.hard_limit)
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
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if meta::blob_state(&**client, &blob.id).await?.is_none() {
                        upload().await?;
                    }
                    continue;
                }
            }
            if let Some(scope) = placement.scope {
                links::link_in(&*tx, &blob.id, scope).await?;
            }
            if let Some(entry) = placement.entry {
                if let Err(missing) = meta::put_entry(&*tx, entry, now).await? {
                    return Err(ClusterError::MissingBlobs(missing));
                }
            }
            tx.commit().await?;
            return Ok(());
        }
        Err(ClusterError::Busy(blob.id))
    }

    /// The record of an entry just written.
    async fn written(&self, key: &EntryKey) -> Result<EntryRecord, ClusterError> {
        let client = self.pool.get().await?;
        meta::entry(&**client, key)
            .await?
            .ok_or_else(|| ClusterError::Corrupt("an entry vanished as it was written".into()))
    }

    pub(super) async fn keep(&self, verified: Verified) {
        let tier = self.tier.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || tier.keep(verified)).await {
            tracing::warn!(error = %e, "cannot keep a written blob in the local tier");
        }
    }

    /// The entry under `key`. Reading it counts as a use and leases the
    /// blobs it pins, as on a single node; both reach the database with the
    /// next flush of `touches`.
    pub async fn entry(&self, key: &EntryKey) -> Result<Option<EntryRecord>, ClusterError> {
        let client = self.pool.get().await?;
        let Some(rec) = meta::entry(&**client, key).await? else {
            return Ok(None);
        };
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
        self.touches
            .lease(blob.id, now_ms() + self.lease.as_millis() as i64);
    }

    /// Looks a blob up by any digest clients use; finding it leases it.
    pub async fn blob(&self, digest: &Digest) -> Result<Option<BlobInfo>, ClusterError> {
        let client = self.pool.get().await?;
        let found = links::blob(&**client, digest, None).await?;
        if let Some(blob) = &found {
            self.touch_blob(blob);
        }
        Ok(found)
    }

    /// The entry's content; `None` as for `read_blob`.
    pub async fn read_content(
        &self,
        rec: &EntryRecord,
    ) -> Result<Option<ByteStream>, ClusterError> {
        self.read_blob(&rec.content, None).await
    }

    /// Blob `id`, all or `range`, or `None` when its object is gone: then
    /// the entries needing it are dropped and the caller answers a miss.
    pub async fn read_blob(
        &self,
        id: &ContentId,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, ClusterError> {
        match self.tier.read(id, range).await {
            Ok(stream) => Ok(Some(stream)),
            Err(ObjectsError::Missing(_)) => {
                let mut client = self.pool.get().await?;
                let dropped = meta::forget_lost_blob(&mut client, id).await?;
                tracing::warn!(
                    blob = %id, entries = dropped,
                    "a blob's object is gone from the store; its entries are dropped"
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the entry under `key` (and every entry that needs it).
    pub async fn remove_entry_by_key(&self, key: &EntryKey) -> Result<bool, ClusterError> {
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
