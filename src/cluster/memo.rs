//! What a replica remembers of the lookups requests make — blobs and the
//! scopes that see them, tags, entries — so that a HEAD, a tag's manifest
//! or a cache hit does not cost a database round trip each time.
//!
//! It remembers what exists and what was missing. Either can change (a
//! tag moves, an entry is written again or for the first time, eviction
//! removes it, a blob is pushed); the database announces each such change
//! as it commits (the triggers of migrations 0002 and 0004) and
//! `listen.rs` hands them to `forget`. The memo is trusted only while that
//! connection is up: deaf, it answers nothing, and it starts empty
//! whenever it hears again. What exists is answered at once, stale at
//! most for the moment a change takes to reach this replica (changes made
//! through this replica are forgotten before the write returns). What is
//! missing is answered only after catching up (`catch_up.rs`), so that a
//! push through one replica is found through every other as soon as it
//! is acknowledged.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;

pub use super::change::Change;

use super::catch_up::CatchUp;
use super::generations::Generations;
use crate::cache::BlobInfo;
use crate::cas::{ContentId, Digest};
use crate::index::{EntryKey, EntryRecord};

/// How many of the last changes heard tickets are checked against; a
/// lookup that took longer than this many changes is not remembered.
const RECENT: usize = 1024;

/// What the memo knows of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Known<T> {
    Found(T),
    /// Missing when last asked, and no change to it heard since: true now
    /// once the memo has caught up.
    Absent,
    Unknown,
}

impl<T> Known<T> {
    pub fn found(self) -> Option<T> {
        match self {
            Known::Found(v) => Some(v),
            _ => None,
        }
    }
}

/// Taken before asking the database; the answer is remembered only if no
/// change to what was asked was heard meanwhile, since that change may be
/// one the answer predates.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(Option<u64>);

pub struct Memo {
    inner: Mutex<Inner>,
    /// Asked by a lookup that found a miss, answered by `listen.rs`.
    pub catch_up: CatchUp,
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
    /// The last changes heard, with their counts: a ticket is checked
    /// against those heard since it was taken, so that changes to other
    /// things (every push notifies) do not keep an answer from being
    /// remembered.
    recent: VecDeque<(u64, Change)>,
    /// Digests other than BLAKE3 that blobs were found by: a function of
    /// the bytes, so never wrong, only possibly of a blob no longer live.
    aliases: Generations<Digest, ContentId>,
    blobs: Generations<ContentId, Live>,
    names: Generations<(String, String), EntryKey>,
    entries: Generations<EntryKey, EntryRecord>,
    /// Misses, apart so that a flood of them cannot push out what exists:
    /// digests no live blob had, with the scopes they were looked up from
    /// (`None`: from anywhere).
    missing_blobs: Generations<Digest, Vec<Option<Box<str>>>>,
    missing_names: Generations<(String, String), ()>,
    missing_entries: Generations<EntryKey, ()>,
}

