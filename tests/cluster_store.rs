//! Three replicas' stores on one real PostgreSQL and one real S3-protocol
//! server: a value written through A is read through B and found through
//! C; a removal through one is seen by all; the hard limit is the
//! cluster's; a blob lost behind Larder's back is a clean miss.

mod cluster_support;
mod common;

use bytes::Bytes;
use futures_util::TryStreamExt;
use larder::cache::{BlobInfo, BlobWrite};
use larder::cas::Digest;
use larder::cluster::store::ClusterStore;
use larder::cluster::ClusterError;
use larder::index::{EntryKey, EntryRecord, Protocol};
use sha2::Digest as _;

use cluster_support::{Postgres, S3Server};

struct Replica {
    store: ClusterStore,
    _tier: tempfile::TempDir,
}

async fn replicas(db: &Postgres, s3: &S3Server, n: usize, hard_limit: u64) -> Vec<Replica> {
    cluster_support::cluster_stores(db, s3, n, 1 << 20, hard_limit)
        .await
        .into_iter()
        .map(|(store, dir)| Replica { store, _tier: dir })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn key(name: &str) -> EntryKey {
    EntryKey {
        protocol: Protocol::Http,
        namespace: "ci".into(),
        name: name.into(),
    }
}

/// How a value is checked: against `expected` when given, within 1 MiB.
fn checked(expected: Option<Digest>) -> BlobWrite<'static> {
    BlobWrite {
        expected,
        limit: 1 << 20,
        ..BlobWrite::default()
    }
}

/// Writes `value` under `cas/<sha256>`, as Bazel's HTTP cache does.
async fn put(store: &ClusterStore, value: &'static [u8]) -> Result<EntryRecord, ClusterError> {
    let name = format!("cas/{}", sha256(value));
    let expected: Digest = format!("sha256:{}", sha256(value)).parse().unwrap();
    let (_, rec) = store
        .put_entry_with_content(
            Bytes::from_static(value),
            checked(Some(expected)),
            move |blob| {
                cluster_support::entry(Protocol::Http, "ci", &name, blob.id, blob.size, &[blob.id])
            },
            None,
        )
        .await?;
    Ok(rec)
}

/// The value under `name`, or `None` for a miss (no entry, or a blob
/// lost behind our back).
async fn get(store: &ClusterStore, name: &str) -> Option<Vec<u8>> {
    let rec = store.entry(&key(name)).await.unwrap()?;
    match store.read_content(&rec.content, rec.size).await {
        Ok(bytes) => Some(bytes.to_vec()),
        Err(ClusterError::Lost(id)) if id == rec.content => None,
        Err(e) => panic!("read {name}: {e}"),
    }
}

