//! npm through Larder's pull-through proxy (`/npm/<ns>/`), with real
//! clients and real upstreams: Verdaccio (tests/node) on loopback with
//! packages the test publishes, driven by the real `npm` CLI (skipped
//! locally when node, npm or Verdaccio is missing, a failure under CI=true);
//! and a static upstream (tests/proxy_support) for what no honest registry
//! does — a tarball that does not match its packument — and for counting
//! upstream requests exactly.

mod common;
mod httpcache_support;
mod npm_support;
mod proxy_support;

use std::time::Duration;

use common::TestServer;
use larder::config::{AuthMode, Config, Span};
use npm_support::*;
use proxy_support::{metric, StaticUpstream};
use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_NONE_MATCH, WARNING};
use reqwest::StatusCode;
use sha2::Digest as _;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

fn npm_proxy(upstream: &str, ttl: Duration) -> impl FnOnce(&mut Config) {
    let upstream = upstream.to_owned();
    move |c| {
        c.proxy.npm.enabled = true;
        c.proxy.npm.upstream = upstream;
        c.proxy.npm.metadata_ttl = Span(ttl);
        c.proxy.read_timeout = Span(Duration::from_secs(5));
    }
}

/// The user `.npmrc` of the docs/USING.md recipe, for `server`'s `ns`.
fn npmrc(server: &TestServer, ns: &str, token: &str) -> String {
    let registry = server.url(&format!("/npm/{ns}/"));
    let auth = registry.trim_start_matches("http:");
    format!("registry={registry}\nreplace-registry-host=always\n{auth}:_authToken={token}\n")
}

async fn metrics(server: &TestServer) -> String {
    common::client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
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
    let m = metrics(&server).await;
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

// ------------------------------------------------------------ a static upstream

/// How a fixture's packument states its tarball's hash.
#[derive(Clone, Copy)]
enum Hash {
    Sha512,
    Sha1Only,
}

/// Writes packument `name` (unscoped, or scoped as `@s%2fx`) with one
/// version whose tarball holds `served` while the packument describes
/// `described` (the same bytes, unless the upstream tampers).
fn write_fixture(
    up: &StaticUpstream,
    name: &str,
    version: &str,
    described: &[u8],
    served: &[u8],
    hash: Hash,
) {
    let bare = name.rsplit('/').next().unwrap();
    let file = format!("files/{bare}-{version}.tgz");
    std::fs::create_dir_all(up.root.join("files")).unwrap();
    std::fs::write(up.root.join(&file), served).unwrap();
    let mut dist = serde_json::json!({
        "tarball": format!("{}/{file}", up.url()),
        "shasum": hex::encode(sha1::Sha1::digest(described)),
    });
    if let Hash::Sha512 = hash {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(described));
        dist["integrity"] = format!("sha512-{b64}").into();
    }
    let doc = serde_json::json!({
        "name": name,
        "dist-tags": { "latest": version },
        "modified": "2026-01-01T00:00:00.000Z",
        "readme": "only in the full form",
        "versions": { version: { "name": name, "version": version, "readme": "x", "dist": dist } },
    });
    let path = name.replacen('/', "%2f", 1);
    std::fs::write(up.root.join(path), doc.to_string()).unwrap();
}

