//! An upload begun on one replica, continued on a second and finished on a
//! third, each with its own database session, object-store client and data
//! dir, against a real PostgreSQL and a real S3-protocol server.

mod cluster_support;
mod common;

use bytes::Bytes;
use larder::cas::{Cas, ContentId};
use larder::cluster::meta::{self, BlobPut};
use larder::cluster::objects::Objects;
use larder::cluster::uploads::{self, Appended};
use larder::cluster::{pg, schema, ClusterError};

use cluster_support::{sha256, Postgres, S3Server};

const NOW: i64 = 1_000_000;

struct Replica {
    client: tokio_postgres::Client,
    objects: Objects,
    cas: Cas,
    _dir: tempfile::TempDir,
}

async fn replicas(db: &Postgres, s3: &S3Server, n: usize) -> Vec<Replica> {
    let settings = pg::settings(&db.config(), "larder/test").unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let (blobs, tmp) = (dir.path().join("blobs"), dir.path().join("tmp"));
        std::fs::create_dir_all(&tmp).unwrap();
        out.push(Replica {
            client: pg::connect(&settings).await.unwrap(),
            objects: Objects::open(&s3.config("larder")).unwrap(),
            cas: Cas::open(&blobs, &tmp).unwrap(),
            _dir: dir,
        });
    }
    schema::migrate(&mut out[0].client, "test").await.unwrap();
    out
}

impl Replica {
    async fn append(&mut self, id: &str, offset: u64, contiguous: bool, bytes: Bytes) -> Appended {
        uploads::append(
            &mut self.client,
            &self.objects,
            id,
            offset,
            contiguous,
            bytes,
            NOW,
        )
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_chunked_upload_moves_across_three_replicas() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let mut r = replicas(&db, &s3, 3).await;
    let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (one, two) = (1 << 20, 2 << 20);

    uploads::create(&r[0].client, "u1", "team/app", NOW)
        .await
        .unwrap();
    let a = &mut r[0];
    let got = a
        .append("u1", 0, true, Bytes::copy_from_slice(&data[..one]))
        .await;
    assert_eq!(got, Appended::Size(one as u64));
    let b = &mut r[1];
    // A chunk that does not start where the upload ends is refused.
    let got = b.append("u1", 5, true, Bytes::from_static(b"x")).await;
    assert_eq!(got, Appended::Conflict { size: one as u64 });
    let got = b
        .append(
            "u1",
            one as u64,
            true,
            Bytes::copy_from_slice(&data[one..two]),
        )
        .await;
    assert_eq!(got, Appended::Size(two as u64));
    let c = &mut r[2];
    let got = c
        .append("u1", two as u64, true, Bytes::copy_from_slice(&data[two..]))
        .await;
    assert_eq!(got, Appended::Size(data.len() as u64));

    // The final PUT lands on the third replica, with a wrong digest first.
    let wrong = sha256(b"something else");
    let err = uploads::assemble(&c.client, &c.objects, &c.cas, "u1", Some(wrong), u64::MAX)
        .await
        .err()
        .expect("a wrong digest is refused");
    assert!(matches!(err, ClusterError::Content(_)), "{err}");
    let verified = uploads::assemble(
        &c.client,
        &c.objects,
        &c.cas,
        "u1",
        Some(sha256(&data)),
        u64::MAX,
    )
    .await
    .expect("the parts make the pushed blob");
    let id = verified.meta.id;
    assert_eq!(id, ContentId(*blake3::hash(&data).as_bytes()));
    let published = tokio::task::block_in_place(|| verified.publish(&c.cas)).unwrap();
    c.objects
        .put_blob(&id, &c.cas.path(&published.id))
        .await
        .unwrap();
    assert_eq!(
        meta::put_blob(
            &mut c.client,
            &id,
            data.len() as u64,
            &[sha256(&data).to_string()],
            NOW,
            u64::MAX
        )
        .await
        .unwrap(),
        BlobPut::Live
    );
    uploads::remove(&c.client, &c.objects, "u1").await.unwrap();

    // Another replica reads the blob; the upload and its parts are gone.
    let a = &r[0];
    assert_eq!(
        a.objects.blob_size(&id).await.unwrap(),
        Some(data.len() as u64)
    );
    assert!(uploads::parts(&a.client, "u1").await.unwrap().is_empty());
    let a = &mut r[0];
    let got = a.append("u1", 0, true, Bytes::from_static(b"x")).await;
    assert_eq!(got, Appended::Unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gha_chunks_arrive_out_of_order_on_different_replicas() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let mut r = replicas(&db, &s3, 2).await;
    let data: Vec<u8> = (0..96 * 1024).map(|i: u32| (i % 253) as u8).collect();
    let k = 32 * 1024;
    uploads::create(&r[0].client, "cache-7", "gha/repo", NOW)
        .await
        .unwrap();
    // Chunks 3, 1 on one replica and 2 on the other; an overlapping one is
    // refused.
    for (replica, start) in [(0, 2 * k), (1, 0), (0, k)] {
        let x = &mut r[replica];
        let got = x
            .append(
                "cache-7",
                start as u64,
                false,
                Bytes::copy_from_slice(&data[start..start + k]),
            )
            .await;
        assert!(matches!(got, Appended::Size(_)), "{got:?}");
    }
    let x = &mut r[1];
    let got = x
        .append(
            "cache-7",
            (k / 2) as u64,
            false,
            Bytes::copy_from_slice(&data[..k]),
        )
        .await;
    assert_eq!(
        got,
        Appended::Conflict {
            size: data.len() as u64
        }
    );
    let x = &r[1];
    let verified = uploads::assemble(&x.client, &x.objects, &x.cas, "cache-7", None, u64::MAX)
        .await
        .unwrap();
    assert_eq!(verified.meta.id, ContentId(*blake3::hash(&data).as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_with_a_gap_is_refused() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let mut r = replicas(&db, &s3, 1).await;
    uploads::create(&r[0].client, "g", "s", NOW).await.unwrap();
    let x = &mut r[0];
    x.append("g", 10, false, Bytes::from_static(b"late")).await;
    let err = uploads::assemble(&x.client, &x.objects, &x.cas, "g", None, u64::MAX)
        .await
        .err()
        .expect("a gap is refused");
    assert!(matches!(err, ClusterError::Incomplete(_)), "{err}");
}
