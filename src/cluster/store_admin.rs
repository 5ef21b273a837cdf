//! What operators and listing protocols ask of the cluster's store:
//! entries by id and prefix, namespaces, pages of entries, purges, and
//! tokens. Revocation is checked on every request, so `token_revoked`
//! reads this replica's copy of the revoked ids, never the database.

use super::memo::Change;
use super::store::ClusterStore;
use super::{entries, listing, tokens, ClusterError};
use crate::cache::{EntryOrder, EntryPage, NamespaceInfo};
use crate::index::{EntryRecord, Protocol};

impl ClusterStore {
    pub async fn entry_by_id(&self, id: u64) -> Result<Option<EntryRecord>, ClusterError> {
        let client = self.pool.get().await?;
        entries::entry_by_id(&**client, id).await
    }

    /// Entries of a protocol and namespace whose names start with `prefix`,
    /// in name order.
    pub async fn entries_with_prefix(
        &self,
        protocol: Protocol,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<EntryRecord>, ClusterError> {
        let client = self.pool.get().await?;
        entries::with_prefix(&**client, protocol, namespace, prefix, None).await
    }

    /// Like `entries_with_prefix`, but at most `limit` entries.
    pub async fn entries_with_prefix_limit(
        &self,
        protocol: Protocol,
        namespace: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<EntryRecord>, ClusterError> {
        let client = self.pool.get().await?;
        entries::with_prefix(&**client, protocol, namespace, prefix, Some(limit)).await
    }

    /// (namespace, name) of every entry of a protocol.
    pub async fn entry_names(
        &self,
        protocol: Protocol,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        let client = self.pool.get().await?;
        entries::names(&**client, protocol).await
    }

    /// Entries of each protocol, all listed.
    pub async fn entry_counts(&self) -> Result<Vec<(Protocol, u64)>, ClusterError> {
        let client = self.pool.get().await?;
        entries::counts(&**client).await
    }

    /// Namespaces holding entries or given a quota, sorted.
    pub async fn namespace_names(&self) -> Result<Vec<String>, ClusterError> {
        let client = self.pool.get().await?;
        let mut names = entries::namespace_names(&**client).await?;
        names.extend(self.quotas.keys().cloned());
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub async fn namespaces(&self) -> Result<Vec<NamespaceInfo>, ClusterError> {
        let client = self.pool.get().await?;
        listing::namespaces(&**client, &self.quotas).await
    }

    /// Entries matching the filters, `limit` at a time after `cursor`.
    pub async fn list_entries(
        &self,
        namespace: Option<&str>,
        protocol: Option<Protocol>,
        prefix: Option<&str>,
        order: EntryOrder,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<EntryPage, ClusterError> {
        let client = self.pool.get().await?;
        listing::list_entries(&**client, namespace, protocol, prefix, order, limit, cursor).await
    }

    /// Removes an entry and every entry that needs it; returns them.
    pub async fn remove_entry(&self, id: u64) -> Result<Vec<EntryRecord>, ClusterError> {
        let client = self.pool.get().await?;
        let removed = entries::remove(&**client, id).await?;
        for rec in &removed {
            self.memo.forget(Some(&Change::Entry(rec.key.clone())));
        }
        Ok(removed)
    }

    /// Removes every entry of a namespace (and the entries that need
    /// them); their blobs follow through the leader's GC.
    pub async fn purge_namespace(&self, namespace: &str) -> Result<u64, ClusterError> {
        let client = self.pool.get().await?;
        let purged = entries::purge_namespace(&**client, namespace).await?;
        self.memo.forget(None);
        Ok(purged)
    }

    /// Records a minted token's metadata (never the token) for listings.
    pub async fn record_token(
        &self,
        jti: &str,
        meta: &serde_json::Value,
    ) -> Result<(), ClusterError> {
        let client = self.pool.get().await?;
        tokens::put_token_meta(&**client, jti, meta.to_string().as_bytes()).await
    }

    pub async fn tokens(&self) -> Result<Vec<serde_json::Value>, ClusterError> {
        let client = self.pool.get().await?;
        Ok(tokens::token_metas(&**client)
            .await?
            .into_iter()
            .filter_map(|(_, meta, last_used)| {
                let mut meta: serde_json::Value = serde_json::from_slice(&meta).ok()?;
                if last_used > 0 && meta.is_object() {
                    meta["last_used"] = serde_json::json!(last_used);
                }
                Some(meta)
            })
            .collect())
    }

    pub async fn token_meta(&self, jti: &str) -> Result<Option<serde_json::Value>, ClusterError> {
        let client = self.pool.get().await?;
        Ok(tokens::token_meta(&**client, jti)
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Revokes a token by id; `until` is its expiry (Unix seconds). This
    /// replica refuses it at once, the others from their next refresh.
    pub async fn revoke_token(&self, jti: &str, until: u64) -> Result<(), ClusterError> {
        let mut client = self.pool.get().await?;
        tokens::revoke_and_mark(&mut client, jti, until).await?;
        self.revoked.refresh(&**client).await?;
        Ok(())
    }

    /// Whether token `jti` is revoked, as of this replica's last refresh.
    pub fn token_revoked(&self, jti: &str) -> Result<bool, ClusterError> {
        Ok(self.revoked.contains(jti))
    }

    /// Fetches the revocations made since the last refresh, on any replica;
    /// returns how many were new.
    pub async fn refresh_revocations(&self) -> Result<usize, ClusterError> {
        let client = self.pool.get().await?;
        self.revoked.refresh(&**client).await
    }
}
