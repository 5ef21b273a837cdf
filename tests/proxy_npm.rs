//! npm and pnpm through Larder's pull-through proxy (`/npm/<ns>/`), the
//! real CLIs against a real upstream: Verdaccio (tests/node) on loopback
//! with packages the test publishes. Skipped locally when node, npm,
//! Verdaccio or pnpm is missing; a failure under CI=true.
//! tests/proxy_npm_upstream.rs covers what needs a scripted upstream.

mod common;
mod httpcache_support;
mod npm_support;
mod proxy_support;

use std::time::Duration;

use common::TestServer;
use larder::config::AuthMode;
use npm_support::upstream::npm_proxy;
use npm_support::*;
use proxy_support::metric;
use reqwest::header::WARNING;
use reqwest::StatusCode;

/// The user `.npmrc` of the docs/USING.md recipe, for `server`'s `ns`.
fn npmrc(server: &TestServer, ns: &str, token: &str) -> String {
    let registry = server.url(&format!("/npm/{ns}/"));
    let auth = registry.trim_start_matches("http:");
    format!("registry={registry}\nreplace-registry-host=always\n{auth}:_authToken={token}\n")
}

/// Verdaccio with the fixtures published, and an npm to use it with.
async fn published(tools: &Tools, dir: &std::path::Path) -> (Verdaccio, Npm) {
    let verdaccio = Verdaccio::start(tools, &dir.join("verdaccio"));
    let publisher = verdaccio.add_user("publisher").await;
    let npm = Npm::new(tools, dir);
    publish_fixtures(&npm, &verdaccio.url, &publisher, dir);
    (verdaccio, npm)
}

/// The whole story with the real CLI: `npm install` through Larder (token
/// auth, as the recipe sets it up), the lockfile it writes, `npm ci`; then
/// Verdaccio stops, Larder restarts on another port, npm's cache is
/// emptied, and `npm ci` from the same lockfile, and `npm install` of a
/// fresh project (stale packuments), succeed from Larder alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_installs_through_larder_and_again_from_larder_alone() {
    let Some(tools) = tools() else { return };
    let temp = tempfile::tempdir().unwrap();
    let (verdaccio, npm) = published(&tools, temp.path()).await;

    // TTL 0: every packument request asks the upstream, so the second
    // half can only succeed by serving stale copies.
    let proxy = npm_proxy(&verdaccio.url, Duration::ZERO);
    let server = TestServer::start_with(|c| {
        c.auth.mode = AuthMode::Token;
        proxy(c);
    })
    .await;
    let token = httpcache_support::token(&server, &[("team", httpcache_support::RO)]);
    npm.config(&npmrc(&server, "team", &token));
    let project = project(temp.path());
    npm.ok(&project, &["install"]);
    assert_eq!(
        run_installed(&tools, &project),
        "larder-test-app@1.0.0 + @larder-test/greet@1.1.0"
    );

    // The lockfile records Larder's URLs in the registry's own layout.
    let registry = server.url("/npm/team");
    assert_eq!(
        lock_resolved(&project),
        [
            (
                "node_modules/@larder-test/greet".to_owned(),
                format!("{registry}/@larder-test/greet/-/greet-1.1.0.tgz")
            ),
            (
                "node_modules/larder-test-app".to_owned(),
                format!("{registry}/larder-test-app/-/larder-test-app-1.0.0.tgz")
            ),
        ]
    );
    npm.clear_cache();
    npm.ok(&project, &["ci"]);

    verdaccio.stop();
    let server = server.restart().await;
    npm.config(&npmrc(&server, "team", &token));
    npm.clear_cache();
    std::fs::remove_dir_all(project.join("node_modules")).unwrap();
    // The lockfile names the old port: replace-registry-host=always maps it.
    npm.ok(&project, &["ci"]);
    assert_eq!(
        run_installed(&tools, &project),
        "larder-test-app@1.0.0 + @larder-test/greet@1.1.0"
    );

    // A fresh project resolves from the packuments Larder keeps.
    let fresh = temp.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::copy(project.join("package.json"), fresh.join("package.json")).unwrap();
    npm.clear_cache();
    npm.ok(&fresh, &["install"]);
    assert_eq!(
        run_installed(&tools, &fresh),
        "larder-test-app@1.0.0 + @larder-test/greet@1.1.0"
    );
    let stale = common::client()
        .get(server.url("/npm/team/larder-test-app"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    assert!(stale.headers()[WARNING]
        .to_str()
        .unwrap()
        .starts_with("110"));
    let m = server.metrics().await;
    assert!(
        metric(&m, "larder_proxy_stale_served_total{ecosystem=\"npm\"}") >= 2.0,
        "{m}"
    );
    assert!(
        metric(&m, "larder_proxy_hits_total{ecosystem=\"npm\"}") >= 2.0,
        "{m}"
    );
}

/// A lockfile written through Larder installs through another namespace
/// (npm puts that registry's path in front of the recorded one) and, with
/// Larder gone, straight from the upstream when `replace-registry-host`
/// names Larder's registry URL (docs/USING.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockfiles_written_through_larder_install_elsewhere() {
    let Some(tools) = tools() else { return };
    let temp = tempfile::tempdir().unwrap();
    let (verdaccio, npm) = published(&tools, temp.path()).await;
    let mut server =
        TestServer::start_with(npm_proxy(&verdaccio.url, Duration::from_secs(300))).await;
    let registry = server.url("/npm/team/");
    npm.config(&format!(
        "registry={registry}\nreplace-registry-host=always\n"
    ));
    let project = project(temp.path());
    npm.ok(&project, &["install"]);
    let lockfile = std::fs::read(project.join("package-lock.json")).unwrap();
    let expected = "larder-test-app@1.0.0 + @larder-test/greet@1.1.0";

    let other = server.url("/npm/other/");
    npm.config(&format!("registry={other}\nreplace-registry-host=always\n"));
    npm.clear_cache();
    npm.ok(&project, &["ci"]);
    assert_eq!(run_installed(&tools, &project), expected);
    let listed = common::client()
        .get(server.url("/admin/v1/entries?namespace=other&protocol=npm"))
        .send()
        .await
        .unwrap();
    let listed = listed.text().await.unwrap();
    assert!(
        listed.contains("@larder-test/greet/-/greet-1.1.0.tgz"),
        "{listed}"
    );

    server.shutdown().await;
    npm.config(&format!(
        "registry={}/\nreplace-registry-host={registry}\n",
        verdaccio.url
    ));
    npm.clear_cache();
    npm.ok(&project, &["ci"]);
    assert_eq!(run_installed(&tools, &project), expected);
    assert_eq!(
        std::fs::read(project.join("package-lock.json")).unwrap(),
        lockfile,
        "npm ci leaves the lockfile as it was"
    );
}

