//! Bazel action results under `ac/` pin the CAS blobs they name: an
//! action-cache hit followed by its CAS reads survives an eviction of
//! everything (the lease), an entry whose output is gone is a miss (never a
//! hit Bazel cannot use), and values that are not ActionResults (ccache's
//! `bazel` layout) stay plain bytes. Real Bazel is in `httpcache_bazel.rs`.

mod common;
mod httpcache_support;

use std::time::Duration;

use common::{client, TestServer};
use httpcache_support::*;
use larder::config::Span;
use prost::Message;
use serde_json::{json, Value};

// The REAPI messages as Bazel writes them (build.bazel.remote.execution.v2),
// the fields that matter here.
#[derive(Clone, PartialEq, Message)]
struct Digest {
    #[prost(string, tag = "1")]
    hash: String,
    #[prost(int64, tag = "2")]
    size_bytes: i64,
}

#[derive(Clone, PartialEq, Message)]
struct OutputFile {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(message, optional, tag = "2")]
    digest: Option<Digest>,
    #[prost(bool, tag = "4")]
    is_executable: bool,
}

#[derive(Clone, PartialEq, Message)]
struct OutputDirectory {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(message, optional, tag = "3")]
    tree_digest: Option<Digest>,
}

#[derive(Clone, PartialEq, Message)]
struct ActionResult {
    #[prost(message, repeated, tag = "2")]
    output_files: Vec<OutputFile>,
    #[prost(message, repeated, tag = "3")]
    output_directories: Vec<OutputDirectory>,
    #[prost(int32, tag = "4")]
    exit_code: i32,
    #[prost(message, optional, tag = "6")]
    stdout_digest: Option<Digest>,
}

#[derive(Clone, PartialEq, Message)]
struct FileNode {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    digest: Option<Digest>,
}

#[derive(Clone, PartialEq, Message)]
struct Directory {
    #[prost(message, repeated, tag = "1")]
    files: Vec<FileNode>,
}

#[derive(Clone, PartialEq, Message)]
struct Tree {
    #[prost(message, optional, tag = "1")]
    root: Option<Directory>,
}

fn digest(bytes: &[u8]) -> Option<Digest> {
    Some(Digest {
        hash: sha256_hex(bytes),
        size_bytes: bytes.len() as i64,
    })
}

/// An action with one output file, one output directory holding one file,
/// and stdout; every blob distinct.
struct Action {
    out: Vec<u8>,
    stdout: Vec<u8>,
    tree: Vec<u8>,
    in_tree: Vec<u8>,
    result: Vec<u8>,
    key: String,
}

fn action(seed: u8) -> Action {
    let out = data(4000, seed);
    let stdout = data(300, seed.wrapping_add(100));
    let in_tree = data(2000, seed.wrapping_add(50));
    let tree = Tree {
        root: Some(Directory {
            files: vec![FileNode {
                name: "gen.h".into(),
                digest: digest(&in_tree),
            }],
        }),
    }
    .encode_to_vec();
    let result = ActionResult {
        output_files: vec![OutputFile {
            path: "bazel-out/k8-fastbuild/bin/out.o".into(),
            digest: digest(&out),
            is_executable: false,
        }],
        output_directories: vec![OutputDirectory {
            path: "bazel-out/k8-fastbuild/bin/gen".into(),
            tree_digest: digest(&tree),
        }],
        exit_code: 0,
        stdout_digest: digest(&stdout),
    }
    .encode_to_vec();
    Action {
        key: sha256_hex(&[b"action".as_slice(), &[seed]].concat()),
        out,
        stdout,
        tree,
        in_tree,
        result,
    }
}

impl Action {
    fn cas(&self) -> [&Vec<u8>; 4] {
        [&self.out, &self.stdout, &self.tree, &self.in_tree]
    }

    /// Uploads as Bazel does: outputs first, then the action result.
    async fn upload(&self, s: &TestServer, ns: &str) {
        for blob in self.cas() {
            let path = format!("/cache/{ns}/cas/{}", sha256_hex(blob));
            assert_eq!(put(s, &path, blob.clone()).await, 201, "{path}");
        }
        assert_eq!(put(s, &self.ac(ns), self.result.clone()).await, 201);
    }

    fn ac(&self, ns: &str) -> String {
        format!("/cache/{ns}/ac/{}", self.key)
    }
}

