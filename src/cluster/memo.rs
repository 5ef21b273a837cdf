//! What a replica remembers of the lookups requests make — blobs and the
//! scopes that see them, tags, entries — so that a HEAD, a tag's manifest
//! or a cache hit does not cost a database round trip each time.
//!
//! Only answers that something exists are remembered: a miss always asks
//! the database, so a blob pushed or an entry written through one replica
//! is found through every other at once. What exists can stop existing or
//! change (a tag moves, an entry is written again, eviction removes it);
//! the database announces each such change as it commits (the triggers of
//! migration 0002) and `listen.rs` hands them to `forget`. The memo is
//! trusted only while that connection is up: deaf, it answers nothing, and
//! it starts empty whenever it hears again. So an answer is stale at most
//! for the moment a change takes to reach this replica; changes made
//! through this replica are forgotten before the write returns.

use std::collections::HashMap;
use std::hash::Hash;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::cache::BlobInfo;
use crate::cas::{ContentId, Digest};
use crate::index::{EntryKey, EntryRecord, Protocol};

/// A change the database announced, read from a notification's payload
/// (the format is in migration 0002).
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// A blob stopped being live.
    Blob(ContentId),
    /// A scope stopped seeing a blob.
    Link(ContentId, String),
    /// A name in a scope moved or went.
    Name(String, String),
    /// An entry was written again or removed.
    Entry(EntryKey),
}

impl Change {
    pub fn parse(payload: &str) -> Option<Change> {
        let kind = payload.get(..1)?;
        let rest = &payload[1..];
        match kind {
            "b" => Some(Change::Blob(blob_id(rest)?)),
            "l" => {
                let (id, scope) = (rest.get(..64)?, rest.get(64..)?);
                Some(Change::Link(blob_id(id)?, scope.to_string()))
            }
            "n" => {
                let (scope, name) = counted(rest)?;
                Some(Change::Name(scope.to_string(), name.to_string()))
            }
            "e" => {
                let (protocol, rest) = rest.split_once(':')?;
                let (namespace, name) = counted(rest)?;
                Some(Change::Entry(EntryKey {
                    protocol: Protocol::from_name(protocol)?,
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                }))
            }
            _ => None,
        }
    }
}

fn blob_id(hex_id: &str) -> Option<ContentId> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(ContentId(id))
}

/// `<n>:<first n bytes><rest>` split in two.
fn counted(s: &str) -> Option<(&str, &str)> {
    let (n, rest) = s.split_once(':')?;
    let n: usize = n.parse().ok()?;
    Some((rest.get(..n)?, rest.get(n..)?))
}

/// Taken before asking the database; the answer is remembered only if no
/// change was heard meanwhile, since that change may be one the answer
/// predates.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(Option<u64>);

