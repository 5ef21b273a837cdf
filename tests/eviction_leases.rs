//! Under disk-budget pressure a build never breaks (docs/ARCHITECTURE.md, Eviction):
//! sustained writes far past the budget are never refused, and a client that
//! resolved an entry (a BuildKit cache import, an Actions cache lookup) can
//! fetch every blob it pinned for a lease even if the entry is evicted
//! meanwhile. The request sequences are BuildKit's and actions/toolkit's
//! (docs/USING.md: the registry cache, actions/cache).

mod common;
mod gha_support;
mod oci_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use gha_support::{block_id, put_block, put_block_list, rw, V1, V2, VERSION};
use larder::config::{Size, Span};
use oci_support::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const BROAD_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*";

async fn evict_everything(c: &Client, base: &str) -> Value {
    let res = c
        .post(format!("{base}/admin/v1/evict"))
        .json(&json!({ "target_bytes": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn metric(c: &Client, base: &str, name: &str) -> u64 {
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A BuildKit cache export, `mode=max`: layers and a cache config, in the
/// image-manifest form (default since BuildKit 0.21) or the index form.
struct CacheExport {
    layers: Vec<Vec<u8>>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    media_type: &'static str,
}

fn cache_export(seed: u32, layers: usize, layer_size: usize, index_form: bool) -> CacheExport {
    let layers: Vec<Vec<u8>> = (0..layers)
        .map(|i| fixed_bytes(seed * 100 + i as u32, layer_size))
        .collect();
    let config = format!("{{\"layers\":[],\"records\":[],\"seed\":{seed}}}").into_bytes();
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|l| {
            let mut d = descriptor(OCI_LAYER_GZIP, l);
            d["annotations"] = json!({ "buildkit/createdat": "2026-12-05T00:00:00Z" });
            d
        })
        .collect();
    let (manifest, media_type) = if index_form {
        let mut all = layer_descs;
        all.push(descriptor(CACHE_CONFIG, &config));
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": all });
        (serde_json::to_vec(&index).unwrap(), OCI_INDEX)
    } else {
        (
            image_manifest(&descriptor(CACHE_CONFIG, &config), &layer_descs),
            OCI_MANIFEST,
        )
    };
    CacheExport {
        layers,
        config,
        manifest,
        media_type,
    }
}

impl CacheExport {
    /// `--cache-to type=registry`: HEAD each blob, push the missing ones,
    /// then the manifest under `tag`.
    async fn push(&self, c: &Client, base: &str, repo: &str, tag: &str) {
        for blob in self.layers.iter().chain([&self.config]) {
            let head = c
                .head(format!("{base}/v2/{repo}/blobs/{}", sha256_digest(blob)))
                .send()
                .await
                .unwrap();
            if head.status() == StatusCode::NOT_FOUND {
                push_blob(c, base, repo, blob).await;
            }
        }
        put_manifest(c, base, repo, tag, self.media_type, &self.manifest).await;
    }
}

/// Steps 1 and 2 of a BuildKit import: HEAD the tag with a broad Accept,
/// then GET the manifest by the digest it answered.
async fn resolve_cache(c: &Client, base: &str, repo: &str, tag: &str) -> String {
    let head = c
        .head(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("accept", BROAD_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let digest = must_header(&head, "docker-content-digest");
    assert!(header(&head, "content-length").is_some());
    let res = c
        .get(format!("{base}/v2/{repo}/manifests/{digest}"))
        .header("accept", BROAD_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    digest
}

async fn blob_status(c: &Client, base: &str, repo: &str, blob: &[u8]) -> StatusCode {
    c.get(format!("{base}/v2/{repo}/blobs/{}", sha256_digest(blob)))
        .send()
        .await
        .unwrap()
        .status()
}

fn lease(ms: u64) -> impl FnOnce(&mut larder::config::Config) {
    move |c| {
        c.gc.lease = Span(Duration::from_millis(ms));
        c.gc.interval = Span::secs(3600);
    }
}

const LEASE_MS: u64 = 3000;

async fn outlive(ms: u64) {
    // A lease ends with time; nothing else to wait for.
    tokio::time::sleep(Duration::from_millis(ms + 50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buildkit_import_racing_an_eviction_of_everything_fetches_every_layer() {
    for index_form in [false, true] {
        let s = TestServer::start_with(lease(LEASE_MS)).await;
        let (c, base, repo) = (common::client(), s.base(), "team/app");
        let export = cache_export(1, 3, 200 << 10, index_form);
        export.push(&c, &base, repo, "cache").await;

        // The build starts: it resolves the cache manifest ...
        resolve_cache(&c, &base, repo, "cache").await;
        // ... eviction removes everything while the first steps run ...
        let report = evict_everything(&c, &base).await;
        assert_eq!(report["entries_removed"], 1, "{report}");
        assert_eq!(report["reached"], false, "{report}");
        assert!(report["bytes_leased"].as_u64().unwrap() > 0, "{report}");
        // ... a new import no longer finds the cache (a miss, fine) ...
        let head = c
            .head(format!("{base}/v2/{repo}/manifests/cache"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
        // ... but this one fetches its cache config and every layer, also
        // as a resumed read.
        assert_eq!(
            get_blob(&c, &base, repo, &sha256_digest(&export.config)).await,
            export.config
        );
        for layer in &export.layers {
            assert_eq!(
                get_blob(&c, &base, repo, &sha256_digest(layer)).await,
                *layer
            );
            let res = c
                .get(format!("{base}/v2/{repo}/blobs/{}", sha256_digest(layer)))
                .header("range", "bytes=1000-")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
            assert_eq!(res.bytes().await.unwrap(), layer[1000..]);
        }

        // After the lease, the next pass frees them.
        outlive(LEASE_MS).await;
        let report = evict_everything(&c, &base).await;
        assert_eq!(report["reached"], true, "{report}");
        for blob in export.layers.iter().chain([&export.config]) {
            assert_eq!(
                blob_status(&c, &base, repo, blob).await,
                StatusCode::NOT_FOUND
            );
        }
        assert!(blob_files(&s.data_dir()).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actions_cache_v1_lookup_racing_an_eviction_still_downloads() {
    let s = gha_support::start(lease(LEASE_MS)).await;
    let v1 = V1::new(&s, Some(gha_support::token(&s, &[rw("repo")])));
    let archive = fixed_bytes(7, 300 << 10);
    v1.save("index-repo-1-0a1b2c3d#1", VERSION, &archive).await;

    let hit = v1.hit("index-repo-1-0a1b2c3d#", VERSION).await;
    let url = hit["archiveLocation"].as_str().unwrap().to_owned();
    let report = admin_evict(&s, &common::client()).await;
    assert_eq!(report["reached"], false, "{report}");
    assert_eq!(
        v1.lookup("index-repo-1-0a1b2c3d#", VERSION).await.status(),
        StatusCode::NO_CONTENT
    );

    download_survives_the_lease_only(&s, &url, &archive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actions_cache_v2_lookup_racing_an_eviction_still_downloads() {
    let s = gha_support::start(lease(LEASE_MS)).await;
    let v2 = V2::new(&s, Some(gha_support::token(&s, &[rw("repo")])));
    let archive = fixed_bytes(8, 300 << 10);
    let upload = v2.create("buildkit-blob-1-sha256:abc", VERSION).await;
    let http = common::client();
    let half = archive.len() / 2;
    assert_eq!(
        put_block(&http, &upload, &block_id(0), &archive[..half])
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        put_block(&http, &upload, &block_id(1), &archive[half..])
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        put_block_list(&http, &upload, &[block_id(0), block_id(1)])
            .await
            .status(),
        StatusCode::CREATED
    );
    let done = v2
        .finalize(
            "buildkit-blob-1-sha256:abc",
            VERSION,
            json!(archive.len().to_string()),
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);

    let hit = v2
        .download_url("buildkit-blob-1-sha256:abc", &[], VERSION)
        .await;
    let url = hit["signed_download_url"].as_str().unwrap().to_owned();
    let report = admin_evict(&s, &http).await;
    assert_eq!(report["reached"], false, "{report}");
    assert_eq!(
        v2.download_url("buildkit-blob-1-sha256:abc", &[], VERSION)
            .await["ok"],
        false
    );

    download_survives_the_lease_only(&s, &url, &archive).await;
}

/// The signed download URL of an evicted entry serves its archive while the
/// lookup's lease holds it, and nothing once the lease has ended.
async fn download_survives_the_lease_only(s: &TestServer, url: &str, archive: &[u8]) {
    let res = Client::new().get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), archive);

    outlive(LEASE_MS).await;
    assert_eq!(admin_evict(s, &common::client()).await["reached"], true);
    let res = Client::new().get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// `POST /admin/v1/evict {"target_bytes":0}` on a token-mode server.
async fn admin_evict(s: &TestServer, c: &Client) -> Value {
    let key = gha_support::signing_key(s);
    let spec = larder::auth::token::TokenSpec {
        subject: "admin".into(),
        grants: vec![],
        admin: true,
        ttl_secs: 3600,
        parent: None,
    };
    let token = larder::auth::token::mint(&key, &spec).0;
    let res = c
        .post(s.url("/admin/v1/evict"))
        .bearer_auth(token)
        .json(&json!({ "target_bytes": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_writes_past_the_budget_are_never_refused_and_stay_under_the_hard_limit() {
    const MAX: u64 = 64 << 20;
    const WRITERS: u32 = 4;
    const EXPORTS: u32 = 25; // per writer, 3 MiB each: 300 MiB in all
    let mut s = TestServer::start_with(|c| {
        c.storage.max_size = Size(MAX);
        c.gc.interval = Span::secs(3600);
        // The default lease (15 min): the whole run is within one period.
    })
    .await;
    let hard = s.config.storage.hard_limit();
    let base = s.base();

    // Watch usage as the server counts it, and on disk, while writes run.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (stop, peak, base, dir) = (stop.clone(), peak.clone(), base.clone(), s.data_dir());
        tokio::spawn(async move {
            let c = common::client();
            while !stop.load(Ordering::Acquire) {
                let counted = metric(&c, &base, "larder_storage_used_bytes").await;
                let on_disk: u64 = ["blobs", "uploads", "tmp"]
                    .iter()
                    .flat_map(|d| files_under(&dir.join(d)))
                    .filter_map(|f| std::fs::metadata(f).ok().map(|m| m.len()))
                    .sum();
                peak.fetch_max(counted.max(on_disk), Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let base = base.clone();
            tokio::spawn(async move {
                let c = common::client();
                let repo = format!("team/app{w}");
                for i in 0..EXPORTS {
                    let export = cache_export(w * 1000 + i, 3, 1 << 20, i % 2 == 0);
                    export.push(&c, &base, &repo, &format!("cache-{i}")).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("a writer got a refusal or an error");
    }
    stop.store(true, Ordering::Release);
    watcher.await.unwrap();

    let c = common::client();
    assert_eq!(metric(&c, &base, "larder_refused_writes_total").await, 0);
    assert_eq!(
        metric(&c, &base, "larder_storage_hard_limit_bytes").await,
        hard
    );
    let peak = peak.load(Ordering::Acquire);
    assert!(
        peak <= hard,
        "usage peaked at {peak}, over the hard limit {hard}"
    );
    assert!(metric(&c, &base, "larder_evictions_total").await > 0);
    // The evictor brings usage back under the budget by itself.
    let settled = gha_support::eventually(Duration::from_secs(10), || async {
        metric(&common::client(), &base, "larder_storage_used_bytes").await <= MAX
    })
    .await;
    assert!(settled, "usage stayed above max_size");
    for w in 0..WRITERS {
        assert_manifest_refs_resolve(&s, &format!("team/app{w}")).await;
    }

    s.shutdown().await;
    let fsck = std::process::Command::new(common::process::larder_bin())
        .args(["fsck", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_lease_survives_a_restart() {
    const SHORT: u64 = 1500;
    let s = TestServer::start_with(lease(SHORT)).await;
    let (c, repo) = (common::client(), "team/app");
    let export = cache_export(3, 2, 100 << 10, false);
    export.push(&c, &s.base(), repo, "cache").await;
    // Past the write leases of the push: only the read below holds the blobs.
    outlive(SHORT).await;
    resolve_cache(&c, &s.base(), repo, "cache").await;

    let s = s.restart().await;
    let base = s.base();
    let report = evict_everything(&c, &base).await;
    assert_eq!(report["entries_removed"], 1, "{report}");
    assert_eq!(report["reached"], false, "{report}");
    for layer in &export.layers {
        assert_eq!(
            get_blob(&c, &base, repo, &sha256_digest(layer)).await,
            *layer
        );
    }
}
