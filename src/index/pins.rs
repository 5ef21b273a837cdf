//! The pins entries hold on a blob. They live in the blob's own record: sled
//! keeps a page of metadata in memory for every ~12 keys it stores, so two
//! trees of pin counts cost as much memory per blob as every other record of
//! it together, and each pin was two extra reads and writes per entry write.
//!
//! Data dirs of format 1 kept them in the `pins` (id → count) and `ns_pins`
//! (namespace, 0, id → count) trees; `fold_pin_trees` moves them into the
//! records when such an index is opened.

use std::collections::BTreeMap;

use sled::Transactional;

use super::blobs::StoredBlob;
use super::codec::decode_u64;
use super::{Index, IndexError};
use crate::cas::ContentId;

/// Entries pinning a blob, by namespace: a blob counts once toward the usage
/// of each namespace that pins it, and is unpinned when no namespace does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Pins(pub Vec<(String, u64)>);

impl Pins {
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, c)| c).sum()
    }

    /// Takes one pin for `ns`; true if it is that namespace's first.
    pub fn take(&mut self, ns: &str) -> bool {
        match self.0.iter_mut().find(|(n, _)| n == ns) {
            Some((_, c)) => {
                *c += 1;
                false
            }
            None => {
                self.0.push((ns.to_owned(), 1));
                true
            }
        }
    }

    /// Releases one pin of `ns`; true if it was that namespace's last.
    pub fn release(&mut self, ns: &str) -> bool {
        let Some(i) = self.0.iter().position(|(n, _)| n == ns) else {
            return false;
        };
        if self.0[i].1 <= 1 {
            self.0.swap_remove(i);
            true
        } else {
            self.0[i].1 -= 1;
            false
        }
    }
}

impl Index {
    /// Moves the pin counts of a format-1 index into the blob records, then
    /// drops the old trees. A blob's counts are set and its old keys removed
    /// in one transaction, so a crash midway leaves blobs either moved or
    /// still in the trees, and the next open moves the rest.
    pub(super) fn fold_pin_trees(db: &sled::Db, blobs: &sled::Tree) -> Result<(), IndexError> {
        let names = db.tree_names();
        if !names.iter().any(|n| n == b"pins" || n == b"ns_pins") {
            return Ok(());
        }
        let pins = db.open_tree("pins")?;
        let ns_pins = db.open_tree("ns_pins")?;
        // `pins` held each blob's total, which the per-namespace counts
        // add up to; the blobs it lists are the ones to move.
        let mut moved: BTreeMap<[u8; 32], Pins> = BTreeMap::new();
        for k in pins.iter().keys() {
            if let Ok(id) = <[u8; 32]>::try_from(k?.as_ref()) {
                moved.entry(id).or_default();
            }
        }
        for kv in ns_pins.iter() {
            let (k, v) = kv?;
            if k.len() > 33 {
                let (ns, id) = k.split_at(k.len() - 32);
                let ns = String::from_utf8_lossy(&ns[..ns.len() - 1]).into_owned();
                if let Ok(id) = <[u8; 32]>::try_from(id) {
                    moved.entry(id).or_default().0.push((ns, decode_u64(&v)));
                }
            }
        }
        tracing::info!(blobs = moved.len(), "moving pin counts into blob records");
        let moved: Vec<_> = moved.into_iter().collect();
        // A transaction per blob made this take 95 s at 1M blobs.
        for chunk in moved.chunks(1024) {
            (blobs, &pins, &ns_pins)
                .transaction(|(blobs, pins, ns_pins)| {
                    for (id, p) in chunk {
                        if let Some(raw) = blobs.get(id)? {
                            let mut stored = StoredBlob::decode(&raw)
                                .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                            stored.pins = p.clone();
                            blobs.insert(id, stored.encode())?;
                        }
                        pins.remove(id)?;
                        for (ns, _) in &p.0 {
                            let mut k = ns.as_bytes().to_vec();
                            k.push(0);
                            k.extend_from_slice(id);
                            ns_pins.remove(k)?;
                        }
                    }
                    Ok(())
                })
                .map_err(super::tx_error)?;
        }
        drop((pins, ns_pins));
        db.drop_tree("pins")?;
        db.drop_tree("ns_pins")?;
        db.flush()?;
        Ok(())
    }

