//! OCI Distribution manifests: push/pull of every manifest kind, the checks
//! on what a manifest references, size limits, deletion, tag and catalog
//! listings, and the referrers API.

mod common;
mod oci_support;

use common::TestServer;
use oci_support::*;
use reqwest::header::ACCEPT;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// `{}`: the OCI empty descriptor's content.
const EMPTY_JSON: &[u8] = b"{}";

async fn manifest_status(
    client: &Client,
    server: &TestServer,
    repo: &str,
    reference: &str,
) -> StatusCode {
    client
        .get(server.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header(ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap()
        .status()
}

/// Pushes a config and two layers and returns an OCI manifest over them (not pushed).
async fn prepared_manifest(client: &Client, base: &str, repo: &str, seed: u32) -> Vec<u8> {
    let config =
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "seed": seed})).unwrap();
    let l1 = fixed_bytes(seed * 10 + 1, 3000);
    let l2 = fixed_bytes(seed * 10 + 2, 5000);
    for b in [&config, &l1, &l2] {
        push_blob(client, base, repo, b).await;
    }
    // Pretty-printed with a trailing newline: the bytes must come back as sent.
    let mut bytes = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [descriptor(OCI_LAYER_GZIP, &l1), descriptor(OCI_LAYER_GZIP, &l2)],
        "annotations": {"org.opencontainers.image.title": format!("image {seed}")},
    }))
    .unwrap();
    bytes.push(b'\n');
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_by_tag_then_head_and_get_by_tag_and_digest() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let manifest = prepared_manifest(&client, &base, "team/app", 1).await;
    let digest = sha256_digest(&manifest);

    let res = try_put_manifest(&client, &base, "team/app", "v1", OCI_MANIFEST, &manifest).await;
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);
    let location = abs_url(&base, &must_header(&res, "location"));
    let res = client
        .get(&location)
        .header(ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the Location serves the manifest"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), manifest.as_slice());

    for reference in ["v1", digest.as_str()] {
        let url = server.url(&format!("/v2/team/app/manifests/{reference}"));
        let head = client
            .head(&url)
            .header(ACCEPT, ACCEPT_MANIFESTS)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {reference}");
        assert_eq!(must_header(&head, "docker-content-digest"), digest);
        assert_eq!(
            must_header(&head, "content-length"),
            manifest.len().to_string()
        );
        assert_eq!(must_header(&head, "content-type"), OCI_MANIFEST);

        let (bytes, content_type, got_digest) =
            get_manifest(&client, &base, "team/app", reference).await;
        assert_eq!(bytes, manifest, "GET {reference} is byte-exact");
        assert_eq!(content_type, OCI_MANIFEST);
        assert_eq!(got_digest, digest);
    }

    // Pushing the same bytes by digest is idempotent; re-tagging works.
    put_manifest(&client, &base, "team/app", &digest, OCI_MANIFEST, &manifest).await;
    put_manifest(&client, &base, "team/app", "v1", OCI_MANIFEST, &manifest).await;
    put_manifest(
        &client,
        &base,
        "team/app",
        "latest",
        OCI_MANIFEST,
        &manifest,
    )
    .await;
    assert_manifest_refs_resolve(&server, "team/app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moves_to_the_newest_manifest() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let first = prepared_manifest(&client, &base, "app", 2).await;
    let second = prepared_manifest(&client, &base, "app", 3).await;
    put_manifest(&client, &base, "app", "latest", OCI_MANIFEST, &first).await;
    put_manifest(&client, &base, "app", "latest", OCI_MANIFEST, &second).await;
    let (bytes, _, digest) = get_manifest(&client, &base, "app", "latest").await;
    assert_eq!(bytes, second);
    assert_eq!(digest, sha256_digest(&second));
    // The first is still there by digest.
    let (bytes, _, _) = get_manifest(&client, &base, "app", &sha256_digest(&first)).await;
    assert_eq!(bytes, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_content_type_is_served() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let manifest = prepared_manifest(&client, &base, "app", 4).await;
    // Without a Content-Type the manifest's own mediaType is used.
    let res = client
        .put(server.url("/v2/app/manifests/untyped"))
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    let (_, content_type, _) = get_manifest(&client, &base, "app", "untyped").await;
    assert_eq!(content_type, OCI_MANIFEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_kind_is_accepted() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let repo = "kinds/app";

    // OCI image manifests, pushed by digest, and an OCI index over them.
    let amd64 = prepared_manifest(&client, &base, repo, 5).await;
    let arm64 = prepared_manifest(&client, &base, repo, 6).await;
    let amd64_digest = put_manifest(
        &client,
        &base,
        repo,
        &sha256_digest(&amd64),
        OCI_MANIFEST,
        &amd64,
    )
    .await;
    put_manifest(&client, &base, repo, "arm64", OCI_MANIFEST, &arm64).await;
    let index = image_index(&[(OCI_MANIFEST, &amd64), (OCI_MANIFEST, &arm64)]);
    put_manifest(&client, &base, repo, "multi", OCI_INDEX, &index).await;

    // Docker schema 2 and a Docker manifest list.
    let docker_config =
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "docker": true}))
            .unwrap();
    let docker_layer = fixed_bytes(70, 2222);
    push_blob(&client, &base, repo, &docker_config).await;
    push_blob(&client, &base, repo, &docker_layer).await;
    let docker = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &docker_config),
        "layers": [descriptor(DOCKER_LAYER_GZIP, &docker_layer)],
    }))
    .unwrap();
    put_manifest(&client, &base, repo, "docker", DOCKER_MANIFEST, &docker).await;
    let mut child = descriptor(DOCKER_MANIFEST, &docker);
    child["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let list = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [child],
    }))
    .unwrap();
    put_manifest(&client, &base, repo, "docker-list", DOCKER_LIST, &list).await;

    // An artifact: artifactType, the empty config, a non-image layer.
    push_blob(&client, &base, repo, EMPTY_JSON).await;
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec();
    push_blob(&client, &base, repo, &sbom).await;
    let mut empty = descriptor(OCI_EMPTY, EMPTY_JSON);
    empty["data"] = json!("e30=");
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": empty,
        "layers": [descriptor("application/spdx+json", &sbom)],
    }))
    .unwrap();
    put_manifest(&client, &base, repo, "sbom", OCI_MANIFEST, &artifact).await;

    // A referrer whose subject is unknown: accepted, with OCI-Subject.
    let subject = sha256_digest(b"a subject that was never pushed");
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": empty,
        "layers": [descriptor("application/spdx+json", &sbom)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1234},
    }))
    .unwrap();
    let res = try_put_manifest(
        &client,
        &base,
        repo,
        &sha256_digest(&referrer),
        OCI_MANIFEST,
        &referrer,
    )
    .await;
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "oci-subject"), subject);
    assert_eq!(
        must_header(&res, "docker-content-digest"),
        sha256_digest(&referrer)
    );

    for (reference, bytes, media_type) in [
        (amd64_digest.as_str(), &amd64, OCI_MANIFEST),
        ("arm64", &arm64, OCI_MANIFEST),
        ("multi", &index, OCI_INDEX),
        ("docker", &docker, DOCKER_MANIFEST),
        ("docker-list", &list, DOCKER_LIST),
        ("sbom", &artifact, OCI_MANIFEST),
        (sha256_digest(&referrer).as_str(), &referrer, OCI_MANIFEST),
    ] {
        let (got, content_type, digest) = get_manifest(&client, &base, repo, reference).await;
        assert!(got == *bytes, "{reference} is byte-exact");
        assert_eq!(content_type, media_type, "{reference}");
        assert_eq!(digest, sha256_digest(bytes), "{reference}");
    }
    let report = assert_manifest_refs_resolve(&server, repo).await;
    assert_eq!(
        report.tags,
        ["arm64", "docker", "docker-list", "multi", "sbom"]
    );
    assert!(
        report.manifests.contains(&amd64_digest),
        "walked into the index"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_reference_is_manifest_blob_unknown_and_stores_nothing() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let config = b"{\"config\":true}".to_vec();
    let layer = fixed_bytes(80, 1000);
    let missing = fixed_bytes(81, 1000);
    push_blob(&client, &base, "app", &config).await;
    push_blob(&client, &base, "app", &layer).await;
    // `missing` exists, but only in another repository.
    push_blob(&client, &base, "other", &missing).await;

    let cases = [
        // A missing layer.
        image_manifest(
            &descriptor(OCI_CONFIG, &config),
            &[
                descriptor(OCI_LAYER_GZIP, &layer),
                descriptor(OCI_LAYER_GZIP, &missing),
            ],
        ),
        // A missing config.
        image_manifest(
            &descriptor(OCI_CONFIG, &missing),
            &[descriptor(OCI_LAYER_GZIP, &layer)],
        ),
        // An index whose child manifest does not exist.
        image_index(&[(
            OCI_MANIFEST,
            &image_manifest(&descriptor(OCI_CONFIG, &config), &[]),
        )]),
    ];
    for (i, manifest) in cases.iter().enumerate() {
        let tag = format!("bad{i}");
        let media_type = if i == 2 { OCI_INDEX } else { OCI_MANIFEST };
        let res = try_put_manifest(&client, &base, "app", &tag, media_type, manifest).await;
        expect_error(res, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
        let res = client
            .get(server.url(&format!("/v2/app/manifests/{tag}")))
            .send()
            .await
            .unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
        assert_eq!(
            manifest_status(&client, &server, "app", &sha256_digest(manifest)).await,
            StatusCode::NOT_FOUND
        );
    }
    // No tag was created: the repository has none.
    let res = client
        .get(server.url("/v2/app/tags/list"))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_manifest_invalid() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let cases: [&[u8]; 4] = [
        b"this is not json",
        b"{\"schemaVersion\": 2, \"mediaType\": ",
        b"",
        b"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:nothex\",\"size\":1},\"layers\":[]}",
    ];
    for (i, body) in cases.iter().enumerate() {
        let res = try_put_manifest(&client, &base, "app", "bad", OCI_MANIFEST, body).await;
        expect_error(res, StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
            .await
            .get("message")
            .unwrap_or_else(|| panic!("case {i}"));
    }
    assert_eq!(
        manifest_status(&client, &server, "app", "bad").await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_by_a_digest_that_does_not_match_is_digest_invalid() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let manifest = prepared_manifest(&client, &base, "app", 7).await;
    let wrong = sha256_digest(b"different bytes");
    let res = try_put_manifest(&client, &base, "app", &wrong, OCI_MANIFEST, &manifest).await;
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_eq!(
        manifest_status(&client, &server, "app", &wrong).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        manifest_status(&client, &server, "app", &sha256_digest(&manifest)).await,
        StatusCode::NOT_FOUND
    );
    // A malformed digest reference too.
    let res = try_put_manifest(&client, &base, "app", "sha256:abc", OCI_MANIFEST, &manifest).await;
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    // The right digest works.
    put_manifest(
        &client,
        &base,
        "app",
        &sha256_digest(&manifest),
        OCI_MANIFEST,
        &manifest,
    )
    .await;
}

/// An OCI manifest padded with an annotation to exactly `len` bytes.
fn padded_manifest(config: &[u8], len: usize) -> Vec<u8> {
    let build = |pad: usize| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [],
            "annotations": {"org.example.padding": "p".repeat(pad)},
        }))
        .unwrap()
    };
    let overhead = build(0).len();
    let bytes = build(len - overhead);
    assert_eq!(bytes.len(), len);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_mib_manifest_is_accepted_and_over_8_mib_is_413() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let config = b"{\"big\":true}".to_vec();
    push_blob(&client, &base, "app", &config).await;

    let big = padded_manifest(&config, 4 << 20);
    let digest = put_manifest(&client, &base, "app", "big", OCI_MANIFEST, &big).await;
    let (bytes, _, got) = get_manifest(&client, &base, "app", "big").await;
    assert!(bytes == big, "the 4 MiB manifest comes back byte-exact");
    assert_eq!(got, digest);

    let huge = padded_manifest(&config, (8 << 20) + 1024);
    let res = try_put_manifest(&client, &base, "app", "huge", OCI_MANIFEST, &huge).await;
    expect_error_status(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(
        manifest_status(&client, &server, "app", "huge").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        manifest_status(&client, &server, "app", &sha256_digest(&huge)).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_digest_removes_the_manifest_and_its_tags() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let gone = prepared_manifest(&client, &base, "app", 8).await;
    let kept = prepared_manifest(&client, &base, "app", 9).await;
    let digest = put_manifest(&client, &base, "app", "t1", OCI_MANIFEST, &gone).await;
    put_manifest(&client, &base, "app", "t2", OCI_MANIFEST, &gone).await;
    put_manifest(&client, &base, "app", "keep", OCI_MANIFEST, &kept).await;

    let res = client
        .delete(server.url(&format!("/v2/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    for reference in [digest.as_str(), "t1", "t2"] {
        let res = client
            .get(server.url(&format!("/v2/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
        let res = client
            .head(server.url(&format!("/v2/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "HEAD {reference}");
    }
    assert_eq!(
        list_tags(&client, &base, "app", 100).await.unwrap(),
        ["keep"]
    );
    let res = client
        .delete(server.url(&format!("/v2/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    assert_manifest_refs_resolve(&server, "app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_tag_removes_only_the_tag() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let manifest = prepared_manifest(&client, &base, "app", 10).await;
    let digest = put_manifest(&client, &base, "app", "v1", OCI_MANIFEST, &manifest).await;
    put_manifest(&client, &base, "app", "v2", OCI_MANIFEST, &manifest).await;

    let res = client
        .delete(server.url("/v2/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = client
        .get(server.url("/v2/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let (bytes, _, _) = get_manifest(&client, &base, "app", &digest).await;
    assert_eq!(bytes, manifest);
    let (bytes, _, _) = get_manifest(&client, &base, "app", "v2").await;
    assert_eq!(bytes, manifest);
    assert_eq!(list_tags(&client, &base, "app", 100).await.unwrap(), ["v2"]);

    let res = client
        .delete(server.url("/v2/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let res = client
        .delete(server.url("/v2/app/manifests/never"))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_manifests_are_manifest_unknown() {
    let server = TestServer::start().await;
    let client = common::client();
    for reference in ["latest".to_owned(), sha256_digest(b"nothing")] {
        let url = server.url(&format!("/v2/app/manifests/{reference}"));
        let res = client.head(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = client.get(&url).send().await.unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
    let res = client
        .get(server.url("/v2/app/manifests/sha256:short"))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tags_are_refused() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let manifest = prepared_manifest(&client, &base, "app", 12).await;
    let long = "a".repeat(129);
    for tag in ["-dash", ".dot", long.as_str(), "with%20space"] {
        let res = try_put_manifest(&client, &base, "app", tag, OCI_MANIFEST, &manifest).await;
        let code = expect_error_status(res, StatusCode::BAD_REQUEST).await;
        assert_eq!(code, "MANIFEST_INVALID", "tag {tag:?}");
    }
    // 128 characters is the longest valid tag.
    put_manifest(
        &client,
        &base,
        "app",
        &"a".repeat(128),
        OCI_MANIFEST,
        &manifest,
    )
    .await;
    assert_eq!(
        list_tags(&client, &base, "app", 10).await.unwrap(),
        ["a".repeat(128)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_listed_in_lexical_order_with_pagination() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let manifest = prepared_manifest(&client, &base, "team/app", 11).await;
    let tags = [
        "v2", "latest", "1.0", "_hidden", "v1.0", "Beta", "v10", "alpha",
    ];
    for tag in tags {
        put_manifest(&client, &base, "team/app", tag, OCI_MANIFEST, &manifest).await;
    }
    let mut sorted: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    sorted.sort();
    assert_eq!(
        sorted,
        ["1.0", "Beta", "_hidden", "alpha", "latest", "v1.0", "v10", "v2"]
    );

    let res = client
        .get(server.url("/v2/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::OK).await;
    assert!(must_header(&res, "content-type").starts_with("application/json"));
    assert!(header(&res, "link").is_none(), "everything fit in one page");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"name": "team/app", "tags": sorted}));

    // Pages of 3, following Link.
    let mut url = server.url("/v2/team/app/tags/list?n=3");
    let mut pages: Vec<Vec<String>> = Vec::new();
    loop {
        let res = client.get(&url).send().await.unwrap();
        let res = expect_status(res, StatusCode::OK).await;
        let next = next_link(&res);
        let body: Value = res.json().await.unwrap();
        let page: Vec<String> = serde_json::from_value(body["tags"].clone()).unwrap();
        assert!(page.len() <= 3);
        pages.push(page);
        match next {
            Some(next) => {
                assert!(next.contains("n=3"), "Link {next:?} keeps n");
                url = abs_url(&base, &next);
            }
            None => break,
        }
        assert!(pages.len() < 10);
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), sorted);
    assert_eq!(pages[0], ["1.0", "Beta", "_hidden"]);

    // last= without n, and both.
    let res = client
        .get(server.url("/v2/team/app/tags/list?last=latest"))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tags"], json!(["v1.0", "v10", "v2"]));
    let res = client
        .get(server.url("/v2/team/app/tags/list?n=2&last=Beta"))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::OK).await;
    assert!(next_link(&res).is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tags"], json!(["_hidden", "alpha"]));

    // n=0 is an empty list.
    let res = client
        .get(server.url("/v2/team/app/tags/list?n=0"))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::OK).await;
    assert!(header(&res, "link").is_none());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tags"], json!([]));

    // A bad n.
    let res = client
        .get(server.url("/v2/team/app/tags/list?n=-1"))
        .send()
        .await
        .unwrap();
    expect_error_status(res, StatusCode::BAD_REQUEST).await;

    // An unknown repository.
    let res = client
        .get(server.url("/v2/team/nothing/tags/list"))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_repositories() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let repos = ["zeta", "beta/tools", "alpha/app", "beta/app", "beta"];
    for (i, repo) in repos.iter().enumerate() {
        let manifest = prepared_manifest(&client, &base, repo, 20 + i as u32).await;
        put_manifest(&client, &base, repo, "latest", OCI_MANIFEST, &manifest).await;
    }
    let mut sorted: Vec<&str> = repos.to_vec();
    sorted.sort();

    let res = client.get(server.url("/v2/_catalog")).send().await.unwrap();
    let res = expect_status(res, StatusCode::OK).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({ "repositories": sorted }));

    let mut url = server.url("/v2/_catalog?n=2");
    let mut all: Vec<String> = Vec::new();
    for _ in 0..10 {
        let res = client.get(&url).send().await.unwrap();
        let res = expect_status(res, StatusCode::OK).await;
        let next = next_link(&res);
        let body: Value = res.json().await.unwrap();
        let page: Vec<String> = serde_json::from_value(body["repositories"].clone()).unwrap();
        assert!(page.len() <= 2);
        let empty = page.is_empty();
        all.extend(page);
        match next {
            Some(next) if !empty => url = abs_url(&base, &next),
            _ => break,
        }
    }
    assert_eq!(all, sorted);

    let res = client
        .get(server.url("/v2/_catalog?n=2&last=beta"))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["repositories"], json!(["beta/app", "beta/tools"]));
    let res = client
        .get(server.url("/v2/_catalog?n=0"))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["repositories"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_list_manifests_by_subject() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let repo = "app";
    let subject_bytes = prepared_manifest(&client, &base, repo, 30).await;
    let subject = put_manifest(&client, &base, repo, "v1", OCI_MANIFEST, &subject_bytes).await;

    // Nothing refers to it yet: an empty index, never a 404.
    for digest in [subject.clone(), sha256_digest(b"unknown subject")] {
        for r in [repo, "nothing/here"] {
            let res = client
                .get(server.url(&format!("/v2/{r}/referrers/{digest}")))
                .send()
                .await
                .unwrap();
            let res = expect_status(res, StatusCode::OK).await;
            assert_eq!(must_header(&res, "content-type"), OCI_INDEX);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["schemaVersion"], 2);
            assert_eq!(body["mediaType"], OCI_INDEX);
            assert_eq!(body["manifests"], json!([]));
        }
    }

    // Two referrers: one with artifactType, one typed by its config.
    push_blob(&client, &base, repo, EMPTY_JSON).await;
    let signature_config = br#"{"signature":"config"}"#.to_vec();
    push_blob(&client, &base, repo, &signature_config).await;
    let payload = b"sbom payload".to_vec();
    push_blob(&client, &base, repo, &payload).await;
    let subject_desc = descriptor(OCI_MANIFEST, &subject_bytes);
    let sbom = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom+json",
        "config": descriptor(OCI_EMPTY, EMPTY_JSON),
        "layers": [descriptor("application/vnd.example.sbom+json", &payload)],
        "subject": subject_desc,
        "annotations": {"org.example.kind": "sbom"},
    }))
    .unwrap();
    let signature = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.example.signature.config+json", &signature_config),
        "layers": [descriptor("application/octet-stream", &payload)],
        "subject": subject_desc,
    }))
    .unwrap();
    // An unrelated manifest with another subject.
    let unrelated = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom+json",
        "config": descriptor(OCI_EMPTY, EMPTY_JSON),
        "layers": [descriptor("application/vnd.example.sbom+json", &payload)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256_digest(b"elsewhere"), "size": 9},
    }))
    .unwrap();
    let sbom_digest = sha256_digest(&sbom);
    let signature_digest = sha256_digest(&signature);
    for m in [&sbom, &signature, &unrelated] {
        let res = try_put_manifest(&client, &base, repo, &sha256_digest(m), OCI_MANIFEST, m).await;
        let res = expect_status(res, StatusCode::CREATED).await;
        assert!(header(&res, "oci-subject").is_some());
    }

    let res = client
        .get(server.url(&format!("/v2/{repo}/referrers/{subject}")))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::OK).await;
    assert!(header(&res, "oci-filters-applied").is_none());
    let body: Value = res.json().await.unwrap();
    let manifests = body["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{body}");
    let find = |d: &str| {
        manifests
            .iter()
            .find(|m| m["digest"] == d)
            .unwrap_or_else(|| panic!("{d} is listed: {body}"))
            .clone()
    };
    let s = find(&sbom_digest);
    assert_eq!(s["mediaType"], OCI_MANIFEST);
    assert_eq!(s["size"], sbom.len());
    assert_eq!(s["artifactType"], "application/vnd.example.sbom+json");
    assert_eq!(s["annotations"], json!({"org.example.kind": "sbom"}));
    let g = find(&signature_digest);
    assert_eq!(g["size"], signature.len());
    assert_eq!(
        g["artifactType"], "application/vnd.example.signature.config+json",
        "without artifactType, the config's media type is the artifact type"
    );

    // Filtered by artifactType (the query value needs encoding: '+').
    let res = client
        .get(server.url(&format!("/v2/{repo}/referrers/{subject}")))
        .query(&[("artifactType", "application/vnd.example.sbom+json")])
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::OK).await;
    assert_eq!(must_header(&res, "oci-filters-applied"), "artifactType");
    let body: Value = res.json().await.unwrap();
    let digests: Vec<&str> = body["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [sbom_digest.as_str()]);

    let res = client
        .get(server.url(&format!("/v2/{repo}/referrers/{subject}")))
        .query(&[("artifactType", "application/none")])
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::OK).await;
    assert_eq!(must_header(&res, "oci-filters-applied"), "artifactType");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["manifests"], json!([]));

    // Deleting a referrer removes it from the list.
    let res = client
        .delete(server.url(&format!("/v2/{repo}/manifests/{sbom_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = client
        .get(server.url(&format!("/v2/{repo}/referrers/{subject}")))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["manifests"].as_array().unwrap().len(), 1);

    let res = client
        .get(server.url(&format!("/v2/{repo}/referrers/sha256:bad")))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}
