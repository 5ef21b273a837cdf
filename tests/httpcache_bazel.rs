//! The real Bazel (apt package `bazel-bootstrap`) with
//! `--remote_cache=http://…/cache/<namespace>`: a genrule built in one
//! output base is a remote cache hit in a fresh one, after Bazel stored its
//! action result under `ac/` and its output under `cas/` (verified by hash).

mod common;
mod httpcache_support;

use std::time::Duration;

use common::{client, TestServer};
use httpcache_support::bazel::{bazel, build, workspace};
use httpcache_support::*;

/// `--remote_cache` at the `bazel` namespace of `s`, with token `t`.
fn cache_flags(s: &TestServer, t: &str) -> [String; 2] {
    [
        format!("--remote_cache={}", s.url("/cache/bazel")),
        format!("--remote_header=Authorization=Bearer {t}"),
    ]
}

async fn listing(s: &TestServer, path: &str, token: &str) -> String {
    client()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            s.url(path),
        )
        .bearer_auth(token)
        .header("Depth", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_output_base_gets_a_remote_cache_hit() {
    let Some(bazel) = bazel() else { return };
    let s = token_server().await;
    let t = token(&s, &[("bazel", RW)]);
    let ws = workspace();
    let roots = tempfile::tempdir().unwrap();
    let flags = cache_flags(&s, &t);

    let first = build(&bazel, ws.path(), &roots.path().join("one"), &flags).await;
    assert!(!first.contains("remote cache hit"), "{first}");
    // The action result under ac/, the output (by its SHA-256) under cas/.
    let ac = listing(&s, "/cache/bazel/ac/", &t).await;
    let cas = listing(&s, "/cache/bazel/cas/", &t).await;
    assert!(ac.contains("<D:getcontentlength>"), "{ac}");
    let out = b"LARDER KEEPS BAZEL OUTPUTS\n";
    assert!(cas.contains(&sha256_hex(out)), "{cas}");
    // Bazel's action result was parsed: its entry pins the output too.
    let entries = admin(
        &s,
        reqwest::Method::GET,
        "/admin/v1/entries?namespace=bazel",
    )
    .await;
    let ac = ac_entry(&entries);
    assert!(ac["blobs"].as_u64().unwrap() >= 2, "{ac}");

    let second = build(&bazel, ws.path(), &roots.path().join("two"), &flags).await;
    assert!(second.contains("1 remote cache hit"), "{second}");
    let produced = std::fs::read(ws.path().join("bazel-bin/out.txt")).unwrap();
    assert_eq!(produced, out);
}

/// An admin API call with an admin token of `s`.
async fn admin(s: &TestServer, method: reqwest::Method, path: &str) -> serde_json::Value {
    let key = std::fs::read_to_string(s.data_dir().join("signing.key")).unwrap();
    let spec = larder::auth::token::TokenSpec {
        subject: "test-admin".into(),
        grants: vec![],
        admin: true,
        ttl_secs: 3600,
        parent: None,
    };
    let admin = larder::auth::token::mint(&hex::decode(key.trim()).unwrap(), &spec).0;
    let mut req = client().request(method, s.url(path)).bearer_auth(admin);
    if path.ends_with("/evict") {
        req = req.json(&serde_json::json!({ "target_bytes": 0 }));
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_everything_between_two_builds_gives_a_clean_rebuild() {
    let Some(bazel) = bazel() else { return };
    let s = TestServer::start_with(|c| {
        c.auth.mode = larder::config::AuthMode::Token;
        c.gc.lease = larder::config::Span(Duration::from_millis(1));
    })
    .await;
    let t = token(&s, &[("bazel", RW)]);
    let ws = workspace();
    let roots = tempfile::tempdir().unwrap();
    let flags = cache_flags(&s, &t);
    build(&bazel, ws.path(), &roots.path().join("one"), &flags).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut report = admin(&s, reqwest::Method::POST, "/admin/v1/evict").await;
    // A cluster evicts only entries last used two touch flushes ago, so
    // that a use another replica has not written yet is never undone
    // (docs/CLUSTER.md, "Budget"): there, ask until the build's settle.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.clustered() && report["usage_after"] != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = admin(&s, reqwest::Method::POST, "/admin/v1/evict").await;
    }
    assert_eq!(report["usage_after"], 0, "{report}");

    // No stale hit naming vanished outputs: Bazel runs the action again.
    let second = build(&bazel, ws.path(), &roots.path().join("two"), &flags).await;
    assert!(!second.contains("remote cache hit"), "{second}");
    let produced = std::fs::read(ws.path().join("bazel-bin/out.txt")).unwrap();
    assert_eq!(produced, b"LARDER KEEPS BAZEL OUTPUTS\n");
    // And the rebuild filled the cache again: a third build hits.
    let third = build(&bazel, ws.path(), &roots.path().join("three"), &flags).await;
    assert!(third.contains("1 remote cache hit"), "{third}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_are_basic_auth() {
    let Some(bazel) = bazel() else { return };
    let s = token_server().await;
    let t = token(&s, &[("bazel", RW)]);
    let ws = workspace();
    let roots = tempfile::tempdir().unwrap();
    let flags = [format!(
        "--remote_cache=http://ci:{t}@{}/cache/bazel",
        s.addr
    )];
    build(&bazel, ws.path(), &roots.path().join("one"), &flags).await;
    let second = build(&bazel, ws.path(), &roots.path().join("two"), &flags).await;
    assert!(second.contains("1 remote cache hit"), "{second}");
}
