//! Writes: entries, blobs, names and the uploads that build blobs over
//! several requests.

use bytes::Bytes;
use futures_util::Stream;

use super::Backend;
use crate::cache::{
    BlobInfo, BlobWrite, EntryRecord, NamedWrite, NewEntry, StoreError, UploadState,
};
use crate::cas::Digest;

impl Backend {
    pub async fn put_entry(&self, new: &NewEntry) -> Result<EntryRecord, StoreError> {
        match self {
            Backend::Local(s) => s.put_entry(new).await,
            Backend::Cluster(c) => Ok(c.put_entry(new).await?),
        }
    }

    /// Stores `content` and the entry `entry` makes of it in one step, and
    /// points `name` (scope, name) at it when given.
    pub async fn put_entry_with_content(
        &self,
        content: Bytes,
        w: BlobWrite<'_>,
        entry: impl FnOnce(&BlobInfo) -> NewEntry + Send + 'static,
        name: Option<(&str, &str)>,
    ) -> Result<(BlobInfo, EntryRecord), StoreError> {
        match self {
            Backend::Local(s) => s.put_entry_with_content(content, w, entry, name).await,
            Backend::Cluster(c) => Ok(c.put_entry_with_content(content, w, entry, name).await?),
        }
    }

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
        match self {
            Backend::Local(s) => s.put_entry_with_streamed_content(body, w, entry).await,
            Backend::Cluster(c) => Ok(c.put_entry_with_streamed_content(body, w, entry).await?),
        }
    }

    pub async fn put_blob<S, E>(&self, body: S, w: BlobWrite<'_>) -> Result<BlobInfo, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        match self {
            Backend::Local(s) => s.put_blob(body, w).await,
            Backend::Cluster(c) => Ok(c.put_blob(body, w).await?),
        }
    }

    pub async fn link_blob(&self, scope: &str, blob: &BlobInfo) -> Result<(), StoreError> {
        match self {
            Backend::Local(s) => s.link_blob(scope, blob).await,
            Backend::Cluster(c) => Ok(c.link_blob(scope, blob).await?),
        }
    }

    pub async fn unlink_blob(&self, scope: &str, blob: &BlobInfo) -> Result<bool, StoreError> {
        match self {
            Backend::Local(s) => s.unlink_blob(scope, blob).await,
            Backend::Cluster(c) => Ok(c.unlink_blob(scope, blob).await?),
        }
    }

    pub async fn remove_name(&self, scope: &str, name: &str) -> Result<bool, StoreError> {
        match self {
            Backend::Local(s) => s.remove_name(scope, name).await,
            Backend::Cluster(c) => Ok(c.remove_name(scope, name).await?),
        }
    }

    /// Removes entry `id` and the entries that need it; what was removed.
    pub async fn remove_entry(&self, id: u64) -> Result<Vec<EntryRecord>, StoreError> {
        match self {
            Backend::Local(s) => s.remove_entry(id).await,
            Backend::Cluster(c) => Ok(c.remove_entry(id).await?),
        }
    }

    pub async fn create_upload(&self, scope: &str) -> Result<UploadState, StoreError> {
        match self {
            Backend::Local(s) => s.create_upload(scope).await,
            Backend::Cluster(c) => Ok(c.create_upload(scope).await?),
        }
    }

    pub async fn upload(&self, scope: &str, id: &str) -> Result<UploadState, StoreError> {
        match self {
            Backend::Local(s) => s.upload(scope, id).await,
            Backend::Cluster(c) => Ok(c.upload(scope, id).await?),
        }
    }

    pub async fn append_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        start: Option<u64>,
        body: S,
        limit: u64,
    ) -> Result<UploadState, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        match self {
            Backend::Local(s) => s.append_upload(scope, id, start, body, limit).await,
            Backend::Cluster(c) => Ok(c.append_upload(scope, id, start, body, limit).await?),
        }
    }

    pub async fn finish_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        body: S,
        expected: Digest,
        limit: u64,
        size_hint: Option<u64>,
    ) -> Result<BlobInfo, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        match self {
            Backend::Local(s) => {
                (s.finish_upload(scope, id, body, expected, limit, size_hint)).await
            }
            Backend::Cluster(c) => {
                Ok((c.finish_upload(scope, id, body, expected, limit, size_hint)).await?)
            }
        }
    }

    pub async fn cancel_upload(&self, scope: &str, id: &str) -> Result<(), StoreError> {
        match self {
            Backend::Local(s) => s.cancel_upload(scope, id).await,
            Backend::Cluster(c) => Ok(c.cancel_upload(scope, id).await?),
        }
    }

    /// GHA v1: a chunk at `offset` of reservation `id`, in any order.
    #[allow(clippy::too_many_arguments)]
    pub async fn stage_chunk<S, E>(
        &self,
        scope: &str,
        id: &str,
        offset: u64,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<(), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        match self {
            Backend::Local(s) => s.stage_chunk(scope, id, offset, len, body, limit).await,
            Backend::Cluster(c) => Ok(c.stage_chunk(scope, id, offset, len, body, limit).await?),
        }
    }

    pub async fn assemble_chunks(
        &self,
        scope: &str,
        id: &str,
        size: u64,
        limit: u64,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Local(s) => s.assemble_chunks(scope, id, size, limit).await,
            Backend::Cluster(c) => Ok(c.assemble_chunks(scope, id, size, limit).await?),
        }
    }

    pub async fn named_upload_len(&self, scope: &str, name: &str) -> Result<u64, StoreError> {
        match self {
            Backend::Local(s) => s.named_upload_len(scope, name).await,
            Backend::Cluster(c) => Ok(c.named_upload_len(scope, name).await?),
        }
    }

    pub async fn write_named_upload<S, E>(
        &self,
        scope: &str,
        name: &str,
        offset: u64,
        body: S,
        w: BlobWrite<'_>,
    ) -> Result<NamedWrite, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        match self {
            Backend::Local(s) => s.write_named_upload(scope, name, offset, body, w).await,
            Backend::Cluster(c) => Ok(c.write_named_upload(scope, name, offset, body, w).await?),
        }
    }

    /// GHA: reserves the one upload `scope` may have; `None` when another
    /// is already reserved.
    pub async fn reserve_upload(
        &self,
        scope: &str,
        size: Option<u64>,
    ) -> Result<Option<UploadState>, StoreError> {
        match self {
            Backend::Local(s) => s.reserve_upload(scope, size).await,
            Backend::Cluster(c) => Ok(c.reserve_upload(scope, size).await?),
        }
    }

    pub async fn reserved_size(&self, id: &str) -> Result<Option<u64>, StoreError> {
        match self {
            Backend::Local(s) => s.reserved_size(id),
            Backend::Cluster(c) => Ok(c.reserved_size(id).await?),
        }
    }

    pub async fn reserved_upload(&self, scope: &str) -> Result<Option<String>, StoreError> {
        match self {
            Backend::Local(s) => s.reserved_upload(scope),
            Backend::Cluster(c) => Ok(c.reserved_upload(scope).await?),
        }
    }

    pub async fn upload_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Backend::Local(s) => s.upload_owner(id),
            Backend::Cluster(c) => Ok(c.upload_owner(id).await?),
        }
    }

    pub async fn replace_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<UploadState, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        match self {
            Backend::Local(s) => s.replace_upload(scope, id, len, body, limit).await,
            Backend::Cluster(c) => Ok(c.replace_upload(scope, id, len, body, limit).await?),
        }
    }

    pub async fn seal_upload(
        &self,
        scope: &str,
        id: &str,
        size: u64,
    ) -> Result<BlobInfo, StoreError> {
        match self {
            Backend::Local(s) => s.seal_upload(scope, id, size).await,
            Backend::Cluster(c) => Ok(c.seal_upload(scope, id, size).await?),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn stage_part<S, E>(
        &self,
        scope: &str,
        id: &str,
        name: &str,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<(), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        match self {
            Backend::Local(s) => s.stage_part(scope, id, name, len, body, limit).await,
            Backend::Cluster(c) => Ok(c.stage_part(scope, id, name, len, body, limit).await?),
        }
    }

    pub async fn assemble_parts(
        &self,
        scope: &str,
        id: &str,
        order: &[String],
        limit: u64,
    ) -> Result<UploadState, StoreError> {
        match self {
            Backend::Local(s) => s.assemble_parts(scope, id, order, limit).await,
            Backend::Cluster(c) => Ok(c.assemble_parts(scope, id, order, limit).await?),
        }
    }
}