async fn put(s: &TestServer, path: &str, body: Vec<u8>) -> u16 {
    client()
        .put(s.url(path))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(s: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let res = client().get(s.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.bytes().await.unwrap().to_vec())
}

async fn admin(s: &TestServer, method: reqwest::Method, path: &str, body: Value) -> Value {
    let res = client()
        .request(method, s.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

async fn evict_everything(s: &TestServer) -> Value {
    admin(
        s,
        reqwest::Method::POST,
        "/admin/v1/evict",
        json!({ "target_bytes": 0 }),
    )
    .await
}

fn server_with_lease(lease: Duration) -> impl FnOnce(&mut larder::config::Config) {
    move |c| {
        c.gc.lease = Span(lease);
        c.gc.interval = Span::secs(3600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_cache_hit_keeps_its_outputs_fetchable_through_an_eviction_of_everything() {
    let lease = Duration::from_millis(1500);
    let s = TestServer::start_with(server_with_lease(lease)).await;
    let a = action(1);
    a.upload(&s, "bazel").await;

    // The action result pins its outputs: the admin listing counts them.
    let entries = admin(
        &s,
        reqwest::Method::GET,
        "/admin/v1/entries?namespace=bazel",
        json!(null),
    )
    .await;
    let ac = ac_entry(&entries);
    assert_eq!(
        ac["blobs"], 5,
        "value + output + stdout + tree + file in tree: {ac}"
    );

    // Bazel: an AC hit, then (minutes later) the CAS reads.
    assert_eq!(get(&s, &a.ac("bazel")).await, (200, a.result.clone()));
    let report = evict_everything(&s).await;
    assert_eq!(report["entries_removed"], 5, "{report}");
    assert!(report["bytes_leased"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["reached"], false, "{report}");
    assert!(
        report["held_by"].as_str().unwrap().contains("leases"),
        "{report}"
    );
    // The entry is a miss for new lookups at once ...
    assert_eq!(get(&s, &a.ac("bazel")).await.0, 404);
    // ... but every blob the hit named stays readable while leased.
    for blob in a.cas() {
        let path = format!("/cache/bazel/cas/{}", sha256_hex(blob));
        assert_eq!(get(&s, &path).await, (200, blob.clone()), "{path}");
    }

    // Once the lease has ended, the next pass frees them all.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let report = evict_everything(&s).await;
    assert_eq!(report["reached"], true, "{report}");
    assert_eq!(report["usage_after"], 0, "{report}");
    for blob in a.cas() {
        let path = format!("/cache/bazel/cas/{}", sha256_hex(blob));
        assert_eq!(get(&s, &path).await.0, 404, "{path}");
    }
    assert!(blob_files(&s.data_dir()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_result_keeps_its_outputs_when_their_own_keys_are_evicted() {
    let s = TestServer::start_with(server_with_lease(Duration::from_millis(1))).await;
    let a = action(2);
    a.upload(&s, "bazel").await;
    // The cas/ keys go (as LRU would take them before the newer result);
    // the result still pins their blobs, and serves them by hash.
    for blob in a.cas() {
        let path = format!("/cache/bazel/cas/{}", sha256_hex(blob));
        let res = client().delete(s.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 204, "{path}");
    }
    admin(&s, reqwest::Method::POST, "/admin/v1/gc", json!({})).await;
    assert_eq!(get(&s, &a.ac("bazel")).await, (200, a.result.clone()));
    for blob in a.cas() {
        let path = format!("/cache/bazel/cas/{}", sha256_hex(blob));
        assert_eq!(get(&s, &path).await, (200, blob.clone()), "{path}");
    }
    // Another namespace cannot read them by hash.
    let other = format!("/cache/other/cas/{}", sha256_hex(&a.out));
    assert_eq!(get(&s, &other).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_result_naming_a_missing_blob_is_refused_or_a_miss_never_a_hit() {
    let s = TestServer::start_with(server_with_lease(Duration::from_millis(1))).await;
    let a = action(3);
    // Uploaded without its outputs: refused, nothing stored.
    let res = client()
        .put(s.url(&a.ac("bazel")))
        .body(a.result.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("cas/"));
    assert_eq!(get(&s, &a.ac("bazel")).await.0, 404);

    // An action result stored as plain bytes (streamed without a length, as
    // data dirs written before results were parsed hold them) whose output
    // is then deleted: a miss, not a hit.
    for blob in a.cas() {
        let path = format!("/cache/bazel/cas/{}", sha256_hex(blob));
        assert_eq!(put(&s, &path, blob.clone()).await, 201);
    }
    let chunks = vec![Ok::<_, std::io::Error>(a.result.clone())];
    let res = client()
        .put(s.url(&a.ac("bazel")))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(get(&s, &a.ac("bazel")).await, (200, a.result.clone()));
    let out = format!("/cache/bazel/cas/{}", sha256_hex(&a.out));
    assert_eq!(
        client().delete(s.url(&out)).send().await.unwrap().status(),
        204
    );
    admin(&s, reqwest::Method::POST, "/admin/v1/gc", json!({})).await;
    assert_eq!(get(&s, &out).await.0, 404);
    assert_eq!(
        get(&s, &a.ac("bazel")).await.0,
        404,
        "a hit whose output is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_are_not_action_results_stay_plain_bytes_under_ac() {
    let s = TestServer::start().await;
    // ccache's `bazel` layout: its own result format under ac/<64 hex>.
    for (i, value) in [
        b"cCrS\x00\x01some compressed object file bytes".to_vec(),
        data(100_000, 7),
        Vec::new(),
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/cache/ccache/ac/{}", sha256_hex(&[i as u8]));
        assert_eq!(put(&s, &path, value.clone()).await, 201, "{path}");
        assert_eq!(get(&s, &path).await, (200, value), "{path}");
    }
}
