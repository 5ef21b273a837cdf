//! Entries (named, evictable things clients look up) and the pin counts they
//! hold on blobs. An entry, its key, its LRU position and its pins change in
//! one sled transaction, so a crash never leaves a pin without its entry.
//!
//! Trees:
//! - `entries`:    id (u64 BE) → EntryRecord
//! - `entry_keys`: protocol byte, namespace, 0, name → id
//! - `lru`:        last_used (u64 BE), id → ()   (oldest first by range scan)
//! - `unpinned`:   blob id → unix ms when it lost its last pin (or was written)
//!
//! The pins themselves are counted in the blob records (see `pins`).

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::codec::decode_u64;
pub use super::entry_record::{EntryKey, EntryRecord, EntryWith, NewEntry, Protocol};
pub use super::entry_tx::PutEntryError;
use super::entry_tx::{distinct, flatten, id_from, lru_id, lru_key, ns_lru_key, ns_prefix};
use super::{Index, IndexError};

/// Entry touches written per transaction.
const TOUCH_BATCH: usize = 1024;

impl Index {
    pub fn entry(&self, id: u64) -> Result<Option<EntryRecord>, IndexError> {
        match self.t().entries.get(id.to_be_bytes())? {
            Some(v) => EntryRecord::decode(id, &v).map(Some),
            None => Ok(None),
        }
    }

    pub fn entry_by_key(&self, key: &EntryKey) -> Result<Option<EntryRecord>, IndexError> {
        let (k, hot) = (key.encode(), &self.live.hot);
        if let Some(r) = hot.get(&k) {
            return Ok(Some(r));
        }
        let seen = hot.generation();
        let found = match self.t().entry_keys.get(&k)? {
            Some(v) => self.entry(id_from(&v)?)?,
            None => None,
        };
        if let Some(r) = &found {
            hot.remember(k, r, seen);
        }
        Ok(found)
    }

    /// Stores an entry, replacing one with the same key. Every pinned blob
    /// must have a record, checked inside the transaction so a concurrent
    /// blob removal cannot slip between the check and the pin.
    pub fn put_entry(&self, new: &NewEntry, now: u64) -> Result<EntryRecord, PutEntryError> {
        let record = self.new_record(new, now)?;
        let seen = self.live.hot.generation();
        let stored = self
            .entry_tx(|tx| tx.put_with(&record, now, &EntryWith::default()))
            .map_err(flatten);
        match &stored {
            Ok(r) => self.live.hot.after_write([r], seen),
            Err(_) => self.live.hot.forget(&record.key.encode()),
        }
        stored
    }

