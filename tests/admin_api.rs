//! The admin API (`/admin/v1/…`) against live servers: stats, namespaces and
//! entries as pushes and lookups change them, entry and namespace removal,
//! gc and evict reports, workers, tokens minted and revoked through the API,
//! the admin token required on every route, and an OpenAPI document that
//! matches the routes actually served.

mod admin_support;
mod auth_support;
mod common;
mod oci_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use admin_support::*;
use auth_support::{
    basic_client, expect_denied, expect_token_response, expect_unauthorized, fetch_token_get,
    peek_claims, token_server, Challenge,
};
use common::TestServer;
use larder::api::admin::ROUTES;
use larder::config::{Config, NamespaceConfig, Size, Span};
use oci_support::*;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const LEASE: Duration = Duration::from_millis(1);

/// A server without auth (everything open), whose periodic GC ran once at
/// startup and will not run again during the test.
async fn open_server(adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|cfg| {
        cfg.gc.interval = Span::secs(3600);
        adjust(cfg);
    })
    .await
}

/// `traffic.<protocol>` of a stats body as (hits, misses, bytes_in, bytes_out);
/// zeros when the protocol has had no traffic yet.
fn traffic(stats: &Value, protocol: &str) -> [u64; 4] {
    let t = &stats["traffic"][protocol];
    if t.is_null() {
        return [0; 4];
    }
    ["hits", "misses", "bytes_in", "bytes_out"].map(|k| num(&t[k], &format!("traffic.{k}")))
}

/// Every byte an image put on the server: config, layers, manifest.
fn image_bytes(img: &PushedImage) -> u64 {
    (img.config.len() + img.layers.iter().map(Vec::len).sum::<usize>() + img.manifest.len()) as u64
}

/// The entry name of an OCI manifest.
fn entry_name(repo: &str, digest: &str) -> String {
    format!("{repo}@{digest}")
}

/// The status of `GET /v2/<repo>/manifests/<reference>`.
async fn manifest_status(c: &Client, base: &str, repo: &str, reference: &str) -> StatusCode {
    c.get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .expect("GET manifest")
        .status()
}

async fn head_status(c: &Client, url: &str) -> StatusCode {
    c.head(url).send().await.expect("HEAD").status()
}

/// The id of the entry named `name` among all entries.
async fn entry_id(api: &AdminApi, name: &str) -> u64 {
    let all = api.all_entries("", 1000).await;
    let e = all
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name} in {all:?}"));
    num(&e["id"], "entry id")
}

