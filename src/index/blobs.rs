//! Blob records (BLAKE3 → size, SHA-256, times) and digest aliases
//! (`sha256:`/`sha512:` → BLAKE3).

use crate::cas::{ContentId, Digest};

use sled::transaction::{ConflictableTransactionError, ConflictableTransactionResult};
use sled::Transactional;

use super::blob_record::{BlobRecord, StoredBlob};
use super::codec::decode_u64;
use super::names::link_tx;
use super::pins::Pins;
use super::{add_to_counter, tx_error, Index, IndexError, TxTree, BLOB_COUNT, USED_BYTES};

/// Alias key: one algorithm tag byte, then the hash.
pub(super) fn alias_key(digest: &Digest) -> Vec<u8> {
    let tag = match digest {
        Digest::Sha256(_) => 1u8,
        Digest::Sha512(_) => 2,
        Digest::Blake3(_) => 3,
    };
    let mut k = Vec::with_capacity(1 + digest.hash_bytes().len());
    k.push(tag);
    k.extend_from_slice(digest.hash_bytes());
    k
}

/// Removes `key` only if it is there: sled writes a removal of an absent key
/// to its log and its tree like any other write, and a reading is cheaper.
pub(super) fn remove_present<E>(tree: &TxTree, key: &[u8]) -> ConflictableTransactionResult<(), E> {
    if tree.get(key)?.is_some() {
        tree.remove(key)?;
    }
    Ok(())
}

/// The trees a blob record is kept in, inside a transaction.
pub(super) struct BlobTrees<'a> {
    pub blobs: &'a TxTree,
    pub aliases: &'a TxTree,
    pub unpinned: &'a TxTree,
    pub meta: &'a TxTree,
}

impl BlobTrees<'_> {
    /// Records a blob, its SHA-256 alias and its bytes in the usage counter.
    /// Returns false (and changes nothing) if the blob already had a record.
    /// `pinned`: an entry of the same transaction pins it, so it never
    /// joins `unpinned` (an insert and a remove would still cost sled a
    /// write at commit: a transaction keeps the remove of an absent key).
    pub fn insert<E>(
        &self,
        id: &ContentId,
        rec: &BlobRecord,
        pinned: bool,
    ) -> ConflictableTransactionResult<bool, E> {
        if self.blobs.get(id.0)?.is_some() {
            return Ok(false);
        }
        if !pinned {
            // Unpinned from birth: GC may take it once its write lease ends.
            self.unpinned.insert(&id.0, &rec.created.to_be_bytes())?;
        }
        let stored = StoredBlob {
            rec: *rec,
            pins: Pins::default(),
            scopes: Vec::new(),
        };
        self.blobs.insert(&id.0, stored.encode())?;
        self.aliases
            .insert(alias_key(&Digest::Sha256(rec.sha256)), &id.0)?;
        add_to_counter(self.meta, USED_BYTES, rec.size as i64)?;
        add_to_counter(self.meta, BLOB_COUNT, 1)?;
        Ok(true)
    }

    /// Undoes `insert` for a blob whose record is `rec`.
    pub fn remove<E>(
        &self,
        id: &ContentId,
        rec: &BlobRecord,
    ) -> ConflictableTransactionResult<(), E> {
        self.blobs.remove(&id.0)?;
        self.aliases
            .remove(alias_key(&Digest::Sha256(rec.sha256)))?;
        self.unpinned.remove(&id.0)?;
        add_to_counter(self.meta, USED_BYTES, -(rec.size as i64))?;
        add_to_counter(self.meta, BLOB_COUNT, -1)?;
        Ok(())
    }
}

impl Index {
    pub fn blob(&self, id: &ContentId) -> Result<Option<BlobRecord>, IndexError> {
        Ok(self.stored_blob(id)?.map(|b| b.rec))
    }

    /// Records a blob (its SHA-256 alias, its bytes in the usage counter),
    /// takes it off the trash list (its file was just published or found)
    /// and lets `scope` read it, in one transaction. Returns false if the
    /// blob already had a record, which is then kept as it was.
    pub fn put_blob(
        &self,
        id: &ContentId,
        rec: &BlobRecord,
        scope: Option<&str>,
    ) -> Result<bool, IndexError> {
        let news = self.put_blobs(&[(id, rec, scope)])?;
        Ok(news.first().copied().unwrap_or(false))
    }