    /// Several `put_entry`s, each also storing what its `EntryWith` says, in
    /// one transaction, as if made one after the other: sled's cost per transaction (two log writes, its global
    /// lock) is then paid once for all of them. A write that fails (a
    /// pinned blob is gone) is left out and the others are stored without
    /// it. The outer error is the index failing as a whole.
    pub fn put_entries_with(
        &self,
        writes: &[(&NewEntry, &EntryWith)],
        now: u64,
    ) -> Result<Vec<Result<EntryRecord, PutEntryError>>, IndexError> {
        let seen = self.live.hot.generation();
        let mut outcomes: Vec<Option<Result<EntryRecord, PutEntryError>>> =
            writes.iter().map(|_| None).collect();
        let records: Vec<Option<EntryRecord>> = writes
            .iter()
            .zip(&mut outcomes)
            .map(|((new, _), outcome)| {
                self.new_record(new, now)
                    .map_err(|e| *outcome = Some(Err(e)))
                    .ok()
            })
            .collect();
        loop {
            let pending: Vec<(usize, &EntryRecord)> = records
                .iter()
                .enumerate()
                .filter(|(i, _)| outcomes[*i].is_none())
                .filter_map(|(i, r)| Some((i, r.as_ref()?)))
                .collect();
            if pending.is_empty() {
                break;
            }
            let stored = self.entry_tx(|tx| {
                let mut out = Vec::with_capacity(pending.len());
                for &(i, record) in &pending {
                    // Which write aborted, so that the others go on without it.
                    let rec = tx.put_with(record, now, writes[i].1).map_err(|e| match e {
                        ConflictableTransactionError::Abort(e) => {
                            ConflictableTransactionError::Abort((i, e))
                        }
                        ConflictableTransactionError::Conflict => {
                            ConflictableTransactionError::Conflict
                        }
                        ConflictableTransactionError::Storage(e) => {
                            ConflictableTransactionError::Storage(e)
                        }
                    })?;
                    out.push(rec);
                }
                Ok(out)
            });
            match stored {
                Ok(out) => {
                    for (&(i, _), rec) in pending.iter().zip(out) {
                        outcomes[i] = Some(Ok(rec));
                    }
                }
                Err(TransactionError::Abort((i, e))) => outcomes[i] = Some(Err(e)),
                Err(TransactionError::Storage(e)) => {
                    // Whatever happened, what readers remember may be stale.
                    for r in records.iter().flatten() {
                        self.live.hot.forget(&r.key.encode());
                    }
                    return Err(e.into());
                }
            }
        }
        let outcomes: Vec<_> = outcomes.into_iter().flatten().collect();
        // A write left out stored nothing: only the stored ones changed.
        let stored = outcomes.iter().filter_map(|o| o.as_ref().ok());
        self.live.hot.after_write(stored, seen);
        Ok(outcomes)
    }

    fn new_record(&self, new: &NewEntry, now: u64) -> Result<EntryRecord, PutEntryError> {
        Ok(EntryRecord {
            id: self.t().db.generate_id().map_err(IndexError::from)?,
            key: new.key.clone(),
            content: new.content,
            size: new.size,
            created: now,
            last_used: now,
            pins: distinct(&new.pins),
            meta: new.meta.clone(),
            children: new.children.clone(),
        })
    }

    /// Ids of the entries that list `key` as a child.
    pub fn parents_of(&self, key: &EntryKey) -> Result<Vec<u64>, IndexError> {
        self.t()
            .parents
            .scan_prefix(key.parents_prefix())
            .keys()
            .map(|k| {
                let k = k?;
                id_from(&k[k.len().saturating_sub(8)..])
            })
            .collect()
    }

    /// Removes an entry and releases its pins; returns what was removed.
    pub fn remove_entry(&self, id: u64, now: u64) -> Result<Option<EntryRecord>, IndexError> {
        let removed = self.entry_tx(|tx| {
            let Some(old) = tx.get(id)? else {
                return Ok(None);
            };
            tx.delete(&old, now)?;
            Ok(Some(old))
        });
        match removed.map_err(flatten) {
            Ok(Some(r)) => {
                self.live.hot.forget(&r.key.encode());
                // Outside the transaction (sled's cannot scan): a crash in
                // between leaves a name that resolves to a clean miss.
                self.remove_names_of(&r.key)?;
                Ok(Some(r))
            }
            Ok(None) => Ok(None),
            Err(PutEntryError::Index(e)) => Err(e),
            Err(PutEntryError::MissingBlob(_)) => Ok(None),
        }
    }

    /// Moves entries' last-used times forward (never back) and their LRU
    /// positions with them, as (id, time) pairs. One transaction per batch:
    /// sled writes its log out twice per transaction, whatever its size, and
    /// a busy cache touches thousands of entries between two flushes.
    pub fn touch_entries(&self, touches: &[(u64, u64)]) -> Result<(), IndexError> {
        let t = self.t();
        for batch in touches.chunks(TOUCH_BATCH) {
            (&t.entries, &t.lru, &t.ns_lru)
                .transaction(|(entries, lru, ns_lru)| {
                    for &(id, at) in batch {
                        let Some(old) = entries.get(id.to_be_bytes())? else {
                            continue;
                        };
                        let mut rec = EntryRecord::decode(id, &old)
                            .map_err(ConflictableTransactionError::Abort)?;
                        if rec.last_used >= at {
                            continue;
                        }
                        let ns = &rec.key.namespace;
                        lru.remove(&lru_key(rec.last_used, id))?;
                        ns_lru.remove(ns_lru_key(ns, rec.last_used, id))?;
                        lru.insert(&lru_key(at, id), &[])?;
                        ns_lru.insert(ns_lru_key(ns, at, id), &[])?;
                        rec.last_used = at;
                        entries.insert(&id.to_be_bytes(), rec.encode())?;
                    }
                    Ok(())
                })
                .map_err(super::tx_error)?;
        }
        Ok(())
    }

