//! OCI Distribution blob uploads: sessions, monolithic, streamed and chunked
//! uploads, their errors, verification (nothing is left behind when it
//! fails), zero-byte and sha512 blobs, restarts and a large streamed blob.

mod common;
mod oci_support;

use std::convert::Infallible;

use bytes::Bytes;
use common::TestServer;
use futures_util::StreamExt;
use oci_support::*;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{Body, Client, StatusCode};
use sha2::{Digest as _, Sha256};

const EMPTY_SHA256: &str =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `PATCH <session>` with an optional OCI `Content-Range: <start>-<end>`.
async fn patch(
    client: &Client,
    location: &str,
    chunk: &[u8],
    range_start: Option<usize>,
) -> reqwest::Response {
    let mut req = client
        .patch(location)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(chunk.to_vec());
    if let Some(start) = range_start {
        req = req.header(
            CONTENT_RANGE,
            format!("{start}-{}", start + chunk.len() - 1),
        );
    }
    req.send().await.unwrap()
}

/// Asserts the data dir holds no temp file and no upload session file.
fn assert_no_leftovers(server: &TestServer) {
    let dir = server.data_dir();
    assert_eq!(
        files_under(&dir.join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        files_under(&dir.join("uploads")),
        Vec::<std::path::PathBuf>::new()
    );
}

async fn head_status(client: &Client, server: &TestServer, repo: &str, digest: &str) -> StatusCode {
    client
        .head(server.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap()
        .status()
}

/// None of `digests` is a blob in `app`: a refused upload stored nothing
/// under the digest it claimed or under the one its bytes have.
async fn assert_not_stored(client: &Client, server: &TestServer, digests: &[&str]) {
    for digest in digests {
        assert_eq!(
            head_status(client, server, "app", digest).await,
            StatusCode::NOT_FOUND,
            "{digest}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_opens_a_session() {
    let server = TestServer::start().await;
    let client = common::client();
    let res = client
        .post(server.url("/v2/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    let location = must_header(&res, "location");
    let uuid = must_header(&res, "docker-upload-uuid");
    let range = must_header(&res, "range");
    assert!(!uuid.is_empty());
    assert!(
        location.contains("/v2/team/app/blobs/uploads/"),
        "Location {location:?} is a session of the repository"
    );
    assert!(range.starts_with("0-"), "Range {range:?}");
    // Two sessions are distinct.
    let other = start_upload(&client, &server.base(), "team/app").await;
    assert_ne!(abs_url(&server.base(), &location), other);
    // The form without the trailing slash works as well.
    let res = client
        .post(server.url("/v2/team/app/blobs/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_post_with_digest_stores_the_blob() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(20, 70_000);
    let digest = sha256_digest(&data);
    let res = client
        .post(server.url(&format!("/v2/app/blobs/uploads/?digest={digest}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);
    let location = abs_url(&server.base(), &must_header(&res, "location"));
    let get = client.get(&location).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.bytes().await.unwrap().as_ref(), data.as_slice());

    // A wrong digest stores nothing.
    let other = fixed_bytes(21, 5_000);
    let claimed = sha256_digest(b"something else");
    let res = client
        .post(server.url(&format!("/v2/app/blobs/uploads/?digest={claimed}")))
        .body(other.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_not_stored(&client, &server, &[&claimed, &sha256_digest(&other)]).await;
    assert!(!blob_path(&server.data_dir(), &other).exists());
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_the_whole_body_completes_the_upload() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(22, 200_001);
    let digest = sha256_digest(&data);
    let location = start_upload(&client, &server.base(), "app").await;
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);
    let blob_url = abs_url(&server.base(), &must_header(&res, "location"));
    assert!(
        blob_url.ends_with(&format!("/v2/app/blobs/{digest}")),
        "{blob_url}"
    );
    let get = client.get(&blob_url).send().await.unwrap();
    assert_eq!(get.bytes().await.unwrap().as_ref(), data.as_slice());
    // The session is over.
    let res = client.get(&location).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_patches_then_an_empty_put() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(23, 150_000);
    let digest = sha256_digest(&data);
    let location = start_upload(&client, &server.base(), "app").await;

    let res = patch(&client, &location, &data[..100_000], None).await;
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    assert_eq!(must_header(&res, "range"), "0-99999");
    let next = abs_url(&server.base(), &must_header(&res, "location"));
    assert!(header(&res, "docker-upload-uuid").is_some());

    let res = patch(&client, &next, &data[100_000..], None).await;
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    assert_eq!(must_header(&res, "range"), "0-149999");
    let next = abs_url(&server.base(), &must_header(&res, "location"));

    let res = client
        .put(with_query(&next, &format!("digest={digest}")))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);
    assert_eq!(
        get_blob(&client, &server.base(), "app", &digest).await,
        data
    );
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_patches_with_content_range() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(24, 90_000);
    let digest = sha256_digest(&data);
    let mut location = start_upload(&client, &server.base(), "app").await;

    for (start, end) in [(0, 30_000), (30_000, 60_000), (60_000, 80_000)] {
        let res = patch(&client, &location, &data[start..end], Some(start)).await;
        let res = expect_status(res, StatusCode::ACCEPTED).await;
        assert_eq!(must_header(&res, "range"), format!("0-{}", end - 1));
        location = abs_url(&server.base(), &must_header(&res, "location"));
    }
    // The last chunk comes with the PUT.
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .body(data[80_000..].to_vec())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);
    assert_eq!(
        get_blob(&client, &server.base(), "app", &digest).await,
        data
    );
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_chunks_are_416_and_change_nothing() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(25, 30);
    let location = start_upload(&client, &server.base(), "app").await;
    let res = patch(&client, &location, &data[..10], Some(0)).await;
    expect_status(res, StatusCode::ACCEPTED).await;

    // A gap, a repeat and an overlap.
    for (start, end) in [(20, 30), (0, 10), (5, 15)] {
        let res = patch(&client, &location, &data[start..end], Some(start)).await;
        assert_eq!(
            res.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "chunk {start}-{}",
            end - 1
        );
        let status = client.get(&location).send().await.unwrap();
        assert_eq!(status.status(), StatusCode::NO_CONTENT);
        assert_eq!(must_header(&status, "range"), "0-9", "nothing was appended");
    }
    // The session continues where it was.
    let res = patch(&client, &location, &data[10..], Some(10)).await;
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    assert_eq!(must_header(&res, "range"), "0-29");
    let digest = sha256_digest(&data);
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    assert_eq!(
        get_blob(&client, &server.base(), "app", &digest).await,
        data
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_on_a_session_reports_its_progress() {
    let server = TestServer::start().await;
    let client = common::client();
    let location = start_upload(&client, &server.base(), "app").await;
    let res = client.get(&location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(must_header(&res, "range").starts_with("0-"));
    assert!(header(&res, "location").is_some());

    patch(&client, &location, &fixed_bytes(26, 1234), Some(0)).await;
    let res = client.get(&location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(must_header(&res, "range"), "0-1233");
    let again = abs_url(&server.base(), &must_header(&res, "location"));
    let res = client.get(&again).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NO_CONTENT,
        "the Location is usable"
    );
    assert!(header(&res, "docker-upload-uuid").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cancels_a_session() {
    let server = TestServer::start().await;
    let client = common::client();
    let location = start_upload(&client, &server.base(), "app").await;
    patch(&client, &location, &fixed_bytes(27, 5000), None).await;
    let res = client.delete(&location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let res = client.get(&location).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let res = patch(&client, &location, b"more", None).await;
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let res = client
        .put(with_query(&location, &format!("digest={EMPTY_SHA256}")))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let res = client.delete(&location).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_mismatch_on_put_stores_nothing() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(28, 80_000);
    let actual = sha256_digest(&data);
    let claimed = sha256_digest(b"not these bytes");

    // The whole body in the PUT.
    let location = start_upload(&client, &server.base(), "app").await;
    let res = client
        .put(with_query(&location, &format!("digest={claimed}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;

    // PATCHed first, then an empty PUT.
    let location = start_upload(&client, &server.base(), "app").await;
    patch(&client, &location, &data, Some(0)).await;
    let res = client
        .put(with_query(&location, &format!("digest={claimed}")))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;

    // Part PATCHed, the rest with the PUT.
    let location = start_upload(&client, &server.base(), "app").await;
    patch(&client, &location, &data[..1000], Some(0)).await;
    let res = client
        .put(with_query(&location, &format!("digest={claimed}")))
        .body(data[1000..].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;

    assert_not_stored(&client, &server, &[&claimed, &actual]).await;
    assert_eq!(
        blob_files(&server.data_dir()),
        Vec::<std::path::PathBuf>::new()
    );
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_blobs_in_every_form() {
    let server = TestServer::start().await;
    let client = common::client();
    let check = |repo: &'static str| {
        let client = client.clone();
        let url = server.url(&format!("/v2/{repo}/blobs/{EMPTY_SHA256}"));
        async move {
            let head = client.head(&url).send().await.unwrap();
            assert_eq!(head.status(), StatusCode::OK, "HEAD {url}");
            assert_eq!(must_header(&head, "content-length"), "0");
            assert_eq!(must_header(&head, "docker-content-digest"), EMPTY_SHA256);
            let get = client.get(&url).send().await.unwrap();
            assert_eq!(get.status(), StatusCode::OK);
            assert!(get.bytes().await.unwrap().is_empty());
            let ranged = client
                .get(&url)
                .header(RANGE, "bytes=0-")
                .send()
                .await
                .unwrap();
            assert_eq!(
                ranged.status(),
                StatusCode::RANGE_NOT_SATISFIABLE,
                "no byte of an empty blob can be asked for"
            );
        }
    };

    // Monolithic POST with an empty body.
    let res = client
        .post(server.url(&format!("/v2/mono/blobs/uploads/?digest={EMPTY_SHA256}")))
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    check("mono").await;

    // POST, then PUT with an empty body (Content-Length: 0).
    let location = start_upload(&client, &server.base(), "put").await;
    let res = client
        .put(with_query(&location, &format!("digest={EMPTY_SHA256}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), EMPTY_SHA256);
    check("put").await;

    // POST, then PUT with an empty chunked body, as BuildKit may send it.
    let location = start_upload(&client, &server.base(), "chunked").await;
    let empty = futures_util::stream::empty::<Result<Bytes, Infallible>>();
    let res = client
        .put(with_query(&location, &format!("digest={EMPTY_SHA256}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(Body::wrap_stream(empty))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), EMPTY_SHA256);
    check("chunked").await;

    // An empty streamed PATCH, then an empty PUT.
    let location = start_upload(&client, &server.base(), "patched").await;
    let res = client
        .patch(&location)
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    let location = abs_url(&server.base(), &must_header(&res, "location"));
    let res = client
        .put(with_query(&location, &format!("digest={EMPTY_SHA256}")))
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    check("patched").await;

    assert_eq!(
        blob_files(&server.data_dir()).len(),
        1,
        "one empty blob file"
    );
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha512_digests_are_verified() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(29, 33_333);
    let digest = sha512_digest(&data);

    let location = start_upload(&client, &server.base(), "app").await;
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);

    let url = server.url(&format!("/v2/app/blobs/{digest}"));
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(must_header(&head, "docker-content-digest"), digest);
    assert_eq!(must_header(&head, "content-length"), "33333");
    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.bytes().await.unwrap().as_ref(), data.as_slice());

    // Monolithic with sha512 too.
    let mono = fixed_bytes(30, 999);
    let mono_digest = sha512_digest(&mono);
    let res = client
        .post(server.url(&format!("/v2/app/blobs/uploads/?digest={mono_digest}")))
        .body(mono.clone())
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    assert_eq!(
        get_blob(&client, &server.base(), "app", &mono_digest).await,
        mono
    );

    // A wrong sha512 is refused and stores nothing.
    let other = fixed_bytes(31, 4096);
    let wrong = sha512_digest(b"other bytes");
    let location = start_upload(&client, &server.base(), "app").await;
    let res = client
        .put(with_query(&location, &format!("digest={wrong}")))
        .body(other.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_not_stored(&client, &server, &[&wrong, &sha512_digest(&other)]).await;
    assert!(!blob_path(&server.data_dir(), &other).exists());
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_without_a_valid_digest_is_400() {
    let server = TestServer::start().await;
    let client = common::client();
    let location = start_upload(&client, &server.base(), "app").await;
    let res = client
        .put(&location)
        .body(b"data".to_vec())
        .send()
        .await
        .unwrap();
    let code = expect_error_status(res, StatusCode::BAD_REQUEST).await;
    assert!(
        code == "DIGEST_INVALID" || code == "BLOB_UPLOAD_INVALID",
        "code {code}"
    );
    let location = start_upload(&client, &server.base(), "app").await;
    let res = client
        .put(with_query(&location, "digest=sha256:123"))
        .body(b"data".to_vec())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_not_stored(&client, &server, &[&sha256_digest(b"data")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_garbage_session_ids_are_upload_unknown() {
    let server = TestServer::start().await;
    let client = common::client();
    let random = "0123456789abcdef0123456789abcdef";
    let ids = [
        random,
        "..%2F..%2Fx",
        "..%2F..%2FFORMAT",
        "nope",
        "%00",
        "ABCDEF",
    ];
    for id in ids {
        let url = server.url(&format!("/v2/app/blobs/uploads/{id}"));
        let res = client.get(&url).send().await.unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
        let res = patch(&client, &url, b"x", None).await;
        expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
        let res = client
            .put(format!("{url}?digest={}", sha256_digest(b"x")))
            .body(b"x".to_vec())
            .send()
            .await
            .unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
        let res = client.delete(&url).send().await.unwrap();
        expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    }
    // The data dir is untouched by the garbage ids.
    assert!(server.data_dir().join("FORMAT").is_file());

    // A session belongs to its repository.
    let location = start_upload(&client, &server.base(), "a/x").await;
    let foreign = location.replace("/v2/a/x/", "/v2/b/y/");
    assert_ne!(foreign, location);
    let res = client.get(&foreign).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let res = patch(&client, &foreign, b"x", None).await;
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let res = client.get(&location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        must_header(&res, "range"),
        "0-0",
        "the foreign PATCH wrote nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_restart() {
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(32, 120_000);
    let digest = sha256_digest(&data);
    let location = start_upload(&client, &server.base(), "team/app").await;
    let res = patch(&client, &location, &data[..50_000], Some(0)).await;
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    let path = path_and_query(&must_header(&res, "location"));

    let server = server.restart().await;
    let client = common::client();
    let location = abs_url(&server.base(), &path);
    let res = client.get(&location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(must_header(&res, "range"), "0-49999");
    let res = patch(&client, &location, &data[50_000..], Some(50_000)).await;
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    assert_eq!(must_header(&res, "range"), "0-119999");
    let location = abs_url(&server.base(), &must_header(&res, "location"));
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);
    assert_eq!(
        get_blob(&client, &server.base(), "team/app", &digest).await,
        data
    );
    assert_no_leftovers(&server);
}

/// 64 MiB in 1 MiB pieces; piece `i` is the base block with every byte xor `i`.
fn large_piece(block: &[u8], i: usize) -> Bytes {
    Bytes::from(block.iter().map(|b| b ^ i as u8).collect::<Vec<u8>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_blob_streams_in_and_out_intact() {
    const PIECES: usize = 64;
    const PIECE: usize = 1 << 20;
    let server = TestServer::start().await;
    let client = common::client();
    let block = fixed_bytes(33, PIECE);
    let mut hasher = Sha256::new();
    for i in 0..PIECES {
        hasher.update(large_piece(&block, i));
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));

    let location = start_upload(&client, &server.base(), "big").await;
    let body_block = block.clone();
    let body = futures_util::stream::iter(0..PIECES)
        .map(move |i| Ok::<_, Infallible>(large_piece(&body_block, i)));
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), digest);

    let url = server.url(&format!("/v2/big/blobs/{digest}"));
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        must_header(&res, "content-length"),
        (PIECES * PIECE).to_string()
    );
    let mut stream = res.bytes_stream();
    let mut offset = 0usize;
    let mut piece = 0usize;
    let mut expected = large_piece(&block, 0);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.unwrap();
        while !chunk.is_empty() {
            assert!(offset < PIECES * PIECE, "more bytes than were pushed");
            if offset / PIECE != piece {
                piece = offset / PIECE;
                expected = large_piece(&block, piece);
            }
            let in_piece = offset % PIECE;
            let n = chunk.len().min(PIECE - in_piece);
            assert!(
                chunk[..n] == expected[in_piece..in_piece + n],
                "byte range {offset}..{} differs",
                offset + n
            );
            offset += n;
            chunk = chunk.slice(n..);
        }
    }
    assert_eq!(offset, PIECES * PIECE, "the whole blob came back");

    // A resumed read of the tail.
    let start = PIECES * PIECE - 3 * PIECE / 2;
    let res = client
        .get(&url)
        .header(RANGE, format!("bytes={start}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        must_header(&res, "content-range"),
        format!("bytes {start}-{}/{}", PIECES * PIECE - 1, PIECES * PIECE)
    );
    let tail = res.bytes().await.unwrap();
    let mut want = large_piece(&block, PIECES - 2)[PIECE / 2..].to_vec();
    want.extend_from_slice(&large_piece(&block, PIECES - 1));
    assert!(tail.as_ref() == want.as_slice(), "the tail differs");
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_blob_in_chunked_patches() {
    const CHUNK: usize = 4 << 20;
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(34, 4 * CHUNK + 12_345);
    let digest = sha256_digest(&data);
    let mut location = start_upload(&client, &server.base(), "big").await;
    for start in (0..data.len()).step_by(CHUNK) {
        let end = (start + CHUNK).min(data.len());
        let res = patch(&client, &location, &data[start..end], Some(start)).await;
        let res = expect_status(res, StatusCode::ACCEPTED).await;
        assert_eq!(must_header(&res, "range"), format!("0-{}", end - 1));
        location = abs_url(&server.base(), &must_header(&res, "location"));
    }
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    let got = get_blob(&client, &server.base(), "big", &digest).await;
    assert!(got == data, "the blob came back different");
    assert_no_leftovers(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_upload_leaves_nothing_behind() {
    // The client dies mid-body (invariant 1: a failed write leaves nothing).
    let server = TestServer::start().await;
    let client = common::client();
    let data = fixed_bytes(35, 300_000);
    let digest = sha256_digest(&data);
    for patched_first in [false, true] {
        let location = start_upload(&client, &server.base(), "app").await;
        if patched_first {
            patch(&client, &location, &data[..1000], Some(0)).await;
        }
        let head = Bytes::copy_from_slice(&data[1000..200_000]);
        let body = futures_util::stream::iter(vec![
            Ok(head),
            Err(std::io::Error::other("client crashed")),
        ]);
        let res = client
            .put(with_query(&location, &format!("digest={digest}")))
            .body(Body::wrap_stream(body))
            .send()
            .await;
        assert!(
            res.as_ref().map_or(true, |r| !r.status().is_success()),
            "an aborted body cannot complete the upload: {res:?}"
        );
    }
    // The server notices the broken body asynchronously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !files_under(&server.data_dir().join("tmp")).is_empty()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        files_under(&server.data_dir().join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        head_status(&client, &server, "app", &digest).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        blob_files(&server.data_dir()),
        Vec::<std::path::PathBuf>::new()
    );
}
