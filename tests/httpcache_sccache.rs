//! The real `sccache` (built with its `webdav` feature; see .ci/run) against
//! Larder's `/cache` tree over WebDAV (OpenDAL: PROPFIND, MKCOL, PUT, GET):
//! the first compile is written remotely, and after a server restart the
//! second compile is a hit that can only have come from Larder.

mod common;
mod httpcache_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{client, require_tool};
use httpcache_support::*;
use serde_json::Value;

/// An sccache client environment of its own: port, dirs, endpoint, token.
struct Sccache {
    bin: PathBuf,
    cc: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    endpoint: String,
    token: String,
}

impl Sccache {
    fn new(endpoint: String, token: String) -> Option<Sccache> {
        let bin = require_tool("sccache")?;
        let cc = require_tool("cc")?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("unit.c"),
            "static int cube(int x) { return x * x * x; }\n\
             int larder_sccache(int v) { return cube(v) - 7; }\n",
        )
        .unwrap();
        // A port of our own so a developer's sccache server is never used.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Some(Sccache {
            bin,
            cc,
            dir,
            port,
            endpoint,
            token,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = tokio::process::Command::new(&self.bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("SCCACHE_") || k == "RUSTC_WRAPPER" {
                cmd.env_remove(k);
            }
        }
        let run = cmd
            .args(args)
            .current_dir(self.path())
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
            .env("SCCACHE_DIR", self.path().join("local"))
            .env("SCCACHE_WEBDAV_ENDPOINT", &self.endpoint)
            .env("SCCACHE_WEBDAV_TOKEN", &self.token)
            .env("SCCACHE_IDLE_TIMEOUT", "0")
            .env("SCCACHE_ERROR_LOG", self.path().join("server.log"))
            .env("SCCACHE_LOG", "debug")
            .output();
        tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("sccache finishes")
            .expect("sccache runs")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("server.log")).unwrap_or_default()
    }

    async fn start(&self) {
        let out = self.run(&["--start-server"]).await;
        assert!(
            out.status.success(),
            "sccache --start-server failed: {out:?}\n{}",
            self.log()
        );
    }

    async fn stop(&self) {
        let _ = self.run(&["--stop-server"]).await;
    }

    async fn compile(&self) {
        let cc = self.cc.to_string_lossy().into_owned();
        let out = self.run(&[&cc, "-c", "unit.c", "-o", "unit.o"]).await;
        assert!(
            out.status.success(),
            "compile failed: {out:?}\n{}",
            self.log()
        );
    }

    /// (hits, misses, writes, write errors) since the server started.
    async fn stats(&self) -> (u64, u64, u64, u64) {
        let out = self.run(&["--show-stats", "--stats-format=json"]).await;
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stats JSON: {e}: {out:?}"));
        let s = &v["stats"];
        let sum = |counter: &Value| -> u64 {
            counter["counts"]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0)
        };
        (
            sum(&s["cache_hits"]),
            sum(&s["cache_misses"]),
            s["cache_writes"].as_u64().unwrap_or(0),
            s["cache_write_errors"].as_u64().unwrap_or(0),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_compile_is_a_webdav_hit() {
    let s = token_server().await;
    let t = token(&s, &[("sc", RW)]);
    let endpoint = format!("{}/cache/sc/", s.base());
    let Some(sc) = Sccache::new(endpoint, t.clone()) else {
        return;
    };

    sc.start().await;
    sc.compile().await;
    let first = sc.stats().await;
    sc.stop().await;
    assert_eq!(
        (first.0, first.1),
        (0, 1),
        "hits, misses: {first:?}\n{}",
        sc.log()
    );
    assert!(
        first.2 >= 1 && first.3 == 0,
        "writes: {first:?}\n{}",
        sc.log()
    );

    // A new sccache server has nothing in memory: a hit is Larder's.
    sc.start().await;
    sc.compile().await;
    let second = sc.stats().await;
    sc.stop().await;
    assert_eq!(
        (second.0, second.1),
        (1, 0),
        "hits, misses: {second:?}\n{}",
        sc.log()
    );
    assert!(sc.path().join("unit.o").is_file());

    // sccache nests its keys (a/b/c/abc…) in collections it MKCOLed.
    let res = client()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            s.url("/cache/sc/"),
        )
        .bearer_auth(&t)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 207);
    let listing = res.text().await.unwrap();
    assert!(listing.contains("<D:collection/>"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_namespace_is_refused_at_startup() {
    let s = token_server().await;
    let t = token(&s, &[("elsewhere", RW)]);
    let endpoint = format!("{}/cache/sc/", s.base());
    let Some(sc) = Sccache::new(endpoint, t) else {
        return;
    };
    // sccache checks its storage when its server starts and refuses to run
    // on one it may not use: Larder's 403 must reach it as "permission denied".
    let out = sc.run(&["--start-server"]).await;
    sc.stop().await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "sccache started: {out:?}");
    assert!(stderr.contains("PermissionDenied"), "{stderr}");
    assert!(s.stored_blobs().await.is_empty());
}
