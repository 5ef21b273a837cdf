//! Which PUT created a key. Checking "did the key exist?" before a write
//! races with concurrent writes of the same new key: each saw no entry, and
//! each answered 201. Requests that start while a key does not exist form a
//! group; the first of the group to finish its write is the one that
//! created it, the others replaced it (204).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cache::EntryKey;

type Key = (u8, String, String);

#[derive(Default)]
pub struct Creations(Mutex<HashMap<Key, Group>>);

struct Group {
    in_flight: usize,
    created: bool,
}

/// A write in progress. Dropped without `finish` (a failed write), it
/// leaves the creation to another member of its group.
pub struct Ticket<'a> {
    creations: &'a Creations,
    /// `None` when the key existed as the write began.
    key: Option<Key>,
}

impl Creations {
    /// Joins the group of writers of `key` unless `exists` (asked under the
    /// same lock, so that no group can finish in between) says it exists.
    pub fn begin<E>(
        &self,
        key: &EntryKey,
        exists: impl FnOnce() -> Result<bool, E>,
    ) -> Result<Ticket<'_>, E> {
        let mut groups = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if exists()? {
            return Ok(Ticket {
                creations: self,
                key: None,
            });
        }
        let k = (key.protocol as u8, key.namespace.clone(), key.name.clone());
        groups
            .entry(k.clone())
            .or_insert(Group {
                in_flight: 0,
                created: false,
            })
            .in_flight += 1;
        Ok(Ticket {
            creations: self,
            key: Some(k),
        })
    }
}

impl Ticket<'_> {
    /// After a successful write: true if this write created the key.
    pub fn finish(mut self) -> bool {
        self.leave(true)
    }

    fn leave(&mut self, succeeded: bool) -> bool {
        let Some(key) = self.key.take() else {
            return false;
        };
        let mut groups = self.creations.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(group) = groups.get_mut(&key) else {
            return false;
        };
        let created = succeeded && !group.created;
        group.created |= created;
        group.in_flight -= 1;
        if group.in_flight == 0 {
            groups.remove(&key);
        }
        created
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.leave(false);
    }
}
