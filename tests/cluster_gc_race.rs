//! GC racing an entry write that pins the blob being collected, in both
//! orders, on a real PostgreSQL and a real S3-protocol server: whichever
//! takes the blob's row first wins, and no entry ever needs a blob whose
//! object is gone.

mod cluster_support;
mod common;

use std::time::Duration;

use larder::cas::ContentId;
use larder::cluster::collect::{collect_blob, Collected};
use larder::cluster::meta::{self, BlobPut};
use larder::cluster::objects::Objects;
use larder::cluster::{pg, schema};
use larder::index::{NewEntry, Protocol};
use tokio_postgres::Client;

use cluster_support::{Postgres, S3Server};

const NOW: i64 = 1_000_000;

struct Cluster {
    _db: Postgres,
    _s3: S3Server,
    settings: pg::Settings,
    objects: Objects,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Option<Cluster> {
        let db = Postgres::start()?;
        let s3 = S3Server::start()?;
        s3.create_bucket("larder").await;
        let settings = pg::settings(&db.config(), "larder/test").unwrap();
        let mut c = pg::connect(&settings).await.unwrap();
        schema::migrate(&mut c, "test").await.unwrap();
        Some(Cluster {
            objects: Objects::open(&s3.config("larder")).unwrap(),
            _db: db,
            _s3: s3,
            settings,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    async fn client(&self) -> Client {
        pg::connect(&self.settings).await.unwrap()
    }

    /// Writes a blob's object and records it, as a push does.
    async fn push(&self, client: &mut Client, data: &[u8]) -> ContentId {
        let id = ContentId(*blake3::hash(data).as_bytes());
        let file = self.dir.path().join(id.to_hex());
        std::fs::write(&file, data).unwrap();
        self.objects.put_blob(&id, &file).await.unwrap();
        let put = meta::put_blob(client, &id, data.len() as u64, &[], NOW, u64::MAX)
            .await
            .unwrap();
        assert_eq!(put, BlobPut::Live);
        id
    }

    /// No entry needs a blob whose object is missing.
    async fn assert_consistent(&self, client: &Client) {
        let stored = self.objects.list_blobs().await.unwrap();
        for id in meta::needed_blobs(client).await.unwrap() {
            assert!(
                stored.contains(&id),
                "an entry needs {id}, whose object is gone"
            );
        }
    }
}

fn manifest(content: ContentId, pins: &[ContentId]) -> NewEntry {
    cluster_support::entry(Protocol::Oci, "team", "app:latest", content, 100, pins)
}

/// Waits until some session waits for a lock: the racing statement is
/// parked on the blob's row.
async fn until_someone_waits(observer: &Client) {
    let waiting = async {
        loop {
            let n: i64 = observer
                .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the racing statement never waited for the row lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_locks_first_keeps_its_blob() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut writer = cluster.client().await;
    let observer = cluster.client().await;
    let layer = cluster.push(&mut writer, b"layer bytes").await;
    let config = cluster.push(&mut writer, b"manifest bytes").await;

    let tx = writer.transaction().await.unwrap();
    let pins = [layer];
    meta::put_entry(&tx, &manifest(config, &pins), NOW)
        .await
        .unwrap()
        .expect("every pin is live");

    let mut gc_client = cluster.client().await;
    let objects = cluster.objects.clone();
    let gc = tokio::spawn(async move { collect_blob(&mut gc_client, &objects, &layer, NOW).await });
    until_someone_waits(&observer).await;
    tx.commit().await.unwrap();

    assert_eq!(gc.await.unwrap().unwrap(), Collected::Kept);
    assert_eq!(
        meta::blob_state(&observer, &layer)
            .await
            .unwrap()
            .as_deref(),
        Some("live")
    );
    assert!(cluster.objects.blob_size(&layer).await.unwrap().is_some());
    cluster.assert_consistent(&observer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_that_locks_first_turns_the_entry_away_and_a_new_push_restores_it() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut gc_client = cluster.client().await;
    let mut observer = cluster.client().await;
    let layer = cluster.push(&mut observer, b"layer bytes").await;
    let config = cluster.push(&mut observer, b"manifest bytes").await;

    let gc = gc_client.transaction().await.unwrap();
    assert!(meta::mark_for_deletion(&gc, &layer, NOW).await.unwrap());

    let mut writer = cluster.client().await;
    let entry = tokio::spawn(async move {
        let tx = writer.transaction().await.unwrap();
        let pins = [layer];
        let result = meta::put_entry(&tx, &manifest(config, &pins), NOW)
            .await
            .unwrap();
        if result.is_ok() {
            tx.commit().await.unwrap();
        }
        result
    });
    until_someone_waits(&observer).await;
    gc.commit().await.unwrap();
    assert_eq!(
        entry.await.unwrap(),
        Err(vec![layer]),
        "the entry is refused"
    );

    // GC finishes; the client, told the blob is unknown, pushes it again.
    cluster.objects.delete_blob(&layer).await.unwrap();
    meta::forget_blob(&gc_client, &layer).await.unwrap();
    cluster.assert_consistent(&observer).await;
    assert_eq!(meta::blob_state(&observer, &layer).await.unwrap(), None);
    let again = cluster.push(&mut observer, b"layer bytes").await;
    assert_eq!(again, layer);
    let pins = [layer];
    meta::put_entry(&observer, &manifest(config, &pins), NOW)
        .await
        .unwrap()
        .expect("pinned once pushed again");
    cluster.assert_consistent(&observer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_during_gc_is_told_to_wait_and_leases_hold_blobs() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut gc_client = cluster.client().await;
    let mut client = cluster.client().await;
    let id = cluster.push(&mut client, b"some blob").await;

    // A lease running past now holds the blob.
    client
        .execute(
            "INSERT INTO leases (blob, until_ms) VALUES ($1, $2)",
            &[&&id.0[..], &(NOW + 1)],
        )
        .await
        .unwrap();
    assert_eq!(
        collect_blob(&mut gc_client, &cluster.objects, &id, NOW)
            .await
            .unwrap(),
        Collected::Kept
    );

    // Once it has run out, GC marks the blob; a push of the same bytes
    // meanwhile is told to wait rather than resurrect a row whose object
    // is being deleted.
    let tx = gc_client.transaction().await.unwrap();
    assert!(meta::mark_for_deletion(&tx, &id, NOW + 1).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        meta::put_blob(&mut client, &id, 9, &[], NOW, u64::MAX)
            .await
            .unwrap(),
        BlobPut::Deleting
    );
    // A replica died here; the leader's sweep finds and finishes it.
    assert_eq!(meta::unfinished_deletions(&client).await.unwrap(), vec![id]);
    cluster.objects.delete_blob(&id).await.unwrap();
    meta::forget_blob(&client, &id).await.unwrap();
    assert!(meta::unfinished_deletions(&client)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(cluster.objects.blob_size(&id).await.unwrap(), None);
}
