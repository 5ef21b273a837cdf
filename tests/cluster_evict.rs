//! Eviction under the cluster's one budget, with reads recorded on two
//! replicas: least recently used first across both, nothing a replica may
//! still be recording is evicted, and no entry is left needing a blob whose
//! object is gone. Real PostgreSQL, real S3-protocol server.

mod cluster_support;
mod common;

use std::time::Duration;

use larder::cas::ContentId;
use larder::cluster::evict::{evict_to, usage};
use larder::cluster::meta;
use larder::cluster::objects::Objects;
use larder::cluster::touches::{settled_before, Touches};
use larder::cluster::{pg, schema};

use cluster_support::{Postgres, S3Server};

const KIB: u64 = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lru_order_holds_across_replicas_and_recent_reads_are_kept() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let settings = pg::settings(&db.config(), "larder/test").unwrap();
    let mut leader = pg::connect(&settings).await.unwrap();
    let other = pg::connect(&settings).await.unwrap();
    schema::migrate(&mut leader, "test").await.unwrap();
    let objects = Objects::open(&s3.config("larder")).unwrap();

    // Ten entries of 1 KiB each, written at t = 1000 + i.
    let ids = cluster_support::fill(&mut leader, &objects, "ci", 0..10, 1000).await;
    // Replica A reads entries 0 and 1, replica B reads 2 and 3, later on;
    // both flush. Entry 9 is read at t = 5000, after what has settled.
    let (a, b) = (Touches::default(), Touches::default());
    a.touch_entry(ids[0], 2000);
    a.touch_entry(ids[1], 2001);
    b.touch_entry(ids[2], 2002);
    b.touch_entry(ids[3], 2003);
    b.touch_entry(ids[9], 5000);
    assert_eq!(a.flush(&leader).await.unwrap(), (2, 0));
    assert_eq!(b.flush(&other).await.unwrap(), (3, 0));

    let settled = settled_before(5000, Duration::from_millis(1000));
    assert_eq!(settled, 3000);
    assert_eq!(usage(&leader).await.unwrap(), 10 * KIB);
    let done = evict_to(&mut leader, &objects, 5 * KIB, 5000, settled)
        .await
        .unwrap();
    // The entries go; their blobs wait until a lease a read on another
    // replica took just before may have landed (two flush intervals of
    // the database's clock), and count as freed meanwhile.
    assert_eq!((done.entries, done.blobs), (5, 0));
    assert_eq!(objects.list_blobs().await.unwrap().len(), 10);
    released_long_ago(&leader).await;
    let done = evict_to(&mut leader, &objects, 5 * KIB, 5000, settled)
        .await
        .unwrap();
    assert_eq!((done.entries, done.blobs, done.bytes), (0, 5, 5 * KIB));
    assert_eq!(usage(&leader).await.unwrap(), 5 * KIB);
    let left: Vec<String> = leader
        .query("SELECT name FROM entries ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The five least recently used across both replicas went (4..8 were
    // never read); 9 is recent, 0..3 were read after 4..8 were written.
    assert_eq!(left, ["ci-k0", "ci-k1", "ci-k2", "ci-k3", "ci-k9"]);

    // Asked for less than what is settled, eviction stops at the recent
    // entry rather than evicting it.
    let done = evict_to(&mut leader, &objects, 0, 5000, settled)
        .await
        .unwrap();
    assert_eq!(done.entries, 4);
    let left: i64 = leader
        .query_one("SELECT count(*) FROM entries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);

    // Every entry's blob still has its object, and only those remain.
    released_long_ago(&leader).await;
    evict_to(&mut leader, &objects, 0, 5000, settled)
        .await
        .unwrap();
    let stored = objects.list_blobs().await.unwrap();
    let needed = meta::needed_blobs(&leader).await.unwrap();
    assert_eq!(stored, needed);
}

/// As if every blob had lost its last pin long ago.
async fn released_long_ago(c: &tokio_postgres::Client) {
    c.execute("UPDATE blobs SET released_at = 0", &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn touches_survive_a_database_outage() {
    let Some(db) = Postgres::start() else { return };
    let settings = pg::settings(&db.config(), "larder/test").unwrap();
    let mut c = pg::connect(&settings).await.unwrap();
    schema::migrate(&mut c, "test").await.unwrap();
    let blob = ContentId([7; 32]);
    meta::put_blob(&mut c, &blob, 1, &[], 1, u64::MAX)
        .await
        .unwrap();
    let touches = Touches::default();
    touches.lease(blob, 9000);
    db.stop();
    assert!(touches.flush(&c).await.is_err());
    db.start_again();
    let c = pg::connect(&settings).await.unwrap();
    touches.lease(blob, 8000);
    assert_eq!(touches.flush(&c).await.unwrap(), (0, 1));
    let until: i64 = c
        .query_one(
            "SELECT until_ms FROM leases WHERE blob = $1",
            &[&&blob.0[..]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(until, 9000, "the lease recorded before the outage was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_writing_at_once_never_record_past_the_hard_limit() {
    let Some(db) = Postgres::start() else { return };
    let settings = pg::settings(&db.config(), "larder/test").unwrap();
    let mut first = pg::connect(&settings).await.unwrap();
    schema::migrate(&mut first, "test").await.unwrap();
    let hard_limit = 25 * KIB;
    let writers = (0..3u8).map(|replica| {
        let settings = settings.clone();
        tokio::spawn(async move {
            let mut c = pg::connect(&settings).await.unwrap();
            let mut outcomes = Vec::new();
            for i in 0..20u8 {
                // Each replica's blobs are its own, and every replica also
                // records blob 0 of replica 0: the same bytes count once.
                let id = if i == 19 {
                    ContentId([0; 32])
                } else {
                    ContentId([replica * 20 + i + 1; 32])
                };
                outcomes.push(
                    meta::put_blob(&mut c, &id, KIB, &[], 1, hard_limit)
                        .await
                        .unwrap(),
                );
            }
            outcomes
        })
    });
    let mut live = 0;
    for w in futures_util::future::join_all(writers).await {
        for outcome in w.unwrap() {
            match outcome {
                meta::BlobPut::Live => live += 1,
                meta::BlobPut::Full { used } => assert!(used + KIB > hard_limit),
                other => panic!("{other:?}"),
            }
        }
    }
    let recorded: i64 = first
        .query_one("SELECT coalesce(sum(size), 0)::bigint FROM blobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        recorded as u64, hard_limit,
        "recorded up to the limit, not past it"
    );
    assert_eq!(usage(&first).await.unwrap(), hard_limit);
    assert!(
        live >= 25,
        "{live} answers were Live (a repeat of blob 0 is Live too)"
    );

    // GC's forget takes the bytes back off.
    let some = ContentId([1; 32]);
    let tx = first.transaction().await.unwrap();
    assert!(meta::mark_for_deletion(&tx, &some, 2).await.unwrap());
    tx.commit().await.unwrap();
    meta::forget_blob(&first, &some).await.unwrap();
    assert_eq!(usage(&first).await.unwrap(), hard_limit - KIB);
}
