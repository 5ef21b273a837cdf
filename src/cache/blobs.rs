//! Storing, finding and reading blobs.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::budget::Held;
use super::small;
use super::{now_ms, Store, StoreError};
use crate::cas::{self, BlobMeta, BlobStream, Cas, CasError, ContentId, Digest, FileRange};
use crate::index::{BlobRecord, Index, IndexError};

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

    fn of(id: ContentId, rec: BlobRecord) -> BlobInfo {
        BlobInfo {
            id,
            sha256: rec.sha256,
            size: rec.size,
        }
    }
}

impl From<BlobMeta> for BlobInfo {
    fn from(meta: BlobMeta) -> BlobInfo {
        BlobInfo {
            id: meta.id,
            sha256: meta.sha256,
            size: meta.size,
        }
    }
}

/// The record of a blob written at `now`.
pub(super) fn new_record(meta: &BlobMeta, now: u64) -> BlobRecord {
    BlobRecord {
        size: meta.size,
        sha256: meta.sha256,
        created: now,
        touched: now,
    }
}

/// The digest a write was checked against, if it also names the content in
/// the index: a sha512 (the SHA-256 alias is recorded with every blob).
pub(super) fn extra_alias(expected: Option<&Digest>) -> Option<Digest> {
    expected.filter(|d| matches!(d, Digest::Sha512(_))).cloned()
}

/// How a blob write is checked and where it becomes visible.
#[derive(Clone, Debug, Default)]
pub struct BlobWrite<'a> {
    /// The digest the content must match.
    pub expected: Option<Digest>,
    /// The largest acceptable size (413 above it).
    pub limit: u64,
    /// The scope (repository) in which the blob becomes readable.
    pub scope: Option<&'a str>,
    /// The announced size (Content-Length), reserved before the body is read.
    pub size_hint: Option<u64>,
}

/// A published blob to record: its meta, a digest that also names it, and
/// the scope that may read it.
pub(super) type Placed<'a> = (&'a BlobMeta, Option<&'a Digest>, Option<&'a str>);

/// Records published blobs (or touches the records they have) in one index
/// transaction; each answer in order. Blocking; the caller holds the blobs'
/// locks and then waits for the index to be durable. If GC had queued a
/// content's file for deletion, the file just published (or deduplicated
/// against) must stay: `put_blobs` takes it off the trash list.
pub(super) fn record_blobs(
    index: &Index,
    cas: &Cas,
    placed: &[Placed],
) -> Vec<Result<(), StoreError>> {
    let now = now_ms();
    let recs: Vec<BlobRecord> = placed.iter().map(|(m, ..)| new_record(m, now)).collect();
    let puts: Vec<_> = (placed.iter().zip(&recs))
        .map(|((m, _, scope), rec)| (&m.id, rec, *scope))
        .collect();
    let news = match index.put_blobs(&puts) {
        Ok(news) => news,
        Err(e) => {
            for (m, ..) in placed {
                forget_unrecorded(index, cas, &m.id);
            }
            // The first write gets the error itself, the others its kind.
            let rest: Vec<_> = (placed.iter().skip(1))
                .map(|_| Err(IndexError::failed_write(&e).into()))
                .collect();
            return std::iter::once(Err(e.into()))
                .chain(rest)
                .take(placed.len())
                .collect();
        }
    };
    (placed.iter().zip(news))
        .map(|(&(meta, alias, _), new)| {
            if !new {
                index.touch_blob(&meta.id, now)?;
            }
            if let Some(d) = alias {
                index.put_alias(d, &meta.id)?;
            }
            Ok(())
        })
        .collect()
}

/// Deletes a published file the index does not record: it would hold space
/// nobody counts until the next sweep. Under the blob's lock nobody else
/// uses it.
pub(super) fn forget_unrecorded(index: &Index, cas: &Cas, id: &ContentId) {
    if matches!(index.blob(id), Ok(None)) {
        let _ = cas.remove(id);
    }
}

