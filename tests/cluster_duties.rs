//! The leader's duties across replicas, on a real PostgreSQL and a real
//! S3-protocol server: the leader dies in the middle of an eviction (its
//! object deletes hanging on a frozen store), another replica takes over,
//! finishes what was left half done and brings the cluster under budget;
//! no entry ever needs a blob whose object is gone, and no object outlives
//! its record.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::{count, until};
use larder::cas::ContentId;
use larder::cluster::duties::Duties;
use larder::cluster::leader::Leadership;
use larder::cluster::meta;
use larder::cluster::objects::Objects;
use larder::cluster::{evict, pg, schema, sweep};
use larder::index::Protocol;

use cluster_support::{Postgres, S3Server};

const KIB: u64 = 1024;

fn duties(
    cfg: &larder::config::PostgresConfig,
    objects: &Objects,
    replica: &str,
    max_size: u64,
) -> Duties {
    Duties {
        pool: pg::pool(cfg, &format!("larder/{replica}")).unwrap(),
        objects: objects.clone(),
        max_size,
        high_watermark: 0.9,
        low_watermark: 0.5,
        interval: Duration::from_millis(100),
        flush_interval: Duration::from_millis(100),
        upload_expiry: Duration::from_secs(3600),
        orphan_grace: Duration::ZERO,
        quotas: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_over_its_quota_loses_only_its_own_oldest_entries() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let cfg = db.config();
    let mut writer = pg::connect(&pg::settings(&cfg, "writer").unwrap())
        .await
        .unwrap();
    schema::migrate(&mut writer, "test").await.unwrap();
    let objects = Objects::open(&s3.config("larder")).unwrap();
    cluster_support::fill(&mut writer, &objects, "a", 0..6, 1).await;
    cluster_support::fill(&mut writer, &objects, "b", 0..6, 1).await;
    let mut d = duties(&cfg, &objects, "leader", 1 << 30);
    d.quotas.insert("a".into(), 3 * KIB);
    let round = d.round().await.unwrap();
    // The entries go at once; their blobs only once a read's lease on its
    // way from another replica would have landed (two flush intervals).
    assert_eq!((round.evicted.entries, round.evicted.blobs), (3, 0));
    assert_eq!(objects.list_blobs().await.unwrap().len(), 12);
    writer
        .execute("UPDATE blobs SET released_at = 0", &[])
        .await
        .unwrap();
    let round = d.round().await.unwrap();
    assert_eq!((round.evicted.entries, round.evicted.blobs), (0, 3));
    let left: Vec<String> = writer
        .query("SELECT name FROM entries ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected: Vec<String> = (3..6).map(|i| format!("a-k{i}")).collect();
    expected.extend((0..6).map(|i| format!("b-k{i}")));
    assert_eq!(left, expected);
    assert_eq!(evict::namespace_usage(&writer, "a").await.unwrap(), 3 * KIB);
    assert_eq!(objects.list_blobs().await.unwrap().len(), 9);
}

/// The leader's rounds as a replica's workers run them: each `interval`,
/// while `leading` says this replica leads.
async fn lead(duties: Duties, leading: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(duties.interval);
    loop {
        tick.tick().await;
        if *leading.borrow() {
            let _ = duties.round().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_eviction_is_replaced_and_nothing_dangles() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let cfg = db.config();
    let observer = pg::connect(&pg::settings(&cfg, "observer").unwrap())
        .await
        .unwrap();
    let mut writer = pg::connect(&pg::settings(&cfg, "writer").unwrap())
        .await
        .unwrap();
    schema::migrate(&mut writer, "test").await.unwrap();
    let objects = Objects::open(&s3.config("larder")).unwrap();

    // 40 entries of 1 KiB, long settled; the budget is 20 KiB.
    cluster_support::fill(&mut writer, &objects, "ci", 0..40, 1).await;
    let duties = |replica: &str| duties(&cfg, &objects, replica, 20 * KIB);
    let retry = Duration::from_millis(200);
    let settings = |r: &str| pg::settings(&cfg, &format!("larder/{r}")).unwrap();

    // The store hangs: A's eviction drops entries and marks a blob, then
    // waits on the object delete.
    s3.freeze(true);
    let mut a = Leadership::start(settings("a"), retry);
    tokio::time::timeout(Duration::from_secs(20), a.changed_to(true))
        .await
        .expect("a leads");
    let a_duties = tokio::spawn(lead(duties("a"), a.watch()));
    let b = Leadership::start(settings("b"), retry);
    let b_duties = tokio::spawn(lead(duties("b"), b.watch()));
    until("a marked a blob deleting", || async {
        count(
            &observer,
            "SELECT count(*) FROM blobs WHERE state = 'deleting'",
        )
        .await
            > 0
    })
    .await;
    assert!(!b.is_leader());

    // A dies (its tasks and its sessions end), the store comes back.
    a_duties.abort();
    drop(a);
    s3.freeze(false);

    until("b brings the cluster under its low watermark", || async {
        b.is_leader()
            && count(&observer, "SELECT bytes FROM usage").await <= (10 * KIB) as i64
            && count(
                &observer,
                "SELECT count(*) FROM blobs b
                  WHERE NOT EXISTS (SELECT 1 FROM entry_pins p WHERE p.blob = b.id)
                    AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.content = b.id)",
            )
            .await
                == 0
            && count(
                &observer,
                "SELECT count(*) FROM blobs WHERE state = 'deleting'",
            )
            .await
                == 0
    })
    .await;
    b_duties.abort();

    // Every entry's blobs have their objects, and every object its record.
    let mut stored = objects.list_blobs().await.unwrap();
    stored.sort();
    let mut needed = meta::needed_blobs(&observer).await.unwrap();
    needed.sort();
    assert_eq!(stored, needed);
    assert_eq!(
        count(&observer, "SELECT count(*) FROM blobs").await as usize,
        stored.len()
    );
    assert!(evict::usage(&observer).await.unwrap() <= 10 * KIB);
    // The newest entries are the ones kept.
    let oldest_kept = count(&observer, "SELECT min(last_used) FROM entries").await;
    assert!(
        oldest_kept > 30,
        "least recently used went first ({oldest_kept})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_orphans_and_expired_uploads_but_not_recent_writes() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let mut c = pg::connect(&pg::settings(&db.config(), "t").unwrap())
        .await
        .unwrap();
    schema::migrate(&mut c, "test").await.unwrap();
    let objects = Objects::open(&s3.config("larder")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let put = |data: &[u8]| {
        let id = ContentId(*blake3::hash(data).as_bytes());
        let file = dir.path().join(id.to_hex());
        std::fs::write(&file, data).unwrap();
        (id, file)
    };
    // An object whose write was never recorded, one that was, an upload
    // idle past expiry and parts no upload record names.
    let (orphan, f1) = put(b"orphan");
    let (kept, f2) = put(b"kept");
    objects.put_blob(&orphan, &f1).await.unwrap();
    objects.put_blob(&kept, &f2).await.unwrap();
    meta::put_blob(&mut c, &kept, 4, &[], 1, u64::MAX)
        .await
        .unwrap();
    larder::cluster::uploads::create(&c, "idle", "s", 1)
        .await
        .unwrap();
    objects
        .put_part("idle", 0, bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    objects
        .put_part("stray", 0, bytes::Bytes::from_static(b"y"))
        .await
        .unwrap();

    // With a long grace, only what is expired by the database's record goes.
    let now = 10_000_000;
    let swept = sweep::sweep(
        &mut c,
        &objects,
        now,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            swept.expired_uploads,
            swept.orphan_blobs,
            swept.orphan_uploads
        ),
        (1, 0, 0)
    );
    assert!(
        objects.blob_size(&orphan).await.unwrap().is_some(),
        "too recent to sweep"
    );

    let swept = sweep::sweep(
        &mut c,
        &objects,
        now,
        Duration::from_secs(1),
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!((swept.orphan_blobs, swept.orphan_uploads), (1, 1));
    assert_eq!(objects.blob_size(&orphan).await.unwrap(), None);
    assert!(objects.blob_size(&kept).await.unwrap().is_some());
    assert!(objects.staged_uploads().await.unwrap().is_empty());
}

#[tokio::test]
async fn listings_page_through_the_clusters_entries() {
    use larder::cache::EntryOrder;
    use larder::cluster::listing;
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let cfg = db.config();
    let mut c = pg::connect(&pg::settings(&cfg, "t").unwrap())
        .await
        .unwrap();
    schema::migrate(&mut c, "test").await.unwrap();
    let objects = Objects::open(&s3.config("larder")).unwrap();
    cluster_support::fill(&mut c, &objects, "a", 0..6, 1).await;
    cluster_support::fill(&mut c, &objects, "b", 0..2, 1).await;

    let quotas = [("a".to_owned(), 4 * KIB), ("quiet".to_owned(), KIB)].into();
    let ns = listing::namespaces(&c, &quotas).await.unwrap();
    let names: Vec<(&str, u64, u64, Option<u64>)> = ns
        .iter()
        .map(|n| (n.name.as_str(), n.entries, n.used_bytes, n.quota))
        .collect();
    assert_eq!(
        names,
        [
            ("a", 6, 6 * KIB, Some(4 * KIB)),
            ("b", 2, 2 * KIB, None),
            ("quiet", 0, 0, Some(KIB))
        ]
    );
    assert_eq!(ns[0].last_used, 6);

    let names_of = |page: &larder::cache::EntryPage| -> Vec<String> {
        page.entries.iter().map(|e| e.key.name.clone()).collect()
    };
    let first = listing::list_entries(&c, Some("a"), None, None, EntryOrder::Lru, 4, None)
        .await
        .unwrap();
    assert_eq!(names_of(&first), ["a-k0", "a-k1", "a-k2", "a-k3"]);
    let second = listing::list_entries(
        &c,
        Some("a"),
        None,
        None,
        EntryOrder::Lru,
        4,
        first.next.as_deref(),
    )
    .await
    .unwrap();
    assert_eq!(names_of(&second), ["a-k4", "a-k5"]);
    assert_eq!(second.next, None);
    let mru = listing::list_entries(
        &c,
        None,
        Some(Protocol::Http),
        None,
        EntryOrder::Mru,
        1,
        None,
    )
    .await
    .unwrap();
    assert_eq!(names_of(&mru), ["a-k5"]);
    let prefixed = listing::list_entries(&c, None, None, Some("b-"), EntryOrder::Size, 10, None)
        .await
        .unwrap();
    assert_eq!(names_of(&prefixed).len(), 2);
    assert_eq!(prefixed.entries[0].pins.len(), 1);
    assert_eq!(listing::counts(&c).await.unwrap(), (8, 8 * KIB, 8, 0));
}
