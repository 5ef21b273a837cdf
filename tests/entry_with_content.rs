//! `Store::put_entry_with_content`, the write behind a manifest PUT: the
//! content blob, the entry and its name are one index transaction, so they
//! are stored (and survive a restart) together or not at all.

mod common;

use bytes::Bytes;
use larder::cache::{BlobInfo, BlobWrite, EntryKey, NewEntry, Protocol, Store, StoreError};
use larder::cas::{ContentId, Digest};
use larder::datadir::DataDir;
use sha2::{Digest as _, Sha256, Sha512};

const SCOPE: &str = "oci:team/app";

fn body(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(&DataDir::open(dir).unwrap(), &common::test_config(dir)).unwrap()
}

fn key() -> EntryKey {
    EntryKey {
        protocol: Protocol::Oci,
        namespace: "team".into(),
        name: "team/app@manifest".into(),
    }
}

/// The entry a manifest makes of its content: it pins the content and `more`.
fn entry(more: Vec<ContentId>) -> impl FnOnce(&BlobInfo) -> NewEntry + Send + 'static {
    move |blob| NewEntry {
        key: key(),
        content: blob.id,
        size: blob.size,
        pins: more.into_iter().chain([blob.id]).collect(),
        meta: b"{}".to_vec(),
        children: Vec::new(),
    }
}

#[test]
fn content_entry_and_name_are_stored_together_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = br#"{"schemaVersion":2,"layers":[]}"#;
    let sha256 = Digest::Sha256(Sha256::digest(bytes).into());
    let sha512 = Digest::Sha512(Box::new(Sha512::digest(bytes).into()));

    let (blob, rec) = common::runtime().block_on(async {
        let store = open(dir.path());
        let write = BlobWrite {
            expected: Some(sha512.clone()),
            limit: 1 << 20,
            ..BlobWrite::default()
        };
        store
            .put_entry_with_content(body(bytes), write, entry(Vec::new()), Some((SCOPE, "v1")))
            .await
            .unwrap()
    });
    assert_eq!(rec.content, blob.id);
    assert_eq!(blob.size, bytes.len() as u64);

    common::runtime().block_on(async {
        let store = open(dir.path());
        for digest in [&sha256, &sha512] {
            assert_eq!(store.blob(digest).unwrap(), Some(blob), "{digest}");
        }
        let stored = store.entry(&key()).unwrap().expect("the entry");
        assert_eq!(stored.id, rec.id);
        assert_eq!(stored.pins, vec![blob.id]);
        assert_eq!(store.name(SCOPE, "v1").unwrap(), Some(key()));
        assert_eq!(store.usage(), bytes.len() as u64);
    });
}

#[test]
fn an_entry_pinning_a_missing_blob_stores_nothing_not_even_its_content_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = br#"{"schemaVersion":2,"layers":["gone"]}"#;
    let sha256 = Digest::Sha256(Sha256::digest(bytes).into());
    common::runtime().block_on(async {
        let store = open(dir.path());
        let missing = ContentId(*blake3::hash(b"never stored").as_bytes());
        let write = BlobWrite {
            expected: Some(sha256.clone()),
            limit: 1 << 20,
            ..BlobWrite::default()
        };
        let err = store
            .put_entry_with_content(
                body(bytes),
                write,
                entry(vec![missing]),
                Some((SCOPE, "v1")),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::MissingBlob(id) if id == missing),
            "{err}"
        );
        assert_eq!(store.blob(&sha256).unwrap(), None);
        assert_eq!(store.entry(&key()).unwrap(), None);
        assert_eq!(store.name(SCOPE, "v1").unwrap(), None);
        assert_eq!(store.usage(), 0);
        assert_eq!(store.cas().list().unwrap(), vec![], "no file may be left");
    });
}

/// Concurrent writes share index transactions (`EntryBatches`); one that
/// cannot be stored must neither fail nor damage the others in its batch.
#[test]
fn concurrent_writes_are_each_stored_whole_or_not_at_all() {
    const WRITES: usize = 24;
    let dir = tempfile::tempdir().unwrap();
    let missing = ContentId(*blake3::hash(b"never stored").as_bytes());
    // Every third write pins a blob that is not stored.
    let fails = |i: usize| i % 3 == 1;
    let doc = |i: usize| format!(r#"{{"schemaVersion":2,"n":{i}}}"#).into_bytes();
    let key_of = |i: usize| EntryKey {
        name: format!("team/app@{i}"),
        ..key()
    };

    let stored: Vec<(usize, BlobInfo)> = common::runtime().block_on(async {
        let store = std::sync::Arc::new(open(dir.path()));
        let tasks: Vec<_> = (0..WRITES)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let more = if fails(i) { vec![missing] } else { Vec::new() };
                    let write = BlobWrite {
                        limit: 1 << 20,
                        ..BlobWrite::default()
                    };
                    let tag = format!("v{i}");
                    let made = entry(more);
                    let result = store
                        .put_entry_with_content(
                            body(&doc(i)),
                            write,
                            move |b| NewEntry {
                                key: key_of(i),
                                ..made(b)
                            },
                            Some((SCOPE, &tag)),
                        )
                        .await;
                    (i, result)
                })
            })
            .collect();
        let mut stored = Vec::new();
        for task in tasks {
            let (i, result) = task.await.unwrap();
            match result {
                Ok((blob, rec)) => {
                    assert!(!fails(i), "write {i} pins a missing blob yet was stored");
                    assert_eq!((rec.key, rec.content), (key_of(i), blob.id));
                    stored.push((i, blob));
                }
                Err(e) => assert!(
                    fails(i) && matches!(e, StoreError::MissingBlob(id) if id == missing),
                    "write {i}: {e}"
                ),
            }
        }
        stored
    });
    assert_eq!(stored.len(), WRITES - WRITES / 3);

    // After a restart: exactly the acknowledged writes, each whole.
    common::runtime().block_on(async {
        let store = open(dir.path());
        for i in 0..WRITES {
            let tag = format!("v{i}");
            let entry = store.entry(&key_of(i)).unwrap();
            let name = store.name(SCOPE, &tag).unwrap();
            let sha256 = Digest::Sha256(Sha256::digest(doc(i)).into());
            if fails(i) {
                assert_eq!((entry, name), (None, None), "write {i}");
                assert_eq!(store.blob(&sha256).unwrap(), None, "write {i}");
            } else {
                assert_eq!(entry.expect("entry").key, key_of(i));
                assert_eq!(name, Some(key_of(i)));
                assert!(store.blob(&sha256).unwrap().is_some(), "write {i}");
            }
        }
        let bytes: u64 = stored.iter().map(|(_, b)| b.size).sum();
        assert_eq!(store.usage(), bytes);
        let mut files: Vec<ContentId> = store
            .cas()
            .list()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut want: Vec<ContentId> = stored.iter().map(|(_, b)| b.id).collect();
        files.sort();
        want.sort();
        assert_eq!(
            files, want,
            "a file for every stored write, none for the others"
        );
    });
}

