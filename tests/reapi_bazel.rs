//! The real Bazel (apt package `bazel-bootstrap`) against the gRPC cache
//! (`--remote_cache=grpc://…`, the instance name as the namespace): a
//! genrule built in one output root is a remote cache hit in a fresh one,
//! its output readable over HTTP too; a read-only token gets hits.

mod common;
mod httpcache_support;

use common::{client, TestServer};
use httpcache_support::bazel::{bazel, build, workspace};
use httpcache_support::*;
use larder::auth::READ;

fn grpc_flags(s: &TestServer, t: &str) -> [String; 3] {
    [
        format!("--remote_cache=grpc://{}", s.addr),
        "--remote_instance_name=bazel".to_owned(),
        format!("--remote_header=Authorization=Bearer {t}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_output_root_gets_a_grpc_cache_hit() {
    let Some(bazel) = bazel() else { return };
    let s = token_server().await;
    let rw = token(&s, &[("bazel", RW)]);
    let ws = workspace();
    let roots = tempfile::tempdir().unwrap();

    let first = build(
        &bazel,
        ws.path(),
        &roots.path().join("one"),
        &grpc_flags(&s, &rw),
    )
    .await;
    assert!(!first.contains("remote cache hit"), "{first}");
    let out = b"LARDER KEEPS BAZEL OUTPUTS\n";
    let url = s.url(&format!("/cache/bazel/cas/{}", sha256_hex(out)));
    let res = client().get(url).bearer_auth(&rw).send().await.unwrap();
    assert_eq!(res.status(), 200, "the output Bazel uploaded over gRPC");
    assert_eq!(res.bytes().await.unwrap(), &out[..]);

    let second = build(
        &bazel,
        ws.path(),
        &roots.path().join("two"),
        &grpc_flags(&s, &rw),
    )
    .await;
    assert!(second.contains("1 remote cache hit"), "{second}");
    assert_eq!(
        std::fs::read(ws.path().join("bazel-bin/out.txt")).unwrap(),
        out
    );

    // A read-only token (update_enabled false: Bazel then insists on
    // --noremote_upload_local_results, as USING.md says): hits, and a
    // changed action builds locally.
    let ro = token(&s, &[("bazel", READ)]);
    let mut ro_flags = grpc_flags(&s, &ro).to_vec();
    ro_flags.push("--noremote_upload_local_results".to_owned());
    let third = build(&bazel, ws.path(), &roots.path().join("three"), &ro_flags).await;
    assert!(third.contains("1 remote cache hit"), "{third}");
    std::fs::write(ws.path().join("in.txt"), "changed input\n").unwrap();
    build(&bazel, ws.path(), &roots.path().join("four"), &ro_flags).await;
    let produced = std::fs::read(ws.path().join("bazel-bin/out.txt")).unwrap();
    assert_eq!(produced, b"CHANGED INPUT\n");
}
