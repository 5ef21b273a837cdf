//! What Backend's Cluster arm calls, across replicas on one real
//! PostgreSQL and one real S3-protocol server: a session PATCHed in big
//! streamed bodies and finished elsewhere, a manifest put by tag, a named
//! upload resumed on another replica, readiness through a database
//! restart, and the admin numbers, GC and eviction.

mod cluster_support;
mod common;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt, TryStreamExt};

use larder::cache::{BlobInfo, BlobWrite, EvictReport, NamedWrite};
use larder::cas::{CasError, ContentId, Digest};
use larder::cluster::store::ClusterStore;
use larder::cluster::ClusterError;
use larder::index::{EntryKey, Protocol};

use cluster_support::{entry, sha256, Postgres, S3Server};

const MIB: usize = 1 << 20;

async fn stores(db: &Postgres, s3: &S3Server, n: usize) -> Vec<(ClusterStore, tempfile::TempDir)> {
    s3.create_bucket("larder").await;
    cluster_support::cluster_stores(db, s3, n, 64 << 20, u64::MAX).await
}

/// `data` as a request body arrives: in pieces of 64 KiB.
fn body(data: &[u8]) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let pieces: Vec<_> = data
        .chunks(64 << 10)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(pieces)
}

/// `data`, then the connection drops.
fn cut(data: &[u8]) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    body(data).chain(stream::once(async {
        Err(std::io::Error::other("connection reset"))
    }))
}

/// Bytes no different from a layer's, distinct per `seed`.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

