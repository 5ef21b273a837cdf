//! Cluster mode's blob layout in a real S3-protocol server (moto): verified
//! writes, ranged reads, deletes, staged upload parts another replica can
//! read, and a store that hangs.

mod cluster_support;
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use larder::cas::ContentId;
use larder::cluster::objects::{Objects, ObjectsError};

use cluster_support::S3Server;

async fn store() -> Option<(S3Server, Objects)> {
    let s3 = S3Server::start()?;
    s3.create_bucket("larder").await;
    let objects = Objects::open(&s3.config("larder")).expect("open");
    Some((s3, objects))
}

fn blob(len: usize, seed: u8) -> (Vec<u8>, ContentId) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    let id = ContentId(*blake3::hash(&data).as_bytes());
    (data, id)
}

async fn read_all(
    objects: &Objects,
    id: &ContentId,
    range: Option<std::ops::Range<u64>>,
) -> Vec<u8> {
    let chunks: Vec<Bytes> = objects
        .read_blob(id, range)
        .await
        .expect("read")
        .try_collect()
        .await
        .expect("stream");
    chunks.concat()
}

#[tokio::test]
async fn blobs_round_trip_whole_and_in_ranges() {
    let Some((_s3, objects)) = store().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // One small blob (one PUT) and one above the part size (multipart).
    for (len, seed) in [(4096, 1u8), (20 << 20, 2)] {
        let (data, id) = blob(len, seed);
        let file = dir.path().join(id.to_hex());
        std::fs::write(&file, &data).unwrap();
        assert_eq!(objects.blob_size(&id).await.unwrap(), None);
        assert_eq!(objects.put_blob(&id, &file).await.unwrap(), len as u64);
        assert_eq!(objects.blob_size(&id).await.unwrap(), Some(len as u64));
        assert!(read_all(&objects, &id, None).await == data, "whole blob");
        let range = 1000..3000u64;
        assert_eq!(
            read_all(&objects, &id, Some(range.clone())).await,
            data[1000..3000]
        );
    }
    let mut listed = objects.list_blobs().await.unwrap();
    listed.sort_by_key(|id| id.0);
    assert_eq!(listed.len(), 2);

    let (_, id) = blob(4096, 1);
    objects.delete_blob(&id).await.unwrap();
    objects
        .delete_blob(&id)
        .await
        .expect("deleting an absent blob succeeds");
    assert_eq!(objects.blob_size(&id).await.unwrap(), None);
    assert!(matches!(
        objects.read_blob(&id, None).await,
        Err(ObjectsError::Missing(_))
    ));
    assert_eq!(objects.list_blobs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn bytes_that_are_not_the_blob_never_become_visible() {
    let Some((_s3, objects)) = store().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for len in [4096, 20 << 20] {
        let (mut data, id) = blob(len, 7);
        // The local copy changes after it was verified.
        let last = data.len() - 1;
        data[last] ^= 1;
        let file = dir.path().join("changed");
        std::fs::write(&file, &data).unwrap();
        let err = objects.put_blob(&id, &file).await.unwrap_err();
        assert!(matches!(err, ObjectsError::Corrupt(c) if c == id), "{err}");
        assert_eq!(objects.blob_size(&id).await.unwrap(), None, "{len} bytes");
    }
    assert!(objects.list_blobs().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_upload_staged_by_one_replica_is_read_by_another() {
    let Some((s3, a)) = store().await else { return };
    let b = Objects::open(&s3.config("larder")).unwrap();
    a.put_part("u1", 0, Bytes::from_static(b"hello "))
        .await
        .unwrap();
    b.put_part("u1", 6, Bytes::from_static(b"world"))
        .await
        .unwrap();
    a.put_part("u2", 0, Bytes::from_static(b"other"))
        .await
        .unwrap();
    let mut joined = Vec::new();
    for offset in [0, 6] {
        let part: Vec<Bytes> = b
            .read_part("u1", offset)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        joined.extend(part.concat());
    }
    assert_eq!(joined, b"hello world");
    b.delete_upload("u1").await.unwrap();
    assert!(matches!(
        a.read_part("u1", 0).await,
        Err(ObjectsError::Missing(_))
    ));
    assert!(a.read_part("u2", 0).await.is_ok(), "other uploads stay");
}

#[tokio::test]
async fn a_hung_store_is_an_error_within_the_retry_budget_then_recovers() {
    let Some((s3, objects)) = store().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (data, id) = blob(4096, 3);
    let file = dir.path().join("blob");
    std::fs::write(&file, &data).unwrap();
    s3.freeze(true);
    let started = Instant::now();
    let err = objects.put_blob(&id, &file).await.unwrap_err();
    assert!(matches!(err, ObjectsError::Store(_)), "{err}");
    // request_timeout is 2 s; retries stop after four of them.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    s3.freeze(false);
    objects
        .put_blob(&id, &file)
        .await
        .expect("the store answers again");
    assert_eq!(read_all(&objects, &id, None).await, data);
}
