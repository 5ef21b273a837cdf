//! Upgrades the index of a format-1 data dir, which kept pin counts in the
//! `pins` (id → count) and `ns_pins` (namespace, 0, id → count) trees and
//! every link in the `links` tree. Format 2 keeps pins and the first links
//! in the blob records (see `pins` and `names`).

use std::collections::BTreeMap;

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::blob_record::StoredBlob;
use super::codec::decode_u64;
use super::names::{link_key, INLINE_SCOPES};
use super::pins::Pins;
use super::{tx_error, Index, IndexError, BLOB_COUNT};
use crate::cas::ContentId;

/// What moves into one blob's record.
#[derive(Default)]
struct Moving {
    /// None if the old trees held no pins for the blob: it keeps its own.
    pins: Option<Pins>,
    scopes: Vec<String>,
}

impl Index {
    /// Starts the blob counter of an index written before it was kept. The
    /// counter is never absent once kept while blobs exist (it is removed
    /// only at zero), so absent with blobs present means never counted.
    pub(super) fn count_blobs_once(
        blobs: &sled::Tree,
        meta: &sled::Tree,
    ) -> Result<(), IndexError> {
        if meta.get(BLOB_COUNT)?.is_none() && !blobs.is_empty() {
            let n = blobs.len() as u64;
            tracing::info!(blobs = n, "upgrading the index: counting blobs once");
            meta.insert(BLOB_COUNT, &n.to_be_bytes())?;
            meta.flush()?;
        }
        Ok(())
    }

