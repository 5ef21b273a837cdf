//! Derived state (pin counts, the unpinned set, per-namespace usage, the
//! usage counter, entry counts) recomputed from the primary records (entries and blobs),
//! for `larder fsck`: to check that what is kept incrementally is exact, and
//! to rebuild it when it is not.

use std::collections::{BTreeMap, HashMap};

use super::codec::decode_u64;
use super::entry_record::EntryRecord;
use super::pins::Pins;
use super::{Index, IndexError, BLOB_COUNT, USED_BYTES};
use crate::cas::ContentId;

/// Pin counts and usage as the entries and blob records imply them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Derived {
    pub pins: BTreeMap<ContentId, u64>,
    pub ns_pins: BTreeMap<(String, ContentId), u64>,
    pub ns_usage: BTreeMap<String, u64>,
    pub used_bytes: u64,
    pub blobs: u64,
    /// Entries by protocol byte.
    pub entry_counts: BTreeMap<u8, u64>,
}

impl Index {
    /// Every entry record, in id order.
    pub fn all_entries(&self) -> impl Iterator<Item = Result<EntryRecord, IndexError>> + '_ {
        self.hold(|t| t.entries.iter()).map(|kv| {
            let (k, v) = kv?;
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| IndexError::Corrupt("entry key is not 8 bytes".into()))?;
            EntryRecord::decode(id, &v)
        })
    }

    /// Recomputes the derived state from entries and blob records.
    pub fn compute_derived(&self) -> Result<Derived, IndexError> {
        let mut sizes = HashMap::new();
        let mut d = Derived::default();
        for r in self.all_blobs() {
            let (id, rec) = r?;
            sizes.insert(id, rec.size);
            d.used_bytes += rec.size;
            d.blobs += 1;
        }
        for e in self.all_entries() {
            let e = e?;
            *d.entry_counts.entry(e.key.protocol as u8).or_default() += 1;
            for p in &e.pins {
                *d.pins.entry(*p).or_default() += 1;
                let n = d.ns_pins.entry((e.key.namespace.clone(), *p)).or_default();
                *n += 1;
                if *n == 1 {
                    *d.ns_usage.entry(e.key.namespace.clone()).or_default() +=
                        sizes.get(p).copied().unwrap_or(0);
                }
            }
        }
        Ok(d)
    }

    /// The derived state as currently stored.
    pub fn stored_derived(&self) -> Result<Derived, IndexError> {
        let mut d = Derived {
            used_bytes: self.used_bytes()?,
            blobs: self.blob_count()?,
            ..Derived::default()
        };
        for r in self.stored_blobs() {
            let (id, blob) = r?;
            if blob.pins.total() > 0 {
                d.pins.insert(id, blob.pins.total());
            }
            for (ns, n) in blob.pins.0 {
                d.ns_pins.insert((ns, id), n);
            }
        }
        for (ns, bytes) in self.namespaces()? {
            d.ns_usage.insert(ns, bytes);
        }
        for kv in self.t().entry_counts.iter() {
            let (k, v) = kv?;
            if let [p] = k.as_ref() {
                d.entry_counts.insert(*p, decode_u64(&v));
            }
        }
        Ok(d)
    }

    /// Replaces the stored derived state with `d`; every blob record that
    /// nothing pins joins the unpinned set as of `now`.
    pub fn store_derived(&self, d: &Derived, now: u64) -> Result<(), IndexError> {
        let t = self.t();
        for tree in [&t.ns_usage, &t.unpinned, &t.entry_counts] {
            tree.clear()?;
        }
        let mut pins: HashMap<ContentId, Pins> = HashMap::new();
        for ((ns, id), n) in &d.ns_pins {
            pins.entry(*id).or_default().0.push((ns.clone(), *n));
        }
        for (ns, bytes) in &d.ns_usage {
            t.ns_usage.insert(ns.as_bytes(), &bytes.to_be_bytes())?;
        }
        for (p, n) in &d.entry_counts {
            t.entry_counts.insert([*p], &n.to_be_bytes())?;
        }
        for r in self.stored_blobs() {
            let (id, mut blob) = r?;
            let want = pins.remove(&id).unwrap_or_default();
            if want.total() == 0 {
                t.unpinned.insert(id.0, &now.to_be_bytes())?;
            }
            if blob.pins != want {
                blob.pins = want;
                t.blobs.insert(id.0, blob.encode())?;
            }
        }
        t.meta.insert(USED_BYTES, &d.used_bytes.to_be_bytes())?;
        t.meta.insert(BLOB_COUNT, &d.blobs.to_be_bytes())?;
        Ok(())
    }
}