pub struct Memo {
    inner: Mutex<Inner>,
    /// Lookups it answered, and lookups that asked the database.
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// A blob known to be live, and the scopes known to see it.
struct Live {
    info: BlobInfo,
    scopes: Vec<Box<str>>,
}

struct Inner {
    hearing: bool,
    /// Counts the changes heard (and every start and end of hearing).
    heard: u64,
    /// Digests other than BLAKE3 that blobs were found by: a function of
    /// the bytes, so never wrong, only possibly of a blob no longer live.
    aliases: Generations<Digest, ContentId>,
    blobs: Generations<ContentId, Live>,
    names: Generations<(String, String), EntryKey>,
    entries: Generations<EntryKey, EntryRecord>,
}

impl Memo {
    /// A memo of at most about `bytes`, deaf until `hearing` is called.
    pub fn new(bytes: u64) -> Memo {
        let each = usize::try_from(bytes / 4).unwrap_or(usize::MAX);
        Memo {
            inner: Mutex::new(Inner {
                hearing: false,
                heard: 0,
                aliases: Generations::new(each),
                blobs: Generations::new(each),
                names: Generations::new(each),
                entries: Generations::new(each),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn counted<T>(&self, found: Option<T>) -> Option<T> {
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The database's changes reach this replica from now on: start over.
    pub fn hearing(&self) {
        self.set_hearing(true);
    }

    /// Changes may be missed from now on: trust nothing remembered.
    pub fn deaf(&self) {
        self.set_hearing(false);
    }

    fn set_hearing(&self, hearing: bool) {
        let mut m = self.inner.lock();
        m.hearing = hearing;
        m.clear();
    }

    pub fn is_hearing(&self) -> bool {
        self.inner.lock().hearing
    }

    pub fn ticket(&self) -> Ticket {
        let m = self.inner.lock();
        Ticket(m.hearing.then_some(m.heard))
    }

    /// Forgets what `change` makes wrong; `None` (a payload not understood)
    /// forgets everything.
    pub fn forget(&self, change: Option<&Change>) {
        let mut m = self.inner.lock();
        m.heard += 1;
        match change {
            Some(Change::Blob(id)) => m.blobs.remove(id),
            Some(Change::Link(id, scope)) => {
                if let Some(live) = m.blobs.get_mut(id) {
                    live.scopes.retain(|s| **s != **scope);
                }
            }
            Some(Change::Name(scope, name)) => m.names.remove(&(scope.clone(), name.clone())),
            Some(Change::Entry(key)) => m.entries.remove(key),
            None => m.clear(),
        }
    }

    /// The live blob `digest` names, if remembered (and seen from `scope`
    /// when one is given).
    pub fn blob(&self, digest: &Digest, scope: Option<&str>) -> Option<BlobInfo> {
        let found = self.inner.lock().blob(digest, scope);
        self.counted(found)
    }

    pub fn remember_blob(&self, t: Ticket, digest: &Digest, info: &BlobInfo, scope: Option<&str>) {
        let mut m = self.inner.lock();
        if !m.current(t) {
            return;
        }
        if !matches!(digest, Digest::Blake3(_)) {
            m.aliases.insert(digest.clone(), info.id, 96);
        }
        let scopes = match m.blobs.take(&info.id) {
            Some(live) => live.scopes,
            None => Vec::new(),
        };
        let mut live = Live {
            info: *info,
            scopes,
        };
        if let Some(scope) = scope {
            if !live.scopes.iter().any(|s| **s == *scope) {
                live.scopes.push(scope.into());
            }
        }
        let weight = 128 + live.scopes.iter().map(|s| s.len() + 16).sum::<usize>();
        m.blobs.insert(info.id, live, weight);
    }

    pub fn name(&self, scope: &str, name: &str) -> Option<EntryKey> {
        let found = {
            let mut m = self.inner.lock();
            let key = (scope.to_string(), name.to_string());
            m.hearing.then(|| m.names.get_mut(&key).cloned()).flatten()
        };
        self.counted(found)
    }

    pub fn remember_name(&self, t: Ticket, scope: &str, name: &str, target: &EntryKey) {
        let mut m = self.inner.lock();
        if m.current(t) {
            let weight = 96 + scope.len() + name.len() + target.namespace.len() + target.name.len();
            let key = (scope.to_string(), name.to_string());
            m.names.insert(key, target.clone(), weight);
        }
    }

    pub fn entry(&self, key: &EntryKey) -> Option<EntryRecord> {
        let found = {
            let mut m = self.inner.lock();
            m.hearing.then(|| m.entries.get_mut(key).cloned()).flatten()
        };
        self.counted(found)
    }

    pub fn remember_entry(&self, t: Ticket, rec: &EntryRecord) {
        let mut m = self.inner.lock();
        if m.current(t) {
            let weight = 160
                + 2 * (rec.key.namespace.len() + rec.key.name.len())
                + 32 * rec.pins.len()
                + rec.meta.len()
                + (rec.children.iter())
                    .map(|c| 48 + c.namespace.len() + c.name.len())
                    .sum::<usize>();
            m.entries.insert(rec.key.clone(), rec.clone(), weight);
        }
    }
}

impl Inner {
    fn blob(&mut self, digest: &Digest, scope: Option<&str>) -> Option<BlobInfo> {
        if !self.hearing {
            return None;
        }
        let id = match digest {
            Digest::Blake3(id) => ContentId(*id),
            other => *self.aliases.get_mut(other)?,
        };
        let live = self.blobs.get_mut(&id)?;
        match scope {
            Some(scope) if !live.scopes.iter().any(|s| **s == *scope) => None,
            _ => Some(live.info),
        }
    }

    fn current(&self, t: Ticket) -> bool {
        self.hearing && t.0 == Some(self.heard)
    }

    fn clear(&mut self) {
        self.heard += 1;
        self.aliases.clear();
        self.blobs.clear();
        self.names.clear();
        self.entries.clear();
    }
}

/// A map of at most about `cap` bytes that drops what was least recently
/// used, roughly: items live in a young generation; when it is full it
/// becomes the old one (the previous old one is dropped) and an item found
/// in the old one moves back to the young. O(1) per operation, no list to
/// keep in order.
struct Generations<K, V> {
    young: HashMap<K, (V, usize)>,
    old: HashMap<K, (V, usize)>,
    young_bytes: usize,
    cap: usize,
}

impl<K: Hash + Eq, V> Generations<K, V> {
    fn new(cap: usize) -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            young_bytes: 0,
            cap,
        }
    }

    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if !self.young.contains_key(k) {
            let (k, (v, w)) = self.old.remove_entry(k)?;
            self.insert(k, v, w);
        }
        self.young.get_mut(k).map(|(v, _)| v)
    }

    fn take(&mut self, k: &K) -> Option<V> {
        let young = self.young.remove(k).map(|(v, w)| {
            self.young_bytes -= w;
            v
        });
        let old = self.old.remove(k).map(|(v, _)| v);
        young.or(old)
    }

    fn remove(&mut self, k: &K) {
        self.take(k);
    }

    fn insert(&mut self, k: K, v: V, weight: usize) {
        self.remove(&k);
        if weight > self.cap / 2 {
            return;
        }
        if self.young_bytes + weight > self.cap / 2 {
            self.old = mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += weight;
        self.young.insert(k, (v, weight));
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
    }
}

#[cfg(test)]
#[path = "memo_tests.rs"]
mod tests;
