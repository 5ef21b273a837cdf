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
        let store = Store::open(
            &DataDir::open(dir.path()).unwrap(),
            &common::test_config(dir.path()),
        )
        .unwrap();
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
        let store = Store::open(
            &DataDir::open(dir.path()).unwrap(),
            &common::test_config(dir.path()),
        )
        .unwrap();
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
        let store = Store::open(
            &DataDir::open(dir.path()).unwrap(),
            &common::test_config(dir.path()),
        )
        .unwrap();
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
