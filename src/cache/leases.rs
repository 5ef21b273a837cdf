//! Leases: time-limited holds that keep blobs on disk while a client may
//! still fetch or reference them, whatever pins them (docs/ARCHITECTURE.md, Eviction).
//!
//! - A *read lease*: reading an entry (a manifest, an Actions cache lookup,
//!   an HTTP-cache hit) holds every blob it pins for `gc.lease`, even if the
//!   entry is evicted meanwhile: a BuildKit import resolves its cache
//!   manifest first and fetches each layer minutes later. Kept here and, in
//!   batches, in the index, so a restart does not forget them.
//! - A *write lease*: writing, HEAD or GET of the blob itself holds it for
//!   `gc.lease` until an entry pins it (the push race: a blob just uploaded,
//!   or seen by a HEAD, is referenced by the manifest that follows). The
//!   blob's `touched` time carries it; an entry that pins the blob after that
//!   time ends it, since the pin now holds the blob. Otherwise a cache that
//!   writes more than its budget within one lease period could evict its
//!   entries but never free their blobs. Which pins ended which leases is
//!   known in memory only: after a restart, write leases run their full
//!   period, which holds more, never less.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::now_ms;
use crate::cas::ContentId;
use crate::index::{Index, IndexError};

pub(super) struct Leases {
    period: u64,
    read: Mutex<ReadLeases>,
    /// When an entry last pinned each blob, for the lease period.
    pinned: Mutex<HashMap<ContentId, u64>>,
}

#[derive(Default)]
struct ReadLeases {
    until: HashMap<ContentId, u64>,
    /// Taken or extended since the last write to the index.
    dirty: HashSet<ContentId>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Leases {
    /// Leases of `period_ms`, starting from those the index recorded (the
    /// ended ones too, so the next `record` drops them from the index).
    pub fn new(period_ms: u64, recorded: Vec<(ContentId, u64)>) -> Leases {
        let until = recorded.into_iter().collect();
        Leases {
            period: period_ms,
            read: Mutex::new(ReadLeases {
                until,
                dirty: HashSet::new(),
            }),
            pinned: Mutex::default(),
        }
    }

    /// Holds `blobs` for a lease period from `at` (an entry was read then).
    pub fn hold(&self, blobs: &[ContentId], at: u64) {
        let until = at.saturating_add(self.period);
        let mut read = lock(&self.read);
        for id in blobs {
            let held = read.until.entry(*id).or_insert(0);
            if *held < until {
                *held = until;
                read.dirty.insert(*id);
            }
        }
    }

    /// Notes that an entry pinned `blobs` at `at`: write leases taken
    /// before then have done their job.
    pub fn pinned(&self, blobs: &[ContentId], at: u64) {
        let mut pinned = lock(&self.pinned);
        for id in blobs {
            pinned.insert(*id, at);
        }
    }

    /// When the lease on a blob last touched (written, HEAD, GET) at
    /// `touched` ends, if it is held now.
    pub fn held_until(&self, id: &ContentId, touched: u64, now: u64) -> Option<u64> {
        let read = lock(&self.read).until.get(id).copied().unwrap_or(0);
        let pinned_at = lock(&self.pinned).get(id).copied().unwrap_or(0);
        let write = if touched > pinned_at {
            touched.saturating_add(self.period)
        } else {
            0
        };
        Some(read.max(write)).filter(|until| *until > now)
    }

    /// Forgets what has ended and returns the read leases to record
    /// (taken or extended since the last call) and those to drop.
    fn take_changes(&self, now: u64) -> (Vec<(ContentId, u64)>, Vec<ContentId>) {
        let horizon = now.saturating_sub(self.period);
        lock(&self.pinned).retain(|_, at| *at > horizon);
        let mut read = lock(&self.read);
        let mut ended = Vec::new();
        read.until.retain(|id, until| {
            let live = *until > now;
            if !live {
                ended.push(*id);
            }
            live
        });
        let ReadLeases { until, dirty } = &mut *read;
        let held = dirty
            .drain()
            .filter_map(|id| until.get(&id).map(|u| (id, *u)))
            .collect();
        (held, ended)
    }

    /// Writes the read leases taken since the last call to the index and
    /// drops the ended ones. Blocking.
    pub fn record(&self, index: &Index) -> Result<(), IndexError> {
        let (held, ended) = self.take_changes(now_ms());
        if let Err(e) = index.store_leases(&held, &ended) {
            // Keep them for the next try.
            for (id, until) in held {
                self.hold(&[id], until.saturating_sub(self.period));
            }
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_lease_holds_whatever_pins_and_a_write_lease_ends_with_a_pin() {
        let leases = Leases::new(1000, vec![]);
        let (a, b) = (ContentId([1; 32]), ContentId([2; 32]));
        // Written at 100: held until 1100, unless an entry pins it later.
        assert_eq!(leases.held_until(&a, 100, 500), Some(1100));
        leases.pinned(&[a], 200);
        assert_eq!(leases.held_until(&a, 100, 500), None);
        // A HEAD after the pin takes a new write lease.
        assert_eq!(leases.held_until(&a, 300, 500), Some(1300));
        // A read lease is not ended by a pin.
        leases.hold(&[b], 400);
        leases.pinned(&[b], 450);
        assert_eq!(leases.held_until(&b, 0, 500), Some(1400));
        assert_eq!(leases.held_until(&b, 0, 1400), None);
    }

    #[test]
    fn changes_are_taken_once_and_ended_leases_dropped() {
        let now = now_ms();
        let (a, b) = (ContentId([1; 32]), ContentId([2; 32]));
        let c = ContentId([3; 32]);
        let leases = Leases::new(1000, vec![(a, now + 500), (b, now - 1), (c, now - 1)]);
        leases.hold(&[b], now);
        let (held, ended) = leases.take_changes(now);
        assert_eq!((held, ended), (vec![(b, now + 1000)], vec![c]));
        let (held, ended) = leases.take_changes(now + 600);
        assert_eq!((held, ended), (vec![], vec![a]));
    }
}
