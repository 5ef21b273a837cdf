//! The dashboard in a real browser: headless Chromium (Debian's `chromium`)
//! driven by playwright-core (pinned in tests/node/package.json) through
//! tests/node/ui-check.mjs, against a token-mode server with real traffic:
//! pushes, hits, misses and an eviction. The script logs in, compares the
//! overview with the admin API and `/metrics`, checks the charts have
//! points, sorts namespaces and charts one, filters entries and opens one to
//! list its blobs, deletes an entry and purges a namespace through their
//! confirmations, creates a token named `<img src=x onerror=alert(1)>` (an
//! actions/cache key of that name is listed too), uses it with curl,
//! revokes it and sees curl refused, and signs a team-a token in to see
//! team-a only, read-only. Screenshots of each page go to
//! target/ui-screenshots/. Skips locally without node, chromium, curl or the
//! npm packages; fails under CI=true.

mod admin_support;
mod auth_support;
mod common;
mod gha_support;
// auth_support refers to it.
mod oci_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use admin_support::*;
use auth_support::token_server;
use larder::auth::READ;
use larder::config::Span;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let Some((node, script)) = tools() else {
        return;
    };
    let (server, key) = token_server(|cfg| cfg.gc.interval = Span::secs(3600)).await;
    let base = server.base();
    let token = admin_token(&key);
    let team_token = scoped_token(&key, "team-a", READ);
    let api = AdminApi::with_token(&base, &token);

    // Traffic: the oldest entry is evicted; hits and misses in team-a.
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
    // An actions/cache key is a name the client chose, with any characters.
    let gha = gha_support::V1::new(
        &server,
        Some(gha_support::token_with_key(
            &key,
            &[gha_support::rw("team-a")],
        )),
    );
    gha.save(XSS, gha_support::VERSION, &[5u8; 700]).await;
    let used = num(&api.stats().await["used_bytes"], "used_bytes");
    let report = api
        .post("/admin/v1/evict", &json!({ "target_bytes": used - 1000 }))
        .await
        .expect(StatusCode::OK);
    assert!(
        get(&api, &base, "/cache/team-c/old").await == StatusCode::NOT_FOUND,
        "{report}"
    );

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg(script)
            .env("BASE", &base)
            .env("ADMIN_TOKEN", &token)
            .env("TEAM_TOKEN", &team_token)
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
        "namespaces",
        "namespace-chart",
        "entries",
        "entry-detail",
        "purge-confirmation",
        "tokens",
        "health",
        "connect",
        "limited-namespaces",
        "limited-entries",
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
