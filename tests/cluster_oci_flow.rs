//! BuildKit's registry cache across three replicas' stores, on one real
//! PostgreSQL and one real S3-protocol server: layers pushed through A,
//! the manifest and its tag through A, the tag resolved and the manifest
//! read through B, the layer found by digest and read in ranges through C.

mod cluster_support;
mod common;

use bytes::Bytes;
use futures_util::TryStreamExt;
use larder::cache::{BlobInfo, BlobWrite};
use larder::cas::BlobStream;
use larder::cluster::store::ClusterStore;
use larder::cluster::ClusterError;
use larder::index::{EntryKey, Protocol};

use cluster_support::{sha256, Postgres, S3Server};

async fn stores(db: &Postgres, s3: &S3Server, n: usize) -> Vec<(ClusterStore, tempfile::TempDir)> {
    cluster_support::cluster_stores(db, s3, n, 64 << 20, u64::MAX).await
}

/// `data` as a request body arrives: in pieces of 64 KiB.
fn body(data: &[u8]) -> futures_util::stream::Iter<std::vec::IntoIter<std::io::Result<Bytes>>> {
    let pieces: Vec<_> = data
        .chunks(64 << 10)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(pieces)
}

/// Finishes session `id` with an empty final body, as a client that sent
/// every byte in PATCHes does.
async fn finish(
    via: &ClusterStore,
    scope: &str,
    id: &str,
    digest: larder::cas::Digest,
) -> Result<BlobInfo, ClusterError> {
    (via.finish_upload(scope, id, body(b""), digest, u64::MAX, Some(0))).await
}

async fn collect(stream: BlobStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_through_a_pull_through_b_head_through_c() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let r = stores(&db, &s3, 3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);

    // A layer of 3 MiB, pushed as a streamed body in 64 KiB chunks.
    let layer: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 239) as u8).collect();
    let chunks: Vec<Result<Bytes, std::io::Error>> = layer
        .chunks(64 << 10)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let write = BlobWrite {
        expected: Some(sha256(&layer)),
        limit: u64::MAX,
        scope: Some("team/app"),
        size_hint: None,
    };
    let pushed = a
        .put_blob(futures_util::stream::iter(chunks), write)
        .await
        .unwrap();
    assert_eq!(pushed.size, layer.len() as u64);
    assert_eq!(pushed.sha256_digest(), sha256(&layer));

    let manifest = format!(
        r#"{{"schemaVersion":2,"layers":[{{"digest":"{}","size":{}}}]}}"#,
        sha256(&layer),
        layer.len()
    );
    let key = EntryKey {
        protocol: Protocol::Oci,
        namespace: "team".into(),
        name: format!("team/app@{}", sha256(manifest.as_bytes())),
    };
    let entry_key = key.clone();
    let write = BlobWrite {
        expected: Some(sha256(manifest.as_bytes())),
        limit: 1 << 20,
        scope: Some("team/app"),
        size_hint: None,
    };
    let (_, rec) = a
        .put_entry_with_content(
            Bytes::from(manifest.clone()),
            write,
            move |blob| {
                let mut e = cluster_support::entry(
                    Protocol::Oci,
                    "team",
                    &entry_key.name,
                    blob.id,
                    blob.size + pushed.size,
                    &[blob.id, pushed.id],
                );
                e.meta = b"application/vnd.oci.image.manifest.v1+json".to_vec();
                e
            },
            None,
        )
        .await
        .unwrap();
    assert!(a.set_name("team/app", "cache", &key).await.unwrap());

    // B resolves the tag and reads the manifest.
    let resolved = b.name("team/app", "cache").await.unwrap().expect("tag");
    assert_eq!(resolved, key);
    let got = b.entry(&resolved).await.unwrap().expect("manifest");
    assert_eq!(got.pins.len(), 2);
    assert_eq!(got.meta, rec.meta);
    // The entry's size counts its layers too; the content is the manifest.
    let len = manifest.len() as u64;
    let body = b.read_content(&got.content, len).await.unwrap();
    assert_eq!(body, manifest.as_bytes());
    assert_eq!(b.names("team/app", None, 10).await.unwrap(), ["cache"]);

    // C finds the layer by its sha256 digest (a HEAD) and reads ranges.
    let found = c.blob(&sha256(&layer)).await.unwrap().expect("layer");
    assert_eq!(found, pushed);
    let in_repo = c.blob_in("team/app", &sha256(&layer)).await.unwrap();
    assert_eq!(in_repo, Some(pushed), "pushed with a scope, readable there");
    let head = collect(c.read_blob(&found, 0, 4).await.unwrap()).await;
    assert_eq!(head, layer[..4]);
    let whole = collect(c.read_blob(&found, 0, found.size).await.unwrap()).await;
    assert!(whole == layer, "the whole layer through C");

    // A manifest naming a layer nobody pushed is refused; nothing changes.
    let missing = sha256(b"never pushed");
    let ghost_manifest = |blob: &BlobInfo| {
        let ghost = larder::cas::ContentId([9; 32]);
        cluster_support::entry(
            Protocol::Oci,
            "team",
            "team/app@ghost",
            blob.id,
            2,
            &[blob.id, ghost],
        )
    };
    let write = BlobWrite {
        limit: 1 << 20,
        ..BlobWrite::default()
    };
    let err = (a.put_entry_with_content(Bytes::from_static(b"{}"), write, ghost_manifest, None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::MissingBlobs(ref m) if m.len() == 1),
        "{err}"
    );
    assert!(c.blob(&missing).await.unwrap().is_none());

    // Removing the manifest through C takes its tag with it.
    assert!(c.remove_entry_by_key(&key).await.unwrap());
    assert_eq!(b.name("team/app", "cache").await.unwrap(), None);
    assert!(a.names("team/app", None, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_push_moves_across_replicas_and_any_of_them_serves_it() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let r = stores(&db, &s3, 3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let layer: Vec<u8> = (0..(2 << 20) + 123).map(|i: u32| (i % 233) as u8).collect();
    let half = layer.len() / 2;

    let id = a.create_upload("team/app").await.unwrap().id;
    let appended = a
        .append_upload("team/app", &id, Some(0), body(&layer[..half]), u64::MAX)
        .await
        .unwrap();
    assert_eq!(appended.len, half as u64);
    b.append_upload(
        "team/app",
        &id,
        Some(half as u64),
        body(&layer[half..]),
        u64::MAX,
    )
    .await
    .unwrap();

    // The wrong digest fails the finish and keeps the upload for a retry.
    let err = finish(c, "team/app", &id, sha256(b"not it"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Content(_)), "{err}");
    // Another repository cannot finish it.
    let err = finish(c, "team/other", &id, sha256(&layer))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::UploadUnknown(_)), "{err}");
    let blob = finish(c, "team/app", &id, sha256(&layer)).await.unwrap();
    assert_eq!(blob.size, layer.len() as u64);

    let found = a.blob(&sha256(&layer)).await.unwrap().expect("pushed");
    assert_eq!(found, blob);
    assert_eq!(
        b.blob_in("team/app", &sha256(&layer)).await.unwrap(),
        Some(blob)
    );
    assert_eq!(
        b.blob_in("team/other", &sha256(&layer)).await.unwrap(),
        None
    );
    let whole = collect(b.read_blob(&found, 0, found.size).await.unwrap()).await;
    assert!(whole == layer, "read through B");
    // The upload and its staged parts are gone.
    let gone = a
        .append_upload("team/app", &id, Some(0), body(b"x"), u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(gone, ClusterError::UploadUnknown(_)), "{gone}");
}
