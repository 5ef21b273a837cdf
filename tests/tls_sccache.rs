//! The real `sccache` over HTTPS (WebDAV on `/cache`), trusting the test CA
//! through `SSL_CERT_FILE` (its HTTP client uses OpenSSL): a compile is
//! written, and after an sccache restart the same compile is a hit that can
//! only have come from Larder. (ccache's HTTP storage has no https:// and
//! stays on plain HTTP; see docs/USING.md.)

mod common;
mod tls_support;

use std::path::Path;
use std::time::Duration;

use common::{require_tool, TestServer};
use serde_json::Value;
use tls_support::TestCa;

async fn sccache(
    bin: &Path,
    dir: &Path,
    port: u16,
    env: &[(&str, String)],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("SCCACHE_") || k == "RUSTC_WRAPPER" || k.starts_with("SSL_CERT") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .current_dir(dir)
        .env("SCCACHE_SERVER_PORT", port.to_string())
        .env("SCCACHE_DIR", dir.join("local"))
        .env("SCCACHE_IDLE_TIMEOUT", "0")
        .env("SCCACHE_ERROR_LOG", dir.join("server.log"))
        .env("SCCACHE_LOG", "info")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("sccache finishes")
        .expect("sccache runs")
}

fn hits_and_misses(stats: &std::process::Output) -> (u64, u64) {
    let v: Value = serde_json::from_slice(&stats.stdout)
        .unwrap_or_else(|e| panic!("stats JSON: {e}: {stats:?}"));
    let sum = |counter: &Value| -> u64 {
        counter["counts"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    (
        sum(&v["stats"]["cache_hits"]),
        sum(&v["stats"]["cache_misses"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sccache_hits_over_https_with_the_ca() {
    let (Some(bin), Some(cc)) = (require_tool("sccache"), require_tool("cc")) else {
        return;
    };
    let ca = TestCa::new();
    ca.install("larder-test");
    let (cert, key) = (ca.cert_path(), ca.key_path());
    let server = TestServer::start_with(move |c| {
        c.server.tls_cert = Some(cert);
        c.server.tls_key = Some(key);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("unit.c"),
        "int larder_tls(int v) { return v * 3 + 1; }\n",
    )
    .unwrap();
    // A port of our own so a developer's sccache server is never used.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [
        (
            "SCCACHE_WEBDAV_ENDPOINT",
            format!("https://{}/cache/sc/", server.addr),
        ),
        ("SSL_CERT_FILE", ca.ca_path().display().to_string()),
    ];
    let cc = cc.to_string_lossy().into_owned();
    let log = || std::fs::read_to_string(d.join("server.log")).unwrap_or_default();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let out = sccache(&bin, d, port, &env, &["--start-server"]).await;
        assert!(out.status.success(), "start: {out:?}\n{}", log());
        let out = sccache(&bin, d, port, &env, &[&cc, "-c", "unit.c", "-o", "unit.o"]).await;
        assert!(out.status.success(), "compile: {out:?}\n{}", log());
        let stats = sccache(
            &bin,
            d,
            port,
            &env,
            &["--show-stats", "--stats-format=json"],
        )
        .await;
        seen.push(hits_and_misses(&stats));
        sccache(&bin, d, port, &env, &["--stop-server"]).await;
    }
    assert_eq!(
        seen,
        [(0, 1), (1, 0)],
        "a miss, then Larder's hit\n{}",
        log()
    );
}
