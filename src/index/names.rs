//! Names and links.
//!
//! - `names`: scope, 0, name → entry key. Mutable pointers such as OCI tags
//!   (scope = repository, name = tag, target = the manifest's entry).
//! - `name_refs`: target entry, scope, 0, name → (). The reverse, so that
//!   removing an entry removes the names pointing at it.
//! - Links: which scopes may read a blob. Global dedup stores bytes once, but
//!   a repository only sees what was pushed, mounted or referenced there. The
//!   first `INLINE_SCOPES` are kept in the blob's record (most blobs live in
//!   one repository, and a HEAD then reads one record, not two); the rest
//!   are keys (blob id, scope) of the `links` tree, so that a base layer
//!   shared by a thousand repositories keeps a small record.

use sled::Transactional;

use sled::transaction::{ConflictableTransactionError, ConflictableTransactionResult};

use super::blob_record::{BlobRecord, StoredBlob};
use super::entry_record::EntryKey;
use super::{tx_error, Index, IndexError, TxTree};
use crate::cas::ContentId;

/// Scopes kept in a blob's own record.
pub(super) const INLINE_SCOPES: usize = 4;

fn name_key(scope: &str, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope.len() + 1 + name.len());
    k.extend_from_slice(scope.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

pub(super) fn link_key(id: &ContentId, scope: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + scope.len());
    k.extend_from_slice(&id.0);
    k.extend_from_slice(scope.as_bytes());
    k
}

/// Reverse index key: which (scope, name) point at an entry.
fn pointer_key(target: &EntryKey, scope: &str, name: &str) -> Vec<u8> {
    let mut k = target.parents_prefix();
    k.extend_from_slice(&name_key(scope, name));
    k
}

/// `Index::set_name` inside a transaction over `names` and `name_refs`.
pub(super) fn set_name_tx<E>(
    names: &TxTree,
    refs: &TxTree,
    scope: &str,
    name: &str,
    target: &EntryKey,
) -> ConflictableTransactionResult<(), E> {
    let old = names.insert(name_key(scope, name), target.encode())?;
    if let Some(prev) = old.and_then(|old| EntryKey::decode(&old).ok()) {
        refs.remove(pointer_key(&prev, scope, name))?;
    }
    refs.insert(pointer_key(target, scope, name), &[])?;
    Ok(())
}

impl Index {
    /// Points `name` in `scope` at an entry (an OCI tag at a manifest). When
    /// the entry is removed, by any path, the name goes with it.
    pub fn set_name(&self, scope: &str, name: &str, target: &EntryKey) -> Result<(), IndexError> {
        let t = self.t();
        (&t.names, &t.name_refs)
            .transaction(|(names, refs)| set_name_tx(names, refs, scope, name, target))
            .map_err(tx_error)
    }