impl Store {
    /// Stores a body as a blob. It is durable (file and index) when this
    /// returns Ok; on any error nothing is stored.
    pub async fn put_blob<S, E>(&self, body: S, w: BlobWrite<'_>) -> Result<BlobInfo, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if let Some(len) = w.size_hint.filter(|&n| self.writes_small(n)) {
            // Taken whole and written by the small-write thread with the
            // other small writes of the moment: one sync and one index flush
            // for all of them, no thread hand-off per request.
            let content = collect(body, w.limit).await?;
            let held = self.hold(Some(len)).await?;
            let scope = w.scope.map(str::to_owned);
            let info = (self.small_writes)
                .write_blob(content, w.expected, w.limit, scope)
                .await;
            drop(held);
            return self.noted(info);
        }
        let (verified, held) = self.ingest(body, &w).await?;
        let info = self
            .commit_blob(verified, w.expected.as_ref(), w.scope)
            .await;
        drop(held);
        self.noted(info)
    }

    /// Receives and verifies a body under a budget reservation. The caller
    /// publishes the result, then drops the reservation.
    pub(super) async fn ingest<S, E>(
        &self,
        body: S,
        w: &BlobWrite<'_>,
    ) -> Result<(cas::Verified, Held<'_>), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if w.size_hint.is_some_and(|n| n > w.limit) {
            return Err(cas::CasError::TooLarge { limit: w.limit }.into());
        }
        let held = self.hold(w.size_hint).await?;
        let body = self.metered(body, &held);
        match cas::ingest_stream(&self.cas, body, w.expected.clone(), w.limit).await {
            Ok(verified) => Ok((verified, held)),
            Err(e) => self.noted(Err(Self::budget_error(&held, e.into()))),
        }
    }

    /// Publishes a verified blob and indexes it under the blob's lock (so GC
    /// cannot delete the file between the two), then waits for the group
    /// commit so the caller may acknowledge it.
    pub(super) async fn commit_blob(
        &self,
        verified: cas::Verified,
        alias: Option<&Digest>,
        scope: Option<&str>,
    ) -> Result<BlobInfo, StoreError> {
        let (cas, index, locks) = (self.cas.clone(), self.index.clone(), self.locks.clone());
        let alias = extra_alias(alias);
        let scope = scope.map(str::to_owned);
        let meta = tokio::task::spawn_blocking(move || -> Result<BlobMeta, StoreError> {
            let _locked = locks.lock(&verified.meta.id);
            let meta = verified.publish(&cas)?;
            let placed = [(&meta, alias.as_ref(), scope.as_deref())];
            let recorded = record_blobs(&index, &cas, &placed).pop();
            recorded.unwrap_or(Ok(())).map(|()| meta)
        })
        .await
        .map_err(std::io::Error::other)?;
        let meta = self.noted(meta)?;
        self.durable().await?;
        Ok(meta.into())
    }

    /// Looks a blob up by any digest clients use. A miss is `Ok(None)`.
    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobInfo>, StoreError> {
        let Some(id) = self.index.resolve(digest)? else {
            return Ok(None);
        };
        Ok(self.index.blob(&id)?.map(|rec| BlobInfo::of(id, rec)))
    }

    /// Looks a blob up as seen from `scope`: a miss unless it was pushed,
    /// mounted or referenced there.
    pub fn blob_in(&self, scope: &str, digest: &Digest) -> Result<Option<BlobInfo>, StoreError> {
        let Some(id) = self.index.resolve(digest)? else {
            return Ok(None);
        };
        Ok(self
            .index
            .blob_in(&id, scope)?
            .map(|rec| BlobInfo::of(id, rec)))
    }

    /// Makes a stored blob readable in `scope` too (a cross-repository mount).
    pub async fn link_blob(&self, scope: &str, blob: &BlobInfo) -> Result<(), StoreError> {
        self.disk.check_writable()?;
        self.index.link(&blob.id, scope)?;
        self.index.touch_blob(&blob.id, now_ms())?;
        self.durable().await?;
        Ok(())
    }

    /// Stops `scope` from reading a blob; the bytes stay while others use them.
    pub async fn unlink_blob(&self, scope: &str, blob: &BlobInfo) -> Result<bool, StoreError> {
        let removed = self.index.unlink(&blob.id, scope)?;
        self.durable().await?;
        Ok(removed)
    }

    /// Whether a write of `size` bytes is taken whole and made durable by the
    /// small-write thread.
    pub(super) fn writes_small(&self, size: u64) -> bool {
        self.serves_from_memory(size) && self.cas.syncs_as_group(size)
    }

    /// Whether blobs of `size` bytes are read whole through `read_content`
    /// (and kept in memory) rather than streamed from their files.
    pub fn serves_from_memory(&self, size: u64) -> bool {
        size <= small::MAX_ITEM as u64
    }

    /// Content of `len` bytes when it is in memory: a hit answered with no
    /// index read and no file (the entry that names it pins it).
    pub fn in_memory(&self, id: &ContentId, len: u64) -> Option<Bytes> {
        self.small.get(id).filter(|b| b.len() as u64 == len)
    }

    /// Reads a whole small blob (a manifest) into memory.
    pub async fn read_content(&self, id: &ContentId, len: u64) -> Result<Bytes, StoreError> {
        if let Some(bytes) = self.in_memory(id, len) {
            return Ok(bytes);
        }
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
        let bytes = Bytes::from(bytes);
        self.small.insert(*id, bytes.clone());
        Ok(bytes)
    }

    /// Opens `len` bytes of a blob from `offset`; the caller checked the range.
    pub async fn open_blob(
        &self,
        blob: &BlobInfo,
        offset: u64,
        len: u64,
    ) -> Result<FileRange, StoreError> {
        Ok(self.cas.open_range(&blob.id, offset, len).await?)
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

/// A small body, whole; more than `limit` bytes is refused as it arrives.
pub(super) async fn collect<S, E>(body: S, limit: u64) -> Result<Bytes, StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut whole = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| CasError::Body(e.to_string()))?;
        if (whole.len() + chunk.len()) as u64 > limit {
            return Err(CasError::TooLarge { limit }.into());
        }
        whole.extend_from_slice(&chunk);
    }
    Ok(whole.freeze())
}
