//! What a scope (an OCI repository) sees: its tags, and the blobs pushed
//! to or mounted into it.

use super::memo::Change;
use super::store::ClusterStore;
use super::{links, names, now_ms, ClusterError};
use crate::cache::BlobInfo;
use crate::cas::Digest;
use crate::index::EntryKey;

impl ClusterStore {
    /// Looks a blob up as seen from `scope`: a miss unless it was pushed or
    /// mounted there. Finding it leases it, as `blob` does.
    pub async fn blob_in(
        &self,
        scope: &str,
        digest: &Digest,
    ) -> Result<Option<BlobInfo>, ClusterError> {
        self.blob_seen_from(digest, Some(scope)).await
    }

    /// Makes a stored blob readable in `scope` too (a cross-repository
    /// mount); `MissingBlobs` when it is no longer stored, so the client
    /// pushes it instead.
    pub async fn link_blob(&self, scope: &str, blob: &BlobInfo) -> Result<(), ClusterError> {
        let client = self.pool.get().await?;
        if !links::link(&**client, &blob.id, scope, now_ms()).await? {
            return Err(ClusterError::MissingBlobs(vec![blob.id]));
        }
        self.touch_blob(blob);
        Ok(())
    }

    /// Stops `scope` from reading a blob; the bytes stay while others use
    /// them.
    pub async fn unlink_blob(&self, scope: &str, blob: &BlobInfo) -> Result<bool, ClusterError> {
        let client = self.pool.get().await?;
        let unlinked = links::unlink(&**client, &blob.id, scope).await?;
        self.memo
            .forget(Some(&Change::Link(blob.id, scope.to_string())));
        Ok(unlinked)
    }

    /// Points `name` in `scope` at the entry under `target`; false when
    /// there is no such entry.
    pub async fn set_name(
        &self,
        scope: &str,
        name: &str,
        target: &EntryKey,
    ) -> Result<bool, ClusterError> {
        let client = self.pool.get().await?;
        let set = names::set_name(&**client, scope, name, target).await?;
        self.forget_name(scope, name);
        Ok(set)
    }

    /// Forgets what the memo knows of `name` in `scope`, which this replica
    /// just changed: its own next lookup must not wait for the database's
    /// notice.
    pub(super) fn forget_name(&self, scope: &str, name: &str) {
        (self.memo).forget(Some(&Change::Name(scope.to_string(), name.to_string())));
    }

    pub async fn names(
        &self,
        scope: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, ClusterError> {
        let client = self.pool.get().await?;
        names::names(&**client, scope, after, limit).await
    }

    pub async fn remove_name(&self, scope: &str, name: &str) -> Result<bool, ClusterError> {
        let client = self.pool.get().await?;
        let removed = names::remove_name(&**client, scope, name).await?;
        self.forget_name(scope, name);
        Ok(removed)
    }
}
