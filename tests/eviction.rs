//! The disk budget: LRU eviction, the leases that protect blobs a client
//! just saw, 507 only past the hard limit, namespace quotas and idle expiry
//! — always with every remaining manifest fully resolvable (invariant 3).
//! The lease races BuildKit runs into are in `eviction_leases.rs`.

mod common;
mod oci_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::TestServer;
use larder::config::{NamespaceConfig, Size, Span};
use oci_support::*;
use reqwest::{Client, StatusCode};

const LAYER: usize = 480 << 10;

/// Bytes on disk that count against the budget: blobs, upload sessions, temp files.
fn disk_usage(data_dir: &Path) -> u64 {
    ["blobs", "uploads", "tmp"]
        .iter()
        .flat_map(|d| files_under(&data_dir.join(d)))
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Pushes a one-layer image (layer of `size` bytes from `seed`) tagged `tag`.
async fn push_sized_image(
    c: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    seed: u32,
    size: usize,
) -> Vec<u8> {
    let layer = fixed_bytes(seed, size);
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    push_blob(c, base, repo, &config).await;
    push_blob(c, base, repo, &layer).await;
    let manifest = image_manifest(
        &descriptor(OCI_CONFIG, &config),
        &[descriptor(OCI_LAYER_GZIP, &layer)],
    );
    put_manifest(c, base, repo, tag, OCI_MANIFEST, &manifest).await;
    layer
}

async fn manifest_status(c: &Client, base: &str, repo: &str, tag: &str) -> StatusCode {
    c.get(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .expect("GET manifest")
        .status()
}

/// Polls `cond` (a state the server reaches on its own, in the background)
/// until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn budget(max: u64, lease_ms: u64) -> impl FnOnce(&mut larder::config::Config) {
    move |c| {
        c.storage.max_size = Size(max);
        c.gc.lease = Span(Duration::from_millis(lease_ms));
        c.gc.interval = Span::secs(3600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_usage_in_budget_and_removes_least_recently_used_first() {
    let max = 4u64 << 20;
    let server = TestServer::start_with(budget(max, 1500)).await;
    let (c, base, repo) = (common::client(), server.base(), "team/app");
    for i in 0..6 {
        push_sized_image(&c, &base, repo, &format!("v{i}"), i, LAYER).await;
    }
    // Use two of the first images again: they become the most recently used.
    for tag in ["v0", "v1"] {
        assert_eq!(manifest_status(&c, &base, repo, tag).await, StatusCode::OK);
    }
    for i in 6..8 {
        push_sized_image(&c, &base, repo, &format!("v{i}"), i, LAYER).await;
        assert!(
            disk_usage(&server.data_dir()) <= max,
            "usage went over the budget"
        );
    }
    // Eight images are above the high watermark (90 %): the evictor brings
    // usage under the low one (80 %) by the least recently used entries.
    let low = max * 8 / 10;
    let settled = eventually(Duration::from_secs(10), || async {
        disk_usage(&server.data_dir()) <= low
    })
    .await;
    assert!(
        settled,
        "usage {} stayed above the low watermark {low}",
        disk_usage(&server.data_dir())
    );

    let mut gone = Vec::new();
    for i in 0..8 {
        if manifest_status(&c, &base, repo, &format!("v{i}")).await == StatusCode::NOT_FOUND {
            gone.push(i);
        }
    }
    assert_eq!(
        gone,
        vec![2, 3],
        "exactly the two least recently used images go"
    );
    let report = check_manifest_refs(&c, &base, repo, &[]).await;
    assert!(
        report.broken.is_empty(),
        "broken references: {:?}",
        report.broken
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_seen_by_head_survives_eviction_of_its_entry_and_can_be_referenced_again() {
    let max = 2u64 << 20;
    let mut server = TestServer::start_with(budget(max, 1500)).await;
    let (c, base, repo) = (common::client(), server.base(), "team/app");
    let layer = push_sized_image(&c, &base, repo, "a", 1, 700 << 10).await;
    let layer_digest = sha256_digest(&layer);

    // BuildKit checks the layer exists (HEAD 200) ...
    let head = c
        .head(format!("{base}/v2/{repo}/blobs/{layer_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    // ... while a large push drives usage over the high watermark and the
    // evictor removes the layer's only entry.
    push_sized_image(&c, &base, repo, "b", 2, 1200 << 10).await;
    let evicted = eventually(Duration::from_secs(10), || async {
        manifest_status(&c, &base, repo, "a").await == StatusCode::NOT_FOUND
    })
    .await;
    assert!(evicted, "the least recently used entry was not evicted");

    // The HEAD leased the layer: the manifest that references it is accepted.
    let config = b"{\"again\":true}".to_vec();
    push_blob(&c, &base, repo, &config).await;
    let manifest = image_manifest(
        &descriptor(OCI_CONFIG, &config),
        &[descriptor(OCI_LAYER_GZIP, &layer)],
    );
    put_manifest(&c, &base, repo, "a2", OCI_MANIFEST, &manifest).await;
    assert_manifest_refs_resolve(&server, repo).await;

    // And the layer is pinned again.
    server.shutdown().await;
    let index = larder::index::Index::open(&server.data_dir().join("index")).unwrap();
    let id = index
        .resolve(&layer_digest.parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(index.pin_count(&id).unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_would_cross_the_hard_limit_gets_507_and_damages_nothing() {
    let max = 2u64 << 20;
    let server = TestServer::start_with(budget(max, 3_600_000)).await;
    let (c, base, repo) = (common::client(), server.base(), "team/app");
    let layer = push_sized_image(&c, &base, repo, "kept", 1, 1 << 20).await;
    let before = disk_usage(&server.data_dir());

    // Larger than the hard limit (max + 10 %) itself: it can never fit, so
    // it is refused as too large before any eviction.
    let huge = fixed_bytes(8, (max + max / 10 + 1) as usize);
    let res = c
        .post(format!(
            "{base}/v2/{repo}/blobs/uploads/?digest={}",
            sha256_digest(&huge)
        ))
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID").await;
    assert_eq!(
        manifest_status(&c, &base, repo, "kept").await,
        StatusCode::OK
    );

    // "kept" was just read: its lease holds its 1 MiB even once the entry is
    // evicted, so 1.5 MiB more would cross the hard limit (2.2 MiB).
    let big = fixed_bytes(9, 1536 << 10);
    let res = c
        .post(format!(
            "{base}/v2/{repo}/blobs/uploads/?digest={}",
            sha256_digest(&big)
        ))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let body = expect_error(res, StatusCode::INSUFFICIENT_STORAGE, "DENIED").await;
    assert!(body.to_string().contains("leases"), "{body}");

    // The same through a session (POST, then PUT without Content-Length).
    let location = start_upload(&c, &base, repo).await;
    let stream = futures_util::stream::iter(
        big.chunks(64 << 10)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let res = c
        .put(with_query(
            &location,
            &format!("digest={}", sha256_digest(&big)),
        ))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);

    assert_eq!(
        disk_usage(&server.data_dir()),
        before,
        "the refused writes left bytes behind, or the leased ones were deleted"
    );
    assert_manifest_refs_resolve(&server, repo).await;
    // The lease keeps the layer readable whether or not its entry went.
    assert_eq!(
        get_blob(&c, &base, repo, &sha256_digest(&layer)).await,
        layer
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_over_its_quota_loses_its_own_oldest_entries_and_no_other() {
    let server = TestServer::start_with(|c| {
        c.storage.max_size = Size(64 << 20);
        c.namespaces.insert(
            "team-a".into(),
            NamespaceConfig {
                max_size: Some(Size(1 << 20)),
            },
        );
    })
    .await;
    let (c, base) = (common::client(), server.base());
    for i in 0..3 {
        push_sized_image(
            &c,
            &base,
            "team-b/app",
            &format!("v{i}"),
            100 + i,
            400 << 10,
        )
        .await;
    }
    for i in 0..3 {
        push_sized_image(&c, &base, "team-a/app", &format!("v{i}"), i, 400 << 10).await;
    }
    // team-a pins 1.2 MiB > 1 MiB: its oldest entry goes (to 80 % of the quota).
    assert_eq!(
        manifest_status(&c, &base, "team-a/app", "v0").await,
        StatusCode::NOT_FOUND
    );
    for tag in ["v1", "v2"] {
        assert_eq!(
            manifest_status(&c, &base, "team-a/app", tag).await,
            StatusCode::OK
        );
    }
    for tag in ["v0", "v1", "v2"] {
        assert_eq!(
            manifest_status(&c, &base, "team-b/app", tag).await,
            StatusCode::OK
        );
    }
    assert_manifest_refs_resolve(&server, "team-a/app").await;
    assert_manifest_refs_resolve(&server, "team-b/app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_idle_past_max_idle_are_removed_even_under_budget() {
    let server = TestServer::start_with(|c| {
        c.gc.max_idle = Some(Span(Duration::from_millis(800)));
        c.gc.interval = Span(Duration::from_millis(200));
        c.gc.lease = Span(Duration::from_millis(800));
    })
    .await;
    let (c, base, repo) = (common::client(), server.base(), "team/app");
    push_sized_image(&c, &base, repo, "old", 1, 4096).await;
    // Watch the tag list, which (unlike a manifest GET) does not count as use.
    let expired = eventually(Duration::from_secs(10), || async {
        c.get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::NOT_FOUND
    })
    .await;
    assert!(expired, "an idle entry outlived gc.max_idle");
    // Its blobs follow once their leases end: the data dir empties.
    let emptied = eventually(Duration::from_secs(10), || async {
        blob_files(&server.data_dir()).is_empty()
    })
    .await;
    assert!(
        emptied,
        "blobs of the expired entry stayed: {:?}",
        blob_files(&server.data_dir())
    );
}
