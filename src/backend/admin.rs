//! What the admin API, the dashboard and the token commands read and do:
//! usage, listings, GC and eviction on demand, token records.

use super::Backend;
use crate::cache::{
    BlobInfo, EntryOrder, EntryPage, EvictReport, GcReport, NamespaceInfo, Protocol, StoreError,
    StoreStats,
};
use crate::cas::ContentId;

impl Backend {
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        match self {
            Backend::Local(s) => Ok(s.stats()),
            Backend::Cluster(c) => Ok(c.stats().await?),
        }
    }

    /// Entries of each protocol, all listed.
    pub async fn entry_counts(&self) -> Result<Vec<(Protocol, u64)>, StoreError> {
        match self {
            Backend::Local(s) => Ok(Protocol::ALL.map(|p| (p, s.entry_count(p))).to_vec()),
            Backend::Cluster(c) => Ok(c.entry_counts().await?),
        }
    }

    pub async fn usage(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Local(s) => Ok(s.usage()),
            Backend::Cluster(c) => Ok(c.usage().await?),
        }
    }

    pub fn max_size(&self) -> u64 {
        match self {
            Backend::Local(s) => s.max_size(),
            Backend::Cluster(c) => c.max_size,
        }
    }

    pub fn hard_limit(&self) -> u64 {
        match self {
            Backend::Local(s) => s.hard_limit(),
            Backend::Cluster(c) => c.hard_limit,
        }
    }

    pub async fn leased_bytes(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Local(s) => Ok(s.leased_bytes()),
            Backend::Cluster(c) => Ok(c.leased_bytes().await?),
        }
    }

    pub async fn recent_evictions(&self) -> Result<Vec<(u64, EvictReport)>, StoreError> {
        match self {
            Backend::Local(s) => Ok(s.recent_evictions()),
            Backend::Cluster(c) => Ok(c.recent_evictions().await?),
        }
    }

    pub async fn namespace_names(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Backend::Local(s) => s.namespace_names(),
            Backend::Cluster(c) => Ok(c.namespace_names().await?),
        }
    }

    pub async fn namespaces(&self) -> Result<Vec<NamespaceInfo>, StoreError> {
        match self {
            Backend::Local(s) => s.namespaces(),
            Backend::Cluster(c) => Ok(c.namespaces().await?),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn list_entries(
        &self,
        namespace: Option<&str>,
        protocol: Option<Protocol>,
        prefix: Option<&str>,
        order: EntryOrder,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<EntryPage, StoreError> {
        match self {
            Backend::Local(s) => s.list_entries(namespace, protocol, prefix, order, limit, cursor),
            Backend::Cluster(c) => Ok(c
                .list_entries(namespace, protocol, prefix, order, limit, cursor)
                .await?),
        }
    }

    pub async fn purge_namespace(&self, namespace: &str) -> Result<u64, StoreError> {
        match self {
            Backend::Local(s) => s.purge_namespace(namespace).await,
            Backend::Cluster(c) => Ok(c.purge_namespace(namespace).await?),
        }
    }

    pub async fn gc(&self) -> Result<GcReport, StoreError> {
        match self {
            Backend::Local(s) => s.gc().await,
            Backend::Cluster(c) => Ok(c.gc().await?),
        }
    }

    pub async fn evict_to(&self, target: u64) -> Result<EvictReport, StoreError> {
        match self {
            Backend::Local(s) => s.evict_to(target).await,
            Backend::Cluster(c) => Ok(c.evict_to(target).await?),
        }
    }

    pub async fn record_token(
        &self,
        jti: &str,
        meta: &serde_json::Value,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Local(s) => s.record_token(jti, meta).await,
            Backend::Cluster(c) => Ok(c.record_token(jti, meta).await?),
        }
    }

    pub async fn tokens(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        match self {
            Backend::Local(s) => s.tokens(),
            Backend::Cluster(c) => Ok(c.tokens().await?),
        }
    }

    pub async fn token_meta(&self, jti: &str) -> Result<Option<serde_json::Value>, StoreError> {
        match self {
            Backend::Local(s) => s.token_meta(jti),
            Backend::Cluster(c) => Ok(c.token_meta(jti).await?),
        }
    }

    pub async fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        match self {
            Backend::Local(s) => s.token_revoked(jti),
            Backend::Cluster(c) => Ok(c.token_revoked(jti)?),
        }
    }

    pub async fn revoke_token(&self, jti: &str, until: u64) -> Result<(), StoreError> {
        match self {
            Backend::Local(s) => s.revoke_token(jti, until).await,
            Backend::Cluster(c) => Ok(c.revoke_token(jti, until).await?),
        }
    }

    /// Blob `id` (when still recorded) and how many entries pin it.
    pub async fn pinned_blob(&self, id: &ContentId) -> Result<(Option<BlobInfo>, u64), StoreError> {
        match self {
            Backend::Local(s) => {
                let index = s.index();
                let blob = index.blob(id)?.map(|rec| BlobInfo {
                    id: *id,
                    sha256: rec.sha256,
                    size: rec.size,
                });
                Ok((blob, index.pin_count(id)?))
            }
            Backend::Cluster(c) => Ok(c.pinned_blob(id).await?),
        }
    }
}