    /// Moves a format-1 index's pins and links into the blob records, then
    /// drops the pin trees. A blob's state moves in one transaction that also
    /// deletes its old keys, so after a crash midway every blob is either
    /// moved or untouched, and the next open (the `pins` tree goes last)
    /// moves the rest.
    pub(super) fn upgrade_format_1(
        db: &sled::Db,
        blobs: &sled::Tree,
        links: &sled::Tree,
    ) -> Result<(), IndexError> {
        if !db.tree_names().iter().any(|n| n == b"pins") {
            return Ok(());
        }
        let pins = db.open_tree("pins")?;
        let ns_pins = db.open_tree("ns_pins")?;
        let mut moving: BTreeMap<[u8; 32], Moving> = BTreeMap::new();
        // `pins` held each blob's total, which the per-namespace counts add
        // up to; it is read for the blobs it lists, whose keys go too.
        for k in pins.iter().keys() {
            if let Ok(id) = <[u8; 32]>::try_from(k?.as_ref()) {
                moving.entry(id).or_default().pins.get_or_insert_default();
            }
        }
        for kv in ns_pins.iter() {
            let (k, v) = kv?;
            if k.len() > 33 {
                let (ns, id) = k.split_at(k.len() - 32);
                let ns = String::from_utf8_lossy(&ns[..ns.len() - 1]).into_owned();
                if let Ok(id) = <[u8; 32]>::try_from(id) {
                    let pins = moving.entry(id).or_default().pins.get_or_insert_default();
                    pins.0.push((ns, decode_u64(&v)));
                }
            }
        }
        for k in links.iter().keys() {
            let k = k?;
            if let (Some(id), Ok(scope)) = (
                k.get(..32).and_then(|id| <[u8; 32]>::try_from(id).ok()),
                std::str::from_utf8(&k[32.min(k.len())..]),
            ) {
                moving.entry(id).or_default().scopes.push(scope.to_owned());
            }
        }
        tracing::info!(
            blobs = moving.len(),
            "upgrading the index: moving pins and links into blob records"
        );
        let moving: Vec<_> = moving.into_iter().collect();
        // A transaction per blob made this take 95 s at 1M blobs.
        for chunk in moving.chunks(1024) {
            (blobs, links, &pins, &ns_pins)
                .transaction(|(blobs, links, pins, ns_pins)| {
                    for (id, m) in chunk {
                        if let Some(raw) = blobs.get(id)? {
                            let mut stored = StoredBlob::decode(&raw)
                                .map_err(ConflictableTransactionError::Abort)?;
                            if let Some(p) = &m.pins {
                                stored.pins = p.clone();
                            }
                            for scope in &m.scopes {
                                if stored.scopes.len() < INLINE_SCOPES
                                    && !stored.scopes.contains(scope)
                                {
                                    stored.scopes.push(scope.clone());
                                    links.remove(link_key(&ContentId(*id), scope))?;
                                }
                            }
                            blobs.insert(id, stored.encode())?;
                        }
                        pins.remove(id)?;
                        for (ns, _) in m.pins.iter().flat_map(|p| &p.0) {
                            let mut k = ns.as_bytes().to_vec();
                            k.push(0);
                            k.extend_from_slice(id);
                            ns_pins.remove(k)?;
                        }
                    }
                    Ok(())
                })
                .map_err(tx_error)?;
        }
        drop((pins, ns_pins));
        db.drop_tree("ns_pins")?;
        db.drop_tree("pins")?;
        db.flush()?;
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{BlobRecord, EntryKey, NewEntry, Protocol};

    fn id(i: u8) -> ContentId {
        ContentId([i; 32])
    }

    fn scope(n: usize) -> String {
        format!("oci:team/app-{n}")
    }

    /// An index with entries in two namespaces pinning overlapping blobs,
    /// one blob pinned by nothing; blob 1 readable in six scopes (more than a
    /// record holds), blob 2 in two.
    fn populate(index: &Index) {
        for i in 1..=5 {
            let rec = BlobRecord {
                size: 100 * i as u64,
                sha256: [i; 32],
                created: 1,
                touched: 1,
            };
            index.put_blob(&id(i), &rec, None).unwrap();
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
        for n in 0..6 {
            index.link(&id(1), &scope(n)).unwrap();
        }
        for n in 0..2 {
            index.link(&id(2), &scope(n)).unwrap();
        }
    }

    /// Rewrites the index as format 1 kept it: version-1 blob records, pins
    /// and links in trees, no blob counter. `keep_new` blobs stay as format 2 wrote them, as after a
    /// crash midway through the upgrade.
    fn downgrade(dir: &std::path::Path, keep_new: &[ContentId]) {
        let db = super::super::open_sled(dir).unwrap();
        let blobs = db.open_tree("blobs").unwrap();
        let pins = db.open_tree("pins").unwrap();
        let ns_pins = db.open_tree("ns_pins").unwrap();
        let links = db.open_tree("links").unwrap();
        db.open_tree("meta").unwrap().remove(BLOB_COUNT).unwrap();
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
            let id = ContentId(k.as_ref().try_into().unwrap());
            for scope in &stored.scopes {
                links.insert(link_key(&id, scope), &[]).unwrap();
            }
            blobs.insert(&k, stored.encode_format_1()).unwrap();
        }
        db.flush().unwrap();
    }

    #[test]
    fn a_format_1_index_gets_its_pins_and_links_into_the_records_even_after_a_crash_midway() {
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
            assert_eq!(index.blob_count().unwrap(), 5);
            assert_eq!(index.pin_count(&id(2)).unwrap(), 2);
            assert_eq!(index.pin_count(&id(3)).unwrap(), 2);
            assert_eq!(index.pin_count(&id(5)).unwrap(), 0);
            for n in 0..6 {
                assert!(index.blob_in(&id(1), &scope(n)).unwrap().is_some(), "{n}");
            }
            assert!(index.blob_in(&id(1), &scope(6)).unwrap().is_none());
            assert!(index.blob_in(&id(2), &scope(1)).unwrap().is_some());
            assert!(index.blob_in(&id(3), &scope(0)).unwrap().is_none());
            let one = index.stored_blob(&id(1)).unwrap().unwrap();
            assert_eq!(one.scopes.len(), INLINE_SCOPES);
            assert_eq!(index.t().links.len(), 6 - INLINE_SCOPES);
            let names = index.t().db.tree_names();
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
            assert_eq!(
                index.stored_derived().unwrap(),
                index.compute_derived().unwrap()
            );
        }
    }
}
