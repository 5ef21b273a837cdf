//! The real Bazel (apt package `bazel-bootstrap`) against the gRPC cache
//! (`--remote_cache=grpc://…`, the instance name as the namespace): a
//! genrule built in one output root is a remote cache hit in a fresh one,
//! its output readable over HTTP too; a read-only token gets hits; and a
//! build without the bytes survives an eviction between two builds.

mod common;
mod httpcache_support;

use common::{client, TestServer};
use httpcache_support::bazel::{bazel, build, workspace, Resident};
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

/// "Build without the bytes" across an eviction: a resident Bazel learns
/// the intermediate output only by its digest (an action-cache hit), the
/// cache then evicts every entry, and a changed action that consumes that
/// output still builds, because the hit leased the output for `gc.lease`
/// (USING.md: `--experimental_remote_cache_ttl` at most `gc.lease`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_without_the_bytes_survives_an_eviction() {
    let Some(bazel) = bazel() else { return };
    let s = TestServer::start().await;
    let ws = workspace();
    let rule = |copies: usize| {
        let cat = vec!["$<"; copies].join(" ");
        format!(
            "genrule(\n    name = \"copies\",\n    srcs = [\":shout\"],\n    \
             outs = [\"copies.txt\"],\n    cmd = \"cat {cat} > $@\",\n)\n"
        )
    };
    let build_file = ws.path().join("BUILD");
    let shout = std::fs::read_to_string(&build_file).unwrap();
    std::fs::write(&build_file, format!("{shout}{}", rule(2))).unwrap();
    let flags = [
        format!("--remote_cache=grpc://{}", s.addr),
        "--remote_instance_name=bazel".to_owned(),
        "--remote_download_toplevel".to_owned(),
    ];
    let roots = tempfile::tempdir().unwrap();

    Resident::new(&bazel, ws.path(), &roots.path().join("one"))
        .build("//:copies", &flags)
        .await;
    let resident = Resident::new(&bazel, ws.path(), &roots.path().join("two"));
    let hits = resident.build("//:copies", &flags).await;
    assert!(hits.contains("2 remote cache hit"), "{hits}");

    let res = client()
        .post(s.url("/admin/v1/evict"))
        .json(&serde_json::json!({ "target_bytes": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.unwrap();
    assert!(report["entries_removed"].as_u64() >= Some(2), "{report}");
    assert!(report["bytes_leased"].as_u64() > Some(0), "{report}");

    // Only the changed action runs, and it reads `shout`'s output, which
    // this Bazel never downloaded, from the cache.
    std::fs::write(&build_file, format!("{shout}{}", rule(3))).unwrap();
    resident.build("//:copies", &flags).await;
    let copies = std::fs::read(ws.path().join("bazel-bin/copies.txt")).unwrap();
    assert_eq!(copies, b"LARDER KEEPS BAZEL OUTPUTS\n".repeat(3));
}
