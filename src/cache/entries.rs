//! Entries and the names that point at them.

use bytes::Bytes;

use super::{now_ms, BlobInfo, BlobWrite, Store, StoreError};
use crate::cas::{self, CasError, Digest};
use crate::index::{BlobRecord, EntryKey, EntryRecord, EntryWith, NewEntry, Protocol};

impl Store {
    /// Stores (or replaces) an entry and pins its blobs, durably. Fails with
    /// `MissingBlob` if any pinned blob is not stored.
    pub async fn put_entry(&self, new: &NewEntry) -> Result<EntryRecord, StoreError> {
        let rec = self.index.put_entry(new, now_ms())?;
        self.after_put_entry(&rec).await?;
        Ok(rec)
    }

    /// Keeps the entry's namespace within its quota, then makes the entry
    /// durable.
    async fn after_put_entry(&self, rec: &EntryRecord) -> Result<(), StoreError> {
        // The entry is stored; a failed quota pass must not turn that into an error.
        if let Err(e) = self.enforce_quota(&rec.key.namespace, rec.id).await {
            tracing::warn!(error = %e, namespace = %rec.key.namespace, "quota enforcement failed");
        }
        Ok(self.commit.wait().await?)
    }

    /// Stores `content` as a blob and, in the same index transaction, the
    /// entry that `entry` makes of it (an OCI manifest), optionally pointing
    /// `name` (scope, name) at it; all of it durably. One transaction instead
    /// of three is most of what a manifest PUT costs the index.
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
        let alias = w
            .expected
            .clone()
            .filter(|d| matches!(d, Digest::Sha512(_)));
        let expected = w.expected;
        let name = name.map(|(scope, name)| (scope.to_owned(), name.to_owned()));
        let (cas, index, locks) = (self.cas.clone(), self.index.clone(), self.locks.clone());
        let stored = tokio::task::spawn_blocking(move || {
            let verified = cas::ingest_bytes(&cas, &content, expected.as_ref(), len)?;
            let meta = verified.meta;
            let blob = BlobInfo {
                id: meta.id,
                sha256: meta.sha256,
                size: meta.size,
            };
            let new = entry(&blob);
            // Under the blob's lock, as in `commit_blob`: GC cannot delete
            // the file between publishing and recording it.
            let _locked = locks.lock(&meta.id);
            verified.publish(&cas)?;
            let now = now_ms();
            let with = EntryWith {
                content: Some(BlobRecord {
                    size: meta.size,
                    sha256: meta.sha256,
                    created: now,
                    touched: now,
                }),
                alias: alias.as_ref(),
                name: name.as_ref().map(|(s, n)| (s.as_str(), n.as_str())),
            };
            let stored = index.put_entry_with(&new, now, &with);
            if stored.is_err() && index.blob(&meta.id)?.is_none() {
                // Nothing records the file just published: do not leak it.
                cas.remove(&meta.id)?;
            }
            Ok::<_, StoreError>((blob, stored?))
        })
        .await
        .map_err(std::io::Error::other)?;
        drop(held);
        let (blob, rec) = stored?;
        self.after_put_entry(&rec).await?;
        Ok((blob, rec))
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
        self.index.set_name(scope, name, target)?;
        self.commit.wait().await?;
        Ok(())
    }

    pub fn name(&self, scope: &str, name: &str) -> Result<Option<EntryKey>, StoreError> {
        Ok(self.index.name(scope, name)?)
    }

    pub async fn remove_name(&self, scope: &str, name: &str) -> Result<bool, StoreError> {
        let removed = self.index.remove_name(scope, name)?;
        self.commit.wait().await?;
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
