//! Entries (named, evictable things clients look up) and the pin counts they
//! hold on blobs. An entry, its key, its LRU position and its pins change in
//! one sled transaction, so a crash never leaves a pin without its entry.
//!
//! Trees:
//! - `entries`:    id (u64 BE) → EntryRecord
//! - `entry_keys`: protocol byte, namespace, 0, name → id
//! - `lru`:        last_used (u64 BE), id → ()   (oldest first by range scan)
//! - `pins`:       blob id → pin count (u64 BE)
//! - `unpinned`:   blob id → unix ms when it lost its last pin (or was written)

use sled::transaction::{abort, ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::codec::{Decoder, Encoder};
use super::{Index, IndexError};
use crate::cas::ContentId;

const ENTRY_RECORD_V1: u8 = 1;

/// Which protocol owns an entry; stored as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Protocol {
    Oci = 1,
    Gha = 2,
    Http = 3,
    Turbo = 4,
    Nx = 5,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Oci,
        Protocol::Gha,
        Protocol::Http,
        Protocol::Turbo,
        Protocol::Nx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Oci => "oci",
            Protocol::Gha => "gha",
            Protocol::Http => "http",
            Protocol::Turbo => "turbo",
            Protocol::Nx => "nx",
        }
    }

    fn from_byte(b: u8) -> Result<Protocol, IndexError> {
        Protocol::ALL
            .into_iter()
            .find(|p| *p as u8 == b)
            .ok_or_else(|| IndexError::Corrupt(format!("unknown protocol byte {b}")))
    }
}

/// The lookup key of an entry: unique per protocol and namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryKey {
    pub protocol: Protocol,
    pub namespace: String,
    pub name: String,
}

impl EntryKey {
    fn encode(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(2 + self.namespace.len() + self.name.len());
        k.push(self.protocol as u8);
        k.extend_from_slice(self.namespace.as_bytes());
        k.push(0);
        k.extend_from_slice(self.name.as_bytes());
        k
    }
}

/// What a protocol asks to store.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub key: EntryKey,
    /// The entry's own bytes (a manifest, an archive, a cached value).
    pub content: ContentId,
    /// Bytes of everything pinned, for listings.
    pub size: u64,
    /// Every blob the entry needs, including `content`.
    pub pins: Vec<ContentId>,
    /// Protocol-owned data (media type, headers, …), opaque here.
    pub meta: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    pub id: u64,
    pub key: EntryKey,
    pub content: ContentId,
    pub size: u64,
    pub created: u64,
    pub last_used: u64,
    pub pins: Vec<ContentId>,
    pub meta: Vec<u8>,
}

impl EntryRecord {
    fn encode(&self) -> Vec<u8> {
        let ns = self.key.namespace.as_bytes();
        let name = self.key.name.as_bytes();
        let mut e = Encoder::new(
            ENTRY_RECORD_V1,
            64 + ns.len() + name.len() + 32 * self.pins.len(),
        )
        .bytes(&[self.key.protocol as u8])
        .u64(self.created)
        .u64(self.last_used)
        .u64(self.size)
        .bytes(&self.content.0)
        .u64(ns.len() as u64)
        .bytes(ns)
        .u64(name.len() as u64)
        .bytes(name)
        .u64(self.pins.len() as u64);
        for p in &self.pins {
            e = e.bytes(&p.0);
        }
        e.u64(self.meta.len() as u64).bytes(&self.meta).finish()
    }

    fn decode(id: u64, data: &[u8]) -> Result<EntryRecord, IndexError> {
        let mut d = Decoder::new(data, "entry", ENTRY_RECORD_V1)?;
        let protocol = Protocol::from_byte(d.array::<1>()?[0])?;
        let created = d.u64()?;
        let last_used = d.u64()?;
        let size = d.u64()?;
        let content = ContentId(d.array()?);
        let namespace = d.string()?;
        let name = d.string()?;
        let n = d.u64()?;
        let mut pins = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            pins.push(ContentId(d.array()?));
        }
        let meta = d.bytes()?.to_vec();
        d.end()?;
        Ok(EntryRecord {
            id,
            key: EntryKey {
                protocol,
                namespace,
                name,
            },
            content,
            size,
            created,
            last_used,
            pins,
            meta,
        })
    }
}

/// Why an entry could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum PutEntryError {
    #[error("blob {0} is not stored")]
    MissingBlob(ContentId),
    #[error(transparent)]
    Index(#[from] IndexError),
}