    /// Entry ids from least to most recently used, optionally within one
    /// namespace. A range scan of the LRU order, not a scan of all entries.
    pub fn lru_ids(
        &self,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = Result<u64, IndexError>> + '_ {
        self.hold(|t| -> Box<dyn Iterator<Item = sled::Result<sled::IVec>>> {
            match namespace {
                None => Box::new(t.lru.iter().keys()),
                Some(ns) => Box::new(t.ns_lru.scan_prefix(ns_prefix(ns)).keys()),
            }
        })
        .map(|k| lru_id(&k?))
    }

    /// Ids of entries last used before `before` (unix ms), oldest first: a
    /// range of the LRU tree, not a walk of every entry.
    pub fn idle_ids(&self, before: u64) -> Result<Vec<u64>, IndexError> {
        self.t()
            .lru
            .range(..before.to_be_bytes())
            .keys()
            .map(|k| lru_id(&k?))
            .collect()
    }

    /// Bytes pinned by a namespace's entries, each blob counted once.
    pub fn namespace_usage(&self, namespace: &str) -> Result<u64, IndexError> {
        Ok(self
            .t()
            .ns_usage
            .get(namespace.as_bytes())?
            .map_or(0, |v| decode_u64(&v)))
    }

    /// Every namespace holding entries, with its pinned bytes.
    pub fn namespaces(&self) -> Result<Vec<(String, u64)>, IndexError> {
        self.t()
            .ns_usage
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k).into_owned(), decode_u64(&v)))
            })
            .collect()
    }

    /// Entries of one protocol and namespace whose name starts with `prefix`,
    /// in name order, starting after `after` (exclusive) when given.
    pub fn entries_with_prefix(
        &self,
        protocol: Protocol,
        namespace: &str,
        prefix: &str,
    ) -> impl Iterator<Item = Result<EntryRecord, IndexError>> + '_ {
        let key = EntryKey {
            protocol,
            namespace: namespace.to_owned(),
            name: prefix.to_owned(),
        }
        .encode();
        self.hold(|t| t.entry_keys.scan_prefix(key)).map(move |kv| {
            let (_, v) = kv?;
            let id = id_from(&v)?;
            self.entry(id)?.ok_or_else(|| {
                IndexError::Corrupt(format!("entry key points at missing entry {id}"))
            })
        })
    }

    /// Every entry key of one protocol, across namespaces (for catalogs).
    pub fn entry_names(
        &self,
        protocol: Protocol,
    ) -> impl Iterator<Item = Result<(String, String), IndexError>> + '_ {
        self.hold(|t| t.entry_keys.scan_prefix([protocol as u8]))
            .map(|kv| {
                let (k, _) = kv?;
                let rest = &k[1..];
                let split = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| IndexError::Corrupt("entry key has no namespace".into()))?;
                let ns = String::from_utf8_lossy(&rest[..split]).into_owned();
                let name = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
                Ok((ns, name))
            })
    }

    /// Entries of one protocol (a counter kept with every entry change).
    pub fn entry_count(&self, protocol: Protocol) -> u64 {
        self.t()
            .entry_counts
            .get([protocol as u8])
            .ok()
            .flatten()
            .map(|v| decode_u64(&v))
            .unwrap_or(0)
    }
}