    /// Entries pinning blob `id` (0 if it has no record).
    pub fn pin_count(&self, id: &ContentId) -> Result<u64, IndexError> {
        Ok(self.stored_blob(id)?.map_or(0, |b| b.pins.total()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{BlobRecord, EntryKey, NewEntry, Protocol};

    fn id(i: u8) -> ContentId {
        ContentId([i; 32])
    }

    /// An index with entries in two namespaces pinning overlapping blobs,
    /// one blob pinned by nothing.
    fn populate(index: &Index) {
        for i in 1..=5 {
            let rec = BlobRecord {
                size: 100 * i as u64,
                sha256: [i; 32],
                created: 1,
                touched: 1,
            };
            index.put_blob(&id(i), &rec).unwrap();
        }
        for (n, ns, pins) in [(1, "a", [1, 2]), (2, "a", [2, 3]), (3, "b", [3, 4])] {
            let new = NewEntry {
                key: EntryKey {
                    protocol: Protocol::Http,
                    namespace: ns.into(),
                    name: format!("e{n}"),
                },
                content: id(pins[0]),
                size: 0,
                pins: pins.iter().map(|&i| id(i)).collect(),
                meta: Vec::new(),
                children: Vec::new(),
            };
            index.put_entry(&new, 2).unwrap();
        }
    }

    /// Rewrites the index as format 1 kept it: version-1 blob records, the
    /// pins in trees. `keep_new` blobs stay as format 2 wrote them, as after a
    /// crash midway through the upgrade.
    fn downgrade(dir: &std::path::Path, keep_new: &[ContentId]) {
        let db = sled::open(dir).unwrap();
        let blobs = db.open_tree("blobs").unwrap();
        let pins = db.open_tree("pins").unwrap();
        let ns_pins = db.open_tree("ns_pins").unwrap();
        for kv in blobs.iter() {
            let (k, v) = kv.unwrap();
            if keep_new.iter().any(|id| id.0 == k.as_ref()) {
                continue;
            }
            let stored = StoredBlob::decode(&v).unwrap();
            if stored.pins.total() > 0 {
                pins.insert(&k, &stored.pins.total().to_be_bytes()).unwrap();
            }
            for (ns, n) in &stored.pins.0 {
                let mut key = ns.as_bytes().to_vec();
                key.push(0);
                key.extend_from_slice(&k);
                ns_pins.insert(key, &n.to_be_bytes()).unwrap();
            }
            blobs.insert(&k, stored.encode_format_1()).unwrap();
        }
        db.flush().unwrap();
    }

    #[test]
    fn a_format_1_index_gets_its_pins_back_in_the_records_even_after_a_crash_midway() {
        for keep_new in [vec![], vec![id(2), id(5)]] {
            let tmp = tempfile::tempdir().unwrap();
            let index = Index::open(tmp.path()).unwrap();
            populate(&index);
            let before = index.stored_derived().unwrap();
            assert_eq!(before, index.compute_derived().unwrap());
            drop(index);

            downgrade(tmp.path(), &keep_new);
            let index = Index::open(tmp.path()).unwrap();
            assert_eq!(index.stored_derived().unwrap(), before);
            assert_eq!(index.pin_count(&id(2)).unwrap(), 2);
            assert_eq!(index.pin_count(&id(3)).unwrap(), 2);
            assert_eq!(index.pin_count(&id(5)).unwrap(), 0);
            let names = index.db.tree_names();
            assert!(!names.iter().any(|n| n == b"pins" || n == b"ns_pins"));

            // The moved pins are the live ones: releasing them works.
            let e3 = EntryKey {
                protocol: Protocol::Http,
                namespace: "b".into(),
                name: "e3".into(),
            };
            let e3 = index.entry_by_key(&e3).unwrap().unwrap();
            index.remove_entry(e3.id, 3).unwrap();
            assert_eq!(index.pin_count(&id(4)).unwrap(), 0);
            assert_eq!(index.namespace_usage("b").unwrap(), 0);
            assert_eq!(index.stored_derived().unwrap(), index.compute_derived().unwrap());
        }
    }

    #[test]
    fn a_namespace_counts_from_its_first_pin_to_its_last() {
        let mut p = Pins::default();
        assert!(p.take("a"));
        assert!(!p.take("a"));
        assert!(p.take("b"));
        assert_eq!(p.total(), 3);
        assert!(!p.release("a"));
        assert!(p.release("a"));
        assert!(
            !p.release("a"),
            "a namespace without pins has nothing to release"
        );
        assert_eq!(p.total(), 1);
        assert!(p.release("b"));
        assert_eq!(p, Pins::default());
    }
}
