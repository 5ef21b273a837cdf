//! Which PUT created a key. Checking "did the key exist?" before a write
//! races with concurrent writes of the same new key: each saw no entry, and
//! each answered 201. Requests that start while a key does not exist form a
//! group; the first of the group to finish its write is the one that
//! created it, the others replaced it (204).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::cache::EntryKey;

type Key = (u8, String, String);

#[derive(Default)]
pub struct Creations {
    groups: Mutex<HashMap<Key, Group>>,
    /// Counts writes that created a key, so that `begin` can tell that its
    /// lookup, made outside the lock, may predate one.
    created: AtomicU64,
}

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

/// How many times `begin` looks again when creations land during its
/// lookup; past that it joins a new group (at worst a second 201).
const LOOKUPS: usize = 4;

impl Creations {
    /// Joins the group of writers of `key` (or, when `exists` says the key
    /// is there, no group). The lookup is async (a database round trip in
    /// cluster mode), so it runs outside the lock; a creation landing
    /// meanwhile makes it look again, so that no group finishes unseen
    /// between the lookup and joining.
    pub async fn begin<E, F, Fut>(&self, key: &EntryKey, exists: F) -> Result<Ticket<'_>, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
    {
        let k = (key.protocol as u8, key.namespace.clone(), key.name.clone());
        for attempt in 1..=LOOKUPS {
            let seen = self.created.load(Ordering::Acquire);
            let found = exists().await?;
            let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(group) = groups.get_mut(&k) {
                group.in_flight += 1;
                return Ok(self.ticket(Some(k)));
            }
            if found {
                return Ok(self.ticket(None));
            }
            if self.created.load(Ordering::Acquire) == seen || attempt == LOOKUPS {
                let group = Group {
                    in_flight: 1,
                    created: false,
                };
                groups.insert(k.clone(), group);
                return Ok(self.ticket(Some(k)));
            }
        }
        Ok(self.ticket(None))
    }

    fn ticket(&self, key: Option<Key>) -> Ticket<'_> {
        Ticket {
            creations: self,
            key,
        }
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
        let mut groups = (self.creations.groups.lock()).unwrap_or_else(|e| e.into_inner());
        let Some(group) = groups.get_mut(&key) else {
            return false;
        };
        let created = succeeded && !group.created;
        group.created |= created;
        if created {
            self.creations.created.fetch_add(1, Ordering::Release);
        }
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
