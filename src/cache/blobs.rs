//! Storing, finding and reading blobs.

use bytes::Bytes;
use futures_util::Stream;

use super::{now_ms, Store, StoreError};
use crate::cas::{self, BlobMeta, BlobStream, ContentId, Digest};
use crate::index::BlobRecord;

/// A stored blob as protocols see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: ContentId,
    pub sha256: [u8; 32],
    pub size: u64,
}

impl BlobInfo {
    pub fn sha256_digest(&self) -> Digest {
        Digest::Sha256(self.sha256)
    }
}

impl Store {
    /// Stores a body as a blob, verifying it against `expected` if given. It is
    /// durable (file and index) when this returns Ok.
    pub async fn put_blob<S, E>(
        &self,
        body: S,
        expected: Option<Digest>,
        limit: u64,
    ) -> Result<BlobInfo, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let alias = expected.clone();
        let meta = cas::ingest_stream(&self.cas, body, expected, limit).await?;
        self.record_blob(&meta, alias.as_ref()).await
    }

    /// Indexes a blob file that ingest just published, then waits for the
    /// group commit so the caller may acknowledge it.
    pub async fn record_blob(
        &self,
        meta: &BlobMeta,
        alias: Option<&Digest>,
    ) -> Result<BlobInfo, StoreError> {
        let now = now_ms();
        if self.index.blob(&meta.id)?.is_some() {
            self.index.touch_blob(&meta.id, now)?;
        } else {
            let rec = BlobRecord {
                size: meta.size,
                sha256: meta.sha256,
                created: now,
                touched: now,
            };
            self.index.put_blob(&meta.id, &rec)?;
        }
        if let Some(d @ Digest::Sha512(_)) = alias {
            self.index.put_alias(d, &meta.id)?;
        }
        self.commit.wait().await?;
        Ok(BlobInfo {
            id: meta.id,
            sha256: meta.sha256,
            size: meta.size,
        })
    }

    /// Looks a blob up by any digest clients use. A miss is `Ok(None)`.
    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobInfo>, StoreError> {
        let Some(id) = self.index.resolve(digest)? else {
            return Ok(None);
        };
        Ok(self.index.blob(&id)?.map(|rec| BlobInfo {
            id,
            sha256: rec.sha256,
            size: rec.size,
        }))
    }

    /// Streams `len` bytes of a blob from `offset`; the caller checked the range.
    pub async fn read_blob(
        &self,
        blob: &BlobInfo,
        offset: u64,
        len: u64,
    ) -> Result<BlobStream, StoreError> {
        Ok(self.cas.read_range(&blob.id, offset, len).await?)
    }
}
