//! The dashboard in a real browser: headless Chromium (Debian's `chromium`)
//! driven by playwright-core (pinned in tests/node/package.json) through
//! tests/node/ui-check.mjs, against a token-mode server with real traffic:
//! pushes, hits, misses, an eviction and a write refused for the budget,
//! after 40 minutes of history an earlier run saved (in the first release's
//! format, so the charts draw lines and the old file is seen to load). The
//! script logs in, compares the overview with the admin API and `/metrics`
//! (used bytes, hit ratio, bytes in and out, refusals), checks the charts
//! have points, axes, per-point titles and data tables, and break bytes down
//! by protocol and refusals by reason, sorts namespaces and charts one, filters entries and opens one to
//! list its blobs, deletes an entry and purges a namespace through their
//! confirmations, creates a token named `<img src=x onerror=alert(1)>` (an
//! actions/cache key of that name is listed too), uses it with curl,
//! revokes it and sees curl refused, and signs a team-a token in to see
//! team-a only (its own overview, namespaces and entries), read-only, and
//! a token that may write team-d purge it. Screenshots of each page go to
//! target/ui-screenshots/. Skips locally without node, chromium, curl or the
//! npm packages; fails under CI=true.

mod admin_support;
mod auth_support;
mod common;
mod gha_support;
// auth_support refers to it; it also pushes an image.
mod oci_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use admin_support::*;
use auth_support::token_server;
use larder::auth::{READ, WRITE};
use larder::config::{Size, Span};
use reqwest::StatusCode;
use serde_json::json;

const XSS: &str = "<img src=x onerror=alert(1)>";
const CHROMIUM: &str = "/usr/bin/chromium";

fn tools() -> Option<(PathBuf, PathBuf)> {
    let node = common::require_tool("node")?;
    common::require_tool("curl")?;
    if !Path::new(CHROMIUM).is_file() {
        common::skip("chromium is not installed (apt-get install chromium)");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/playwright-core").is_dir() {
        common::skip("tests/node/node_modules is missing; run `npm ci --prefix tests/node`");
        return None;
    }
    Some((node, dir.join("ui-check.mjs")))
}

async fn put(api: &AdminApi, base: &str, path: &str, len: usize) {
    let res = api
        .client
        .put(format!("{base}{path}"))
        .body(vec![b'x'; len])
        .send()
        .await
        .expect("PUT");
    assert!(res.status().is_success(), "PUT {path}: {}", res.status());
}

async fn get(api: &AdminApi, base: &str, path: &str) -> StatusCode {
    let res = api.client.get(format!("{base}{path}")).send().await;
    res.expect("GET").status()
}

/// A `history.json` as the first release wrote it (totals only, no
/// namespaces) holding the last 40 minutes of an earlier run: the charts
/// get lines to draw, and an old file is seen to load.
fn earlier_history() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let start = now - now % 60 - 40 * 60;
    let buckets: Vec<serde_json::Value> = (0..38u64)
        .map(|i| {
            json!({
                "start": start + i * 60, "hits": [i % 5, 0, 2 + i % 3, 0, 0],
                "misses": [1, 0, i % 2, 0, 0], "bytes_in": 1000 * (i % 7),
                "bytes_out": 3000 * (i % 4), "evictions": 0, "evicted_bytes": 0,
                "refusals": 0, "used_bytes": 100_000 + 5000 * i,
            })
        })
        .collect();
    json!({ "rings": [{ "width": 60, "capacity": 60, "buckets": buckets }] }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let Some((node, script)) = tools() else {
        return;
    };
    let (server, key) = token_server(|cfg| {
        std::fs::create_dir_all(&cfg.storage.data_dir).expect("data dir");
        let history = cfg.storage.data_dir.join("history.json");
        std::fs::write(history, earlier_history()).expect("history.json");
        cfg.gc.interval = Span::secs(3600);
        // Small, so that a write can be refused for crossing the hard limit.
        cfg.storage.max_size = Size(1 << 20);
    })
    .await;
    let base = server.base();
    let token = admin_token(&key);
    let team_token = scoped_token(&key, "team-a", READ);
    let writer_token = scoped_token(&key, "team-d", READ | WRITE);
    let api = AdminApi::with_token(&base, &token);

    // Traffic. First a write that needs more room than eviction can free
    // while a read leases the space: it evicts team-z's entry (the eviction
    // the pages show) and is refused for the lease.
    put(&api, &base, "/cache/team-z/big", 600 << 10).await;
    assert_eq!(get(&api, &base, "/cache/team-z/big").await, StatusCode::OK);
    let refused = api
        .client
        .put(format!("{base}/cache/team-z/big-2"))
        .body(vec![b'y'; 600 << 10])
        .send()
        .await
        .expect("PUT big-2");
    assert_eq!(refused.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(
        get(&api, &base, "/cache/team-z/big").await,
        StatusCode::NOT_FOUND
    );
    // Then hits and misses in team-a, and more namespaces.
    put(&api, &base, "/cache/team-c/old", 1000).await;
    put(&api, &base, "/cache/team-a/k1", 3000).await;
    put(&api, &base, "/cache/team-a/k2", 5000).await;
    put(&api, &base, "/cache/team-b/k1", 2000).await;
    put(&api, &base, "/cache/team-d/k1", 500).await;
    put(&api, &base, "/cache/team-e/k1", 300).await;
    for path in ["/cache/team-a/k1", "/cache/team-a/k2", "/cache/team-b/k1"] {
        assert_eq!(get(&api, &base, path).await, StatusCode::OK);
    }
    assert_eq!(
        get(&api, &base, "/cache/team-a/none").await,
        StatusCode::NOT_FOUND
    );
    // An image pushed and pulled: OCI traffic and a hit of its own.
    oci_support::push_image(&api.client, &base, "team-f/app", Some("v1"), 1, 2).await;
    oci_support::get_manifest(&api.client, &base, "team-f/app", "v1").await;
    // An actions/cache key is a name the client chose, with any characters.
    let gha = gha_support::V1::new(
        &server,
        Some(gha_support::token_with_key(
            &key,
            &[gha_support::rw("team-a")],
        )),
    );
    gha.save(XSS, gha_support::VERSION, &[5u8; 700]).await;

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg(script)
            .env("BASE", &base)
            .env("ADMIN_TOKEN", &token)
            .env("TEAM_TOKEN", &team_token)
            .env("WRITER_TOKEN", &writer_token)
            .env("SCREENSHOT_DIR", &shots)
            .env("XSS", XSS)
            .env("CHROMIUM", CHROMIUM)
            .output()
            .expect("running node")
    })
    .await
    .expect("node task");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "ui-check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for page in [
        "login",
        "overview",
        "overview-week",
        "namespaces",
        "namespace-chart",
        "entries",
        "entry-detail",
        "purge-confirmation",
        "tokens",
        "health",
        "connect",
        "limited-overview",
        "limited-namespaces",
        "limited-entries",
        "writer-purge",
    ] {
        let png =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/ui-screenshots/{page}.png"));
        assert!(
            png.metadata().is_ok_and(|m| m.len() > 1000),
            "{} missing",
            png.display()
        );
    }
}
