//! The npm proxy against a static upstream (tests/proxy_support) that
//! serves what the test writes: packument rewriting and negotiation,
//! revalidation, names that must fetch nothing, a tarball that does not
//! match its packument, coalescing counted at the upstream, and eviction.

mod common;
mod httpcache_support;
mod npm_support;
mod proxy_support;

use std::time::Duration;

use common::TestServer;
use larder::config::{NamespaceConfig, Size};
use npm_support::upstream::{get, npm_proxy, write_fixture, Hash};
use proxy_support::{metric, StaticUpstream};
use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

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
    // A packument that is not JSON is refused, and not kept for its TTL.
    std::fs::write(up.root.join("garbage"), "{ not json").unwrap();
    for attempt in 1..=2 {
        let res = get(&server, "/npm/team/garbage", &[]).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(up.hits("/garbage"), attempt);
    }
    let m = server.metrics().await;
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
        open = metric(&server.metrics().await, "larder_connections_open");
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

/// Proxied tarballs are entries of their namespace: evicted by LRU with the
/// others when its quota is reached, and fetched again when asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_tarballs_are_evicted_with_other_entries_and_fetched_again() {
    let root = tempfile::tempdir().unwrap();
    let up = StaticUpstream::start(root.path()).await;
    for (i, name) in ["big-a", "big-b", "big-c"].iter().enumerate() {
        let tarball = vec![i as u8 + 1; 400 << 10];
        write_fixture(&up, name, "1.0.0", &tarball, &tarball, Hash::Sha512);
    }
    let proxy = npm_proxy(&up.url(), Duration::from_secs(300));
    let server = TestServer::start_with(|c| {
        proxy(c);
        c.namespaces.insert(
            "ev".into(),
            NamespaceConfig {
                max_size: Some(Size(1 << 20)),
            },
        );
    })
    .await;
    let status = |name: &str| {
        let url = server.url(&format!("/npm/ev/{name}/-/{name}-1.0.0.tgz"));
        // Read to the end: a streamed miss is stored before its last bytes go.
        async move {
            let res = common::client().get(url).send().await.unwrap();
            let status = res.status();
            res.bytes().await.unwrap();
            status
        }
    };
    // An HTTP cache value first: the least recently used entry.
    let put = common::client()
        .put(server.url("/cache/ev/some-key"))
        .body(vec![7u8; 400 << 10])
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    assert_eq!(status("big-a").await, StatusCode::OK);
    assert_eq!(status("big-b").await, StatusCode::OK);
    let key = common::client()
        .get(server.url("/cache/ev/some-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.status(),
        StatusCode::NOT_FOUND,
        "over the quota, the oldest went"
    );
    assert_eq!(status("big-c").await, StatusCode::OK);
    // Now big-a was the least recently used.
    assert_eq!(up.hits("/files/big-a-1.0.0.tgz"), 1);
    assert_eq!(status("big-a").await, StatusCode::OK);
    assert_eq!(
        up.hits("/files/big-a-1.0.0.tgz"),
        2,
        "the evicted tarball was fetched again"
    );
    assert_eq!(status("big-c").await, StatusCode::OK);
    assert_eq!(
        up.hits("/files/big-c-1.0.0.tgz"),
        1,
        "a kept tarball is a hit"
    );
}

/// The namespace is the tenant: without a token, or with one for another
/// namespace, nothing is served and nothing is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_in_the_path_is_what_a_token_must_grant() {
    let root = tempfile::tempdir().unwrap();
    let up = StaticUpstream::start(root.path()).await;
    write_fixture(&up, "pkg", "1.0.0", b"tgz", b"tgz", Hash::Sha512);
    let proxy = npm_proxy(&up.url(), Duration::from_secs(300));
    let server = TestServer::start_with(|c| {
        c.auth.mode = larder::config::AuthMode::Token;
        proxy(c);
    })
    .await;
    let other = httpcache_support::token(&server, &[("other", httpcache_support::RO)]);
    let team = httpcache_support::token(&server, &[("team", httpcache_support::RO)]);
    let ask = |token: Option<&str>, path: &str| {
        let mut req = common::client().get(server.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().status() }
    };
    for path in ["/npm/team/pkg", "/npm/team/pkg/-/pkg-1.0.0.tgz"] {
        assert_eq!(ask(None, path).await, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            ask(Some(&other), path).await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert_eq!(up.total(), 0, "nothing was fetched for a denied request");
    assert_eq!(
        ask(Some(&team), "/npm/team/pkg/-/pkg-1.0.0.tgz").await,
        StatusCode::OK
    );
}
