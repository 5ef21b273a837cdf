//! OCI Distribution: the base endpoint, blob HEAD/GET/DELETE with ranges and
//! errors, and repository isolation with cross-repository mounts.

mod common;
mod oci_support;

use common::TestServer;
use oci_support::*;
use reqwest::header::RANGE;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_endpoint_answers_with_the_api_version() {
    let server = TestServer::start().await;
    let client = common::client();
    for path in ["/v2/", "/v2"] {
        let res = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        assert_eq!(
            header(&res, "docker-distribution-api-version").as_deref(),
            Some("registry/2.0"),
            "GET {path}"
        );
    }
    let res = client.head(server.url("/v2/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Error responses carry the header too: clients detect the API by it.
    let res = client
        .get(server.url("/v2/app/blobs/sha256:nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&res, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_get_serve_the_blob_with_its_headers() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(7, 100_003);
    let digest = push_blob(&client, &server.base(), "team/app", &data).await;
    let url = server.url(&format!("/v2/team/app/blobs/{digest}"));

    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(must_header(&head, "content-length"), "100003");
    assert_eq!(must_header(&head, "docker-content-digest"), digest);
    assert_eq!(
        must_header(&head, "content-type"),
        "application/octet-stream"
    );
    assert!(head.bytes().await.unwrap().is_empty(), "HEAD has no body");

    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(must_header(&get, "content-length"), "100003");
    assert_eq!(must_header(&get, "docker-content-digest"), digest);
    assert_eq!(
        must_header(&get, "content-type"),
        "application/octet-stream"
    );
    assert_eq!(get.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests_answer_206_with_content_range() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(8, 10_000);
    let size = data.len();
    let digest = push_blob(&client, &server.base(), "app", &data).await;
    let url = server.url(&format!("/v2/app/blobs/{digest}"));

    // (Range header, first byte, last byte)
    let cases = [
        ("bytes=0-", 0, size - 1),
        ("bytes=1234-", 1234, size - 1),
        (&format!("bytes={}-", size - 1) as &str, size - 1, size - 1),
        ("bytes=100-199", 100, 199),
        ("bytes=0-0", 0, 0),
        ("bytes=9000-20000", 9000, size - 1),
        ("bytes=-500", size - 500, size - 1),
        ("bytes=-20000", 0, size - 1),
    ];
    for (range, first, last) in cases {
        let res = client.get(&url).header(RANGE, range).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            must_header(&res, "content-range"),
            format!("bytes {first}-{last}/{size}"),
            "{range}"
        );
        assert_eq!(
            must_header(&res, "content-length"),
            (last - first + 1).to_string(),
            "{range}"
        );
        assert_eq!(must_header(&res, "docker-content-digest"), digest);
        let body = res.bytes().await.unwrap();
        assert_eq!(body.as_ref(), &data[first..=last], "{range}");
    }

    for range in [
        format!("bytes={size}-"),
        format!("bytes={}-", size + 100),
        "bytes=20000-30000".to_owned(),
    ] {
        let res = client.get(&url).header(RANGE, &range).send().await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{range} is unsatisfiable"
        );
        assert_eq!(
            header(&res, "content-range").as_deref(),
            Some(format!("bytes */{size}").as_str()),
            "416 names the size (RFC 9110)"
        );
    }

    // HEAD with a range describes the part without sending it.
    let res = client
        .head(&url)
        .header(RANGE, "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        must_header(&res, "content-range"),
        format!("bytes 10-{}/{size}", size - 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_blob_from_the_repository() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(9, 4321);
    let digest = push_blob(&client, &server.base(), "app", &data).await;
    let url = server.url(&format!("/v2/app/blobs/{digest}"));

    let res = client.delete(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = client.head(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = client.get(&url).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    // Deleting again: it is unknown now.
    let res = client.delete(&url).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    // It can be pushed again.
    push_blob(&client, &server.base(), "app", &data).await;
    assert_eq!(
        get_blob(&client, &server.base(), "app", &digest).await,
        data
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_digests_are_digest_invalid() {
    let server = TestServer::start().await;
    let client = common::client();
    let upper = format!("sha256:{}", "A".repeat(64));
    let short = format!("sha256:{}", "a".repeat(63));
    let long = format!("sha512:{}", "a".repeat(64));
    let unknown_algorithm = format!("md5:{}", "a".repeat(32));
    for bad in [
        "sha256:xyz",
        "nocolon",
        short.as_str(),
        upper.as_str(),
        long.as_str(),
        unknown_algorithm.as_str(),
    ] {
        let url = server.url(&format!("/v2/app/blobs/{bad}"));
        let res = client.get(&url).send().await.unwrap();
        let err = expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        let res = client.head(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "HEAD {bad}");
        let res = client.delete(&url).send().await.unwrap();
        expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_blobs_are_blob_unknown() {
    let server = TestServer::start().await;
    let client = common::client();
    let digest = sha256_digest(b"never pushed");
    let url = server.url(&format!("/v2/app/blobs/{digest}"));
    let res = client.head(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = client.get(&url).send().await.unwrap();
    let err = expect_error(res, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    assert!(err["message"].is_string());
    // The same for a sha512 digest.
    let url = server.url(&format!("/v2/app/blobs/{}", sha512_digest(b"never pushed")));
    let res = client.get(&url).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_repository_names_are_name_invalid() {
    let server = TestServer::start().await;
    let client = common::client();
    let digest = sha256_digest(b"x");
    let long = "a".repeat(256);
    for name in [
        "App",
        "a..b",
        "-a",
        "a-",
        "a___b",
        "a//b",
        "team/App",
        "a%20b",
        long.as_str(),
    ] {
        for path in [
            format!("/v2/{name}/blobs/{digest}"),
            format!("/v2/{name}/manifests/latest"),
            format!("/v2/{name}/tags/list"),
        ] {
            let res = client.get(server.url(&path)).send().await.unwrap();
            expect_error(res, StatusCode::BAD_REQUEST, "NAME_INVALID").await;
        }
        let res = client
            .post(server.url(&format!("/v2/{name}/blobs/uploads/")))
            .send()
            .await
            .unwrap();
        expect_error(res, StatusCode::BAD_REQUEST, "NAME_INVALID").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_isolated_per_repository_but_stored_once() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let data = fixed_bytes(10, 50_000);
    let digest = push_blob(&client, &base, "a/x", &data).await;

    for repo in ["b/y", "a", "a/x/z", "b"] {
        let url = server.url(&format!("/v2/{repo}/blobs/{digest}"));
        let res = client.head(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "HEAD in {repo}");
        let res = client.get(&url).send().await.unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
        let res = client
            .get(&url)
            .header(RANGE, "bytes=10-")
            .send()
            .await
            .unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    }

    // Pushing the same bytes to b/y makes them readable there, still as one file.
    push_blob(&client, &base, "b/y", &data).await;
    assert_eq!(get_blob(&client, &base, "b/y", &digest).await, data);
    assert_eq!(blob_files(&server.data_dir()).len(), 1);
    assert!(blob_path(&server.data_dir(), &data).is_file());

    // Deleting from one repository leaves the other untouched.
    let res = client
        .delete(server.url(&format!("/v2/a/x/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = client
        .head(server.url(&format!("/v2/a/x/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(get_blob(&client, &base, "b/y", &digest).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount_links_an_existing_blob() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let data = fixed_bytes(11, 30_000);
    let digest = push_blob(&client, &base, "a/x", &data).await;

    let res = client
        .post(server.url(&format!("/v2/b/y/blobs/uploads/?mount={digest}&from=a/x")))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);
    let location = abs_url(&base, &must_header(&res, "location"));
    // The Location names the blob in the target repository.
    let res = client.get(&location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "GET {location}");
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());

    let head = client
        .head(server.url(&format!("/v2/b/y/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(must_header(&head, "content-length"), "30000");
    assert_eq!(get_blob(&client, &base, "b/y", &digest).await, data);
    assert_eq!(
        blob_files(&server.data_dir()).len(),
        1,
        "a mount copies nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_of_a_missing_blob_starts_a_normal_upload() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let data = fixed_bytes(12, 2_000);
    let digest = sha256_digest(&data);
    // Pushed to a/x but mounted from c/z, which lacks it; and from a repo
    // that does not exist at all; and with a from that is not a valid name.
    push_blob(&client, &base, "a/x", &data).await;
    let mut sessions = Vec::new();
    for from in ["c/z", "nothing/here", "Not..Valid"] {
        let res = client
            .post(server.url(&format!(
                "/v2/b/y/blobs/uploads/?mount={digest}&from={from}"
            )))
            .send()
            .await
            .unwrap();
        let res = expect_status(res, StatusCode::ACCEPTED).await;
        sessions.push(abs_url(&base, &must_header(&res, "location")));
        assert!(header(&res, "docker-upload-uuid").is_some());
        let head = client
            .head(server.url(&format!("/v2/b/y/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.status(),
            StatusCode::NOT_FOUND,
            "not mounted from {from}"
        );
    }
    // The session works like any other.
    let res = client
        .put(with_query(&sessions[0], &format!("digest={digest}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);
    assert_eq!(get_blob(&client, &base, "b/y", &digest).await, data);
    // A mount without `from` is a normal upload too.
    let res = client
        .post(server.url(&format!("/v2/d/w/blobs/uploads/?mount={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    // A malformed mount digest is an error.
    let res = client
        .post(server.url("/v2/b/y/blobs/uploads/?mount=sha256:zz&from=a/x"))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_referenced_blob_never_leaves_a_broken_manifest() {
    // An invariant (docs/ARCHITECTURE.md): no entry ever points at a missing blob; a
    // client sees a cache miss, never a broken cache. Whether the server
    // refuses the DELETE, keeps the blob readable for the manifest, or drops
    // the manifest with it, no served manifest may reference a 404.
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let image = push_image(&client, &base, "app", Some("latest"), 40, 2).await;
    let layer = sha256_digest(&image.layers[1]);
    let res = client
        .delete(server.url(&format!("/v2/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert!(
        !status.is_server_error(),
        "DELETE of a referenced blob: {status}"
    );
    let report =
        check_manifest_refs(&client, &base, "app", std::slice::from_ref(&image.digest)).await;
    assert!(
        report.broken.is_empty(),
        "DELETE {layer} answered {status} and left a broken manifest:\n  {}",
        report.broken.join("\n  ")
    );
}
