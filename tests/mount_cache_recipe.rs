//! The Larder side of docs/USING.md's recipe for `RUN --mount=type=cache`
//! contents, which `--cache-to` never exports: a build stage tars the cache
//! mounts, CI saves the tarball in Larder's HTTP cache under a key made from
//! the lockfiles (`curl -T`), and the next runner fetches it (404: start
//! empty) and unpacks it back into the mounts. Here: the same requests, with
//! a token, and a real tar of a directory tree that must come back intact.

mod common;

use std::path::Path;
use std::process::Command;

use common::TestServer;
use larder::config::AuthMode;
use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

/// A token for `namespace` from the real CLI, signed with the server's key.
fn token(data_dir: &Path, namespace: &str) -> String {
    let out = Command::new(common::process::larder_bin())
        .args([
            "token",
            "create",
            "--read",
            "--write",
            "--namespace",
            namespace,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("LARDER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().unwrap().to_owned()
}

/// Files like those a cache mount holds (npm's _cacache, Go's build cache).
fn fill(dir: &Path) {
    for (path, len) in [
        ("npm/_cacache/content-v2/sha512/ab/cd/0123", 70_000),
        ("npm/_cacache/index-v5/12/34/5678", 300),
        ("go-build/0a/0a1b2c-d", 150_000),
        ("gomod/cache/download/example.com/m/@v/v1.0.0.zip", 9_000),
    ] {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(path, bytes).unwrap();
    }
}

fn tar(args: &[&str], dir: &Path) {
    let status = Command::new("tar")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "tar {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_mount_tarball_round_trips_through_the_http_cache() {
    let server = TestServer::start_with(|c| c.auth.mode = AuthMode::Token).await;
    let bearer = format!("Bearer {}", token(&server.data_dir(), "ci"));
    let client = common::client();
    let work = tempfile::tempdir().unwrap();
    let (mounts, restored) = (work.path().join("mounts"), work.path().join("restored"));
    std::fs::create_dir_all(&mounts).unwrap();
    std::fs::create_dir_all(&restored).unwrap();
    fill(&mounts);
    tar(&["-cf", "../mounts.tar", "."], &mounts);
    let tarball = std::fs::read(work.path().join("mounts.tar")).unwrap();

    // The recipe's key: the lockfiles' hash.
    let lock_hash = hex::encode(Sha256::digest(b"package-lock.json go.sum contents"));
    let url = server.url(&format!("/cache/ci/buildkit-mounts-{lock_hash}"));

    // First runner: a miss, so it starts with empty mounts ...
    let miss = client
        .get(&url)
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(miss.status(), StatusCode::NOT_FOUND);
    // ... and saves them afterwards (curl -T sends a Content-Length PUT).
    let put = client
        .put(&url)
        .header(AUTHORIZATION, &bearer)
        .body(tarball.clone())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "PUT: {}", put.status());
    let anonymous = client.put(&url).body("x").send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Next runner: the same bytes come back and unpack to the same tree.
    let head = client
        .head(&url)
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let got = client
        .get(&url)
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    let body = got.bytes().await.unwrap();
    assert!(body[..] == tarball[..], "the tarball came back altered");
    std::fs::write(work.path().join("fetched.tar"), &body).unwrap();
    tar(&["-xf", "../fetched.tar"], &restored);
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&mounts)
        .arg(&restored)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}
