//! What the admin API, the dashboard and the token commands read and do:
//! usage, listings, GC and eviction on demand, token records.

use super::Backend;
use crate::cache::{
    BlobInfo, EntryOrder, EntryPage, EvictReport, GcReport, NamespaceInfo, Protocol, StoreError,
    StoreStats,
};
use crate::cas::ContentId;

impl Backend {
    pub fn stats(&self) -> StoreStats {
        match self {
            Backend::Local(s) => s.stats(),
        }
    }

    pub fn entry_count(&self, protocol: Protocol) -> u64 {
        match self {
            Backend::Local(s) => s.entry_count(protocol),
        }
    }

    pub fn usage(&self) -> u64 {
        match self {
            Backend::Local(s) => s.usage(),
        }
    }

    pub fn max_size(&self) -> u64 {
        match self {
            Backend::Local(s) => s.max_size(),
        }
    }

    pub fn hard_limit(&self) -> u64 {
        match self {
            Backend::Local(s) => s.hard_limit(),
        }
    }

    pub fn leased_bytes(&self) -> u64 {
        match self {
            Backend::Local(s) => s.leased_bytes(),
        }
    }

    pub fn recent_evictions(&self) -> Vec<(u64, EvictReport)> {
        match self {
            Backend::Local(s) => s.recent_evictions(),
        }
    }

    pub async fn namespace_names(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Backend::Local(s) => s.namespace_names(),
        }
    }

    pub async fn namespaces(&self) -> Result<Vec<NamespaceInfo>, StoreError> {
        match self {
            Backend::Local(s) => s.namespaces(),
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
        }
    }

    pub async fn purge_namespace(&self, namespace: &str) -> Result<u64, StoreError> {
        match self {
            Backend::Local(s) => s.purge_namespace(namespace).await,
        }
    }

    pub async fn gc(&self) -> Result<GcReport, StoreError> {
        match self {
            Backend::Local(s) => s.gc().await,
        }
    }

    pub async fn evict_to(&self, target: u64) -> Result<EvictReport, StoreError> {
        match self {
            Backend::Local(s) => s.evict_to(target).await,
        }
    }

    pub async fn record_token(
        &self,
        jti: &str,
        meta: &serde_json::Value,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Local(s) => s.record_token(jti, meta).await,
        }
    }

    pub async fn tokens(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        match self {
            Backend::Local(s) => s.tokens(),
        }
    }

    pub async fn token_meta(&self, jti: &str) -> Result<Option<serde_json::Value>, StoreError> {
        match self {
            Backend::Local(s) => s.token_meta(jti),
        }
    }

    pub async fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        match self {
            Backend::Local(s) => s.token_revoked(jti),
        }
    }

    pub async fn revoke_token(&self, jti: &str, until: u64) -> Result<(), StoreError> {
        match self {
            Backend::Local(s) => s.revoke_token(jti, until).await,
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
        }
    }
}
