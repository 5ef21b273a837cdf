//! HTTP-cache keys are entries like any other: the admin API lists them
//! (protocol http, turbo, nx), overwriting re-points one entry, and
//! namespace quotas evict their least recently used keys.

mod common;
mod httpcache_support;

use common::{client, TestServer};
use httpcache_support::*;
use larder::config::{NamespaceConfig, Size};
use serde_json::Value;

async fn entries(s: &TestServer, protocol: &str) -> Vec<Value> {
    let v: Value = client()
        .get(s.url(&format!("/admin/v1/entries?protocol={protocol}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["entries"].as_array().cloned().unwrap_or_default()
}

fn names(list: &[Value]) -> Vec<(String, String, u64)> {
    let mut out: Vec<_> = list
        .iter()
        .map(|e| {
            (
                e["namespace"].as_str().unwrap().to_owned(),
                e["name"].as_str().unwrap().to_owned(),
                e["size"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn keys_of_every_http_protocol_are_listed_entries() {
    let s = TestServer::start().await;
    let put = |path: &str, len: usize| client().put(s.url(path)).body(data(len, 1)).send();
    assert!(put("/cache/team/ac/0011", 10)
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(put("/cache/team/ac/0011", 12)
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(put("/cache/other/k", 5)
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(put("/v8/artifacts/abcd?slug=web", 7)
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(put("/v1/cache/9876", 9)
        .await
        .unwrap()
        .status()
        .is_success());

    // The overwrite replaced the entry rather than adding one.
    assert_eq!(
        names(&entries(&s, "http").await),
        vec![
            ("other".into(), "k".into(), 5),
            ("team".into(), "ac/0011".into(), 12)
        ]
    );
    assert_eq!(
        names(&entries(&s, "turbo").await),
        vec![("web".into(), "abcd".into(), 7)]
    );
    assert_eq!(
        names(&entries(&s, "nx").await),
        vec![("default".into(), "9876".into(), 9)]
    );
}

#[tokio::test]
async fn a_namespace_quota_evicts_its_least_recently_used_keys() {
    let s = TestServer::start_with(|c| {
        c.namespaces.insert(
            "small".into(),
            NamespaceConfig {
                max_size: Some(Size(5000)),
            },
        );
    })
    .await;
    let put = |path: &str, seed: u8| client().put(s.url(path)).body(data(3000, seed)).send();
    let get = |path: &str| client().get(s.url(path)).send();
    assert_eq!(put("/cache/small/old", 1).await.unwrap().status(), 201);
    assert_eq!(put("/cache/big/untouched", 2).await.unwrap().status(), 201);
    assert_eq!(put("/cache/small/new", 3).await.unwrap().status(), 201);
    assert_eq!(get("/cache/small/old").await.unwrap().status(), 404);
    assert_eq!(get("/cache/small/new").await.unwrap().status(), 200);
    // Other namespaces are not touched by this one's quota.
    assert_eq!(get("/cache/big/untouched").await.unwrap().status(), 200);
}
