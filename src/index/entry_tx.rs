//! How an entry change is written: the key layout of the entry trees and
//! `EntryTx`, the one sled transaction over every tree an entry, its key,
//! its LRU positions, its pins and what is stored with it touch, so a crash
//! never leaves a pin without its entry (see `entries` for the trees).

use sled::transaction::{
    abort, ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
};
use sled::Transactional;

use super::blob_record::StoredBlob;
use super::blobs::{alias_key, remove_present, BlobTrees};
use super::entry_record::{EntryKey, EntryRecord, EntryWith};
use super::names::{link_tx, set_name_tx};
use super::{add_to_counter, Index, IndexError};
use crate::cas::ContentId;

/// Why an entry could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum PutEntryError {
    #[error("blob {0} is not stored")]
    MissingBlob(ContentId),
    #[error(transparent)]
    Index(#[from] IndexError),
}

pub(super) fn lru_key(last_used: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&last_used.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

/// Namespace-local LRU key: namespace, 0, last_used, id.
pub(super) fn ns_lru_key(ns: &str, last_used: u64, id: u64) -> Vec<u8> {
    let mut k = ns_prefix(ns);
    k.extend_from_slice(&lru_key(last_used, id));
    k
}

pub(super) fn ns_prefix(ns: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + 17);
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k
}

pub(super) fn distinct(pins: &[ContentId]) -> Vec<ContentId> {
    let mut v = pins.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// The entry id ending an `lru` or `ns_lru` key.
pub(super) fn lru_id(k: &[u8]) -> Result<u64, IndexError> {
    let Some(start) = k.len().checked_sub(8) else {
        return Err(IndexError::Corrupt("lru key is short".into()));
    };
    id_from(&k[start..])
}

pub(super) fn id_from(v: &[u8]) -> Result<u64, IndexError> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_be_bytes)
        .map_err(|_| IndexError::Corrupt("entry id is not 8 bytes".into()))
}

pub(super) type Tx = sled::transaction::TransactionalTree;
pub(super) type TxResult<T> = ConflictableTransactionResult<T, PutEntryError>;

pub(super) fn abort_on<T>(r: Result<T, IndexError>) -> TxResult<T> {
    r.map_err(|e| ConflictableTransactionError::Abort(PutEntryError::Index(e)))
}

/// The trees an entry change touches, inside one transaction.
pub(super) struct EntryTx<'a> {
    entries: &'a Tx,
    keys: &'a Tx,
    lru: &'a Tx,
    unpinned: &'a Tx,
    blobs: &'a Tx,
    ns_usage: &'a Tx,
    ns_lru: &'a Tx,
    parents: &'a Tx,
    counts: &'a Tx,
    aliases: &'a Tx,
    meta: &'a Tx,
    trash: &'a Tx,
    names: &'a Tx,
    name_refs: &'a Tx,
    links: &'a Tx,
}

fn parent_key(child: &EntryKey, parent: u64) -> Vec<u8> {
    let mut k = child.parents_prefix();
    k.extend_from_slice(&parent.to_be_bytes());
    k
}