impl Memo {
    /// A memo of at most about `bytes`, deaf until `hearing` is called:
    /// a fifth of it for each kind of thing that exists, a fifteenth for
    /// each kind of miss.
    pub fn new(bytes: u64) -> Memo {
        let found = usize::try_from(bytes / 5).unwrap_or(usize::MAX);
        let missing = usize::try_from(bytes / 15).unwrap_or(usize::MAX);
        Memo {
            inner: Mutex::new(Inner {
                hearing: false,
                heard: 0,
                recent: VecDeque::new(),
                aliases: Generations::new(found),
                blobs: Generations::new(found),
                names: Generations::new(found),
                entries: Generations::new(found),
                missing_blobs: Generations::new(missing),
                missing_names: Generations::new(missing),
                missing_entries: Generations::new(missing),
            }),
            catch_up: CatchUp::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
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
        if let Some(change) = change {
            let heard = m.heard;
            if m.recent.len() == RECENT {
                m.recent.pop_front();
            }
            m.recent.push_back((heard, change.clone()));
        }
        match change {
            Some(Change::Blob(id)) => {
                m.blobs.remove(id);
                m.missing_blobs.remove(&Digest::Blake3(id.0));
            }
            Some(Change::Alias(digest)) => m.missing_blobs.remove(digest),
            Some(Change::Link(id, scope)) => {
                if let Some(live) = m.blobs.get_mut(id) {
                    live.scopes.retain(|s| **s != **scope);
                }
                // The link's other digests come as `Alias` changes.
                m.missing_blobs.remove(&Digest::Blake3(id.0));
            }
            Some(Change::Name(scope, name)) => {
                let key = (scope.clone(), name.clone());
                m.names.remove(&key);
                m.missing_names.remove(&key);
            }
            Some(Change::Entry(key)) => {
                m.entries.remove(key);
                m.missing_entries.remove(key);
            }
            None => m.clear(),
        }
    }

    /// The live blob `digest` names (seen from `scope` when one is given).
    pub fn blob(&self, digest: &Digest, scope: Option<&str>) -> Known<BlobInfo> {
        self.inner.lock().blob(digest, scope)
    }

    /// Remembers what the database answered for `blob(digest, scope)`.
    pub fn remember_blob(
        &self,
        t: Ticket,
        digest: &Digest,
        found: Option<&BlobInfo>,
        scope: Option<&str>,
    ) {
        let mut m = self.inner.lock();
        let b3 = |id: &ContentId| *digest == Digest::Blake3(id.0);
        let same = |id: &ContentId| b3(id) || found.is_some_and(|f| f.id == *id);
        let current = m.current(t, |c| match c {
            Change::Blob(id) | Change::Link(id, _) => same(id),
            Change::Alias(d) => d == digest,
            Change::Name(..) | Change::Entry(_) => false,
        });
        if !current {
            return;
        }
        let Some(info) = found else {
            let mut scopes = m.missing_blobs.take(digest).unwrap_or_default();
            if !scopes.iter().any(|s| s.as_deref() == scope) {
                scopes.push(scope.map(Into::into));
            }
            let weight = 96 + scopes.iter().flatten().map(|s| s.len() + 16).sum::<usize>();
            m.missing_blobs.insert(digest.clone(), scopes, weight);
            return;
        };
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

    pub fn name(&self, scope: &str, name: &str) -> Known<EntryKey> {
        let mut m = self.inner.lock();
        let key = (scope.to_string(), name.to_string());
        let m = &mut *m;
        known(m.hearing, m.names.get_mut(&key).cloned(), || {
            m.missing_names.get_mut(&key).is_some()
        })
    }

    pub fn remember_name(&self, t: Ticket, scope: &str, name: &str, found: Option<&EntryKey>) {
        let mut m = self.inner.lock();
        if !m.current(
            t,
            |c| matches!(c, Change::Name(s, n) if s == scope && n == name),
        ) {
            return;
        }
        let key = (scope.to_string(), name.to_string());
        let weight = 96 + scope.len() + name.len();
        match found {
            Some(target) => {
                let weight = weight + target.namespace.len() + target.name.len();
                m.names.insert(key, target.clone(), weight);
            }
            None => m.missing_names.insert(key, (), weight),
        }
    }

    pub fn entry(&self, key: &EntryKey) -> Known<EntryRecord> {
        let mut m = self.inner.lock();
        let m = &mut *m;
        known(m.hearing, m.entries.get_mut(key).cloned(), || {
            m.missing_entries.get_mut(key).is_some()
        })
    }

    pub fn remember_entry(&self, t: Ticket, key: &EntryKey, found: Option<&EntryRecord>) {
        let mut m = self.inner.lock();
        if !m.current(t, |c| matches!(c, Change::Entry(k) if k == key)) {
            return;
        }
        let Some(rec) = found else {
            let weight = 96 + key.namespace.len() + key.name.len();
            m.missing_entries.insert(key.clone(), (), weight);
            return;
        };
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

fn known<T>(hearing: bool, found: Option<T>, missing: impl FnOnce() -> bool) -> Known<T> {
    match found {
        _ if !hearing => Known::Unknown,
        Some(v) => Known::Found(v),
        None if missing() => Known::Absent,
        None => Known::Unknown,
    }
}

impl Inner {
    fn blob(&mut self, digest: &Digest, scope: Option<&str>) -> Known<BlobInfo> {
        let found = match digest {
            Digest::Blake3(id) => Some(ContentId(*id)),
            other => self.aliases.get_mut(other).copied(),
        }
        .and_then(|id| self.blobs.get_mut(&id))
        .filter(|live| scope.is_none_or(|scope| live.scopes.iter().any(|s| **s == *scope)))
        .map(|live| live.info);
        known(self.hearing, found, || {
            (self.missing_blobs.get_mut(digest))
                .is_some_and(|scopes| scopes.iter().any(|s| s.as_deref() == scope))
        })
    }

    /// Whether nothing `touches` was heard since ticket `t` was taken (and
    /// the memo heard throughout).
    fn current(&self, t: Ticket, touches: impl Fn(&Change) -> bool) -> bool {
        let Some(taken) = t.0 else { return false };
        if !self.hearing {
            return false;
        }
        if taken == self.heard {
            return true;
        }
        // Every change since must still be here to be checked.
        let complete = self.recent.front().is_some_and(|(n, _)| *n <= taken + 1);
        complete
            && (self.recent.iter())
                .filter(|(n, _)| *n > taken)
                .all(|(_, c)| !touches(c))
    }

    fn clear(&mut self) {
        self.heard += 1;
        self.recent.clear();
        self.aliases.clear();
        self.blobs.clear();
        self.names.clear();
        self.entries.clear();
        self.missing_blobs.clear();
        self.missing_names.clear();
        self.missing_entries.clear();
    }
}

#[cfg(test)]
#[path = "memo_tests.rs"]
mod tests;