async fn read_all(store: &ClusterStore, blob: &BlobInfo) -> Vec<u8> {
    let stream = store.read_blob(blob, 0, blob.size).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_through_one_replica_read_through_the_others() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let r = replicas(&db, &s3, 3, u64::MAX).await;
    let (a, b, c) = (&r[0].store, &r[1].store, &r[2].store);

    let value = b"an action result";
    let name = format!("cas/{}", sha256(value));
    let rec = put(a, value).await.unwrap();
    assert_eq!(rec.key, key(&name));
    assert_eq!(
        get(b, &name).await.as_deref(),
        Some(&value[..]),
        "read through B"
    );
    assert!(
        c.entry(&key(&name)).await.unwrap().is_some(),
        "found through C"
    );
    assert!(b.tier.holds(&rec.content) || a.tier.holds(&rec.content));

    // A body that is not what its digest says is refused, and nothing is
    // recorded.
    let err = a
        .put_entry_with_content(
            Bytes::from_static(b"tampered"),
            checked(Some(
                format!("sha256:{}", sha256(b"original")).parse().unwrap(),
            )),
            |blob| cluster_support::entry(Protocol::Http, "ci", "cas/x", blob.id, blob.size, &[]),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Content(_)), "{err}");
    assert!(c.entry(&key("cas/x")).await.unwrap().is_none());

    // Reads through B are uses: once flushed, the leader sees them.
    b.flush_touches().await.unwrap();
    let after = c.entry(&key(&name)).await.unwrap().unwrap();
    assert!(after.last_used >= rec.last_used);

    assert!(c.remove_entry_by_key(&key(&name)).await.unwrap());
    assert_eq!(get(a, &name).await, None, "removed through C, gone for A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hard_limit_is_the_clusters() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let r = replicas(&db, &s3, 2, 20).await;
    put(&r[0].store, b"0123456789").await.unwrap();
    put(&r[1].store, b"abcdefghij").await.unwrap();
    let err = put(&r[0].store, b"one byte too far").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClusterError::Full {
                used: 20,
                hard_limit: 20,
                ..
            }
        ),
        "{err}"
    );
    // The same bytes again take no more room.
    put(&r[1].store, b"0123456789").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_lost_behind_our_back_is_a_clean_miss_on_every_replica() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let r = replicas(&db, &s3, 2, u64::MAX).await;
    let value = b"soon lost";
    let name = format!("cas/{}", sha256(value));
    let rec = put(&r[0].store, value).await.unwrap();
    s3.tamper("larder", &format!("blobs/{}", rec.content.to_hex()), None)
        .await;
    // B never held it: its read goes to the store, which has nothing.
    assert_eq!(get(&r[1].store, &name).await, None);
    assert!(r[0].store.entry(&key(&name)).await.unwrap().is_none());
    // Written again, it is whole again.
    put(&r[1].store, value).await.unwrap();
    assert_eq!(get(&r[0].store, &name).await.as_deref(), Some(&value[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_an_error_then_the_same_store_recovers() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let r = replicas(&db, &s3, 1, u64::MAX).await;
    let store = &r[0].store;
    put(store, b"before").await.unwrap();

    db.stop();
    let err = put(store, b"during").await.unwrap_err();
    assert!(
        matches!(err, ClusterError::Pool(_) | ClusterError::Postgres(_)),
        "{err}"
    );
    assert!(store.entry(&key("cas/x")).await.is_err());

    db.start_again();
    // The pool drops the dead connections and opens new ones.
    put(store, b"after").await.unwrap();
    let name = format!("cas/{}", sha256(b"before"));
    assert_eq!(get(store, &name).await.as_deref(), Some(&b"before"[..]));
}

#[tokio::test]
async fn a_revocation_through_one_replica_reaches_the_others_at_their_refresh() {
    use larder::cluster::tokens::{self, Revoked};
    let Some(db) = Postgres::start() else { return };
    let settings = larder::cluster::pg::settings(&db.config(), "t").unwrap();
    let mut a = larder::cluster::pg::connect(&settings).await.unwrap();
    larder::cluster::schema::migrate(&mut a, "test")
        .await
        .unwrap();
    let b = larder::cluster::pg::connect(&settings).await.unwrap();
    let (seen_a, seen_b) = (Revoked::default(), Revoked::default());
    assert_eq!(seen_b.refresh(&b).await.unwrap(), 0);

    tokens::put_token_meta(&a, "t1", br#"{"sub":"ci"}"#)
        .await
        .unwrap();
    tokens::revoke(&a, "t1", 4_000_000_000).await.unwrap();
    tokens::revoke(&a, "t1", 4_000_000_000).await.unwrap();
    assert!(!seen_b.contains("t1"), "not before B looks");
    assert_eq!(seen_b.refresh(&b).await.unwrap(), 1);
    assert!(seen_b.contains("t1"));
    assert_eq!(seen_a.refresh(&a).await.unwrap(), 1);
    // Later refreshes fetch only what is new.
    tokens::revoke(&b, "t2", 4_000_000_000).await.unwrap();
    assert_eq!(seen_a.refresh(&a).await.unwrap(), 1);
    assert!(seen_a.contains("t2") && seen_a.contains("t1"));
    assert_eq!(
        tokens::token_meta(&b, "t1").await.unwrap().as_deref(),
        Some(&br#"{"sub":"ci"}"#[..])
    );
    assert_eq!(tokens::token_metas(&b).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_content_written_through_one_replica_reads_through_another() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let r = replicas(&db, &s3, 2, u64::MAX).await;
    // A package tarball fetched from upstream arrives in pieces.
    let tarball: Vec<u8> = (0..300_000u32).map(|i| (i % 199) as u8).collect();
    let pieces: Vec<Result<Bytes, std::io::Error>> = tarball
        .chunks(16 << 10)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let (_, rec) = r[0]
        .store
        .put_entry_with_streamed_content(
            futures_util::stream::iter(pieces),
            checked(None),
            |blob| {
                cluster_support::entry(
                    Protocol::Http,
                    "ci",
                    "pkg-1.0.tgz",
                    blob.id,
                    blob.size,
                    &[blob.id],
                )
            },
        )
        .await
        .unwrap();
    assert_eq!(rec.size, tarball.len() as u64);
    assert!(get(&r[1].store, "pkg-1.0.tgz").await.unwrap() == tarball);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_cache_blocks_staged_on_two_replicas_commit_on_a_third() {
    use larder::cluster::uploads::Appended;
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let r = replicas(&db, &s3, 3, u64::MAX).await;
    let (a, b, c) = (&r[0].store, &r[1].store, &r[2].store);
    let res = a.create_upload("gha/repo").await.unwrap().id;
    let res = res.as_str();
    // Block ids are base64 strings chosen by the client, staged in any
    // order; one is staged twice and the second copy wins.
    let blocks = [
        ("QUFB", &b"first "[..]),
        ("QkJC", b"second "),
        ("Q0ND", b"third"),
    ];
    b.stage_block(res, "Q0ND", Bytes::from_static(b"stale"))
        .await
        .unwrap();
    for (i, (name, data)) in blocks.iter().enumerate() {
        let via = if i % 2 == 0 { a } else { b };
        let got = via
            .stage_block(res, name, Bytes::copy_from_slice(data))
            .await
            .unwrap();
        assert_eq!(got, Appended::Size(data.len() as u64));
    }
    let order: Vec<String> = blocks.iter().map(|(n, _)| n.to_string()).collect();
    let missing = [order.clone(), vec!["RERE".into()]].concat();
    let err = c.finish_blocks(res, &missing, None).await.unwrap_err();
    assert!(matches!(err, ClusterError::Incomplete(_)), "{err}");

    let blob = c.finish_blocks(res, &order, None).await.unwrap();
    let whole = b"first second third";
    assert_eq!(blob.size, whole.len() as u64);
    assert_eq!(read_all(a, &blob.into()).await, whole);
    let gone = a
        .stage_block(res, "QUFB", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(gone, Appended::Unknown, "the upload ended with its commit");
}
