//! Reads of blobs and entries' content, from this replica's tier or the
//! object store, and readiness. An object gone from the store (deleted
//! behind Larder's back) is a `Lost` blob: the entries needing it are
//! dropped first, so the caller's miss is also what every replica sees
//! next.

use std::io;
use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt, TryStreamExt};

use super::objects::ObjectsError;
use super::store::ClusterStore;
use super::{meta, ClusterError};
use crate::cache::BlobInfo;
use crate::cas::{BlobStream, ContentId, FileRange};

/// How long readiness waits for the database before it says no: a probe
/// that hangs for a load balancer's whole timeout tells it nothing.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

impl ClusterStore {
    /// The whole content `id` (a manifest, a small value), of `len` bytes.
    pub async fn read_content(&self, id: &ContentId, len: u64) -> Result<Bytes, ClusterError> {
        if let Some(bytes) = self.in_memory(id, len) {
            return Ok(bytes);
        }
        let mut body = self.open(id, None).await?;
        let mut whole = BytesMut::with_capacity(len.min(64 << 20) as usize);
        while let Some(chunk) = body.next().await {
            whole.extend_from_slice(&chunk?);
        }
        if whole.len() as u64 != len {
            return Err(ClusterError::Corrupt(format!(
                "blob {id} has {} bytes, its record says {len}",
                whole.len()
            )));
        }
        let whole = whole.freeze();
        self.small.insert(*id, whole.clone());
        Ok(whole)
    }

    /// Content already in memory, without any I/O.
    pub fn in_memory(&self, id: &ContentId, len: u64) -> Option<Bytes> {
        self.small.get(id).filter(|b| b.len() as u64 == len)
    }

    /// The file of `len` bytes of `blob` from `offset` when this replica's
    /// tier holds it; `None` sends the caller to `read_blob`.
    pub async fn open_blob(
        &self,
        blob: &BlobInfo,
        offset: u64,
        len: u64,
    ) -> Result<Option<FileRange>, ClusterError> {
        let range = offset..offset.saturating_add(len);
        let held = self.tier.open_held(&blob.id, Some(range)).await;
        held.map_err(|e| ObjectsError::Local(e).into())
    }

    /// `len` bytes of `blob` from `offset`; the caller checked the range.
    /// A whole read fills this replica's tier on the way.
    pub async fn read_blob(
        &self,
        blob: &BlobInfo,
        offset: u64,
        len: u64,
    ) -> Result<BlobStream, ClusterError> {
        if len == 0 {
            // No request at all: a store answers an empty range with an
            // error rather than no bytes.
            return Ok(Box::pin(stream::empty()));
        }
        let whole = offset == 0 && len == blob.size;
        let range = (!whole).then(|| offset..offset.saturating_add(len));
        let body = self.open(&blob.id, range).await?;
        Ok(Box::pin(body.map_err(|e| match e {
            ObjectsError::Local(e) => e,
            other => io::Error::other(other),
        })))
    }

    /// Blob `id`, all or `range`, or `Lost` once the entries that need its
    /// missing object are dropped.
    async fn open(
        &self,
        id: &ContentId,
        range: Option<Range<u64>>,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<Bytes, ObjectsError>>, ClusterError>
    {
        match self.tier.read(id, range).await {
            Ok(stream) => Ok(stream),
            Err(ObjectsError::Missing(_)) => {
                let mut client = self.pool.get().await?;
                let dropped = meta::forget_lost_blob(&mut client, id).await?;
                self.memo.forget(None);
                tracing::warn!(
                    blob = %id, entries = dropped,
                    "a blob's object is gone from the store; its entries are dropped"
                );
                Err(ClusterError::Lost(*id))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ready to serve: the database answers a query within `READY_TIMEOUT`.
    /// The object store is not asked: its outages are retried per request
    /// and a replica that cannot reach it is no better than another.
    pub async fn check_ready(&self) -> Result<(), String> {
        let probe = async {
            let client = self.pool.get().await?;
            client.simple_query("SELECT 1").await?;
            Ok::<(), ClusterError>(())
        };
        match tokio::time::timeout(READY_TIMEOUT, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the database does not answer: {e}")),
            Err(_) => Err(format!(
                "the database did not answer within {} s",
                READY_TIMEOUT.as_secs()
            )),
        }
    }
}