/// `Index::put_entries_with`, deterministically: the writes of one batch
/// behave as if made one after the other, and a failing one is left out.
#[test]
fn a_batch_of_entry_writes_leaves_out_the_one_that_fails() {
    use larder::index::{BlobRecord, EntryWith, Index, PutEntryError};

    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let id = |n: u8| ContentId([n; 32]);
    let record = |n: u8| BlobRecord {
        size: 100 + n as u64,
        sha256: [n; 32],
        created: 1,
        touched: 1,
    };
    index.put_blob(&id(1), &record(1), None).unwrap();
    let new = |content: u8, pins: &[u8]| NewEntry {
        key: key(),
        content: id(content),
        size: 0,
        pins: pins.iter().map(|&n| id(n)).chain([id(content)]).collect(),
        meta: Vec::new(),
        children: Vec::new(),
    };
    let with = |content: u8, tag: &'static str| EntryWith {
        content: Some(record(content)),
        name: Some((SCOPE, tag)),
        ..EntryWith::default()
    };
    // Same key three times: the second pins a blob that does not exist.
    let (first, broken, last) = (new(10, &[1]), new(11, &[9]), new(12, &[]));
    let (w1, w2, w3) = (with(10, "a"), with(11, "b"), with(12, "c"));
    let outcomes = index
        .put_entries_with(&[(&first, &w1), (&broken, &w2), (&last, &w3)], 5)
        .unwrap();

    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(
        matches!(outcomes[1], Err(PutEntryError::MissingBlob(m)) if m == id(9)),
        "{:?}",
        outcomes[1]
    );
    let last_rec = outcomes[2].as_ref().unwrap();
    // The last write replaced the first: its pins are released.
    assert_eq!(index.entry_by_key(&key()).unwrap().unwrap().id, last_rec.id);
    assert_eq!(index.pin_count(&id(1)).unwrap(), 0);
    assert_eq!(index.pin_count(&id(10)).unwrap(), 0);
    assert_eq!(index.pin_count(&id(12)).unwrap(), 1);
    // Names of the writes that were stored point at the entry; the failed
    // write stored nothing, not even its content's record.
    assert_eq!(index.name(SCOPE, "a").unwrap(), Some(key()));
    assert_eq!(index.name(SCOPE, "b").unwrap(), None);
    assert_eq!(index.name(SCOPE, "c").unwrap(), Some(key()));
    assert!(index.blob(&id(11)).unwrap().is_none());
    assert!(index.blob(&id(10)).unwrap().is_some());
    // Content pinned at birth and released in the same batch is left for GC
    // like any unpinned blob; pinned content is not.
    let unpinned: Vec<ContentId> = index.unpinned_blobs().map(|r| r.unwrap().0).collect();
    assert!(unpinned.contains(&id(10)), "{unpinned:?}");
    assert!(!unpinned.contains(&id(12)), "{unpinned:?}");
}

/// Writes of the same content under many keys at once meet in one batch of
/// the small-write thread: one file, one blob record, every entry pinning it.
#[test]
fn concurrent_writes_of_the_same_content_share_one_blob() {
    const WRITES: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let bytes = br#"{"schemaVersion":2,"same":true}"#;
    let key_of = |i: usize| EntryKey {
        name: format!("team/app@same-{i}"),
        ..key()
    };
    common::runtime().block_on(async {
        let store = std::sync::Arc::new(open(dir.path()));
        let tasks: Vec<_> = (0..WRITES)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let write = BlobWrite {
                        limit: 1 << 20,
                        ..BlobWrite::default()
                    };
                    let made = entry(Vec::new());
                    store
                        .put_entry_with_content(
                            body(bytes),
                            write,
                            move |b| NewEntry {
                                key: key_of(i),
                                ..made(b)
                            },
                            None,
                        )
                        .await
                })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            let (blob, rec) = task.await.unwrap().unwrap();
            assert_eq!(rec.content, blob.id);
            ids.push(blob.id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one blob for one content");
        for i in 0..WRITES {
            assert_eq!(store.entry(&key_of(i)).unwrap().unwrap().content, ids[0]);
        }
        assert_eq!(store.usage(), bytes.len() as u64);
        assert_eq!(store.cas().list().unwrap().len(), 1);
    });
}
