//! Names and links.
//!
//! - `names`: scope, 0, name → entry key. Mutable pointers such as OCI tags
//!   (scope = repository, name = tag, target = the manifest's entry).
//! - `name_refs`: target entry, scope, 0, name → (). The reverse, so that
//!   removing an entry removes the names pointing at it.
//! - `links`: blob id, scope → (). Which scopes may read a blob: global dedup
//!   stores bytes once, but a repository only sees what was pushed, mounted or
//!   referenced there.

use sled::Transactional;

use sled::transaction::ConflictableTransactionResult;

use super::entries::EntryKey;
use super::{tx_error, Index, IndexError, TxTree};
use crate::cas::ContentId;

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
        (&self.names, &self.name_refs)
            .transaction(|(names, refs)| set_name_tx(names, refs, scope, name, target))
            .map_err(tx_error)
    }

    pub fn name(&self, scope: &str, name: &str) -> Result<Option<EntryKey>, IndexError> {
        match self.names.get(name_key(scope, name))? {
            Some(v) => EntryKey::decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn remove_name(&self, scope: &str, name: &str) -> Result<bool, IndexError> {
        let key = name_key(scope, name);
        (&self.names, &self.name_refs)
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
        self.names
            .range(start..)
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
        let prefix = target.parents_prefix();
        let mut removed = 0;
        for k in self.name_refs.scan_prefix(&prefix).keys() {
            let k = k?;
            let name_key = &k[prefix.len()..];
            // Only if the name still points here (it may have been re-pointed).
            if let Some(v) = self.names.get(name_key)? {
                if EntryKey::decode(&v).is_ok_and(|t| &t == target) {
                    self.names.remove(name_key)?;
                    removed += 1;
                }
            }
            self.name_refs.remove(&k)?;
        }
        Ok(removed)
    }

    pub fn link(&self, id: &ContentId, scope: &str) -> Result<(), IndexError> {
        self.links.insert(link_key(id, scope), &[])?;
        Ok(())
    }

    pub fn is_linked(&self, id: &ContentId, scope: &str) -> Result<bool, IndexError> {
        Ok(self.links.contains_key(link_key(id, scope))?)
    }

    pub fn unlink(&self, id: &ContentId, scope: &str) -> Result<bool, IndexError> {
        Ok(self.links.remove(link_key(id, scope))?.is_some())
    }

    /// Drops every link to a blob (when the blob itself goes).
    pub fn unlink_all(&self, id: &ContentId) -> Result<(), IndexError> {
        for k in self.links.scan_prefix(id.0).keys() {
            self.links.remove(k?)?;
        }
        Ok(())
    }
}
