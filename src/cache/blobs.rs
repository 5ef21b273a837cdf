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
    /// Stores a body as a blob, verifying it against `expected` if given, and
    /// makes it readable in `scope` (a repository) when given. It is durable
    /// (file and index) when this returns Ok.
    pub async fn put_blob<S, E>(
        &self,
        body: S,
        expected: Option<Digest>,
        limit: u64,
        scope: Option<&str>,
    ) -> Result<BlobInfo, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let alias = expected.clone();
        let meta = cas::ingest_stream(&self.cas, body, expected, limit).await?;
        self.record_blob(&meta, alias.as_ref(), scope).await
    }

    /// Indexes a blob file that ingest just published, then waits for the
    /// group commit so the caller may acknowledge it.
    pub(super) async fn record_blob(
        &self,
        meta: &BlobMeta,
        alias: Option<&Digest>,
        scope: Option<&str>,
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
        if let Some(scope) = scope {
            self.index.link(&meta.id, scope)?;
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

    /// Looks a blob up as seen from `scope`: a miss unless it was pushed,
    /// mounted or referenced there.
    pub fn blob_in(&self, scope: &str, digest: &Digest) -> Result<Option<BlobInfo>, StoreError> {
        match self.blob(digest)? {
            Some(b) if self.index.is_linked(&b.id, scope)? => Ok(Some(b)),
            _ => Ok(None),
        }
    }

    /// Makes a stored blob readable in `scope` too (a cross-repository mount).
    pub async fn link_blob(&self, scope: &str, blob: &BlobInfo) -> Result<(), StoreError> {
        self.index.link(&blob.id, scope)?;
        self.index.touch_blob(&blob.id, now_ms())?;
        self.commit.wait().await?;
        Ok(())
    }

    /// Stops `scope` from reading a blob; the bytes stay while others use them.
    pub async fn unlink_blob(&self, scope: &str, blob: &BlobInfo) -> Result<bool, StoreError> {
        let removed = self.index.unlink(&blob.id, scope)?;
        self.commit.wait().await?;
        Ok(removed)
    }

    /// Reads a whole small blob (a manifest) into memory.
    pub async fn read_content(&self, id: &ContentId, len: u64) -> Result<Bytes, StoreError> {
        let path = self.cas.path(id);
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(std::io::Error::other)??;
        if bytes.len() as u64 != len {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "blob {id} has {} bytes, the index says {len}",
                bytes.len()
            ))));
        }
        Ok(Bytes::from(bytes))
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