fn lru_key(last_used: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&last_used.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

fn count(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn distinct(pins: &[ContentId]) -> Vec<ContentId> {
    let mut v = pins.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

type Tx = sled::transaction::TransactionalTree;

fn unpin_all(
    pins: &Tx,
    unpinned: &Tx,
    ids: &[ContentId],
    now: u64,
) -> sled::transaction::ConflictableTransactionResult<(), PutEntryError> {
    for p in distinct(ids) {
        let n = count(pins.get(p.0)?);
        if n <= 1 {
            pins.remove(&p.0)?;
            unpinned.insert(&p.0, &now.to_be_bytes())?;
        } else {
            pins.insert(&p.0, &(n - 1).to_be_bytes())?;
        }
    }
    Ok(())
}

fn flatten<T>(e: TransactionError<T>) -> T
where
    T: From<IndexError>,
{
    match e {
        TransactionError::Abort(t) => t,
        TransactionError::Storage(s) => T::from(IndexError::Storage(s)),
    }
}

impl Index {
    pub fn entry(&self, id: u64) -> Result<Option<EntryRecord>, IndexError> {
        match self.entries.get(id.to_be_bytes())? {
            Some(v) => EntryRecord::decode(id, &v).map(Some),
            None => Ok(None),
        }
    }

    pub fn entry_by_key(&self, key: &EntryKey) -> Result<Option<EntryRecord>, IndexError> {
        match self.entry_keys.get(key.encode())? {
            Some(v) => {
                let id = u64::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| IndexError::Corrupt("entry id is not 8 bytes".into()))?,
                );
                self.entry(id)
            }
            None => Ok(None),
        }
    }

    /// Stores an entry, replacing one with the same key. Every pinned blob
    /// must have a record, checked inside the transaction so a concurrent
    /// blob removal cannot slip between the check and the pin.
    pub fn put_entry(&self, new: &NewEntry, now: u64) -> Result<EntryRecord, PutEntryError> {
        let id = self.db.generate_id().map_err(IndexError::from)?;
        let key_bytes = new.key.encode();
        let pins_new = distinct(&new.pins);
        let record = EntryRecord {
            id,
            key: new.key.clone(),
            content: new.content,
            size: new.size,
            created: now,
            last_used: now,
            pins: pins_new.clone(),
            meta: new.meta.clone(),
        };
        let encoded = record.encode();
        (
            &self.entries,
            &self.entry_keys,
            &self.lru,
            &self.pins,
            &self.unpinned,
            &self.blobs,
        )
            .transaction(|(entries, keys, lru, pins, unpinned, blobs)| {
                for p in &pins_new {
                    if blobs.get(p.0)?.is_none() {
                        return abort(PutEntryError::MissingBlob(*p));
                    }
                }
                if let Some(old_id) = keys.get(&key_bytes)? {
                    let old_id = u64::from_be_bytes(old_id.as_ref().try_into().unwrap_or([0; 8]));
                    if let Some(old) = entries.get(old_id.to_be_bytes())? {
                        let old = EntryRecord::decode(old_id, &old)
                            .map_err(|e| ConflictableTransactionError::Abort(e.into()))?;
                        entries.remove(&old_id.to_be_bytes())?;
                        lru.remove(&lru_key(old.last_used, old_id))?;
                        unpin_all(pins, unpinned, &old.pins, now)?;
                    }
                }
                for p in &pins_new {
                    let n = count(pins.get(p.0)?);
                    pins.insert(&p.0, &(n + 1).to_be_bytes())?;
                    unpinned.remove(&p.0)?;
                }
                entries.insert(&id.to_be_bytes(), encoded.as_slice())?;
                keys.insert(key_bytes.as_slice(), &id.to_be_bytes())?;
                lru.insert(&lru_key(now, id), &[])?;
                Ok(())
            })
            .map_err(flatten)?;
        Ok(record)
    }

    /// Removes an entry and releases its pins; returns what was removed.
    pub fn remove_entry(&self, id: u64, now: u64) -> Result<Option<EntryRecord>, IndexError> {
        let removed = (
            &self.entries,
            &self.entry_keys,
            &self.lru,
            &self.pins,
            &self.unpinned,
        )
            .transaction(|(entries, keys, lru, pins, unpinned)| {
                let Some(old) = entries.get(id.to_be_bytes())? else {
                    return Ok(None);
                };
                let old = EntryRecord::decode(id, &old)
                    .map_err(|e| ConflictableTransactionError::Abort(PutEntryError::from(e)))?;
                entries.remove(&id.to_be_bytes())?;
                let key_bytes = old.key.encode();
                if keys
                    .get(&key_bytes)?
                    .is_some_and(|v| v.as_ref() == id.to_be_bytes())
                {
                    keys.remove(key_bytes)?;
                }
                lru.remove(&lru_key(old.last_used, id))?;
                unpin_all(pins, unpinned, &old.pins, now)?;
                Ok(Some(old))
            })
            .map_err(flatten::<PutEntryError>);
        match removed {
            Ok(r) => Ok(r),
            Err(PutEntryError::Index(e)) => Err(e),
            Err(PutEntryError::MissingBlob(_)) => Ok(None),
        }
    }

    /// Moves an entry's last-used time forward and its LRU position with it.
    pub fn touch_entry(&self, id: u64, at: u64) -> Result<(), IndexError> {
        (&self.entries, &self.lru)
            .transaction(|(entries, lru)| {
                let Some(old) = entries.get(id.to_be_bytes())? else {
                    return Ok(());
                };
                let mut rec =
                    EntryRecord::decode(id, &old).map_err(ConflictableTransactionError::Abort)?;
                if rec.last_used >= at {
                    return Ok(());
                }
                lru.remove(&lru_key(rec.last_used, id))?;
                rec.last_used = at;
                lru.insert(&lru_key(at, id), &[])?;
                entries.insert(&id.to_be_bytes(), rec.encode())?;
                Ok(())
            })
            .map_err(flatten)
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
        self.entry_keys.scan_prefix(key).map(move |kv| {
            let (_, v) = kv?;
            let id = u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| IndexError::Corrupt("entry id is not 8 bytes".into()))?,
            );
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
        self.entry_keys.scan_prefix([protocol as u8]).map(|kv| {
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

    /// Number of entries pinning blob `id`.
    pub fn pin_count(&self, id: &ContentId) -> Result<u64, IndexError> {
        Ok(count(self.pins.get(id.0)?))
    }

    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
}