// ---------------------------------------------------------------- stats

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_reflect_pushes_and_lookups() {
    let server = open_server(|_| {}).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();

    let empty = api.stats().await;
    assert_eq!(empty["version"], env!("CARGO_PKG_VERSION"), "{empty}");
    num(&empty["uptime_seconds"], "uptime_seconds");
    assert_eq!(
        num(&empty["max_bytes"], "max_bytes"),
        server.config.storage.max_size.bytes()
    );
    for key in [
        "used_bytes",
        "blobs",
        "namespaces",
        "uploads_in_progress",
        "evictions",
        "evicted_bytes",
    ] {
        assert_eq!(
            num(&empty[key], key),
            0,
            "{key} of an empty server: {empty}"
        );
    }
    for protocol in ["oci", "gha", "http", "turbo", "nx"] {
        assert_eq!(
            num(&empty["entries"][protocol], protocol),
            0,
            "entries.{protocol} of an empty server: {empty}"
        );
    }

    let a = push_image(&c, &base, "team-a/app", Some("v1"), 1, 2).await;
    let b = push_image(&c, &base, "team-b/app", Some("v1"), 2, 1).await;
    let pushed = image_bytes(&a) + image_bytes(&b);
    let after = api.stats().await;
    assert_eq!(num(&after["blobs"], "blobs"), 4 + 3, "{after}");
    assert_eq!(num(&after["entries"]["oci"], "entries.oci"), 2, "{after}");
    assert_eq!(num(&after["used_bytes"], "used_bytes"), pushed, "{after}");
    assert_eq!(num(&after["namespaces"], "namespaces"), 2, "{after}");
    assert_eq!(num(&after["uploads_in_progress"], "uploads"), 0, "{after}");
    let t0 = traffic(&after, "oci");
    assert_eq!(
        t0[2], pushed,
        "traffic.oci.bytes_in counts every pushed byte"
    );
    assert_eq!(
        after["traffic"].get("admin"),
        None,
        "the admin API is not a cache protocol: {after}"
    );

    // Lookups: three hits (two blobs, a manifest), two misses.
    let blob_url =
        |repo: &str, bytes: &[u8]| format!("{base}/v2/{repo}/blobs/{}", sha256_digest(bytes));
    assert_eq!(
        head_status(&c, &blob_url("team-a/app", &a.layers[1])).await,
        StatusCode::OK
    );
    assert_eq!(
        head_status(&c, &blob_url("team-b/app", &b.config)).await,
        StatusCode::OK
    );
    assert_eq!(
        head_status(&c, &format!("{base}/v2/team-a/app/manifests/v1")).await,
        StatusCode::OK
    );
    assert_eq!(
        head_status(&c, &blob_url("team-a/app", b"never pushed")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        manifest_status(&c, &base, "team-b/app", "no-such-tag").await,
        StatusCode::NOT_FOUND
    );
    let t1 = traffic(&api.stats().await, "oci");
    assert_eq!(t1[0] - t0[0], 3, "hits after 3 found lookups");
    assert_eq!(t1[1] - t0[1], 2, "misses after 2 failed lookups");

    // A GET is a hit too, and its body counts as bytes sent.
    assert_eq!(
        get_blob(&c, &base, "team-a/app", &sha256_digest(&a.layers[0])).await,
        a.layers[0]
    );
    let t2 = traffic(&api.stats().await, "oci");
    assert_eq!(t2[0] - t1[0], 1, "a blob GET is a hit");
    assert_eq!(
        t2[3] - t1[3],
        a.layers[0].len() as u64,
        "bytes_out of one blob GET"
    );
}

// ---------------------------------------------------------------- namespaces

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_show_usage_entries_last_use_and_quotas() {
    let server = open_server(|cfg| {
        cfg.namespaces.insert(
            "team-a".into(),
            NamespaceConfig {
                max_size: Some(Size(64 << 20)),
            },
        );
        cfg.namespaces.insert(
            "quiet".into(),
            NamespaceConfig {
                max_size: Some(Size(1 << 20)),
            },
        );
    })
    .await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();

    // team-a: two manifests in two repositories sharing one layer (counted once).
    let layer = fixed_bytes(7, 3000);
    let (c1, c2) = (br#"{"one":1}"#.to_vec(), br#"{"two":2}"#.to_vec());
    let mut team_a = layer.len() as u64;
    for (repo, config) in [("team-a/app", &c1), ("team-a/lib", &c2)] {
        push_blob(&c, &base, repo, config).await;
        push_blob(&c, &base, repo, &layer).await;
        let m = image_manifest(
            &descriptor(OCI_CONFIG, config),
            &[descriptor(OCI_LAYER_GZIP, &layer)],
        );
        put_manifest(&c, &base, repo, "v1", OCI_MANIFEST, &m).await;
        team_a += (config.len() + m.len()) as u64;
    }
    let b = push_image(&c, &base, "team-b/app", Some("v1"), 3, 1).await;

    let ns = api.namespaces().await;
    let a = &ns["team-a"];
    assert_eq!(num(&a["used_bytes"], "used_bytes"), team_a, "{a}");
    assert_eq!(num(&a["entries"], "entries"), 2, "{a}");
    assert_eq!(num(&a["quota_bytes"], "quota_bytes"), 64 << 20, "{a}");
    assert_recent(
        &a["last_used"],
        Duration::from_secs(120),
        "team-a last_used",
    );

    let tb = &ns["team-b"];
    assert_eq!(
        num(&tb["used_bytes"], "used_bytes"),
        image_bytes(&b),
        "{tb}"
    );
    assert_eq!(num(&tb["entries"], "entries"), 1, "{tb}");
    assert_eq!(tb["quota_bytes"], Value::Null, "team-b has no quota: {tb}");
    assert_recent(
        &tb["last_used"],
        Duration::from_secs(120),
        "team-b last_used",
    );

    let quiet = ns
        .get("quiet")
        .unwrap_or_else(|| panic!("a namespace with a quota is listed even when empty: {ns:?}"));
    assert_eq!(num(&quiet["used_bytes"], "used_bytes"), 0, "{quiet}");
    assert_eq!(num(&quiet["entries"], "entries"), 0, "{quiet}");
    assert_eq!(
        num(&quiet["quota_bytes"], "quota_bytes"),
        1 << 20,
        "{quiet}"
    );
    assert_eq!(quiet["last_used"], Value::Null, "never used: {quiet}");
    assert_eq!(ns.len(), 3, "exactly team-a, team-b, quiet: {ns:?}");
}

// ---------------------------------------------------------------- entries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_filter_by_namespace_and_protocol() {
    let server = open_server(|_| {}).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    let a1 = push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await;
    let a2 = push_image(&c, &base, "team-a/app", Some("v2"), 2, 2).await;
    let b1 = push_image(&c, &base, "team-b/app", Some("v1"), 3, 1).await;

    let all = api.all_entries("", 100).await;
    assert_eq!(all.len(), 3, "{all:?}");
    for (repo, img) in [
        ("team-a/app", &a1),
        ("team-a/app", &a2),
        ("team-b/app", &b1),
    ] {
        let name = entry_name(repo, &img.digest);
        let e = all
            .iter()
            .find(|e| e["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no entry {name}: {all:?}"));
        assert_eq!(e["protocol"], "oci", "{e}");
        assert_eq!(e["namespace"], repo.split('/').next().unwrap(), "{e}");
        assert_eq!(num(&e["size"], "size"), image_bytes(img), "{e}");
        assert_eq!(
            num(&e["blobs"], "blobs"),
            2 + img.layers.len() as u64,
            "{e}"
        );
        assert_recent(&e["created"], Duration::from_secs(120), "created");
        assert_recent(&e["last_used"], Duration::from_secs(120), "last_used");
    }

    let team_a = api.all_entries("namespace=team-a", 100).await;
    assert_eq!(
        names(&team_a),
        BTreeSet::from([
            entry_name("team-a/app", &a1.digest),
            entry_name("team-a/app", &a2.digest)
        ])
    );
    assert!(
        team_a.iter().all(|e| e["namespace"] == "team-a"),
        "{team_a:?}"
    );
    let b_oci = api.all_entries("namespace=team-b&protocol=oci", 100).await;
    assert_eq!(
        names(&b_oci),
        BTreeSet::from([entry_name("team-b/app", &b1.digest)])
    );
    assert_eq!(api.all_entries("protocol=oci", 100).await.len(), 3);
    for query in [
        "protocol=gha",
        "protocol=http",
        "namespace=team-a&protocol=nx",
        "namespace=nobody",
        "namespace=team",
    ] {
        let (page, next) = api.entries_page(query).await;
        assert!(page.is_empty(), "{query}: {page:?}");
        assert_eq!(next, None, "{query}: no next page");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_in_lru_mru_and_size_order() {
    let server = open_server(|_| {}).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    // Created in this order; sizes: e2 > e1 > e3.
    let e1 = push_image(&c, &base, "team-a/one", Some("v1"), 1, 2).await;
    let e2 = push_image(&c, &base, "team-a/two", Some("v1"), 2, 3).await;
    let e3 = push_image(&c, &base, "team-a/three", Some("v1"), 3, 1).await;
    assert!(image_bytes(&e2) > image_bytes(&e1) && image_bytes(&e1) > image_bytes(&e3));
    let id1 = entry_id(&api, &entry_name("team-a/one", &e1.digest)).await;
    let id2 = entry_id(&api, &entry_name("team-a/two", &e2.digest)).await;
    let id3 = entry_id(&api, &entry_name("team-a/three", &e3.digest)).await;
    let order = |o: &'static str| {
        let api = api.clone();
        async move { ids(&api.all_entries(&format!("order={o}"), 100).await) }
    };
    assert_eq!(order("lru").await, [id1, id2, id3], "lru: oldest first");
    assert_eq!(order("mru").await, [id3, id2, id1], "mru: newest first");
    assert_eq!(order("size").await, [id2, id1, id3], "size: largest first");
    assert_eq!(
        ids(&api.all_entries("", 100).await),
        [id1, id2, id3],
        "lru is the default order"
    );

    // Using e1 makes it the most recently used. Last-used times are stamped
    // in milliseconds: let the clock move past e3's creation first.
    tokio::time::sleep(Duration::from_millis(3)).await;
    get_manifest(&c, &base, "team-a/one", "v1").await;
    // A lookup records recency in memory only; the recency flusher writes it
    // to the index every 2 s, and the admin API lists from the index. GC
    // starts by flushing recency, so running it makes the touch visible now
    // instead of at some flusher tick.
    api.gc().await;
    assert_eq!(order("lru").await, [id2, id3, id1], "lru after using e1");
    assert_eq!(order("mru").await, [id1, id3, id2], "mru after using e1");
    assert_eq!(order("size").await, [id2, id1, id3], "size ignores recency");
    let listed = api.all_entries("order=mru", 1).await;
    let first = &listed[0];
    assert_eq!(num(&first["id"], "id"), id1);
    let created = humantime::parse_rfc3339(first["created"].as_str().unwrap()).unwrap();
    let used = humantime::parse_rfc3339(first["last_used"].as_str().unwrap()).unwrap();
    assert!(
        used >= created,
        "last_used {used:?} before created {created:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_with_limit_and_cursor_covers_every_entry_once() {
    let server = open_server(|_| {}).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    let mut team_a = BTreeSet::new();
    for seed in 0..7u32 {
        let repo = if seed < 4 { "team-a/app" } else { "team-b/app" };
        let img = push_image(&c, &base, repo, None, 10 + seed, 1 + (seed as usize % 3)).await;
        if seed < 4 {
            team_a.insert(entry_name(repo, &img.digest));
        }
    }
    for order in ["lru", "mru", "size"] {
        let (whole, next) = api.entries_page(&format!("order={order}&limit=1000")).await;
        assert_eq!(whole.len(), 7, "{order}");
        assert_eq!(next, None, "{order}: one page holds everything");
        let whole = ids(&whole);
        assert_eq!(
            whole.iter().collect::<BTreeSet<_>>().len(),
            7,
            "{order}: distinct ids"
        );
        for limit in [1, 2, 3, 6, 7] {
            let paged = ids(&api.all_entries(&format!("order={order}"), limit).await);
            assert_eq!(
                paged, whole,
                "{order} in pages of {limit}: each entry once, in order"
            );
        }
        // A page that ends exactly at the last entry has no next page.
        let (page, next) = api.entries_page(&format!("order={order}&limit=7")).await;
        assert_eq!((page.len(), next), (7, None), "{order}: limit = total");
        let (page, next) = api.entries_page(&format!("order={order}&limit=4")).await;
        let next = next.unwrap_or_else(|| panic!("{order}: 4 of 7 has a next page"));
        let (rest, after) = api
            .entries_page(&format!("order={order}&limit=4&cursor={next}"))
            .await;
        assert_eq!(
            (page.len(), rest.len(), after),
            (4, 3, None),
            "{order}: 4 + 3"
        );
        let filtered = api
            .all_entries(&format!("order={order}&namespace=team-a"), 3)
            .await;
        assert_eq!(names(&filtered), team_a, "{order}: team-a in pages of 3");
        assert_eq!(filtered.len(), 4, "{order}: no duplicates");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_entry_removes_it_and_the_indexes_that_need_it() {
    let server = open_server(|_| {}).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    let repo = "team-a/app";
    let m = push_image(&c, &base, repo, Some("m"), 1, 1).await;
    let index = image_index(&[(OCI_MANIFEST, &m.manifest)]);
    let index_digest = put_manifest(&c, &base, repo, "idx", OCI_INDEX, &index).await;
    let n = push_image(&c, &base, repo, Some("n"), 2, 1).await;
    let m_id = entry_id(&api, &entry_name(repo, &m.digest)).await;
    let idx_id = entry_id(&api, &entry_name(repo, &index_digest)).await;

    let res = api.delete(&format!("/admin/v1/entries/{m_id}")).await;
    let body = res.expect(StatusCode::OK);
    let removed = body["removed"]
        .as_array()
        .unwrap_or_else(|| panic!("removed is not a list: {body}"));
    assert_eq!(
        ids(removed).into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([m_id, idx_id]),
        "the manifest and the index that needs it: {body}"
    );
    for reference in ["m", m.digest.as_str(), "idx", index_digest.as_str()] {
        assert_eq!(
            manifest_status(&c, &base, repo, reference).await,
            StatusCode::NOT_FOUND,
            "{repo}:{reference} after removing its entry"
        );
    }
    assert_eq!(manifest_status(&c, &base, repo, "n").await, StatusCode::OK);
    assert_eq!(get_manifest(&c, &base, repo, &n.digest).await.0, n.manifest);
    let left = api.all_entries("", 100).await;
    assert_eq!(names(&left), BTreeSet::from([entry_name(repo, &n.digest)]));
    assert_eq!(num(&api.stats().await["entries"]["oci"], "entries.oci"), 1);

    api.delete(&format!("/admin/v1/entries/{m_id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, Some("not_found"));
    api.delete("/admin/v1/entries/987654321")
        .await
        .expect_error(StatusCode::NOT_FOUND, Some("not_found"));
    api.delete("/admin/v1/entries/abc")
        .await
        .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_namespace_removes_only_its_entries() {
    let server = open_server(|_| {}).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await;
    push_image(&c, &base, "team-a/lib", Some("v1"), 2, 2).await;
    let b = push_image(&c, &base, "team-b/app", Some("v1"), 3, 1).await;
    // A namespace whose name starts like the purged one.
    push_image(&c, &base, "team-ab/app", Some("v1"), 4, 1).await;

    let body = api
        .delete("/admin/v1/namespaces/team-a")
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["namespace"], "team-a", "{body}");
    assert_eq!(
        num(&body["entries_removed"], "entries_removed"),
        2,
        "{body}"
    );

    for repo in ["team-a/app", "team-a/lib"] {
        assert_eq!(
            manifest_status(&c, &base, repo, "v1").await,
            StatusCode::NOT_FOUND,
            "{repo}"
        );
    }
    for repo in ["team-b/app", "team-ab/app"] {
        assert_eq!(
            manifest_status(&c, &base, repo, "v1").await,
            StatusCode::OK,
            "{repo}"
        );
    }
    assert_eq!(
        get_manifest(&c, &base, "team-b/app", "v1").await.0,
        b.manifest
    );
    assert!(api.all_entries("namespace=team-a", 100).await.is_empty());
    assert_eq!(api.all_entries("", 100).await.len(), 2);
    let ns = api.namespaces().await;
    if let Some(a) = ns.get("team-a") {
        assert_eq!(num(&a["entries"], "entries"), 0, "purged team-a: {a}");
        assert_eq!(num(&a["used_bytes"], "used_bytes"), 0, "purged team-a: {a}");
    }
    assert_eq!(num(&ns["team-b"]["entries"], "entries"), 1);
    assert_eq!(num(&ns["team-ab"]["entries"], "entries"), 1);

    // Purging what holds nothing succeeds and removes nothing.
    let body = api
        .delete("/admin/v1/namespaces/nobody")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        num(&body["entries_removed"], "entries_removed"),
        0,
        "{body}"
    );
}

// ---------------------------------------------------------------- gc and evict

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_returns_a_report_of_what_it_removed() {
    let server = open_server(|cfg| cfg.gc.lease = Span(LEASE)).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    let img = push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await;
    let stray = fixed_bytes(99, 5000);
    push_blob(&c, &base, "team-a/app", &stray).await;
    outlive_lease(LEASE).await;

    let report = api.gc().await;
    for key in [
        "uploads_expired",
        "entries_expired",
        "blobs_removed",
        "bytes_freed",
        "usage_after",
    ] {
        num(&report[key], key);
    }
    assert_eq!(
        num(&report["uploads_expired"], "uploads_expired"),
        0,
        "{report}"
    );
    assert_eq!(
        num(&report["entries_expired"], "entries_expired"),
        0,
        "{report}"
    );
    assert_eq!(
        num(&report["blobs_removed"], "blobs_removed"),
        1,
        "the unreferenced blob: {report}"
    );
    assert_eq!(
        num(&report["bytes_freed"], "bytes_freed"),
        stray.len() as u64,
        "{report}"
    );
    assert_eq!(
        num(&report["usage_after"], "usage_after"),
        image_bytes(&img),
        "{report}"
    );

    let stats = api.stats().await;
    assert_eq!(num(&stats["used_bytes"], "used_bytes"), image_bytes(&img));
    assert_eq!(num(&stats["blobs"], "blobs"), 3);
    assert_eq!(
        num(&stats["evicted_bytes"], "evicted_bytes"),
        stray.len() as u64,
        "{stats}"
    );
    let stray_url = format!("{base}/v2/team-a/app/blobs/{}", sha256_digest(&stray));
    assert_eq!(head_status(&c, &stray_url).await, StatusCode::NOT_FOUND);
    assert_eq!(
        get_manifest(&c, &base, "team-a/app", "v1").await.0,
        img.manifest
    );
    assert_eq!(
        get_blob(&c, &base, "team-a/app", &sha256_digest(&img.layers[0])).await,
        img.layers[0]
    );

    // Nothing left to collect.
    let again = api.gc().await;
    assert_eq!(num(&again["blobs_removed"], "blobs_removed"), 0, "{again}");
    assert_eq!(num(&again["bytes_freed"], "bytes_freed"), 0, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_to_zero_removes_everything_and_says_so() {
    let server = open_server(|cfg| cfg.gc.lease = Span(LEASE)).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    let images = [
        (
            "team-a/app",
            push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await,
        ),
        (
            "team-a/app",
            push_image(&c, &base, "team-a/app", Some("v2"), 2, 1).await,
        ),
        (
            "team-b/app",
            push_image(&c, &base, "team-b/app", Some("v1"), 3, 1).await,
        ),
    ];
    let total: u64 = images.iter().map(|(_, i)| image_bytes(i)).sum();
    assert_eq!(num(&api.stats().await["used_bytes"], "used_bytes"), total);
    outlive_lease(LEASE).await;

    let report = api
        .post("/admin/v1/evict", &json!({ "target_bytes": 0 }))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        num(&report["entries_removed"], "entries_removed"),
        3,
        "{report}"
    );
    assert_eq!(
        num(&report["blobs_removed"], "blobs_removed"),
        9,
        "{report}"
    );
    assert_eq!(
        num(&report["bytes_freed"], "bytes_freed"),
        total,
        "{report}"
    );
    assert_eq!(num(&report["bytes_leased"], "bytes_leased"), 0, "{report}");
    assert_eq!(num(&report["usage_after"], "usage_after"), 0, "{report}");
    assert_eq!(report["reached"], json!(true), "{report}");

    let stats = api.stats().await;
    assert_eq!(num(&stats["used_bytes"], "used_bytes"), 0, "{stats}");
    assert_eq!(num(&stats["blobs"], "blobs"), 0, "{stats}");
    assert_eq!(num(&stats["entries"]["oci"], "entries.oci"), 0, "{stats}");
    assert_eq!(
        num(&stats["evicted_bytes"], "evicted_bytes"),
        total,
        "{stats}"
    );
    assert_eq!(
        num(&stats["evictions"], "evictions"),
        3,
        "stats.evictions counts entries removed by eviction: {stats}"
    );
    assert!(api.all_entries("", 100).await.is_empty());
    for (repo, img) in &images {
        assert_eq!(
            manifest_status(&c, &base, repo, &img.digest).await,
            StatusCode::NOT_FOUND
        );
        let url = format!("{base}/v2/{repo}/blobs/{}", sha256_digest(&img.layers[0]));
        assert_eq!(head_status(&c, &url).await, StatusCode::NOT_FOUND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_with_a_bad_body_is_a_400_json_error() {
    let server = open_server(|cfg| cfg.gc.lease = Span(LEASE)).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await;
    outlive_lease(LEASE).await;
    for body in [
        "",
        "not json",
        "{}",
        "[]",
        r#"{"target_bytes":"0"}"#,
        r#"{"target_bytes":-1}"#,
        r#"{"target_bytes":1.5}"#,
        r#"{"target_bytes":null}"#,
        r#"{"target_bytes":0,"also":1}"#,
        r#"{"target":0}"#,
    ] {
        let res = api.send(Method::POST, "/admin/v1/evict", Some(body)).await;
        let msg = res.expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
        assert!(
            msg.contains("target_bytes"),
            "{body:?}: message names the field: {msg}"
        );
    }
    let stats = api.stats().await;
    assert_eq!(
        num(&stats["entries"]["oci"], "entries.oci"),
        1,
        "nothing was evicted: {stats}"
    );
}

// ---------------------------------------------------------------- workers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_listed_after_they_ran() {
    // A small budget, so that one write crosses the high watermark and wakes
    // the evictor (which otherwise checks every 10 s).
    let server = open_server(|cfg| cfg.storage.max_size = Size(1 << 20)).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    let c = common::client();
    push_blob(&c, &base, "team-a/app", &fixed_bytes(5, 950 << 10)).await;

    let want = [
        "recency-flusher",
        "gc",
        "evictor",
        "heap-trim",
        "index-snapshot",
    ];
    let ran = eventually(Duration::from_secs(20), || {
        let api = api.clone();
        async move {
            let body = api.get_ok("/admin/v1/workers").await;
            want.iter()
                .all(|w| body["workers"][*w]["runs"].as_u64().unwrap_or(0) > 0)
        }
    })
    .await;
    let body = api.get_ok("/admin/v1/workers").await;
    assert!(ran, "every worker has run: {body}");
    let workers = body["workers"].as_object().expect("workers is an object");
    for w in want {
        let s = &workers[w];
        assert!(num(&s["runs"], "runs") >= 1, "{w}: {s}");
        assert_eq!(num(&s["failures"], "failures"), 0, "{w}: {s}");
        assert_eq!(s["last_error"], Value::Null, "{w}: {s}");
        assert_recent(&s["last_run"], Duration::from_secs(60), "last_run");
        num(&s["last_duration_ms"], "last_duration_ms");
        assert!(num(&s["every_secs"], "every_secs") > 0, "{w}: {s}");
    }
    assert_eq!(
        num(&workers["gc"]["every_secs"], "every_secs"),
        3600,
        "gc.interval"
    );
}

// ---------------------------------------------------------------- bad requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_and_unknown_ids_are_json_errors() {
    let server = open_server(|_| {}).await;
    let base = server.base();
    let api = AdminApi::anonymous(&base);
    push_image(&common::client(), &base, "team-a/app", Some("v1"), 1, 1).await;
    for query in [
        "order=bogus",
        "order=",
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=ten",
        "protocol=xyz",
        "protocol=",
        "cursor=abc",
        "cursor=-5",
        "colour=blue",
    ] {
        let res = api.get(&format!("/admin/v1/entries?{query}")).await;
        res.expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    }
    for path in [
        "/admin/v1/entries/424242",
        "/admin/v1/entries/18446744073709551615",
    ] {
        api.delete(path)
            .await
            .expect_error(StatusCode::NOT_FOUND, Some("not_found"));
    }
    for path in ["/admin/v1/entries/x1", "/admin/v1/entries/-1"] {
        api.delete(path)
            .await
            .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    }
    // The valid extremes are accepted.
    api.get_ok("/admin/v1/entries?limit=1").await;
    api.get_ok("/admin/v1/entries?limit=1000&order=size&protocol=oci&cursor=0")
        .await;
}

// ---------------------------------------------------------------- tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_minted_listed_without_secret_and_revoked() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let admin = AdminApi::with_token(&base, &admin_token(&key));

    let body = json!({
        "namespaces": ["team-a"], "read": true, "write": true, "ttl": "1h", "name": "ci-runner"
    });
    let created = admin
        .post("/admin/v1/tokens", &body)
        .await
        .expect(StatusCode::CREATED);
    let token = created["token"].as_str().expect("token").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    let expires_at = num(&created["expires_at"], "expires_at");
    let now = larder::auth::token::now_secs();
    assert!(
        expires_at.abs_diff(now + 3600) <= 60,
        "expires_at {expires_at} is an hour from {now}"
    );
    let claims = peek_claims(&token);
    assert_eq!(claims["jti"], id.as_str(), "{claims}");
    assert_eq!(claims["exp"], expires_at, "{claims}");
    assert_ne!(claims["larder_admin"], true, "not an admin token: {claims}");

    // It works on the OCI API for its namespace, and only there.
    let user = bearer(&token);
    let img = push_image(&user, &base, "team-a/app", Some("v1"), 1, 1).await;
    assert_eq!(
        get_manifest(&user, &base, "team-a/app", "v1").await.0,
        img.manifest
    );
    let res = user
        .post(format!("{base}/v2/team-b/app/blobs/uploads/"))
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    expect_denied(res).await;
    let as_user = AdminApi::with_token(&base, &token);
    as_user
        .get("/admin/v1/stats")
        .await
        .expect_error(StatusCode::FORBIDDEN, Some("forbidden"));

    // A registry token exchanged from it works too (until the revocation).
    let challenge = Challenge {
        realm: format!("{base}/v2/token"),
        service: Some("larder".into()),
        scope: None,
    };
    let exchanged = expect_token_response(
        fetch_token_get(
            &basic_client("ci", &token),
            &challenge,
            &["repository:team-a/app:pull,push"],
        )
        .await,
    )
    .await;
    let via_exchange = bearer(&exchanged);
    assert_eq!(
        manifest_status(&via_exchange, &base, "team-a/app", "v1").await,
        StatusCode::OK
    );

    // An admin token minted through the API works on the admin API.
    let ops = admin
        .post(
            "/admin/v1/tokens",
            &json!({ "namespaces": ["*"], "admin": true, "name": "ops" }),
        )
        .await
        .expect(StatusCode::CREATED);
    let ops_token = ops["token"].as_str().unwrap().to_owned();
    let ops_id = ops["id"].as_str().unwrap().to_owned();
    let as_ops = AdminApi::with_token(&base, &ops_token);
    as_ops.stats().await;

    // Listed, with metadata and never the secret.
    let listing = admin.get("/admin/v1/tokens").await;
    let list = listing.expect(StatusCode::OK);
    for secret in [&token, &ops_token] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(
            !listing.text.contains(signature),
            "the listing contains a token: {}",
            listing.text
        );
    }
    let find = |list: &Value, id: &str| -> Value {
        list["tokens"]
            .as_array()
            .expect("tokens is a list")
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("token {id} is not listed: {list}"))
    };
    let t = find(&list, &id);
    assert_eq!(t["name"], "ci-runner", "{t}");
    assert_eq!(t["namespaces"], json!(["team-a"]), "{t}");
    assert_eq!(
        (&t["read"], &t["write"], &t["admin"]),
        (&json!(true), &json!(true), &json!(false)),
        "{t}"
    );
    assert_eq!(t["expires_at"], expires_at, "{t}");
    assert_eq!(t["revoked"], false, "{t}");
    assert_eq!(find(&list, &ops_id)["admin"], true);

    // Revoked: 204, then 401 everywhere, the exchanged token included.
    let res = admin.delete(&format!("/admin/v1/tokens/{id}")).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "revoke: {}", res.text);
    assert!(res.text.is_empty(), "a 204 has no body: {:?}", res.text);
    let res = user
        .get(format!("{base}/v2/team-a/app/manifests/v1"))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    expect_unauthorized(res, &base).await;
    let res = user
        .post(format!("{base}/v2/team-a/app/blobs/uploads/"))
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    expect_unauthorized(res, &base).await;
    let res = via_exchange
        .get(format!("{base}/v2/team-a/app/manifests/v1"))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    expect_unauthorized(res, &base).await;
    as_user
        .get("/admin/v1/stats")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, Some("unauthenticated"));
    let list = admin.get_ok("/admin/v1/tokens").await;
    assert_eq!(find(&list, &id)["revoked"], true, "{list}");
    assert_eq!(find(&list, &ops_id)["revoked"], false, "{list}");

    admin.delete(&format!("/admin/v1/tokens/{ops_id}")).await;
    as_ops
        .get("/admin/v1/stats")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, Some("unauthenticated"));
    as_ops
        .get("/admin/v1/tokens")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, Some("unauthenticated"));
    // The admin token the test minted itself is untouched.
    admin.stats().await;

    // Bad mint requests.
    for bad in [
        json!({ "namespaces": ["team-a"] }),
        json!({ "namespaces": [], "read": true }),
        json!({ "namespaces": [""], "read": true }),
        json!({ "read": true }),
        json!({ "namespaces": ["team-a"], "read": true, "ttl": "soon" }),
        json!({ "namespaces": ["team-a"], "read": true, "owner": "me" }),
    ] {
        admin
            .post("/admin/v1/tokens", &bad)
            .await
            .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    }
    admin
        .delete("/admin/v1/tokens/not%20an%20id")
        .await
        .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));

    // An id the server never saw is not "revoked" by a typo; force insists.
    let unknown = "0123456789abcdef0123456789abcdef";
    let message = admin
        .delete(&format!("/admin/v1/tokens/{unknown}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, Some("not_found"));
    assert!(
        message.contains(unknown) && message.contains("force"),
        "{message}"
    );
    admin
        .delete(&format!("/admin/v1/tokens/{unknown}?force=maybe"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    let res = admin
        .delete(&format!("/admin/v1/tokens/{unknown}?force=true"))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    // Every listed token says when it was last used (null: not yet).
    let list = admin.get_ok("/admin/v1/tokens").await;
    assert!(find(&list, &id)["last_used"].is_u64(), "{list}");
    for t in list["tokens"].as_array().unwrap() {
        assert!(t["last_used"].is_u64() || t["last_used"].is_null(), "{t}");
    }
}

// ---------------------------------------------------------------- every route

/// What the routes' parameters refer to: an entry (in team-a), a namespace
/// to purge (scratch) and a token id.
struct Fixture {
    entry_id: u64,
    namespace: String,
    jti: String,
}

/// A token-mode server with content for every route to act on.
async fn fixture_server() -> (TestServer, Vec<u8>, Fixture) {
    let (server, key) = token_server(|cfg| cfg.gc.interval = Span::secs(3600)).await;
    let admin = AdminApi::with_token(&server.base(), &admin_token(&key));
    let fx = fixture(&admin).await;
    (server, key, fx)
}

/// Content for every route to act on, created as `admin`.
async fn fixture(admin: &AdminApi) -> Fixture {
    let (c, base) = (&admin.client, admin.base.as_str());
    let img = push_image(c, base, "team-a/app", Some("v1"), 1, 1).await;
    push_image(c, base, "scratch/app", Some("v1"), 2, 1).await;
    let entry_id = entry_id(admin, &entry_name("team-a/app", &img.digest)).await;
    let created = admin
        .post(
            "/admin/v1/tokens",
            &json!({ "namespaces": ["team-a"], "read": true }),
        )
        .await
        .expect(StatusCode::CREATED);
    Fixture {
        entry_id,
        namespace: "scratch".into(),
        jti: created["id"].as_str().unwrap().to_owned(),
    }
}

/// A plausible request for a documented route: (method, path and query, body).
fn route_request(method: &str, path: &str, fx: &Fixture) -> (Method, String, Option<String>) {
    let concrete = path
        .replace("{namespace}", &fx.namespace)
        .replace("{id}", &fx.entry_id.to_string())
        .replace("{jti}", &fx.jti);
    assert!(
        !concrete.contains('{'),
        "route {path} has a parameter this test does not know; teach route_request"
    );
    let query = if path == "/admin/v1/entries" {
        "?namespace=team-a&protocol=oci&order=mru&limit=10"
    } else {
        ""
    };
    let body = match (method, path) {
        ("post", "/admin/v1/evict") => Some(json!({ "target_bytes": 1u64 << 50 }).to_string()),
        ("post", "/admin/v1/tokens") => Some(
            json!({ "namespaces": ["team-a"], "read": true, "ttl": "1h", "name": "route-check" })
                .to_string(),
        ),
        ("post", _) => Some("{}".to_owned()),
        _ => None,
    };
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
    (method, format!("{concrete}{query}"), body)
}

/// The start of a response body, for failure lists.
fn short(text: &str) -> String {
    match text.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The documented routes as path → methods.
fn documented() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (method, path, _, _) in ROUTES {
        assert!(
            out.entry(path).or_default().insert(method.to_string()),
            "ROUTES lists {method} {path} twice"
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_requires_an_admin_token() {
    let (server, key, fx) = fixture_server().await;
    let base = server.base();
    let anonymous = AdminApi::anonymous(&base);
    // A token that reads no namespace: the namespace views open to other
    // tokens (tests/admin_scoped.rs) have nothing to show it either.
    let user = AdminApi::with_token(&base, &metrics_token(&key));
    let forged = AdminApi::with_token(&base, "not.a.token");
    let admin = AdminApi::with_token(&base, &admin_token(&key));
    let mut wrong = Vec::new();

    for (method, path, _, _) in ROUTES {
        let (m, url, body) = route_request(method, path, &fx);
        for (who, api, status, code) in [
            (
                "no token",
                &anonymous,
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            ),
            (
                "a forged token",
                &forged,
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            ),
            (
                "a non-admin token",
                &user,
                StatusCode::FORBIDDEN,
                "forbidden",
            ),
        ] {
            let res = api.send(m.clone(), &url, body.as_deref()).await;
            let json = serde_json::from_str::<Value>(&res.text).ok();
            let got_code = json
                .as_ref()
                .and_then(|j| j["error"]["code"].as_str().map(str::to_owned));
            let challenged = res
                .www_authenticate
                .as_deref()
                .is_some_and(|v| v.starts_with("Bearer"));
            if status == StatusCode::UNAUTHORIZED && res.status == status && !challenged {
                wrong.push(format!(
                    "{m} {url} with {who}: 401 without a Bearer WWW-Authenticate ({:?})",
                    res.www_authenticate
                ));
            }
            if res.status != status || got_code.as_deref() != Some(code) {
                wrong.push(format!(
                    "{m} {url} with {who}: {} {} (want {status} {code})",
                    res.status,
                    short(&res.text)
                ));
            }
        }
    }
    // The refusals changed nothing.
    assert!(
        ids(&admin.all_entries("", 100).await).contains(&fx.entry_id),
        "a refused DELETE must not remove the entry"
    );
    assert_eq!(admin.all_entries("namespace=scratch", 100).await.len(), 1);

    for (method, path, _, ok) in ROUTES {
        let (m, url, body) = route_request(method, path, &fx);
        let res = admin.send(m.clone(), &url, body.as_deref()).await;
        if res.status.as_u16() != *ok {
            wrong.push(format!(
                "{m} {url} with an admin token: {} {} (want {ok})",
                res.status,
                short(&res.text)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "routes answering wrongly:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_every_admin_route_is_open() {
    let server = open_server(|_| {}).await;
    let anonymous = AdminApi::anonymous(&server.base());
    let fx = fixture(&anonymous).await;
    let mut wrong = Vec::new();
    for (method, path, _, ok) in ROUTES {
        let (m, url, body) = route_request(method, path, &fx);
        let res = anonymous.send(m.clone(), &url, body.as_deref()).await;
        if res.status.as_u16() != *ok {
            wrong.push(format!(
                "{m} {url} without a token: {} {} (want {ok})",
                res.status,
                short(&res.text)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "auth.mode = \"none\" but routes refuse:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_routes_served() {
    let (server, key, fx) = fixture_server().await;
    let base = server.base();
    let admin = AdminApi::with_token(&base, &admin_token(&key));
    let doc = admin.get_ok("/admin/v1/openapi.json").await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Its paths and methods are exactly ROUTES.
    let mut wrong = Vec::new();
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut in_doc: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (path, item) in paths {
        let ops = item
            .as_object()
            .unwrap_or_else(|| panic!("{path} is not an object"));
        for (method, op) in ops {
            in_doc
                .entry(path.as_str())
                .or_default()
                .insert(method.clone());
            let (_, _, summary, ok) = ROUTES
                .iter()
                .find(|(m, p, _, _)| m == method && p == path)
                .unwrap_or_else(|| panic!("{method} {path} is documented but not in ROUTES"));
            assert_eq!(op["summary"], *summary, "{method} {path}");
            assert!(
                op["responses"].get(ok.to_string()).is_some(),
                "{method} {path} documents its success status {ok}: {op}"
            );
            let params: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            assert_eq!(params, in_path, "{method} {path}: path parameters");
            // Only the operations that read a body describe one (a GET or
            // DELETE with a requestBody tells clients to send what the
            // server ignores).
            let takes_body =
                method == "post" && matches!(path.as_str(), "/admin/v1/evict" | "/admin/v1/tokens");
            if op.get("requestBody").is_some() != takes_body {
                wrong.push(format!(
                    "{method} {path}: {}",
                    if takes_body {
                        "the route reads a JSON body but no requestBody is documented"
                    } else {
                        "a requestBody is documented but the route takes no body"
                    },
                ));
            }
        }
    }
    assert_eq!(in_doc, documented(), "the document lists exactly ROUTES");

    // Every documented operation answers with its documented success status.
    for (method, path, _, ok) in ROUTES {
        let (m, url, body) = route_request(method, path, &fx);
        let res = admin.send(m.clone(), &url, body.as_deref()).await;
        if res.status.as_u16() != *ok {
            wrong.push(format!(
                "{m} {url}: {} {} (want {ok})",
                res.status,
                short(&res.text)
            ));
        } else if *ok != 204 && serde_json::from_str::<Value>(&res.text).is_err() {
            wrong.push(format!(
                "{m} {url}: {ok} without a JSON body: {}",
                short(&res.text)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the document does not match the routes:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_not_documented_for_a_path_is_405() {
    let (server, key, fx) = fixture_server().await;
    let base = server.base();
    let admin = AdminApi::with_token(&base, &admin_token(&key));
    let mut wrong = Vec::new();
    for (path, methods) in documented() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if methods.contains(method) {
                continue;
            }
            let (m, url, _) = route_request(method, path, &fx);
            let body = (m != Method::GET && m != Method::DELETE).then_some("{}");
            let res = admin.send(m.clone(), &url, body).await;
            if res.status != StatusCode::METHOD_NOT_ALLOWED {
                wrong.push(format!("{m} {url}: {} {}", res.status, short(&res.text)));
                continue;
            }
            // RFC 9110: a 405 lists the methods the resource supports.
            let allow: BTreeSet<String> = res
                .allow
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty() && s != "head")
                .collect();
            if allow != methods {
                wrong.push(format!(
                    "{m} {url}: 405 with Allow {:?}, want {methods:?}",
                    res.allow
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "undocumented methods:\n{}",
        wrong.join("\n")
    );
    // The refused requests changed nothing.
    assert!(ids(&admin.all_entries("", 100).await).contains(&fx.entry_id));
}