    /// `put_blob` for several blobs in one transaction: sled writes its log
    /// out twice per transaction, which a batch of small pushes then pays
    /// once.
    pub fn put_blobs(
        &self,
        blobs_to_put: &[(&ContentId, &BlobRecord, Option<&str>)],
    ) -> Result<Vec<bool>, IndexError> {
        let t = self.t();
        (
            &t.blobs,
            &t.aliases,
            &t.unpinned,
            &t.meta,
            &t.links,
            &t.trash,
        )
            .transaction(|(blobs, aliases, unpinned, meta, links, trash)| {
                let trees = BlobTrees {
                    blobs,
                    aliases,
                    unpinned,
                    meta,
                };
                let mut news = Vec::with_capacity(blobs_to_put.len());
                for &(id, rec, scope) in blobs_to_put {
                    news.push(trees.insert(id, rec, false)?);
                    remove_present(trash, &id.0)?;
                    if let Some(scope) = scope {
                        link_tx(blobs, links, id, scope)?;
                    }
                }
                Ok(news)
            })
            .map_err(tx_error)
    }

    /// Removes a blob record if nothing pins it and it was last touched
    /// before `touched_before`. The id goes to the trash list in the same
    /// transaction; the caller deletes the file, then calls `trash_done`, so a
    /// crash in between is finished at the next start.
    pub fn remove_unused_blob(
        &self,
        id: &ContentId,
        touched_before: u64,
    ) -> Result<Option<BlobRecord>, IndexError> {
        let t = self.t();
        (&t.blobs, &t.aliases, &t.unpinned, &t.meta, &t.trash)
            .transaction(|(blobs, aliases, unpinned, meta, trash)| {
                let Some(raw) = blobs.get(id.0)? else {
                    unpinned.remove(&id.0)?;
                    return Ok(None);
                };
                let StoredBlob { rec, pins, .. } =
                    StoredBlob::decode(&raw).map_err(ConflictableTransactionError::Abort)?;
                if pins.total() > 0 || rec.touched >= touched_before {
                    return Ok(None);
                }
                BlobTrees {
                    blobs,
                    aliases,
                    unpinned,
                    meta,
                }
                .remove(id, &rec)?;
                trash.insert(&id.0, &rec.size.to_be_bytes())?;
                Ok(Some(rec))
            })
            .map_err(tx_error)
    }

