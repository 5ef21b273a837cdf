//! Entries and the names that point at them.

use super::{now_ms, Store, StoreError};
use crate::index::{EntryKey, EntryRecord, NewEntry, Protocol};

impl Store {
    /// Stores (or replaces) an entry and pins its blobs, durably. Fails with
    /// `MissingBlob` if any pinned blob is not stored.
    pub async fn put_entry(&self, new: &NewEntry) -> Result<EntryRecord, StoreError> {
        // Read-only: the released reserve is kept for the deletes that free
        // space, not spent on new records.
        self.disk.check_writable()?;
        let now = now_ms();
        let rec = self.noted(self.index.put_entry(new, now).map_err(StoreError::from))?;
        self.leases.pinned(&rec.pins, now);
        self.keep_within_quota(&rec).await;
        self.durable().await?;
        Ok(rec)
    }

    /// Evicts from a stored entry's namespace while it is over its quota
    /// (never the entry itself).
    pub(super) async fn keep_within_quota(&self, rec: &EntryRecord) {
        // The entry is stored; a failed quota pass must not turn that into an error.
        if let Err(e) = self.enforce_quota(&rec.key.namespace, rec.id).await {
            tracing::warn!(error = %e, namespace = %rec.key.namespace, "quota enforcement failed");
        }
    }

    /// Looks an entry up by key. A miss is `Ok(None)`.
    pub fn entry(&self, key: &EntryKey) -> Result<Option<EntryRecord>, StoreError> {
        Ok(self.index.entry_by_key(key)?)
    }

    /// Entries of a protocol and namespace whose names start with `prefix`.
    pub fn entries_with_prefix(
        &self,
        protocol: Protocol,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        Ok(self
            .index
            .entries_with_prefix(protocol, namespace, prefix)
            .collect::<Result<_, _>>()?)
    }

    /// Like `entries_with_prefix`, but stops after `limit` entries, so a
    /// listing of a large namespace costs at most that much.
    pub fn entries_with_prefix_limit(
        &self,
        protocol: Protocol,
        namespace: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        Ok(self
            .index
            .entries_with_prefix(protocol, namespace, prefix)
            .take(limit)
            .collect::<Result<_, _>>()?)
    }

    /// (namespace, name) of every entry of a protocol.
    pub fn entry_names(&self, protocol: Protocol) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self.index.entry_names(protocol).collect::<Result<_, _>>()?)
    }

    /// Points `name` in `scope` at an entry (an OCI tag at a manifest);
    /// the name goes when the entry goes.
    pub async fn set_name(
        &self,
        scope: &str,
        name: &str,
        target: &EntryKey,
    ) -> Result<(), StoreError> {
        self.disk.check_writable()?;
        self.index.set_name(scope, name, target)?;
        self.durable().await?;
        Ok(())
    }

    pub fn name(&self, scope: &str, name: &str) -> Result<Option<EntryKey>, StoreError> {
        Ok(self.index.name(scope, name)?)
    }

    pub async fn remove_name(&self, scope: &str, name: &str) -> Result<bool, StoreError> {
        let removed = self.index.remove_name(scope, name)?;
        self.durable().await?;
        Ok(removed)
    }

    /// Up to `limit` names in `scope`, in lexical order, after `after`.
    pub fn names(
        &self,
        scope: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .index
            .names(scope, after)
            .take(limit)
            .map(|r| r.map(|(name, _)| name))
            .collect::<Result<_, _>>()?)
    }
}
