//! What the OCI API stored survives a restart on the same data dir: an
//! image (config, two layers, manifests, an index, a referrer) pulls
//! byte-identical with the same headers, listings are unchanged, deletions
//! stay deleted and repositories stay isolated.

mod common;
mod oci_support;

use common::TestServer;
use oci_support::*;
use reqwest::header::{ACCEPT, RANGE};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// Status, the headers a client depends on, and the body.
#[derive(Debug, PartialEq, Eq)]
struct Pulled {
    status: StatusCode,
    digest: Option<String>,
    content_type: Option<String>,
    length: Option<String>,
    body: Vec<u8>,
}

async fn pull(client: &Client, url: &str) -> Pulled {
    let res = client
        .get(url)
        .header(ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    Pulled {
        status: res.status(),
        digest: header(&res, "docker-content-digest"),
        content_type: header(&res, "content-type"),
        length: header(&res, "content-length"),
        body: res.bytes().await.unwrap().to_vec(),
    }
}

/// Everything a client can see of the pushed content, by path.
async fn snapshot(client: &Client, base: &str, paths: &[String]) -> Vec<(String, Pulled)> {
    let mut out = Vec::new();
    for p in paths {
        out.push((p.clone(), pull(client, &format!("{base}{p}")).await));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pulls_byte_identical_after_a_restart() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let repo = "team/app";

    let amd64 = push_image(&client, &base, repo, Some("v1-amd64"), 1, 2).await;
    let arm64 = push_image(&client, &base, repo, None, 2, 2).await;
    let index = image_index(&[
        (OCI_MANIFEST, &amd64.manifest),
        (OCI_MANIFEST, &arm64.manifest),
    ]);
    let index_digest = put_manifest(&client, &base, repo, "latest", OCI_INDEX, &index).await;
    put_manifest(&client, &base, repo, "v1", OCI_INDEX, &index).await;
    // A referrer of the index, and the layer mounted into another repository.
    push_blob(&client, &base, repo, b"{}").await;
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": descriptor(OCI_EMPTY, b"{}"),
        "layers": [descriptor(OCI_EMPTY, b"{}")],
        "subject": descriptor(OCI_INDEX, &index),
    }))
    .unwrap();
    let referrer_digest = put_manifest(
        &client,
        &base,
        repo,
        &sha256_digest(&referrer),
        OCI_MANIFEST,
        &referrer,
    )
    .await;
    let mounted = sha256_digest(&amd64.layers[0]);
    let res = client
        .post(server.url(&format!(
            "/v2/team/mirror/blobs/uploads/?mount={mounted}&from={repo}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let mut paths = Vec::new();
    for reference in [
        "latest".to_owned(),
        "v1".to_owned(),
        "v1-amd64".to_owned(),
        index_digest.clone(),
        amd64.digest.clone(),
        arm64.digest.clone(),
        referrer_digest.clone(),
    ] {
        paths.push(format!("/v2/{repo}/manifests/{reference}"));
    }
    for image in [&amd64, &arm64] {
        paths.push(format!("/v2/{repo}/blobs/{}", sha256_digest(&image.config)));
        for l in &image.layers {
            paths.push(format!("/v2/{repo}/blobs/{}", sha256_digest(l)));
        }
    }
    paths.push(format!("/v2/team/mirror/blobs/{mounted}"));
    paths.push(format!("/v2/{repo}/tags/list"));
    paths.push("/v2/_catalog".to_owned());
    paths.push(format!("/v2/{repo}/referrers/{index_digest}"));
    paths.push(format!(
        "/v2/team/mirror/blobs/{}",
        sha256_digest(&amd64.layers[1])
    ));

    let before = snapshot(&client, &base, &paths).await;
    for (path, pulled) in &before[..before.len() - 1] {
        assert_eq!(pulled.status, StatusCode::OK, "{path} before the restart");
    }
    assert_eq!(
        before.last().unwrap().1.status,
        StatusCode::NOT_FOUND,
        "not mounted"
    );
    let referrers: Value = serde_json::from_slice(&before[before.len() - 2].1.body).unwrap();
    assert_eq!(
        referrers["manifests"][0]["digest"],
        referrer_digest.as_str()
    );
    let blobs_before = blob_files(&server.data_dir());

    drop(client);
    let server = server.restart().await;
    let client = common::client();
    let base = server.base();

    let after = snapshot(&client, &base, &paths).await;
    for ((path, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(a.status, b.status, "{path}: status after the restart");
        assert_eq!(a.digest, b.digest, "{path}: Docker-Content-Digest");
        assert_eq!(a.content_type, b.content_type, "{path}: Content-Type");
        assert_eq!(a.length, b.length, "{path}: Content-Length");
        assert!(
            a.body == b.body,
            "{path}: the body differs after the restart"
        );
    }
    assert_eq!(blob_files(&server.data_dir()), blobs_before);

    // The manifests by tag and digest are the pushed bytes.
    let (bytes, content_type, _) = get_manifest(&client, &base, repo, "latest").await;
    assert_eq!(bytes, index);
    assert_eq!(content_type, OCI_INDEX);
    let (bytes, _, _) = get_manifest(&client, &base, repo, &arm64.digest).await;
    assert_eq!(bytes, arm64.manifest);
    let report = assert_manifest_refs_resolve(&server, repo).await;
    assert_eq!(report.tags, ["latest", "v1", "v1-amd64"]);
    assert_eq!(report.manifests.len(), 3);
    assert_eq!(report.blobs.len(), 6);

    // Ranged reads work on the reopened store.
    let layer = &arm64.layers[1];
    let res = client
        .get(server.url(&format!("/v2/{repo}/blobs/{}", sha256_digest(layer))))
        .header(RANGE, "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        must_header(&res, "content-range"),
        format!("bytes 100-{}/{}", layer.len() - 1, layer.len())
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), &layer[100..]);

    // The next push reuses what is there: HEAD says 200, a new manifest over
    // the old blobs is accepted.
    for blob in [&amd64.config, &amd64.layers[0]] {
        let head = client
            .head(server.url(&format!("/v2/{repo}/blobs/{}", sha256_digest(blob))))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
    }
    let again = image_manifest(
        &descriptor(OCI_CONFIG, &amd64.config),
        &[descriptor(OCI_LAYER_GZIP, &amd64.layers[0])],
    );
    put_manifest(&client, &base, repo, "v2", OCI_MANIFEST, &again).await;
    assert_manifest_refs_resolve(&server, repo).await;
    assert_eq!(
        files_under(&server.data_dir().join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_stay_deleted_after_a_restart() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let kept = push_image(&client, &base, "app", Some("kept"), 3, 1).await;
    let gone = push_image(&client, &base, "app", Some("gone"), 4, 1).await;
    put_manifest(&client, &base, "app", "alias", OCI_MANIFEST, &gone.manifest).await;
    put_manifest(&client, &base, "app", "untag", OCI_MANIFEST, &kept.manifest).await;
    let loose = fixed_bytes(5, 777);
    let loose_digest = push_blob(&client, &base, "app", &loose).await;

    for path in [
        format!("/v2/app/manifests/{}", gone.digest),
        "/v2/app/manifests/untag".to_owned(),
        format!("/v2/app/blobs/{loose_digest}"),
    ] {
        let res = client.delete(server.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED, "DELETE {path}");
    }
    drop(client);
    let server = server.restart().await;
    let client = common::client();
    let base = server.base();

    for reference in ["gone", "alias", "untag", gone.digest.as_str()] {
        let res = client
            .get(server.url(&format!("/v2/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
    let res = client
        .get(server.url(&format!("/v2/app/blobs/{loose_digest}")))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    assert_eq!(
        list_tags(&client, &base, "app", 10).await.unwrap(),
        ["kept"]
    );
    let (bytes, _, _) = get_manifest(&client, &base, "app", "kept").await;
    assert_eq!(bytes, kept.manifest);
    assert_manifest_refs_resolve(&server, "app").await;
}

/// `restart()` promises the old server has released the data dir when
/// `shutdown()` returns, so an immediate restart must open it — also while a
/// client still holds keep-alive connections to the old server. (Before
/// 6935e0b, `Server::run` returned while the index's group-commit flusher
/// still held the sled database, and this failed within a few rounds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_right_after_shutdown_reopens_the_data_dir() {
    let mut server = TestServer::start().await;
    let kept_alive = common::client();
    let mut pushed = Vec::new();
    for round in 0..30u32 {
        let blob = fixed_bytes(100 + round, 1000);
        push_blob(&kept_alive, &server.base(), "app", &blob).await;
        pushed.push(blob);
        for b in &pushed {
            let got = get_blob(&kept_alive, &server.base(), "app", &sha256_digest(b)).await;
            assert_eq!(&got, b);
        }
        server = server.restart().await;
    }
}
