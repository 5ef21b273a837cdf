//! Writes that store a blob and the entry whose content it is together (an
//! OCI manifest, an HTTP cache value): one index transaction, shared with
//! the writes of concurrent requests (`EntryBatches`), instead of two or
//! three of its own. sled writes its log out twice per transaction, so this
//! is most of what such a write costs the index.

use bytes::Bytes;
use futures_util::Stream;

use super::blobs::collect;
use super::record::{Parts, Recipe};
use super::small_writes::MakeEntry;
use super::{now_ms, BlobInfo, BlobWrite, Store, StoreError};
use crate::cas::{self, CasError};
use crate::index::{EntryRecord, NewEntry};

impl Store {
    /// Stores `content` (in memory: a manifest) as a blob and the entry that
    /// `entry` makes of it, optionally pointing `name` (scope, name) at the
    /// entry; all of it durably, or nothing.
    pub async fn put_entry_with_content(
        &self,
        content: Bytes,
        w: BlobWrite<'_>,
        entry: impl FnOnce(&BlobInfo) -> NewEntry + Send + 'static,
        name: Option<(&str, &str)>,
    ) -> Result<(BlobInfo, EntryRecord), StoreError> {
        let len = content.len() as u64;
        if len > w.limit {
            return Err(CasError::TooLarge { limit: w.limit }.into());
        }
        let held = self.hold(Some(len)).await?;
        let kept = content.clone();
        let stored = if self.writes_small(len) {
            let recipe = Recipe::new(Box::new(entry) as MakeEntry, name, &w);
            self.small_writes
                .write_entry(content, w.expected, len, recipe)
                .await
        } else {
            let (parts, recipe) = (self.parts(), Recipe::new(entry, name, &w));
            let expected = w.expected;
            // Hashing a few KB costs less than handing them to a writer thread.
            tokio::task::spawn_blocking(move || {
                let verified = cas::ingest_bytes(&parts.cas, &content, expected.as_ref(), len)?;
                parts.record(verified, recipe)
            })
            .await
            .map_err(std::io::Error::other)?
        };
        drop(held);
        let (blob, rec) = self.finish(stored).await?;
        // What was just written is what the next runner asks for.
        self.small.insert(blob.id, kept);
        Ok((blob, rec))
    }

    /// `put_entry_with_content` for a body that streams in (an HTTP cache
    /// value), with no name.
    pub async fn put_entry_with_streamed_content<S, E>(
        &self,
        body: S,
        w: BlobWrite<'_>,
        entry: impl FnOnce(&BlobInfo) -> NewEntry + Send + 'static,
    ) -> Result<(BlobInfo, EntryRecord), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if w.size_hint.is_some_and(|n| self.serves_from_memory(n)) {
            // Small and of a known length: taken whole, then written and
            // recorded in one blocking call instead of streamed to a writer
            // thread, and kept in memory for the reads that follow.
            let content = collect(body, w.limit).await?;
            return self.put_entry_with_content(content, w, entry, None).await;
        }
        let (verified, held) = self.ingest(body, &w).await?;
        let (parts, recipe) = (self.parts(), Recipe::new(entry, None, &w));
        let stored = tokio::task::spawn_blocking(move || parts.record(verified, recipe))
            .await
            .map_err(std::io::Error::other)?;
        drop(held);
        self.finish(stored).await
    }

    fn parts(&self) -> Parts {
        Parts {
            cas: self.cas.clone(),
            index: self.index.clone(),
            batches: self.batches.clone(),
            locks: self.locks.clone(),
        }
    }

    async fn finish(
        &self,
        stored: Result<(BlobInfo, EntryRecord), StoreError>,
    ) -> Result<(BlobInfo, EntryRecord), StoreError> {
        // Durable already: its batch flushed the index.
        let (blob, rec) = self.noted(stored)?;
        self.leases.pinned(&rec.pins, now_ms());
        self.keep_within_quota(&rec).await;
        Ok((blob, rec))
    }
}
