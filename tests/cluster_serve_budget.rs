//! The cluster's one budget through `larder serve` replicas: writes through
//! every replica stay under the hard limit, eviction follows reads made
//! anywhere, and a leader killed in the middle of an eviction leaves no
//! entry pointing at a missing object.

mod cluster_support;
mod common;
mod oci_support;

use cluster_support::serve::{Fleet, BUCKET};
use cluster_support::{count, until};
use larder::cluster::objects::Objects;
use larder::cluster::{leader, meta, pg, replica_of};
use oci_support::fixed_bytes;
use reqwest::{Client, StatusCode};

const KIB: usize = 1024;

/// A budget of 100 values of 1 KiB: eviction from 90 down to 80.
const BUDGET: &[(&str, &str)] = &[
    ("LARDER__STORAGE__MAX_SIZE", "100KiB"),
    ("LARDER__STORAGE__HARD_LIMIT", "110KiB"),
];

async fn put(http: &Client, base: &str, key: &str, seed: u32) -> StatusCode {
    let res = http
        .put(format!("{base}/cache/team/files/{key}"))
        .body(fixed_bytes(seed, KIB))
        .send()
        .await
        .unwrap();
    res.status()
}

async fn get(http: &Client, base: &str, key: &str) -> StatusCode {
    let res = http
        .get(format!("{base}/cache/team/files/{key}"))
        .send()
        .await;
    res.unwrap().status()
}

async fn observer(fleet: &Fleet) -> tokio_postgres::Client {
    pg::connect(&pg::settings(&fleet.db.config(), "observer").unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_one_across_replicas_and_lru_follows_reads_made_anywhere() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let replicas: Vec<_> = (0..3)
        .map(|i| fleet.replica(&format!("r{i}"), BUDGET))
        .collect();
    let [a, b, c] = [0, 1, 2].map(|i| replicas[i].url(""));
    let http = Client::new();
    let db = observer(&fleet).await;

    for i in 0..40 {
        assert!(put(&http, &a, &format!("old{i}"), i).await.is_success());
    }
    // Read through B: these are now the most recently used of the old.
    for i in 0..20 {
        assert_eq!(get(&http, &b, &format!("old{i}")).await, StatusCode::OK);
    }
    // Written through C, 55 more take usage past the high watermark.
    for i in 0..55 {
        let status = put(&http, &c, &format!("new{i}"), 100 + i).await;
        assert!(status.is_success(), "new{i}: {status}");
    }
    until("the leader evicts down to the low watermark", || async {
        count(&db, "SELECT bytes FROM usage").await <= 80 * KIB as i64
    })
    .await;
    // Every replica's admin API lists the leader's pass, as a single node
    // lists its own.
    until("every replica lists the leader's eviction", || async {
        let mut listed = 0;
        for base in [&a, &b, &c] {
            let res = http.get(format!("{base}/admin/v1/workers")).send().await;
            let workers: serde_json::Value = res.unwrap().json().await.unwrap();
            let recent = workers["recent_evictions"].as_array().cloned();
            let last = recent.unwrap_or_default().last().cloned();
            listed += usize::from(last.is_some_and(|pass| {
                pass["target"] == 80 * KIB
                    && pass["entries_removed"].as_u64() >= Some(10)
                    && pass["at"].is_string()
            }));
        }
        listed == 3
    })
    .await;
    // Least recently used first: the old values nobody read went, the ones
    // read through another replica stayed.
    for i in 20..35 {
        assert_eq!(
            get(&http, &b, &format!("old{i}")).await,
            StatusCode::NOT_FOUND,
            "old{i}"
        );
    }
    for i in 0..20 {
        assert_eq!(
            get(&http, &a, &format!("old{i}")).await,
            StatusCode::OK,
            "old{i}"
        );
    }

    // All at once through every replica, far past the hard limit: what is
    // acknowledged fits, the rest is refused, and nothing crosses the line.
    let writes = (0..150).map(|i| {
        let (http, base) = (http.clone(), [&a, &b, &c][i % 3].clone());
        async move { put(&http, &base, &format!("burst{i}"), 1000 + i as u32).await }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert!(statuses
        .iter()
        .all(|s| s.is_success() || *s == StatusCode::INSUFFICIENT_STORAGE));
    assert!(count(&db, "SELECT bytes FROM usage").await <= 110 * KIB as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_eviction_is_replaced_and_no_entry_points_at_a_missing_object() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let mut replicas: Vec<(String, _)> = (0..3)
        .map(|i| {
            let id = format!("r{i}");
            (id.clone(), fleet.replica(&id, BUDGET))
        })
        .collect();
    let http = Client::new();
    let db = observer(&fleet).await;
    let base = replicas[0].1.url("");
    // Past the high watermark, with the store about to hang: the leader's
    // eviction marks blobs and then waits on their objects' deletes.
    for i in 0..95 {
        assert!(put(&http, &base, &format!("k{i}"), i).await.is_success());
    }
    fleet.s3.freeze(true);
    until("the leader marks a blob for deletion", || async {
        count(&db, "SELECT count(*) FROM blobs WHERE state = 'deleting'").await > 0
    })
    .await;
    let holder = leader::holder(&db).await.unwrap().expect("a leader");
    let killed = replica_of(&holder).to_owned();
    let at = replicas.iter().position(|(id, _)| *id == killed).unwrap();
    replicas.remove(at).1.kill();
    fleet.s3.freeze(false);

    until(
        "another replica leads and finishes the eviction",
        || async {
            let now = leader::holder(&db).await.unwrap();
            // Done once blobs whose entries went are collected too: they
            // wait out the flush grace, then the next sweep takes them.
            let needed = meta::needed_blobs(&db).await.unwrap().len() as i64;
            now.is_some_and(|h| replica_of(&h) != killed)
                && count(&db, "SELECT bytes FROM usage").await <= 80 * KIB as i64
                && count(&db, "SELECT count(*) FROM blobs WHERE state = 'deleting'").await == 0
                && count(&db, "SELECT count(*) FROM blobs").await == needed
        },
    )
    .await;
    // Every object an entry needs is in the bucket, and every recorded blob
    // is needed. (An object no record names may remain for a while: the
    // sweep removes such orphans once `orphan_grace` old.)
    let objects = Objects::open(&fleet.s3.config(BUCKET)).unwrap();
    let stored = objects.list_blobs().await.unwrap();
    let needed = meta::needed_blobs(&db).await.unwrap();
    let missing: Vec<_> = needed.iter().filter(|b| !stored.contains(b)).collect();
    assert!(missing.is_empty(), "entries need objects gone: {missing:?}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM blobs").await as usize,
        needed.len()
    );
    // And the survivors serve what is left.
    let base = replicas[0].1.url("");
    assert_eq!(
        get(&http, &base, "k94").await,
        StatusCode::OK,
        "the newest stays"
    );
}