async fn get(
    server: &TestServer,
    path: &str,
    headers: &[(reqwest::header::HeaderName, &str)],
) -> reqwest::Response {
    let mut req = common::client().get(server.url(path));
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packuments_are_rewritten_negotiated_and_revalidated() {
    let root = tempfile::tempdir().unwrap();
    let up = StaticUpstream::start(root.path()).await;
    write_fixture(&up, "@s/x", "1.0.0", b"tgz", b"tgz", Hash::Sha512);
    let server = TestServer::start_with(npm_proxy(&up.url(), Duration::from_secs(300))).await;

    let full = get(&server, "/npm/team/@s%2fx", &[]).await;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()[CONTENT_TYPE], "application/json");
    let etag = full.headers()[ETAG].to_str().unwrap().to_owned();
    let doc: serde_json::Value = full.json().await.unwrap();
    assert_eq!(doc["readme"], "only in the full form");
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        server.url("/npm/team/@s/x/-/x-1.0.0.tgz")
    );

    // The same package in every spelling npm clients use, abbreviated.
    for path in ["/npm/team/@s%2fx", "/npm/team/@s%2Fx", "/npm/team/@s/x"] {
        let res = get(
            &server,
            path,
            &[(
                ACCEPT,
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
            )],
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()[CONTENT_TYPE], ABBREVIATED);
        let doc: serde_json::Value = res.json().await.unwrap();
        assert!(doc.get("readme").is_none());
        assert_eq!(
            doc["versions"]["1.0.0"]["dist"]["tarball"],
            server.url("/npm/team/@s/x/-/x-1.0.0.tgz")
        );
    }
    // One upstream fetch per form; the rest came from the cache.
    assert_eq!(up.hits("/@s%2fx"), 2);

    let again = get(&server, "/npm/team/@s/x", &[(IF_NONE_MATCH, etag.as_str())]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[ETAG], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    // Another Host means other tarball URLs, so another tag.
    let other = get(
        &server,
        "/npm/team/@s/x",
        &[
            (IF_NONE_MATCH, etag.as_str()),
            (reqwest::header::HOST, "larder.example:5000"),
        ],
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
    let doc: serde_json::Value = other.json().await.unwrap();
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        "http://larder.example:5000/npm/team/@s/x/-/x-1.0.0.tgz"
    );

    // Names npm would never send fetch nothing and answer in npm's format.
    let before = up.total();
    for path in [
        "/npm/team/..%2f..%2fetc",
        "/npm/team/.bin",
        "/npm/team/@s%2f..",
        "/npm/team/a%00b",
        "/npm/..%2fx/y",
        "/npm/team/@s/x/-/y-1.0.0.tgz",
    ] {
        let res = get(&server, path, &[]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["error"].as_str().is_some(), "{path}: {body}");
    }
    assert_eq!(up.total(), before, "nothing was asked upstream");
    let put = common::client()
        .put(server.url("/npm/team/@s/x"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_tarball_is_refused_and_never_stored() {
    let root = tempfile::tempdir().unwrap();
    let up = StaticUpstream::start(root.path()).await;
    write_fixture(
        &up,
        "evil",
        "1.0.0",
        b"the real tarball",
        b"a tampered tarball",
        Hash::Sha512,
    );
    write_fixture(
        &up,
        "old-evil",
        "1.0.0",
        b"the real tarball",
        b"a tampered tarball",
        Hash::Sha1Only,
    );
    write_fixture(
        &up,
        "old-good",
        "1.0.0",
        b"an old tarball",
        b"an old tarball",
        Hash::Sha1Only,
    );
    let server = TestServer::start_with(npm_proxy(&up.url(), Duration::from_secs(300))).await;

    for (name, path) in [
        ("evil", "/files/evil-1.0.0.tgz"),
        ("old-evil", "/files/old-evil-1.0.0.tgz"),
    ] {
        for attempt in 1..=2 {
            let res = get(
                &server,
                &format!("/npm/team/{name}/-/{name}-1.0.0.tgz"),
                &[],
            )
            .await;
            assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{name}");
            let body: serde_json::Value = res.json().await.unwrap();
            let message = body["error"].as_str().unwrap();
            assert!(message.contains("not match"), "{name}: {message}");
            // Not stored: the next request asks the upstream again.
            assert_eq!(up.hits(path), attempt, "{name}");
        }
    }
    let good = get(&server, "/npm/team/old-good/-/old-good-1.0.0.tgz", &[]).await;
    assert_eq!(good.status(), StatusCode::OK);
    assert_eq!(good.bytes().await.unwrap(), &b"an old tarball"[..]);
    // A version the packument does not list is not fetched at all.
    let missing = get(&server, "/npm/team/evil/-/evil-9.9.9.tgz", &[]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(up.hits("/files/evil-9.9.9.tgz"), 0);
    let m = metrics(&server).await;
    assert!(
        metric(&m, "larder_proxy_upstream_errors_total{ecosystem=\"npm\"}") >= 4.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_first_tarball_requests_make_one_upstream_fetch() {
    let root = tempfile::tempdir().unwrap();
    let up = StaticUpstream::start(root.path()).await;
    let tarball: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    write_fixture(&up, "@s/popular", "2.0.0", &tarball, &tarball, Hash::Sha512);
    let server = TestServer::start_with(npm_proxy(&up.url(), Duration::from_secs(300))).await;
    let path = "/files/popular-2.0.0.tgz";

    up.hold();
    let c = common::client();
    let gets: Vec<_> = (0..20)
        .map(|_| {
            let (c, url) = (
                c.clone(),
                server.url("/npm/ci/@s/popular/-/popular-2.0.0.tgz"),
            );
            tokio::spawn(async move {
                let res = c.get(url).send().await.unwrap();
                (res.status(), res.bytes().await.unwrap())
            })
        })
        .collect();
    // The upstream holds the packument, then the tarball, until every
    // client is connected (the 21st connection is this scrape).
    let mut open = 0.0;
    for _ in 0..200 {
        open = metric(&metrics(&server).await, "larder_connections_open");
        if open >= 21.0 && up.hits("/@s%2fpopular") >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(open >= 21.0, "only {open} connections opened");
    up.release();
    for g in gets {
        let (status, body) = g.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body == tarball, "every client gets the upstream's bytes");
    }
    assert_eq!(up.hits(path), 1, "one tarball fetch for 20 clients");
    assert_eq!(
        up.hits("/@s%2fpopular"),
        1,
        "one packument fetch for 20 clients"
    );
}
