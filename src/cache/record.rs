//! The blocking half of a write that stores a blob and the entry whose
//! content it is: publish the file, then record both in one index batch.

use std::sync::Arc;

use super::blobs::{extra_alias, new_record};
use super::{now_ms, BlobInfo, BlobLocks, BlobWrite, StoreError};
use crate::cas::{Cas, Digest, Verified};
use crate::index::{EntryBatches, EntryRecord, EntryWrite, Index, NewEntry, PutEntryError};

/// What the blocking half of such a write needs of the store.
pub(super) struct Parts {
    pub cas: Cas,
    pub index: Index,
    pub batches: Arc<EntryBatches>,
    pub locks: Arc<BlobLocks>,
}

/// How the stored entry comes about: `entry` makes it of the stored blob,
/// and `name` (scope, name), if any, is pointed at it.
pub(super) struct Recipe<F> {
    entry: F,
    name: Option<(String, String)>,
    /// A verified sha512 that also names the content.
    alias: Option<Digest>,
    /// The scope the blob becomes readable in, as `BlobWrite::scope`.
    scope: Option<String>,
}

impl<F> Recipe<F> {
    pub(super) fn new(entry: F, name: Option<(&str, &str)>, w: &BlobWrite<'_>) -> Recipe<F> {
        Recipe {
            entry,
            name: name.map(|(scope, name)| (scope.to_owned(), name.to_owned())),
            alias: extra_alias(w.expected.as_ref()),
            scope: w.scope.map(str::to_owned),
        }
    }
}

impl Parts {
    /// Publishes verified content and stores the entry made of it, durably,
    /// in one transaction. Blocking. Under the blob's lock, as in
    /// `commit_blob`, so GC cannot delete the file between publishing and
    /// recording it.
    pub(super) fn record<F>(
        &self,
        verified: Verified,
        recipe: Recipe<F>,
    ) -> Result<(BlobInfo, EntryRecord), StoreError>
    where
        F: FnOnce(&BlobInfo) -> NewEntry,
    {
        let _locked = self.locks.lock(&verified.meta.id);
        let (blob, write) = self.publish(verified, recipe)?;
        let stored = self.batches.put(write, now_ms());
        self.settle(blob, stored)
    }

    /// Places the content's file (unsynced, when the store syncs small
    /// files as a group: the batch syncs it) and makes the index write that
    /// records it. The caller holds the blob's lock until `settle`.
    pub(super) fn publish<F>(
        &self,
        verified: Verified,
        recipe: Recipe<F>,
    ) -> Result<(BlobInfo, EntryWrite), StoreError>
    where
        F: FnOnce(&BlobInfo) -> NewEntry,
    {
        let meta = verified.meta;
        let blob = BlobInfo::from(meta);
        let entry = (recipe.entry)(&blob);
        let (_, sync) = verified.publish_unsynced(&self.cas)?;
        let write = EntryWrite {
            entry,
            content: Some(new_record(&meta, now_ms())),
            alias: recipe.alias,
            name: recipe.name,
            link: recipe.scope,
            sync,
        };
        Ok((blob, write))
    }

    /// What became of a published write's index batch.
    pub(super) fn settle(
        &self,
        blob: BlobInfo,
        stored: Result<EntryRecord, PutEntryError>,
    ) -> Result<(BlobInfo, EntryRecord), StoreError> {
        if stored.is_err() && self.index.blob(&blob.id)?.is_none() {
            // Nothing records the file just published: do not leak it.
            self.cas.remove(&blob.id)?;
        }
        Ok((blob, stored?))
    }
}