    pub fn name(&self, scope: &str, name: &str) -> Result<Option<EntryKey>, IndexError> {
        match self.t().names.get(name_key(scope, name))? {
            Some(v) => EntryKey::decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn remove_name(&self, scope: &str, name: &str) -> Result<bool, IndexError> {
        let t = self.t();
        let key = name_key(scope, name);
        (&t.names, &t.name_refs)
            .transaction(|(names, refs)| {
                let Some(old) = names.remove(key.as_slice())? else {
                    return Ok(false);
                };
                if let Ok(prev) = EntryKey::decode(&old) {
                    refs.remove(pointer_key(&prev, scope, name))?;
                }
                Ok(true)
            })
            .map_err(tx_error)
    }

    /// Names in `scope` in byte order, strictly after `after` when given.
    pub fn names(
        &self,
        scope: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, EntryKey), IndexError>> + '_ {
        let prefix = name_key(scope, "");
        let start = match after {
            Some(a) => {
                let mut k = name_key(scope, a);
                k.push(0); // the smallest key greater than `a` itself
                k
            }
            None => prefix.clone(),
        };
        let plen = prefix.len();
        self.hold(|t| t.names.range(start..))
            .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .map(move |kv| {
                let (k, v) = kv?;
                Ok((
                    String::from_utf8_lossy(&k[plen..]).into_owned(),
                    EntryKey::decode(&v)?,
                ))
            })
    }

    /// Removes every name pointing at `target`; returns how many.
    pub fn remove_names_of(&self, target: &EntryKey) -> Result<usize, IndexError> {
        let t = self.t();
        let prefix = target.parents_prefix();
        let mut removed = 0;
        for k in t.name_refs.scan_prefix(&prefix).keys() {
            let k = k?;
            let name_key = &k[prefix.len()..];
            // Only if the name still points here (it may have been re-pointed).
            if let Some(v) = t.names.get(name_key)? {
                if EntryKey::decode(&v).is_ok_and(|t| &t == target) {
                    t.names.remove(name_key)?;
                    removed += 1;
                }
            }
            t.name_refs.remove(&k)?;
        }
        Ok(removed)
    }

    /// Lets `scope` read blob `id`.
    pub fn link(&self, id: &ContentId, scope: &str) -> Result<(), IndexError> {
        let t = self.t();
        (&t.blobs, &t.links)
            .transaction(|(blobs, links)| link_tx(blobs, links, id, scope))
            .map_err(tx_error)
    }

    /// The blob's record if `scope` may read it.
    pub fn blob_in(&self, id: &ContentId, scope: &str) -> Result<Option<BlobRecord>, IndexError> {
        let Some(stored) = self.stored_blob(id)? else {
            return Ok(None);
        };
        if stored.scopes.iter().any(|s| s == scope)
            || self.t().links.contains_key(link_key(id, scope))?
        {
            return Ok(Some(stored.rec));
        }
        Ok(None)
    }

    /// Stops `scope` from reading blob `id`; false if it could not read it.
    pub fn unlink(&self, id: &ContentId, scope: &str) -> Result<bool, IndexError> {
        let t = self.t();
        (&t.blobs, &t.links)
            .transaction(|(blobs, links)| {
                let mut removed = links.remove(link_key(id, scope))?.is_some();
                if let Some(raw) = blobs.get(id.0)? {
                    let mut stored = StoredBlob::decode(&raw).map_err(abort)?;
                    if let Some(i) = stored.scopes.iter().position(|s| s == scope) {
                        stored.scopes.remove(i);
                        blobs.insert(&id.0, stored.encode())?;
                        removed = true;
                    }
                }
                Ok(removed)
            })
            .map_err(tx_error)
    }

    /// Drops every link to a blob (when the blob itself goes).
    pub fn unlink_all(&self, id: &ContentId) -> Result<(), IndexError> {
        let t = self.t();
        for k in t.links.scan_prefix(id.0).keys() {
            t.links.remove(k?)?;
        }
        Ok(())
    }
}

fn abort<E: From<IndexError>>(e: IndexError) -> ConflictableTransactionError<E> {
    ConflictableTransactionError::Abort(E::from(e))
}

/// `Index::link` inside a transaction over the `blobs` and `links` trees.
pub(super) fn link_tx<E: From<IndexError>>(
    blobs: &TxTree,
    links: &TxTree,
    id: &ContentId,
    scope: &str,
) -> ConflictableTransactionResult<(), E> {
    if let Some(raw) = blobs.get(id.0)? {
        let mut stored = StoredBlob::decode(&raw).map_err(abort)?;
        if stored.scopes.iter().any(|s| s == scope) {
            return Ok(());
        }
        if stored.scopes.len() < INLINE_SCOPES && links.get(link_key(id, scope))?.is_none() {
            stored.scopes.push(scope.to_owned());
            blobs.insert(&id.0, stored.encode())?;
            return Ok(());
        }
    }
    links.insert(link_key(id, scope), &[])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_beyond_a_records_share_behave_like_the_first_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        let id = ContentId([1; 32]);
        let rec = BlobRecord {
            size: 1,
            sha256: [1; 32],
            created: 1,
            touched: 1,
        };
        index.put_blob(&id, &rec, None).unwrap();
        let scope = |n: usize| format!("oci:r{n}");
        for n in 0..INLINE_SCOPES + 2 {
            index.link(&id, &scope(n)).unwrap();
            index.link(&id, &scope(n)).unwrap();
        }
        let readable = |n| index.blob_in(&id, &scope(n)).unwrap().is_some();
        assert!((0..INLINE_SCOPES + 2).all(readable));
        assert!(!readable(INLINE_SCOPES + 2));

        // One kept in the record, one in `links`: each goes, once.
        assert!(index.unlink(&id, &scope(0)).unwrap());
        assert!(index.unlink(&id, &scope(INLINE_SCOPES)).unwrap());
        assert!(!index.unlink(&id, &scope(0)).unwrap());
        assert!(!readable(0) && !readable(INLINE_SCOPES));
        assert!(readable(1) && readable(INLINE_SCOPES + 1));

        // The freed place in the record takes the next new scope.
        index.link(&id, &scope(9)).unwrap();
        assert!(readable(9));
        assert_eq!(index.t().links.len(), 1);
        // A scope already in `links` is not written twice.
        index.link(&id, &scope(INLINE_SCOPES + 1)).unwrap();
        assert_eq!(index.t().links.len(), 1);
        assert!(index.unlink(&id, &scope(INLINE_SCOPES + 1)).unwrap());
        assert!(!readable(INLINE_SCOPES + 1));
    }
}