/// pnpm through Larder: it installs with the same `.npmrc`, its lockfile
/// names no host (Larder's tarball URLs are in the registry's standard
/// layout, which pnpm leaves out), and a frozen install works from Larder
/// alone once Verdaccio is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_installs_through_larder_with_a_lockfile_that_names_no_host() {
    let Some(tools) = tools() else { return };
    let temp = tempfile::tempdir().unwrap();
    let (verdaccio, npm) = published(&tools, temp.path()).await;
    let proxy = npm_proxy(&verdaccio.url, Duration::from_secs(300));
    let server = TestServer::start_with(|c| {
        c.auth.mode = AuthMode::Token;
        proxy(c);
    })
    .await;
    let token = httpcache_support::token(&server, &[("team", httpcache_support::RO)]);
    npm.config(&npmrc(&server, "team", &token));
    let project = project(temp.path());
    let expected = "larder-test-app@1.0.0 + @larder-test/greet@1.1.0";
    npm.pnpm(&project, &["install"]);
    assert_eq!(run_installed(&tools, &project), expected);
    let lock = std::fs::read_to_string(project.join("pnpm-lock.yaml")).unwrap();
    assert!(lock.contains("integrity: sha512-"), "{lock}");
    assert!(
        !lock.contains("127.0.0.1") && !lock.contains("tarball"),
        "{lock}"
    );

    verdaccio.stop();
    npm.clear_cache();
    std::fs::remove_dir_all(project.join("node_modules")).unwrap();
    npm.pnpm(&project, &["install", "--frozen-lockfile"]);
    assert_eq!(run_installed(&tools, &project), expected);
}

/// yarn 1 through Larder with the same `.npmrc`: it installs, records
/// Larder's URLs in `yarn.lock`, and a frozen install works from Larder
/// alone once Verdaccio is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_installs_through_larder_and_again_from_larder_alone() {
    let Some(tools) = tools() else { return };
    let temp = tempfile::tempdir().unwrap();
    let (verdaccio, npm) = published(&tools, temp.path()).await;
    let proxy = npm_proxy(&verdaccio.url, Duration::from_secs(300));
    let server = TestServer::start_with(|c| {
        c.auth.mode = AuthMode::Token;
        proxy(c);
    })
    .await;
    let token = httpcache_support::token(&server, &[("team", httpcache_support::RO)]);
    // yarn 1 sends a token with unscoped packages only when told to.
    let auth = server.url("/npm/team/").replacen("http:", "", 1);
    npm.config(&format!(
        "{}{auth}:always-auth=true\n",
        npmrc(&server, "team", &token)
    ));
    let project = project(temp.path());
    let expected = "larder-test-app@1.0.0 + @larder-test/greet@1.1.0";
    npm.yarn(&project, &["install"]);
    assert_eq!(run_installed(&tools, &project), expected);
    let lock = std::fs::read_to_string(project.join("yarn.lock")).unwrap();
    let greet = server.url("/npm/team/@larder-test/greet/-/greet-1.1.0.tgz");
    assert!(lock.contains(&format!("resolved \"{greet}#")), "{lock}");

    verdaccio.stop();
    npm.clear_cache();
    std::fs::remove_dir_all(project.join("node_modules")).unwrap();
    npm.yarn(&project, &["install", "--frozen-lockfile"]);
    assert_eq!(run_installed(&tools, &project), expected);
}
