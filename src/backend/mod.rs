//! The store the protocols call, whichever engine holds the data: the
//! embedded `cache::Store` (sled and local files, the default) or, in
//! cluster mode, `cluster::ClusterStore` (PostgreSQL and an object store).
//!
//! An enum rather than a trait object: several methods take a generic body
//! stream, which a `dyn` trait cannot, and a match costs nothing on the hot
//! path where a boxed future would allocate per call. Every method is async
//! where the cluster needs a round trip, even when the embedded store
//! answers at once; for the lookups the embedded store answers at once, the
//! cluster's future is boxed, so theirs stays a few bytes instead of the
//! kilobytes a database query holds (a future is moved whole, every request).

mod admin;
mod errors;
mod writes;

use std::sync::Arc;

use bytes::Bytes;

use crate::cache::{BlobInfo, EntryKey, EntryRecord, Protocol, Store, StoreError};
use crate::cas::{BlobStream, ContentId, Digest, FileRange};
use crate::cluster::store::ClusterStore;

#[derive(Clone)]
pub enum Backend {
    Local(Arc<Store>),
    Cluster(Arc<ClusterStore>),
}

impl Backend {
    /// The embedded store, for what only exists on one node (its index, its
    /// metrics, fsck).
    pub fn local(&self) -> Option<&Arc<Store>> {
        match self {
            Backend::Local(s) => Some(s),
            Backend::Cluster(_) => None,
        }
    }

    pub async fn entry(&self, key: &EntryKey) -> Result<Option<EntryRecord>, StoreError> {
        match self {
            Backend::Local(s) => s.entry(key),
            Backend::Cluster(c) => Ok(Box::pin(c.entry(key)).await?),
        }
    }

    pub async fn entry_by_id(&self, id: u64) -> Result<Option<EntryRecord>, StoreError> {
        match self {
            Backend::Local(s) => s.entry_by_id(id),
            Backend::Cluster(c) => Ok(Box::pin(c.entry_by_id(id)).await?),
        }
    }

    pub async fn entries_with_prefix(
        &self,
        protocol: Protocol,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        match self {
            Backend::Local(s) => s.entries_with_prefix(protocol, namespace, prefix),
            Backend::Cluster(c) => Ok(c.entries_with_prefix(protocol, namespace, prefix).await?),
        }
    }

    pub async fn entries_with_prefix_limit(
        &self,
        protocol: Protocol,
        namespace: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        match self {
            Backend::Local(s) => s.entries_with_prefix_limit(protocol, namespace, prefix, limit),
            Backend::Cluster(c) => Ok(c
                .entries_with_prefix_limit(protocol, namespace, prefix, limit)
                .await?),
        }
    }

    pub async fn entry_names(
        &self,
        protocol: Protocol,
    ) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            Backend::Local(s) => s.entry_names(protocol),
            Backend::Cluster(c) => Ok(c.entry_names(protocol).await?),
        }
    }

    /// Counts a read of `entry` as a use (and leases what it pins); never a
    /// write on the read path.
    pub fn touch_entry(&self, entry: &EntryRecord) {
        match self {
            Backend::Local(s) => s.touch_entry(entry),
            Backend::Cluster(c) => c.touch_entry(entry),
        }
    }

    pub fn touch_blob(&self, blob: &BlobInfo) {
        match self {
            Backend::Local(s) => s.touch_blob(blob),
            Backend::Cluster(c) => c.touch_blob(blob),
        }
    }

    pub async fn name(&self, scope: &str, name: &str) -> Result<Option<EntryKey>, StoreError> {
        match self {
            Backend::Local(s) => s.name(scope, name),
            Backend::Cluster(c) => Ok(Box::pin(c.name(scope, name)).await?),
        }
    }

    pub async fn names(
        &self,
        scope: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Backend::Local(s) => s.names(scope, after, limit),
            Backend::Cluster(c) => Ok(c.names(scope, after, limit).await?),
        }
    }

    pub async fn blob(&self, digest: &Digest) -> Result<Option<BlobInfo>, StoreError> {
        match self {
            Backend::Local(s) => s.blob(digest),
            Backend::Cluster(c) => Ok(Box::pin(c.blob(digest)).await?),
        }
    }

    /// The blob `digest` names, if `scope` (a repository) may read it.
    pub async fn blob_in(
        &self,
        scope: &str,
        digest: &Digest,
    ) -> Result<Option<BlobInfo>, StoreError> {
        match self {
            Backend::Local(s) => s.blob_in(scope, digest),
            Backend::Cluster(c) => Ok(Box::pin(c.blob_in(scope, digest)).await?),
        }
    }

    /// True when content of `size` is kept in memory once read: such
    /// content is answered whole rather than streamed.
    pub fn serves_from_memory(&self, size: u64) -> bool {
        match self {
            Backend::Local(s) => s.serves_from_memory(size),
            // The object store streams; nothing is kept in memory.
            Backend::Cluster(_) => false,
        }
    }

    /// Content already in memory, without any I/O.
    pub fn in_memory(&self, id: &ContentId, len: u64) -> Option<Bytes> {
        match self {
            Backend::Local(s) => s.in_memory(id, len),
            Backend::Cluster(c) => c.in_memory(id, len),
        }
    }

    pub async fn read_content(&self, id: &ContentId, len: u64) -> Result<Bytes, StoreError> {
        match self {
            Backend::Local(s) => s.read_content(id, len).await,
            Backend::Cluster(c) => Ok(c.read_content(id, len).await?),
        }
    }

    /// The file holding `len` bytes of `blob` from `offset`: always on one
    /// node, only from its tier on a cluster replica (`None`: stream it).
    pub async fn open_blob(
        &self,
        blob: &BlobInfo,
        offset: u64,
        len: u64,
    ) -> Result<Option<FileRange>, StoreError> {
        match self {
            Backend::Local(s) => Ok(Some(s.open_blob(blob, offset, len).await?)),
            Backend::Cluster(c) => Ok(c.open_blob(blob, offset, len).await?),
        }
    }

    pub async fn read_blob(
        &self,
        blob: &BlobInfo,
        offset: u64,
        len: u64,
    ) -> Result<BlobStream, StoreError> {
        match self {
            Backend::Local(s) => s.read_blob(blob, offset, len).await,
            Backend::Cluster(c) => Ok(c.read_blob(blob, offset, len).await?),
        }
    }

    /// Ready to serve: the embedded store's disk is writable, the cluster's
    /// database answers.
    pub async fn check_ready(&self) -> Result<(), String> {
        match self {
            Backend::Local(s) => s.check_ready().await,
            Backend::Cluster(c) => c.check_ready().await,
        }
    }
}
