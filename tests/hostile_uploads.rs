//! Uploads from hostile or broken clients (issue 17): a declared body over
//! the blob limit is refused with 413 before any of it is read, in each
//! protocol's error format; chunk ranges are checked against what was
//! reserved and what arrives; none of it counts against the budget.

mod common;
mod gha_support;
mod oci_support;

use std::time::Duration;

use common::raw;
use common::TestServer;
use gha_support::{rw, token, V1, V2, VERSION};
use oci_support::{abs_url, must_header, start_upload};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const TERABYTE: u64 = 1 << 40;

/// Bytes the budget counts, from the metrics.
async fn used_bytes(server: &TestServer) -> u64 {
    let text = common::client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("larder_storage_used_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .expect("larder_storage_used_bytes in /metrics")
}

/// Sends only the head of a request declaring a 1 TB body (never a byte of
/// it) and returns the answer, which must come without the body.
async fn declare_terabyte(
    server: &TestServer,
    method: &str,
    path: &str,
    extra: &str,
) -> raw::RawResponse {
    let mut conn = raw::connect(server.addr).await;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: larder\r\nContent-Type: application/octet-stream\r\n\
         {extra}Content-Length: {TERABYTE}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let res = raw::read_response(&mut conn, Duration::from_secs(10)).await;
    assert_eq!(res.status, 413, "{method} {path}: {}", res.body_text());
    res
}

fn json(res: &raw::RawResponse) -> Value {
    serde_json::from_slice(&res.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", res.body_text()))
}

#[tokio::test]
async fn oci_chunks_declaring_a_terabyte_are_refused_before_the_body() {
    let server = TestServer::start().await;
    let client = common::client();
    let location = start_upload(&client, &server.base(), "app").await;
    let path = location.trim_start_matches(&server.base()).to_owned();
    let before = used_bytes(&server).await;

    let res = declare_terabyte(&server, "PATCH", &path, "").await;
    assert_eq!(json(&res)["errors"][0]["code"], "SIZE_INVALID");
    let res = declare_terabyte(
        &server,
        "PATCH",
        &path,
        "Content-Range: 0-1099511627775\r\n",
    )
    .await;
    assert_eq!(json(&res)["errors"][0]["code"], "SIZE_INVALID");
    let digest = format!("sha256:{}", "0".repeat(64));
    let put = format!("{path}?digest={digest}");
    let res = declare_terabyte(&server, "PUT", &put, "").await;
    assert_eq!(json(&res)["errors"][0]["code"], "SIZE_INVALID");
    let res = declare_terabyte(
        &server,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={digest}"),
        "",
    )
    .await;
    assert_eq!(json(&res)["errors"][0]["code"], "SIZE_INVALID");

    assert_eq!(used_bytes(&server).await, before, "nothing counted");
    // The session is untouched and still usable.
    let res = client.get(&location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(must_header(&res, "range"), "0-0");
}

#[tokio::test]
async fn an_oci_chunk_whose_body_disagrees_with_its_range_is_refused() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let location = start_upload(&client, &base, "app").await;
    // A 10-byte body for 100 bytes of range.
    let res = client
        .patch(&location)
        .header("content-range", "0-99")
        .body(vec![7u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // The same without a Content-Length (chunked): read, then refused.
    let chunked = futures_util::stream::iter([Ok::<_, std::io::Error>(vec![7u8; 10])]);
    let res = client
        .patch(&location)
        .header("content-range", "0-99")
        .body(reqwest::Body::wrap_stream(chunked))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = client.get(&location).send().await.unwrap();
    assert_eq!(must_header(&res, "range"), "0-0", "nothing was kept");
    let res = client
        .patch(&location)
        .header("content-range", "0-9")
        .body(vec![7u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = abs_url(&base, &must_header(&res, "location"));
    let res = client.get(&location).send().await.unwrap();
    assert_eq!(must_header(&res, "range"), "0-9");
}

#[tokio::test]
async fn gha_uploads_declaring_a_terabyte_are_refused_before_the_body() {
    let server = gha_support::start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw("team")])));
    let id = v1.reserve_id("big", VERSION).await;
    let before = used_bytes(&server).await;
    let auth = format!("Authorization: Bearer {}\r\n", v1.token.as_deref().unwrap());
    let path = format!("/_apis/artifactcache/caches/{id}");
    let range = format!("Content-Range: bytes 0-{}/*\r\n", TERABYTE - 1);
    let res = declare_terabyte(&server, "PATCH", &path, &format!("{auth}{range}")).await;
    assert_eq!(
        json(&res)["typeKey"],
        "ArgumentException",
        "{}",
        res.body_text()
    );

    let v2 = V2::new(&server, Some(token(&server, &[rw("team")])));
    let url = v2.create("big-v2", VERSION).await;
    let path = url.trim_start_matches(&server.base()).to_owned();
    let res = declare_terabyte(&server, "PUT", &path, "x-ms-blob-type: BlockBlob\r\n").await;
    assert!(
        res.body_text().contains("RequestBodyTooLarge"),
        "{}",
        res.body_text()
    );
    let block = format!("{path}&comp=block&blockid={}", gha_support::block_id(0));
    let res = declare_terabyte(&server, "PUT", &block, "").await;
    assert!(
        res.body_text().contains("RequestBodyTooLarge"),
        "{}",
        res.body_text()
    );
    assert_eq!(used_bytes(&server).await, before, "nothing counted");
}

#[tokio::test]
async fn gha_v1_chunks_past_the_reservation_are_refused_and_count_nothing() {
    let server = gha_support::start(|c| {
        c.storage.max_blob_size = larder::config::Size(1 << 20);
    })
    .await;
    let v1 = V1::new(&server, Some(token(&server, &[rw("team")])));
    let before = used_bytes(&server).await;

    // Without a cacheSize: past the blob limit (1 MiB) is 413.
    let id = v1.reserve_id("no-size", VERSION).await;
    let res = v1.patch(id, 1 << 30, b"0123456789").await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let res = v1.patch(id, (1 << 20) - 5, b"0123456789").await;
    assert_eq!(
        res.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "ends past the limit"
    );
    assert_eq!(
        used_bytes(&server).await,
        before,
        "a refused chunk counts nothing"
    );

    // With a cacheSize: past it is 400, within it is stored.
    let res = v1
        .request(reqwest::Method::POST, "caches")
        .json(&serde_json::json!({ "key": "sized", "version": VERSION, "cacheSize": 20 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = gha_support::json_of(res).await["cacheId"].as_u64().unwrap();
    let res = v1.patch(id, 15, b"0123456789").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("cacheSize"));
    assert_eq!(used_bytes(&server).await, before);
    assert_eq!(
        v1.patch(id, 10, b"abcdefghij").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        v1.patch(id, 0, b"0123456789").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(v1.commit(id, 20).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(v1.restore("sized", VERSION).await, b"0123456789abcdefghij");
}

#[tokio::test]
async fn a_gha_v1_chunk_far_out_counts_only_its_bytes_and_a_hole_is_never_served() {
    let server = gha_support::start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw("team")])));
    let before = used_bytes(&server).await;
    let id = v1.reserve_id("far", VERSION).await;
    let res = v1.patch(id, 1 << 30, b"0123456789").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let grown = used_bytes(&server).await - before;
    assert!(
        grown < 100,
        "a 10-byte chunk at 1 GiB counted {grown} bytes"
    );

    // Bytes 10-19 without 0-9: the commit finds the hole, serves nothing.
    let id = v1.reserve_id("holed", VERSION).await;
    assert_eq!(
        v1.patch(id, 10, b"abcdefghij").await.status(),
        StatusCode::NO_CONTENT
    );
    let res = v1.commit(id, 20).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        v1.lookup("holed", VERSION).await.status(),
        StatusCode::NO_CONTENT
    );
    // The client may still send the missing chunk, then commit.
    assert_eq!(
        v1.patch(id, 0, b"0123456789").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(v1.commit(id, 20).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(v1.restore("holed", VERSION).await, b"0123456789abcdefghij");

    // Overlapping chunks are refused at commit rather than spliced.
    let id = v1.reserve_id("overlap", VERSION).await;
    assert_eq!(
        v1.patch(id, 0, b"0123456789").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        v1.patch(id, 5, b"56789abcde").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(v1.commit(id, 15).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_manifest_declaring_a_terabyte_is_refused_before_the_body() {
    let server = TestServer::start().await;
    let res = declare_terabyte(
        &server,
        "PUT",
        "/v2/app/manifests/latest",
        "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
    )
    .await;
    assert_eq!(json(&res)["errors"][0]["code"], "SIZE_INVALID");
}

/// A client that sends its whole body before reading the answer still gets
/// the 413, not a reset connection: the server lingers while it closes.
#[tokio::test]
async fn a_refused_body_still_being_sent_gets_its_413_not_a_reset() {
    let server = TestServer::start_with(|c| {
        c.storage.max_blob_size = larder::config::Size(1 << 20);
    })
    .await;
    let client = common::client();
    for path in ["/cache/team/too-big", "/v2/app/blobs/uploads/?digest=sha256:0000000000000000000000000000000000000000000000000000000000000000"] {
        let res = client
            .request(if path.starts_with("/v2") { reqwest::Method::POST } else { reqwest::Method::PUT }, server.url(path))
            .body(vec![1u8; 16 << 20])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: the 413 was lost: {e}"));
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
}
