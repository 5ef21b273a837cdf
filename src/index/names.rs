//! Names and links.
//!
//! - `names`: scope, 0, name → value. Mutable pointers such as OCI tags
//!   (scope = repository, name = tag, value = manifest digest).
//! - `links`: blob id, scope → (). Which scopes may read a blob: global dedup
//!   stores bytes once, but a repository only sees what was pushed, mounted or
//!   referenced there.

use super::{Index, IndexError};
use crate::cas::ContentId;

fn name_key(scope: &str, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope.len() + 1 + name.len());
    k.extend_from_slice(scope.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

fn link_key(id: &ContentId, scope: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + scope.len());
    k.extend_from_slice(&id.0);
    k.extend_from_slice(scope.as_bytes());
    k
}

impl Index {
    pub fn set_name(&self, scope: &str, name: &str, value: &[u8]) -> Result<(), IndexError> {
        self.names.insert(name_key(scope, name), value)?;
        Ok(())
    }

    pub fn name(&self, scope: &str, name: &str) -> Result<Option<Vec<u8>>, IndexError> {
        Ok(self.names.get(name_key(scope, name))?.map(|v| v.to_vec()))
    }

    pub fn remove_name(&self, scope: &str, name: &str) -> Result<bool, IndexError> {
        Ok(self.names.remove(name_key(scope, name))?.is_some())
    }

    /// Names in `scope` in byte order, strictly after `after` when given.
    pub fn names(
        &self,
        scope: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, Vec<u8>), IndexError>> + '_ {
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
                Ok((String::from_utf8_lossy(&k[plen..]).into_owned(), v.to_vec()))
            })
    }

    /// Removes every name in `scope` whose value is `value`; returns how many.
    pub fn remove_names_pointing_at(&self, scope: &str, value: &[u8]) -> Result<usize, IndexError> {
        let mut removed = 0;
        for kv in self.names.scan_prefix(name_key(scope, "")) {
            let (k, v) = kv?;
            if v.as_ref() == value
                && self
                    .names
                    .compare_and_swap(&k, Some(v), None::<&[u8]>)?
                    .is_ok()
            {
                removed += 1;
            }
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
