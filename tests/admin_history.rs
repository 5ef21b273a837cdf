//! `GET /admin/v1/history` against a live server: its newest point agrees
//! with the stats (and so with `/metrics`) right after traffic, without
//! waiting for the once-a-minute sampler; bytes per protocol and refusals
//! per reason add up to `/metrics`' counters; evictions show up, in the
//! series and among the recent eviction reports; the series survives a
//! restart; a bad range is a JSON error; openapi.json documents a point;
//! the package proxies' lookups have series of their own.

mod admin_support;
mod common;
mod npm_support;
mod proxy_support;

use admin_support::*;
use common::TestServer;
use larder::config::Size;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Sum of `field` over a history's points (`hits.http` style for a map).
fn total(history: &Value, field: &str, protocol: Option<&str>) -> u64 {
    history["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| match protocol {
            Some(proto) => num(&p[field][proto], field),
            None => num(&p[field], field),
        })
        .sum()
}

async fn put(c: &reqwest::Client, url: String, body: Vec<u8>) {
    let res = c.put(url).body(body).send().await.expect("PUT");
    assert!(res.status().is_success(), "PUT: {}", res.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_agrees_with_stats_counts_evictions_and_survives_a_restart() {
    let server = TestServer::start().await;
    let api = AdminApi::anonymous(&server.base());
    let c = common::client();

    put(&c, server.url("/cache/team/key-1"), vec![7; 3000]).await;
    put(&c, server.url("/cache/team/key-2"), vec![8; 1000]).await;
    for path in ["/cache/team/key-1", "/cache/team/key-1", "/cache/team/nope"] {
        c.get(server.url(path)).send().await.expect("GET");
    }

    let stats = api.stats().await;
    let hour = api.get_ok("/admin/v1/history?range=hour").await;
    assert_eq!(hour["range"], "hour");
    assert_eq!(num(&hour["bucket_seconds"], "bucket_seconds"), 60);
    let newest = hour["points"].as_array().and_then(|p| p.last()).cloned();
    let newest = newest.expect("a point right after traffic");
    assert_eq!(newest["used_bytes"], stats["used_bytes"], "{hour}");
    assert_eq!(newest["used_bytes"], json!(4000));
    assert_eq!(total(&hour, "hits", Some("http")), 2, "{hour}");
    assert_eq!(total(&hour, "misses", Some("http")), 1, "{hour}");
    assert_eq!(
        total(&hour, "bytes_in", None),
        num(&stats["traffic"]["http"]["bytes_in"], "bytes_in"),
        "{hour} vs {stats}"
    );
    assert_eq!(hour["max_bytes"], stats["max_bytes"]);
    assert!(num(&hour["high_watermark_bytes"], "high") <= num(&hour["max_bytes"], "max"));

    let evicted = api
        .post("/admin/v1/evict", &json!({ "target_bytes": 0 }))
        .await;
    evicted.expect(StatusCode::OK);
    let day = api.get_ok("/admin/v1/history?range=day").await;
    assert_eq!(num(&day["bucket_seconds"], "bucket_seconds"), 900);
    assert_eq!(total(&day, "evictions", None), 2, "{day}");
    // The health page's recent eviction reports.
    let workers = api.get_ok("/admin/v1/workers").await;
    let recent = workers["recent_evictions"]
        .as_array()
        .expect("recent_evictions");
    assert_eq!(recent.len(), 1, "{workers}");
    assert_eq!(num(&recent[0]["entries_removed"], "entries_removed"), 2);
    assert_eq!(num(&recent[0]["target"], "target"), 0);
    assert!(recent[0]["at"].is_string(), "{workers}");
    let week = api.get_ok("/admin/v1/history?range=week").await;
    assert_eq!(total(&week, "hits", Some("http")), 2, "{week}");

    // A clean stop saves what happened since the last sample; the next run
    // starts from it.
    let server = server.restart().await;
    assert!(server.data_dir().join("history.json").exists());
    let api = AdminApi::anonymous(&server.base());
    let after = api.get_ok("/admin/v1/history?range=hour").await;
    assert_eq!(total(&after, "hits", Some("http")), 2, "{after}");
    assert_eq!(total(&after, "evictions", None), 2, "{after}");
    let team = api
        .get_ok("/admin/v1/history?range=day&namespace=team")
        .await;
    assert_eq!(
        total(&team, "hits", None),
        2,
        "kept across the restart: {team}"
    );

    let bad = api.get("/admin/v1/history?range=year").await;
    let msg = bad.expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    assert!(msg.contains("hour, day, week"), "{msg}");
    let bad = api.get("/admin/v1/history?span=hour").await;
    bad.expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
}

/// The sample of `name{labels}` in a `/metrics` exposition.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_per_protocol_and_refusals_per_reason_agree_with_metrics() {
    let server = TestServer::start_with(|c| c.storage.max_size = Size(1 << 20)).await;
    let api = AdminApi::anonymous(&server.base());
    let c = common::client();

    put(&c, server.url("/cache/team/key-1"), vec![7; 3000]).await;
    let got = c.get(server.url("/cache/team/key-1")).send().await;
    assert_eq!(got.expect("GET").bytes().await.expect("body").len(), 3000);
    // A write that needs more than eviction can free while a recent read
    // leases the space: refused for that reason.
    put(&c, server.url("/cache/team/big"), vec![1; 600 << 10]).await;
    let read = c.get(server.url("/cache/team/big")).send().await;
    assert_eq!(read.expect("GET").status(), StatusCode::OK);
    let refused = c
        .put(server.url("/cache/team/big-2"))
        .body(vec![2; 600 << 10])
        .send()
        .await
        .expect("PUT");
    assert_eq!(refused.status(), StatusCode::INSUFFICIENT_STORAGE);
    put(&c, server.url("/v1/cache/4242"), vec![3; 500]).await;

    let hour = api.get_ok("/admin/v1/history?range=hour").await;
    let metrics = c.get(server.url("/metrics")).send().await.expect("GET");
    let metrics = metrics.text().await.expect("metrics");
    for proto in ["http", "nx"] {
        let label = format!("{{protocol=\"{proto}\"}}");
        assert_eq!(
            total(&hour, "bytes_in_by_protocol", Some(proto)),
            sample(&metrics, &format!("larder_bytes_received_total{label}")),
            "{proto}: {hour}"
        );
        assert_eq!(
            total(&hour, "bytes_out_by_protocol", Some(proto)),
            sample(&metrics, &format!("larder_bytes_sent_total{label}")),
            "{proto}: {hour}"
        );
    }
    assert!(total(&hour, "bytes_in_by_protocol", Some("http")) >= (1200 << 10) + 3000);
    assert_eq!(total(&hour, "bytes_in_by_protocol", Some("oci")), 0);
    let by_protocol: u64 = larder::history::PROTOCOLS
        .iter()
        .map(|p| total(&hour, "bytes_in_by_protocol", Some(p)))
        .sum();
    assert_eq!(total(&hour, "bytes_in", None), by_protocol);

    let mut refusals = 0;
    for reason in ["larger_than_hard_limit", "leased", "uploads"] {
        let n = total(&hour, "refusals_by_reason", Some(reason));
        let series = format!("larder_refused_writes_total{{reason=\"{reason}\"}}");
        assert_eq!(n, sample(&metrics, &series), "{reason}: {hour}");
        refusals += n;
    }
    assert_eq!(total(&hour, "refusals_by_reason", Some("leased")), 1);
    assert_eq!(total(&hour, "refusals_by_reason", Some("disk_full")), 0);
    assert_eq!(refusals, 1, "{hour}");
    assert_eq!(total(&hour, "refusals", None), 1);

    // openapi.json says what a point holds.
    let doc = api.get_ok("/admin/v1/openapi.json").await;
    let point = &doc["paths"]["/admin/v1/history"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"]["properties"]["points"]["items"]["properties"];
    for field in [
        "t",
        "used_bytes",
        "bytes_in_by_protocol",
        "bytes_out_by_protocol",
        "refusals_by_reason",
        "hits",
    ] {
        assert!(point[field].is_object(), "{field} undocumented: {point}");
    }
    let reasons = &point["refusals_by_reason"]["properties"];
    assert!(reasons["disk_full"].is_object(), "{reasons}");
    // And the other bodies the dashboard reads.
    let body = |path: &str| {
        doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["properties"]
            .clone()
    };
    let detail = body("/admin/v1/entries/{id}");
    assert!(detail["pinned_blobs"]["items"]["properties"]["shared_by"].is_object());
    assert!(detail["only_here_bytes"].is_object(), "{detail}");
    let list = body("/admin/v1/namespaces");
    assert!(list["namespaces"]["items"]["properties"]["hits"].is_object());
    assert!(body("/admin/v1/whoami")["admin"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_lookups_have_series_of_their_own() {
    let root = tempfile::tempdir().unwrap();
    let up = proxy_support::StaticUpstream::start(root.path()).await;
    let tgz = b"a tarball".as_slice();
    npm_support::upstream::write_fixture(
        &up,
        "pkg",
        "1.0.0",
        tgz,
        tgz,
        npm_support::upstream::Hash::Sha512,
    );
    let ttl = std::time::Duration::from_secs(300);
    let server = TestServer::start_with(npm_support::upstream::npm_proxy(&up.url(), ttl)).await;
    let api = AdminApi::anonymous(&server.base());
    for _ in 0..2 {
        let got = common::client()
            .get(server.url("/npm/team/pkg/-/pkg-1.0.0.tgz"))
            .send()
            .await
            .expect("GET");
        assert_eq!(got.bytes().await.expect("body"), tgz);
    }
    let hour = api.get_ok("/admin/v1/history?range=hour").await;
    assert_eq!(total(&hour, "misses", Some("npm")), 1, "{hour}");
    assert_eq!(total(&hour, "hits", Some("npm")), 1, "{hour}");
    assert_eq!(
        total(&hour, "bytes_out_by_protocol", Some("npm")),
        2 * tgz.len() as u64
    );
    for other in ["pypi", "go"] {
        assert_eq!(total(&hour, "hits", Some(other)), 0, "{hour}");
    }
}