    /// Blob ids whose record was removed but whose file may still exist.
    pub fn trash(&self) -> Result<Vec<ContentId>, IndexError> {
        self.t()
            .trash
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                <[u8; 32]>::try_from(k.as_ref())
                    .map(ContentId)
                    .map_err(|_| IndexError::Corrupt("trash key is not 32 bytes".into()))
            })
            .collect()
    }

    pub fn in_trash(&self, id: &ContentId) -> Result<bool, IndexError> {
        Ok(self.t().trash.contains_key(id.0)?)
    }

    pub fn trash_done(&self, id: &ContentId) -> Result<(), IndexError> {
        self.t().trash.remove(id.0)?;
        Ok(())
    }

    /// Blobs that nothing pins, with the time they became unpinned.
    pub fn unpinned_blobs(
        &self,
    ) -> impl Iterator<Item = Result<(ContentId, u64), IndexError>> + '_ {
        self.hold(|t| t.unpinned.iter()).map(|kv| {
            let (k, v) = kv?;
            let id = <[u8; 32]>::try_from(k.as_ref())
                .map_err(|_| IndexError::Corrupt("unpinned key is not 32 bytes".into()))?;
            Ok((ContentId(id), decode_u64(&v)))
        })
    }

    /// Bytes of every blob with a record (the persisted usage counter).
    pub fn used_bytes(&self) -> Result<u64, IndexError> {
        Ok(self
            .t()
            .meta
            .get(USED_BYTES)?
            .map(|v| decode_u64(&v))
            .unwrap_or(0))
    }

    /// Lets `digest` (e.g. a verified sha512) name blob `id`.
    pub fn put_alias(&self, digest: &Digest, id: &ContentId) -> Result<(), IndexError> {
        self.t().aliases.insert(alias_key(digest), &id.0)?;
        Ok(())
    }

    /// Resolves a client digest to the blob it names, if stored.
    pub fn resolve(&self, digest: &Digest) -> Result<Option<ContentId>, IndexError> {
        if let Digest::Blake3(h) = digest {
            return Ok(Some(ContentId(*h)));
        }
        Ok(self.t().aliases.get(alias_key(digest))?.and_then(|v| {
            let arr: [u8; 32] = v.as_ref().try_into().ok()?;
            Some(ContentId(arr))
        }))
    }

    /// Moves a blob's last-touched time forward (never back).
    pub fn touch_blob(&self, id: &ContentId, at: u64) -> Result<(), IndexError> {
        self.t().blobs.fetch_and_update(id.0, |old| {
            let old = old?;
            match StoredBlob::decode(old) {
                Ok(mut stored) if stored.rec.touched < at => {
                    stored.rec.touched = at;
                    Some(stored.encode())
                }
                _ => Some(old.to_vec()),
            }
        })?;
        Ok(())
    }

    /// Removes a blob record whatever pins it (its file is gone: fsck, GC),
    /// and its bytes from the usage of the namespaces pinning it. The caller
    /// removes the entries that pinned it.
    pub fn forget_blob(&self, id: &ContentId) -> Result<Option<BlobRecord>, IndexError> {
        let t = self.t();
        (&t.blobs, &t.aliases, &t.unpinned, &t.meta, &t.ns_usage)
            .transaction(|(blobs, aliases, unpinned, meta, ns_usage)| {
                let Some(raw) = blobs.get(id.0)? else {
                    return Ok(None);
                };
                let StoredBlob { rec, pins, .. } =
                    StoredBlob::decode(&raw).map_err(ConflictableTransactionError::Abort)?;
                BlobTrees {
                    blobs,
                    aliases,
                    unpinned,
                    meta,
                }
                .remove(id, &rec)?;
                for (ns, _) in &pins.0 {
                    add_to_counter(ns_usage, ns.as_bytes(), -(rec.size as i64))?;
                }
                Ok(Some(rec))
            })
            .map_err(tx_error)
    }

    /// A blob's record with the pins on it.
    pub(super) fn stored_blob(&self, id: &ContentId) -> Result<Option<StoredBlob>, IndexError> {
        match self.t().blobs.get(id.0)? {
            Some(v) => StoredBlob::decode(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Blobs with a record (the persisted blob counter).
    pub fn blob_count(&self) -> Result<u64, IndexError> {
        Ok(self
            .t()
            .meta
            .get(BLOB_COUNT)?
            .map(|v| decode_u64(&v))
            .unwrap_or(0))
    }

    /// Every blob record, for recounts. Corrupt records are reported by id.
    pub fn all_blobs(
        &self,
    ) -> impl Iterator<Item = Result<(ContentId, BlobRecord), IndexError>> + '_ {
        self.stored_blobs().map(|r| r.map(|(id, b)| (id, b.rec)))
    }

    pub(super) fn stored_blobs(
        &self,
    ) -> impl Iterator<Item = Result<(ContentId, StoredBlob), IndexError>> + '_ {
        self.hold(|t| t.blobs.iter()).map(|kv| {
            let (k, v) = kv?;
            let id: [u8; 32] = k
                .as_ref()
                .try_into()
                .map_err(|_| IndexError::Corrupt("blob key is not 32 bytes".into()))?;
            Ok((ContentId(id), StoredBlob::decode(&v)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::blob_record::sample;

    #[test]
    fn the_blob_counter_follows_every_record_added_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        let rec = sample().rec;
        for i in 1..=3 {
            assert!(index.put_blob(&ContentId([i; 32]), &rec, None).unwrap());
        }
        assert!(!index.put_blob(&ContentId([1; 32]), &rec, None).unwrap());
        assert_eq!(index.blob_count().unwrap(), 3);
        index.forget_blob(&ContentId([1; 32])).unwrap();
        index.forget_blob(&ContentId([1; 32])).unwrap();
        assert_eq!(index.blob_count().unwrap(), 2);
        let gone = index
            .remove_unused_blob(&ContentId([2; 32]), u64::MAX)
            .unwrap();
        assert!(gone.is_some());
        assert_eq!(index.blob_count().unwrap(), 1);
        let derived = index.compute_derived().unwrap();
        assert_eq!(derived.blobs, 1);
        assert_eq!(index.stored_derived().unwrap().blobs, 1);
    }

    #[test]
    fn content_stored_with_its_entry_is_never_unpinned_until_the_entry_goes() {
        use crate::index::{EntryKey, EntryWith, NewEntry, Protocol};
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        let id = ContentId([5; 32]);
        let new = NewEntry {
            key: EntryKey {
                protocol: Protocol::Http,
                namespace: "ns".into(),
                name: "k".into(),
            },
            content: id,
            size: 42,
            pins: vec![id],
            meta: Vec::new(),
            children: Vec::new(),
        };
        let with = EntryWith {
            content: Some(sample().rec),
            alias: None,
            name: None,
            link: None,
        };
        let rec = index.put_entries_with(&[(&new, &with)], 3).unwrap();
        let rec = rec.into_iter().next().unwrap().unwrap();
        assert_eq!(index.unpinned_blobs().count(), 0);
        assert_eq!(index.blob_count().unwrap(), 1);
        index.remove_entry(rec.id, 4).unwrap();
        let unpinned: Vec<_> = index.unpinned_blobs().map(Result::unwrap).collect();
        assert_eq!(unpinned, vec![(id, 4)]);
    }
}