impl EntryTx<'_> {
    /// Stores `record` and what `with` says, replacing the entry with the
    /// same key (or keeping it, if it is the same entry again).
    pub(super) fn put_with(
        &self,
        record: &EntryRecord,
        now: u64,
        with: &EntryWith,
    ) -> TxResult<EntryRecord> {
        if let Some(blob) = &with.content {
            let trees = BlobTrees {
                blobs: self.blobs,
                aliases: self.aliases,
                unpinned: self.unpinned,
                meta: self.meta,
            };
            let pinned = record.pins.contains(&record.content);
            trees.insert(&record.content, blob, pinned)?;
            // A GC that queued this content's file for deletion must
            // leave the file just published (or deduplicated against).
            remove_present(self.trash, &record.content.0)?;
            if let Some(alias) = with.alias {
                self.aliases.insert(alias_key(alias), &record.content.0)?;
            }
        }
        if let Some(scope) = with.link {
            link_tx(self.blobs, self.links, &record.content, scope)?;
        }
        if let Some((scope, name)) = with.name {
            set_name_tx(self.names, self.name_refs, scope, name, &record.key)?;
        }
        if let Some(old_id) = self.keys.get(record.key.encode())? {
            if let Some(old) = self.get(abort_on(id_from(&old_id))?)? {
                if old.content == record.content
                    && old.pins == record.pins
                    && old.meta == record.meta
                    && old.children == record.children
                {
                    // The same entry again (a re-push): keep its identity.
                    return Ok(old);
                }
                self.delete(&old, now)?;
            }
        }
        self.insert(record)?;
        Ok(record.clone())
    }

    fn stored_blob(&self, id: &ContentId) -> TxResult<Option<StoredBlob>> {
        match self.blobs.get(id.0)? {
            Some(raw) => Ok(Some(abort_on(StoredBlob::decode(&raw))?)),
            None => Ok(None),
        }
    }

    pub(super) fn get(&self, id: u64) -> TxResult<Option<EntryRecord>> {
        match self.entries.get(id.to_be_bytes())? {
            Some(raw) => Ok(Some(abort_on(EntryRecord::decode(id, &raw))?)),
            None => Ok(None),
        }
    }

    /// Adds the entry and takes its pins.
    fn insert(&self, rec: &EntryRecord) -> TxResult<()> {
        let ns = &rec.key.namespace;
        for p in &rec.pins {
            let Some(mut blob) = self.stored_blob(p)? else {
                return abort(PutEntryError::MissingBlob(*p));
            };
            if blob.pins.total() == 0 {
                // Only a blob without pins can be in `unpinned`; every
                // write is one more log record sled replays at startup.
                remove_present(self.unpinned, &p.0)?;
            }
            if blob.pins.take(ns) {
                add_to_counter(self.ns_usage, ns.as_bytes(), blob.rec.size as i64)?;
            }
            self.blobs.insert(&p.0, blob.encode())?;
        }
        self.entries.insert(&rec.id.to_be_bytes(), rec.encode())?;
        self.keys.insert(rec.key.encode(), &rec.id.to_be_bytes())?;
        self.lru.insert(&lru_key(rec.last_used, rec.id), &[])?;
        self.ns_lru
            .insert(ns_lru_key(ns, rec.last_used, rec.id), &[])?;
        for child in &rec.children {
            self.parents.insert(parent_key(child, rec.id), &[])?;
        }
        add_to_counter(self.counts, &[rec.key.protocol as u8], 1)?;
        Ok(())
    }

    /// Removes the entry and releases its pins; a blob losing its last pin
    /// joins `unpinned` (GC takes it once no lease holds it).
    pub(super) fn delete(&self, rec: &EntryRecord, now: u64) -> TxResult<()> {
        let ns = &rec.key.namespace;
        self.entries.remove(&rec.id.to_be_bytes())?;
        let key = rec.key.encode();
        if self
            .keys
            .get(&key)?
            .is_some_and(|v| v.as_ref() == rec.id.to_be_bytes())
        {
            self.keys.remove(key)?;
        }
        self.lru.remove(&lru_key(rec.last_used, rec.id))?;
        self.ns_lru.remove(ns_lru_key(ns, rec.last_used, rec.id))?;
        for child in &rec.children {
            self.parents.remove(parent_key(child, rec.id))?;
        }
        add_to_counter(self.counts, &[rec.key.protocol as u8], -1)?;
        for p in &rec.pins {
            // A forgotten blob (its file was lost) took its pins with it.
            let Some(mut blob) = self.stored_blob(p)? else {
                continue;
            };
            if blob.pins.release(ns) {
                add_to_counter(self.ns_usage, ns.as_bytes(), -(blob.rec.size as i64))?;
            }
            if blob.pins.total() == 0 {
                self.unpinned.insert(&p.0, &now.to_be_bytes())?;
            }
            self.blobs.insert(&p.0, blob.encode())?;
        }
        Ok(())
    }
}

pub(super) fn flatten(e: TransactionError<PutEntryError>) -> PutEntryError {
    match e {
        TransactionError::Abort(t) => t,
        TransactionError::Storage(s) => PutEntryError::Index(IndexError::Storage(s)),
    }
}

impl Index {
    /// Runs `f` over every tree an entry change touches, in one transaction.
    /// sled writes out its log buffer twice per transaction (two writes and
    /// two `sync_file_range`s), so a write that stores content, an entry and
    /// a name does it all in this one.
    pub(super) fn entry_tx<T, E>(
        &self,
        f: impl Fn(&EntryTx) -> ConflictableTransactionResult<T, E>,
    ) -> Result<T, TransactionError<E>> {
        let t = self.t();
        let trees = [
            &t.entries,
            &t.entry_keys,
            &t.lru,
            &t.unpinned,
            &t.blobs,
            &t.ns_usage,
            &t.ns_lru,
            &t.parents,
            &t.entry_counts,
            &t.aliases,
            &t.meta,
            &t.trash,
            &t.names,
            &t.name_refs,
            &t.links,
        ];
        trees[..].transaction(|t| {
            f(&EntryTx {
                entries: &t[0],
                keys: &t[1],
                lru: &t[2],
                unpinned: &t[3],
                blobs: &t[4],
                ns_usage: &t[5],
                ns_lru: &t[6],
                parents: &t[7],
                counts: &t[8],
                aliases: &t[9],
                meta: &t[10],
                trash: &t[11],
                names: &t[12],
                name_refs: &t[13],
                links: &t[14],
            })
        })
    }
}
