//! The real `ccache` (apt package `ccache`) against Larder's `/cache` tree:
//! the first compile stores its result remotely, the second — with an empty
//! local cache — is a remote hit. All three ccache layouts, with and
//! without a token, and its bytes dedup with the OCI API.

mod common;
mod httpcache_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{client, require_tool, TestServer};
use httpcache_support::*;

/// A ccache setup in its own temp dir: cache dir, config file, a C source.
struct Ccache {
    bin: PathBuf,
    cc: PathBuf,
    dir: tempfile::TempDir,
}

impl Ccache {
    /// None (skip) when ccache or a C compiler is missing outside CI.
    fn new(remote_storage: &str) -> Option<Ccache> {
        let bin = require_tool("ccache")?;
        let cc = require_tool("cc")?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ccache.conf"),
            format!(
                "remote_storage = {remote_storage}\n\
                 remote_only = true\n\
                 log_file = {}\n",
                dir.path().join("ccache.log").display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("unit.c"),
            "static int square(int x) { return x * x; }\n\
             int larder_test(int v) { return square(v) + 42; }\n",
        )
        .unwrap();
        Some(Ccache { bin, cc, dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs ccache with only this setup's configuration in effect.
    async fn run(&self, args: &[&str]) -> String {
        let mut cmd = tokio::process::Command::new(&self.bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("CCACHE_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .args(args)
            .current_dir(self.path())
            .env("CCACHE_DIR", self.path().join("dir"))
            .env("CCACHE_CONFIGPATH", self.path().join("ccache.conf"))
            .output()
            .await
            .expect("ccache runs");
        assert!(
            out.status.success(),
            "ccache {args:?} failed: {}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.path().join("ccache.log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn compile(&self) {
        let cc = self.cc.to_string_lossy().into_owned();
        std::fs::remove_file(self.path().join("unit.o")).ok();
        self.run(&[&cc, "-c", "unit.c", "-o", "unit.o"]).await;
        assert!(self.path().join("unit.o").is_file(), "no object file");
    }

    /// `ccache --print-stats` as a map, then zeroes the counters.
    async fn take_stats(&self) -> HashMap<String, u64> {
        let text = self.run(&["--print-stats"]).await;
        self.run(&["--zero-stats"]).await;
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once('\t')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect()
    }
}

/// Compiles twice with an empty local cache; asserts miss-then-remote-hit.
async fn miss_then_remote_hit(cc: &Ccache) {
    cc.compile().await;
    let first = cc.take_stats().await;
    assert_eq!(first.get("remote_storage_hit"), Some(&0), "{first:?}");
    assert!(first["remote_storage_write"] >= 1, "{first:?}");
    assert_eq!(first.get("remote_storage_error"), Some(&0), "{first:?}");

    // Nothing local survives between the runs (remote_only keeps none, and
    // the clear makes sure), so a hit can only come from Larder.
    cc.run(&["--clear"]).await;
    cc.compile().await;
    let second = cc.take_stats().await;
    assert_eq!(second.get("remote_storage_hit"), Some(&1), "{second:?}");
    assert_eq!(second.get("cache_miss"), Some(&0), "{second:?}");
    assert_eq!(second.get("remote_storage_error"), Some(&0), "{second:?}");
}

/// The hrefs of a Depth 1 PROPFIND on `path`.
async fn listing(s: &TestServer, path: &str, token: Option<&str>) -> String {
    let mut req = client()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            s.url(path),
        )
        .header("Depth", "1");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subdirs_layout_second_compile_is_a_remote_hit() {
    let s = TestServer::start().await;
    let url = format!("{}/cache/cc|layout=subdirs", s.base());
    let Some(cc) = Ccache::new(&url) else { return };
    miss_then_remote_hit(&cc).await;
    // Keys went to /<2 chars>/<rest>.
    let root = listing(&s, "/cache/cc/", None).await;
    let two_char_dir = root.split("<D:href>/cache/cc/").skip(2).any(|rest| {
        rest.split('<')
            .next()
            .is_some_and(|h| h.len() == 3 && h.ends_with('/'))
    });
    assert!(two_char_dir, "{root}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_layout_second_compile_is_a_remote_hit() {
    let s = TestServer::start().await;
    let url = format!("{}/cache/cc|layout=flat", s.base());
    let Some(cc) = Ccache::new(&url) else { return };
    miss_then_remote_hit(&cc).await;
    let root = listing(&s, "/cache/cc/", None).await;
    assert!(root.contains("<D:getcontentlength>"), "{root}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bazel_layout_with_a_bearer_token_is_a_remote_hit() {
    let s = token_server().await;
    let t = token(&s, &[("cc", RW)]);
    let url = format!("{}/cache/cc|layout=bazel|bearer-token={t}", s.base());
    let Some(cc) = Ccache::new(&url) else { return };
    miss_then_remote_hit(&cc).await;
    let ac = listing(&s, "/cache/cc/ac/", Some(&t)).await;
    assert!(ac.contains("<D:getcontentlength>"), "{ac}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_namespace_gets_no_hits_and_stores_nothing() {
    let s = token_server().await;
    let t = token(&s, &[("elsewhere", RW)]);
    let url = format!("{}/cache/cc|layout=flat|bearer-token={t}", s.base());
    let Some(cc) = Ccache::new(&url) else { return };
    cc.compile().await;
    let stats = cc.take_stats().await;
    assert_eq!(stats.get("remote_storage_hit"), Some(&0), "{stats:?}");
    assert!(stats["remote_storage_error"] >= 1, "{stats:?}");
    assert!(s.stored_blobs().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_ccache_stored_is_one_file_also_when_pushed_over_oci() {
    let s = TestServer::start().await;
    let url = format!("{}/cache/team|layout=subdirs", s.base());
    let Some(cc) = Ccache::new(&url) else { return };
    cc.compile().await;
    let blobs = s.stored_blobs().await;
    assert!(!blobs.is_empty());
    for name in &blobs {
        let content = s.stored_blob(name).await;
        let digest = format!("sha256:{}", sha256_hex(&content));
        let res = client()
            .post(s.url(&format!("/v2/team/app/blobs/uploads/?digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .body(content.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    // The same content pushed over OCI is the same blob, not a second copy.
    let mut after = s.stored_blobs().await;
    let mut before = blobs;
    after.sort();
    before.sort();
    assert_eq!(after, before);
}