fn write(expected: Option<Digest>, scope: Option<&'static str>) -> BlobWrite<'static> {
    BlobWrite {
        expected,
        limit: u64::MAX,
        scope,
        size_hint: None,
    }
}

async fn read(store: &ClusterStore, blob: &BlobInfo, offset: u64, len: u64) -> Vec<u8> {
    let stream = store.read_blob(blob, offset, len).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_patched_in_two_big_bodies_on_a_is_finished_on_b_and_read_on_c() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3, 3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let layer = data(20 * MIB, 0);
    let half = 10 * MIB;
    let id = a.create_upload("team/app").await.unwrap().id;
    assert_eq!(id.len(), 32, "a session id as a single node makes it");

    // BuildKit PATCHes without a range; a chunked client sends one.
    let first = a
        .append_upload("team/app", &id, None, body(&layer[..half]), u64::MAX)
        .await
        .unwrap();
    assert_eq!(first.len, half as u64);
    let second = a
        .append_upload(
            "team/app",
            &id,
            Some(half as u64),
            body(&layer[half..]),
            u64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(second.len, layer.len() as u64);

    // Staged in parts of at most 8 MiB, which together are the layer.
    let staged = s3.list("larder", &format!("uploads/{id}")).await;
    assert!(staged.len() >= 4, "{staged:?}");
    assert!(
        staged.iter().all(|(_, size)| *size <= 8 * MIB as u64),
        "{staged:?}"
    );
    let total: u64 = staged.iter().map(|(_, size)| size).sum();
    assert_eq!(total, layer.len() as u64);

    // A chunk that starts elsewhere changes nothing.
    let err = b
        .append_upload("team/app", &id, Some(5), body(b"x"), u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::UploadOffset { len } if len == layer.len() as u64));

    let blob = b
        .finish_upload(
            "team/app",
            &id,
            body(b""),
            sha256(&layer),
            u64::MAX,
            Some(0),
        )
        .await
        .unwrap();
    assert_eq!(
        (blob.size, blob.sha256_digest()),
        (layer.len() as u64, sha256(&layer))
    );
    assert!(s3.list("larder", &format!("uploads/{id}")).await.is_empty());
    assert_eq!(
        c.blob_in("team/app", &sha256(&layer)).await.unwrap(),
        Some(blob)
    );

    // Ranges through C, one across the boundary of two parts.
    assert_eq!(read(c, &blob, 0, 10).await, layer[..10]);
    let edge = 8 * MIB - 5;
    assert_eq!(
        read(c, &blob, edge as u64, 10).await,
        layer[edge..edge + 10]
    );
    assert_eq!(
        read(c, &blob, blob.size - 3, 3).await,
        layer[layer.len() - 3..]
    );
    assert!(read(c, &blob, 0, 0).await.is_empty());
    assert!(
        read(c, &blob, 0, blob.size).await == layer,
        "the whole layer"
    );
}

async fn len(store: &ClusterStore, scope: &str, id: &str) -> u64 {
    store.upload(scope, id).await.unwrap().len
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_chunk_is_dropped_or_kept_as_its_client_expects() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3, 2).await;
    let (a, b) = (&r[0].0, &r[1].0);
    let scope = "team/app";
    let id = a.create_upload(scope).await.unwrap().id;

    // A ranged chunk is whole or nothing: 9 MiB staged (a full part
    // among them), then the body fails.
    let nine = data(9 * MIB, 1);
    let err = (a.append_upload(scope, &id, Some(0), cut(&nine), u64::MAX)).await;
    assert!(matches!(err, Err(ClusterError::Content(_))), "{err:?}");
    assert_eq!(len(b, scope, &id).await, 0);

    // A streamed one keeps what arrived, for the client to resume from.
    let err = (a.append_upload(scope, &id, None, cut(&nine), u64::MAX)).await;
    assert!(matches!(err, Err(ClusterError::Content(_))), "{err:?}");
    assert_eq!(len(b, scope, &id).await, nine.len() as u64);

    // Past the limit, the chunk goes and the session keeps what it had.
    let limit = 10 * MIB as u64;
    let err = b
        .append_upload(scope, &id, None, body(&data(2 * MIB, 2)), limit)
        .await
        .unwrap_err();
    let too_large = ClusterError::Content(CasError::TooLarge { limit });
    assert_eq!(err.to_string(), too_large.to_string());
    assert_eq!(len(a, scope, &id).await, nine.len() as u64);
    a.cancel_upload(scope, &id).await.unwrap();
    assert!(s3.list("larder", &format!("uploads/{id}")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_put_by_tag_on_a_is_resolved_on_b() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3, 2).await;
    let (a, b) = (&r[0].0, &r[1].0);
    let layer = data(4096, 3);
    let pushed = a
        .put_blob(body(&layer), write(Some(sha256(&layer)), Some("team/app")))
        .await
        .unwrap();
    let manifest = format!(r#"{{"layers":[{{"digest":"{}"}}]}}"#, sha256(&layer));
    let name = format!("team/app@{}", sha256(manifest.as_bytes()));
    let manifest_entry = |name: String, pin: ContentId| {
        move |blob: &BlobInfo| {
            let size = blob.size + 4096;
            entry(Protocol::Oci, "team", &name, blob.id, size, &[blob.id, pin])
        }
    };
    let (blob, rec) = a
        .put_entry_with_content(
            Bytes::from(manifest.clone()),
            write(Some(sha256(manifest.as_bytes())), Some("team/app")),
            manifest_entry(name.clone(), pushed.id),
            Some(("team/app", "v1")),
        )
        .await
        .unwrap();
    assert_eq!(rec.content, blob.id);

    let key = b.name("team/app", "v1").await.unwrap().expect("the tag");
    assert_eq!(key.name, name);
    let got = b.entry(&key).await.unwrap().expect("the manifest");
    assert_eq!(got.id, rec.id);
    let content = b.read_content(&got.content, blob.size).await.unwrap();
    assert_eq!(content, manifest.as_bytes());
    let by_digest = b.blob_in("team/app", &sha256(manifest.as_bytes())).await;
    assert_eq!(by_digest.unwrap(), Some(blob), "linked in its repository");

    // A manifest naming a layer nobody pushed: no entry and no tag.
    let ghost = ContentId([9; 32]);
    let err = a
        .put_entry_with_content(
            Bytes::from_static(b"{}"),
            write(None, Some("team/app")),
            manifest_entry("team/app@ghost".into(), ghost),
            Some(("team/app", "v2")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::MissingBlobs(ref m) if m == &[ghost]),
        "{err}"
    );
    assert_eq!(b.name("team/app", "v2").await.unwrap(), None);

    // An entry of blobs already stored, in one step; a ghost pin refused.
    let index = entry(Protocol::Oci, "team", "idx", blob.id, 1, &[pushed.id]);
    let put = b.put_entry(&index).await.unwrap();
    assert_eq!((put.key, put.pins.len()), (index.key.clone(), 2));
    let mut broken = index.clone();
    broken.pins.push(ghost);
    let err = b.put_entry(&broken).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::MissingBlobs(ref m) if m == &[ghost]),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_upload_cut_on_a_is_resumed_on_b_and_sealed() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3, 3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let (scope, name) = ("reapi:ci", "uploads/5f1c/blobs/x/300000");
    let blob = data(300_000, 4);
    let w = || BlobWrite {
        size_hint: Some(blob.len() as u64),
        ..write(Some(sha256(&blob)), None)
    };
    assert_eq!(a.named_upload_len(scope, name).await.unwrap(), 0);
    let err = a.write_named_upload(scope, name, 7, body(&blob), w()).await;
    assert!(
        matches!(err, Err(ClusterError::UploadOffset { len: 0 })),
        "{err:?}"
    );

    let err = (a.write_named_upload(scope, name, 0, cut(&blob[..120_000]), w())).await;
    assert!(matches!(err, Err(ClusterError::Content(_))), "{err:?}");
    let held = b.named_upload_len(scope, name).await.unwrap();
    assert_eq!(held, 120_000, "what arrived before the cut");
    let err = b.write_named_upload(scope, name, 5, body(b"x"), w()).await;
    assert!(
        matches!(err, Err(ClusterError::UploadOffset { len: 120_000 })),
        "{err:?}"
    );

    let rest = &blob[held as usize..];
    let sealed = b
        .write_named_upload(scope, name, held, body(rest), w())
        .await;
    let NamedWrite::Sealed(info) = sealed.unwrap() else {
        panic!("all of it arrived")
    };
    assert_eq!(info.sha256_digest(), sha256(&blob));
    assert!(read(c, &info, 0, info.size).await == blob);
    assert_eq!(c.named_upload_len(scope, name).await.unwrap(), 0, "ended");

    // Starting over from 0 drops what was there; bytes that are not the
    // blob end the session with the mismatch.
    let partial = a
        .write_named_upload(scope, name, 0, body(&blob[..10]), w())
        .await;
    assert!(
        matches!(partial, Ok(NamedWrite::Partial(10))),
        "{partial:?}"
    );
    let again = c
        .write_named_upload(scope, name, 0, body(&blob[..20]), w())
        .await;
    assert!(matches!(again, Ok(NamedWrite::Partial(20))), "{again:?}");
    let wrong = data(blob.len() - 20, 5);
    let err = b
        .write_named_upload(scope, name, 20, body(&wrong), w())
        .await;
    assert!(matches!(err, Err(ClusterError::Content(_))), "{err:?}");
    assert_eq!(a.named_upload_len(scope, name).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_through_a_restart() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3, 1).await;
    let store = &r[0].0;
    assert_eq!(store.check_ready().await, Ok(()));
    db.stop();
    let started = std::time::Instant::now();
    let why = store.check_ready().await.unwrap_err();
    assert!(why.contains("database"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");
    db.start_again();
    assert_eq!(store.check_ready().await, Ok(()), "without a restart");
}

/// Runs `sql` on the cluster's database, to set the clock back on rows.
async fn backdate(store: &ClusterStore, sql: &str) {
    let client = store.pool.get().await.unwrap();
    client.batch_execute(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_numbers_and_what_gc_and_eviction_did() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let mut r = stores(&db, &s3, 3).await;
    // B's reads and writes lease nothing, so what it writes is
    // collectable at once; A keeps the usual leases.
    r[1].0.lease = Duration::ZERO;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let (x, z) = (data(1000, 6), data(3000, 7));
    let loose = b.put_blob(body(&x), write(None, None)).await.unwrap();
    let leased = a.put_blob(body(&z), write(None, None)).await.unwrap();
    let put = move |name: &'static str, len: usize, seed: u8| async move {
        let make = move |blob: &BlobInfo| {
            entry(Protocol::Http, "ci", name, blob.id, blob.size, &[blob.id])
        };
        let value = Bytes::from(data(len, seed));
        (b.put_entry_with_content(value, write(None, None), make, None))
            .await
            .unwrap()
    };
    let (old, _) = put("old", 500, 8).await;
    put("new", 200, 9).await;
    let session = a.create_upload("team/app").await.unwrap().id;
    a.flush_touches().await.unwrap();
    b.flush_touches().await.unwrap();

    assert_eq!(c.usage().await.unwrap(), 1000 + 3000 + 500 + 200);
    assert_eq!(
        c.leased_bytes().await.unwrap(),
        3000,
        "Z alone: leased, pinned by none"
    );
    let stats = c.stats().await.unwrap();
    assert_eq!((stats.blobs, stats.entries, stats.uploads), (4, 2, 1));
    assert_eq!(c.pinned_blob(&old.id).await.unwrap(), (Some(old), 1));
    assert_eq!(c.pinned_blob(&leased.id).await.unwrap(), (Some(leased), 0));
    assert_eq!(c.pinned_blob(&ContentId([3; 32])).await.unwrap(), (None, 0));

    // Written long ago, as far as the settled touches go (after any pin:
    // a write lease runs while the last touch is newer than the last pin);
    // the session idle for longer than uploads live.
    backdate(c, "UPDATE blobs SET touched_at = 1").await;
    backdate(
        c,
        &format!("UPDATE uploads SET updated_at = 0 WHERE id = '{session}'"),
    )
    .await;
    let gc = c.gc().await.unwrap();
    assert_eq!(
        (
            gc.uploads_expired,
            gc.entries_expired,
            gc.blobs_removed,
            gc.bytes_freed
        ),
        (1, 0, 1, 1000),
        "the loose blob and the idle session: {gc:?}"
    );
    assert_eq!((gc.bytes_leased, gc.usage_after), (3000, 3000 + 500 + 200));
    assert_eq!(c.blob(&sha256(&x)).await.unwrap(), None);
    assert_eq!(c.pinned_blob(&loose.id).await.unwrap(), (None, 0));

    // "old" was used before "new": it goes first. Its blob goes once no
    // read's lease can still be on its way (two flush intervals); the
    // leased 3000 bytes count as going when their lease ends (as on a
    // single node), so a target of 200 is met once "old" is gone.
    backdate(c, "UPDATE entries SET last_used = 1 WHERE name = 'old'").await;
    backdate(c, "UPDATE entries SET last_used = 2 WHERE name = 'new'").await;
    let report = c.evict_to(200).await.unwrap();
    let removed = |r: &EvictReport| (r.entries_removed, r.blobs_removed, r.bytes_freed);
    assert_eq!(removed(&report), (1, 0, 0), "{report:?}");
    assert!(a.entry(&key("old")).await.unwrap().is_none());
    assert!(a.entry(&key("new")).await.unwrap().is_some());
    backdate(c, "UPDATE blobs SET released_at = 0").await;
    let report = c.evict_to(200).await.unwrap();
    assert_eq!(removed(&report), (0, 1, 500), "{report:?}");
    assert!(!report.reached && report.usage_after == 3200, "{report:?}");
    assert_eq!(report.bytes_leased, 3000, "{report:?}");

    // Down to nothing: "new" goes, the leased blob stays and says why.
    c.evict_to(0).await.unwrap();
    backdate(c, "UPDATE blobs SET released_at = 0").await;
    let report = c.evict_to(0).await.unwrap();
    assert_eq!(removed(&report), (0, 1, 200), "{report:?}");
    assert!(!report.reached && report.usage_after == 3000, "{report:?}");
    assert_eq!(report.bytes_leased, 3000);
    assert!(report
        .leases_end
        .is_some_and(|end| end > larder::cache::now_ms()));
    let stats = c.stats().await.unwrap();
    assert_eq!(
        (stats.evicted_entries, stats.evicted_bytes),
        (2, 1000 + 500 + 200)
    );
}

fn key(name: &str) -> EntryKey {
    EntryKey {
        protocol: Protocol::Http,
        namespace: "ci".into(),
        name: name.into(),
    }
}
