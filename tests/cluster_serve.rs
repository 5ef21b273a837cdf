//! Three `larder serve` replicas on one PostgreSQL and one bucket, through
//! their HTTP APIs: whatever one replica was sent, the others serve.

mod cluster_support;
mod common;
mod gha_support;
mod oci_support;

use std::time::Duration;

use cluster_support::serve::{await_status, metric, scrape, Fleet};
use oci_support::*;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Client, StatusCode};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_through_a_pull_through_b_head_through_c() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let [a, b, c] = <[_; 3]>::try_from(fleet.replicas(3)).ok().unwrap();
    let (a, b, c) = (a.url(""), b.url(""), c.url(""));
    let http = Client::new();

    let config = fixed_bytes(1, 300);
    let layer = fixed_bytes(2, 3 << 20);
    push_blob(&http, &a, "team/app", &config).await;
    let layer_digest = push_blob(&http, &a, "team/app", &layer).await;
    let manifest = image_manifest(
        &descriptor("application/vnd.oci.image.config.v1+json", &config),
        &[descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    );
    let digest = put_manifest(&http, &a, "team/app", "v1", MANIFEST, &manifest).await;

    let (got, _, got_digest) = get_manifest(&http, &b, "team/app", "v1").await;
    assert_eq!((got, got_digest), (manifest.clone(), digest.clone()));
    assert!(get_blob(&http, &b, "team/app", &layer_digest).await == layer);
    // That read filled B's tier; from there, B's kernel sends the file.
    let tier_holds = |used: usize| {
        let http = &http;
        let b = b.clone();
        async move {
            let text = scrape(http, b).await;
            metric(&text, "larder_tier_used_bytes").is_some_and(|n| n as usize >= used)
        }
    };
    cluster_support::until("B's tier holds the layer", || tier_holds(layer.len())).await;
    let sent = |text: String| metric(&text, "larder_sent_from_files_bytes_total").unwrap_or(-1.0);
    let before = sent(scrape(&http, b.clone()).await);
    assert!(get_blob(&http, &b, "team/app", &layer_digest).await == layer);
    let after = sent(scrape(&http, b.clone()).await);
    assert_eq!(
        after - before,
        layer.len() as f64,
        "the tier hit was sent from its file"
    );

    for path in [
        format!("/v2/team/app/blobs/{layer_digest}"),
        format!("/v2/team/app/manifests/{digest}"),
        "/v2/team/app/manifests/v1".to_owned(),
    ] {
        let res = http.head(format!("{c}{path}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "HEAD {path} through C");
    }
    let res = http
        .head(format!("{c}/v2/team/app/blobs/{layer_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&res, "content-length").as_deref(),
        Some(layer.len().to_string().as_str())
    );
    // Another repository cannot read the layer without a mount.
    let res = (http
        .head(format!("{c}/v2/other/app/blobs/{layer_digest}"))
        .send()
        .await)
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_manifests_sharing_layers_through_two_replicas_all_land() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let [a, b] = <[_; 2]>::try_from(fleet.replicas(2)).ok().unwrap();
    let (a, b) = (a.url(""), b.url(""));
    let http = Client::new();
    // Shared layers, as BuildKit's cache manifests share them; each
    // manifest has a config of its own. HEADs of the layers meanwhile make
    // both replicas flush touches on the same rows the manifests lock.
    let layers: Vec<Vec<u8>> = (0..6).map(|i| fixed_bytes(100 + i, 2048)).collect();
    for layer in &layers {
        push_blob(&http, &a, "team/shared", layer).await;
    }
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar", l))
        .collect();
    let puts = (0..24u32).map(|i| {
        let (http, base) = (http.clone(), if i % 2 == 0 { a.clone() } else { b.clone() });
        let layer_descs = layer_descs.clone();
        let layers = layers.clone();
        async move {
            let config = fixed_bytes(1000 + i, 200);
            push_blob(&http, &base, "team/shared", &config).await;
            for l in &layers {
                let d = sha256_digest(l);
                let res = http
                    .head(format!("{base}/v2/team/shared/blobs/{d}"))
                    .send()
                    .await;
                assert_eq!(res.unwrap().status(), StatusCode::OK);
            }
            let manifest = image_manifest(
                &descriptor("application/vnd.oci.image.config.v1+json", &config),
                &layer_descs,
            );
            try_put_manifest(
                &http,
                &base,
                "team/shared",
                &format!("t{i}"),
                MANIFEST,
                &manifest,
            )
            .await
            .status()
        }
    });
    let statuses = futures_util::future::join_all(puts).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
}

/// `PATCH` of the next `chunk` of a session, at `offset`, through `base`.
async fn patch_chunk(http: &Client, base: &str, session: &str, offset: usize, chunk: &[u8]) {
    let res = http
        .patch(format!("{base}{session}"))
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(
            CONTENT_RANGE,
            format!("{offset}-{}", offset + chunk.len() - 1),
        )
        .header(CONTENT_LENGTH, chunk.len())
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED, "PATCH at {offset}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_started_on_one_replica_continue_and_finish_on_others() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let [a, b, c] = <[_; 3]>::try_from(fleet.replicas(3)).ok().unwrap();
    let (a, b, c) = (a.url(""), b.url(""), c.url(""));
    let http = Client::new();

    // OCI chunked: started on A (POST), continued on B (a PATCH), finished
    // on C (the PUT carrying the last chunk).
    let blob = fixed_bytes(3, 5 << 20);
    let (first, last) = blob.split_at(2 << 20);
    let session = path_and_query(&start_upload(&http, &a, "team/chunked").await);
    patch_chunk(&http, &b, &session, 0, first).await;
    let digest = sha256_digest(&blob);
    let res = http
        .put(with_query(
            &format!("{c}{session}"),
            &format!("digest={digest}"),
        ))
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, last.len())
        .body(last.to_vec())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(header(&res, "docker-content-digest"), Some(digest.clone()));
    assert!(get_blob(&http, &a, "team/chunked", &digest).await == blob);

    // GHA v1 chunks: reserved on A, a chunk on B and one on C (last first,
    // as BuildKit sends them), committed on C, restored through A.
    let v1 = |base: &str| gha_support::V1 {
        http: Client::new(),
        base: format!("{base}/_apis/artifactcache/"),
        token: None,
    };
    let archive = fixed_bytes(4, 3 << 20);
    let id = v1(&a).reserve_id("deps-linux", "v1").await;
    let (head, tail) = archive.split_at(1 << 20);
    let res = v1(&b).patch(id, head.len(), tail).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = v1(&c).patch(id, 0, head).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = v1(&c).commit(id, archive.len()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(v1(&a).restore("deps-linux", "v1").await == archive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_cache_entries_written_on_one_replica_are_hits_on_another() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let [a, b] = <[_; 2]>::try_from(fleet.replicas(2)).ok().unwrap();
    let http = Client::new();
    let value = fixed_bytes(5, 4096);
    let key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&value));
    let res = (http
        .put(a.url(&format!("/cache/team/cas/{key}")))
        .body(value.clone()))
    .send()
    .await
    .unwrap();
    assert!(res.status().is_success(), "PUT: {}", res.status());
    let res = http
        .get(b.url(&format!("/cache/team/cas/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap() == value);
    let res = http
        .get(b.url("/cache/team/cas/00ff"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "a miss stays a miss");

    // Each replica reports the cluster's numbers and its own part; one of
    // them leads.
    let scrape = |base: String| scrape(&http, base);
    cluster_support::until("one replica leads, and both see both", || async {
        let (ta, tb) = (scrape(a.url("")).await, scrape(b.url("")).await);
        let leaders = [&ta, &tb].map(|t| metric(t, "larder_cluster_leader").unwrap_or(0.0));
        leaders.iter().sum::<f64>() == 1.0
            && [&ta, &tb]
                .iter()
                .all(|t| metric(t, "larder_cluster_replicas") == Some(2.0))
    })
    .await;
    let text = scrape(b.url("")).await;
    assert_eq!(metric(&text, "larder_cluster_database_up"), Some(1.0));
    assert_eq!(metric(&text, "larder_storage_used_bytes"), Some(4096.0));
    assert_eq!(metric(&text, "larder_blobs"), Some(1.0));
    assert!(
        text.contains("larder_entries{protocol=\"http\"} 1"),
        "{text}"
    );
    assert!(metric(&text, "larder_tier_capacity_bytes").is_some_and(|n| n > 0.0));
    for (name, kind, _) in larder::metrics::CLUSTER_NAMES {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} exported"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_unready_while_the_database_is_away_and_recovers_without_a_restart() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let a = fleet.replica("r0", &[]);
    let http = Client::new();
    await_status(&a.url("/readyz"), 200, Duration::from_secs(10)).await;

    fleet.db.stop();
    await_status(&a.url("/readyz"), 503, Duration::from_secs(15)).await;
    let value = fixed_bytes(6, 1000);
    let key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&value));
    let res = (http
        .put(a.url(&format!("/cache/team/cas/{key}")))
        .body(value.clone()))
    .send()
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a write while it is away"
    );

    fleet.db.start_again();
    await_status(&a.url("/readyz"), 200, Duration::from_secs(30)).await;
    let res = (http
        .put(a.url(&format!("/cache/team/cas/{key}")))
        .body(value.clone()))
    .send()
    .await
    .unwrap();
    assert!(res.status().is_success(), "a write after: {}", res.status());
}
