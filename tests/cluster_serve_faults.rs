//! Faults under `larder serve` replicas: the object store hanging, an
//! object deleted behind Larder's back, a replica's tier wiped. A miss is
//! fine and a 503 while a part is away is honest; a wrong byte, a dangling
//! entry or a lost write is not.

mod cluster_support;
mod common;
mod oci_support;

use cluster_support::serve::{Fleet, BUCKET};
use common::process::LarderProcess;
use oci_support::fixed_bytes;
use reqwest::{Client, StatusCode};

async fn put(http: &Client, base: &str, key: &str, value: &[u8]) -> StatusCode {
    let res = http
        .put(format!("{base}/cache/team/files/{key}"))
        .body(value.to_vec())
        .send()
        .await
        .unwrap();
    res.status()
}

async fn get(http: &Client, base: &str, key: &str) -> (StatusCode, Vec<u8>) {
    let res = http
        .get(format!("{base}/cache/team/files/{key}"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_store_is_a_503_then_recovers_and_the_tier_keeps_serving() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let (a, b) = (fleet.replica("r0", &[]), fleet.replica("r1", &[]));
    let (a, b) = (a.url(""), b.url(""));
    let http = Client::new();
    let x = fixed_bytes(1, 64 << 10);
    assert!(put(&http, &a, "x", &x).await.is_success());

    fleet.s3.freeze(true);
    // A wrote it, so its tier has it: still a hit.
    assert_eq!(get(&http, &a, "x").await, (StatusCode::OK, x.clone()));
    // B must fetch it, and a new write must store it: both are refused
    // honestly once the retries are spent.
    assert_eq!(get(&http, &b, "x").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let y = fixed_bytes(2, 1000);
    assert_eq!(
        put(&http, &a, "y", &y).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    fleet.s3.freeze(false);
    assert_eq!(get(&http, &b, "x").await, (StatusCode::OK, x));
    assert!(put(&http, &a, "y", &y).await.is_success());
    assert_eq!(get(&http, &b, "y").await, (StatusCode::OK, y));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_deleted_behind_larders_back_is_a_miss_everywhere() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let (a, b) = (fleet.replica("r0", &[]), fleet.replica("r1", &[]));
    let (a, b) = (a.url(""), b.url(""));
    let http = Client::new();
    let x = fixed_bytes(3, 10_000);
    assert!(put(&http, &a, "x", &x).await.is_success());
    let object = format!("blobs/{}", blake3::hash(&x).to_hex());
    fleet.s3.tamper(BUCKET, &object, None).await;

    // B finds the entry but not its bytes: a miss, and the entry goes…
    assert_eq!(get(&http, &b, "x").await.0, StatusCode::NOT_FOUND);
    // …so A, whose tier still has the bytes, misses too: no replica serves
    // an entry the bucket cannot back.
    assert_eq!(get(&http, &a, "x").await.0, StatusCode::NOT_FOUND);
    // Pushed again, it is whole again.
    assert!(put(&http, &a, "x", &x).await.is_success());
    assert_eq!(get(&http, &b, "x").await, (StatusCode::OK, x));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiping_a_replicas_tier_loses_nothing() {
    let Some(fleet) = Fleet::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = fleet.env("r0");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = LarderProcess::start_env(dir.path(), &[], &env);
    let http = Client::new();
    let x = fixed_bytes(4, 200_000);
    assert!(put(&http, &a.url(""), "x", &x).await.is_success());
    a.kill();
    let tier = dir.path().join("tier");
    assert!(tier.is_dir(), "the tier lives in the data dir");
    std::fs::remove_dir_all(&tier).unwrap();

    let a = LarderProcess::start_env(dir.path(), &[], &env);
    assert_eq!(get(&http, &a.url(""), "x").await, (StatusCode::OK, x));
}
