//! `/cache/<namespace>/<key>` against a real in-process server: the plain
//! HTTP cache protocol (Bazel, ccache layouts, Gradle), hostile keys, size
//! limits and deduplication with the OCI API.

mod common;
mod httpcache_support;

use common::{client, TestServer};
use httpcache_support::*;
use larder::config::Size;
use reqwest::{Method, StatusCode};

async fn put(s: &TestServer, path: &str, body: Vec<u8>) -> reqwest::Response {
    client().put(s.url(path)).body(body).send().await.unwrap()
}

async fn get_bytes(s: &TestServer, path: &str) -> (StatusCode, Vec<u8>) {
    let res = client().get(s.url(path)).send().await.unwrap();
    (res.status(), res.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn put_get_head_overwrite_and_delete_a_key() {
    let s = TestServer::start().await;
    let path = "/cache/team/gradle-key-0a1b2c";
    assert_eq!(put(&s, path, b"first".to_vec()).await.status(), 201);
    assert_eq!(
        get_bytes(&s, path).await,
        (StatusCode::OK, b"first".to_vec())
    );

    let head = client().head(s.url(path)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "5");
    assert!(head.bytes().await.unwrap().is_empty());

    // Overwriting re-points the key (204: it existed).
    assert_eq!(put(&s, path, b"second".to_vec()).await.status(), 204);
    assert_eq!(
        get_bytes(&s, path).await,
        (StatusCode::OK, b"second".to_vec())
    );

    let del = client().delete(s.url(path)).send().await.unwrap();
    assert_eq!(del.status(), 204);
    let (status, body) = get_bytes(&s, path).await;
    assert_eq!(status, 404);
    assert_eq!(body, b"404 not found\n");
    let head = client().head(s.url(path)).send().await.unwrap();
    assert_eq!(head.status(), 404);
    // A HEAD answer announces the length its GET would send, and sends nothing.
    assert_eq!(head.headers()["content-length"], "14");
    assert!(head.bytes().await.unwrap().is_empty());
    let del = client().delete(s.url(path)).send().await.unwrap();
    assert_eq!(del.status(), 404);
}

/// Small values are answered from memory, large ones streamed from their
/// files, and with the memory cache off every value is read from its file
/// (and each written with its own fsyncs): every way gives the same bytes
/// and ranges.
#[tokio::test]
async fn ranges_are_served_with_206_and_416() {
    let memory = TestServer::start().await;
    let files_only = TestServer::start_with(|c| {
        c.storage.memory_cache = Size(0);
        c.storage.group_sync = false;
    })
    .await;
    for s in [&memory, &files_only] {
        for len in [1000, 300 << 10] {
            check_ranges(s, len).await;
        }
    }
}

async fn check_ranges(s: &TestServer, len: usize) {
    let body = data(len, 3);
    let path = format!("/cache/ns/ranged-{len}");
    put(s, &path, body.clone()).await;
    for _ in 0..2 {
        // The first read fills the memory cache, the second is served by it.
        assert_eq!(get_bytes(s, &path).await, (StatusCode::OK, body.clone()));
    }
    let res = client()
        .get(s.url(&path))
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 100-199/{len}")
    );
    assert_eq!(res.bytes().await.unwrap(), body[100..200]);
    let res = client()
        .get(s.url(&path))
        .header("Range", format!("bytes={}-", len - 10))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap(), body[len - 10..]);
    let res = client()
        .get(s.url(&path))
        .header("Range", format!("bytes={len}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);
    assert_eq!(res.headers()["content-range"], format!("bytes */{len}"));
}

#[tokio::test]
async fn bazel_ac_and_cas_round_trip() {
    let s = TestServer::start().await;
    let content = data(4096, 7);
    let cas = format!("/cache/bazel/cas/{}", sha256_hex(&content));
    assert_eq!(put(&s, &cas, content.clone()).await.status(), 201);
    // An action result names its outputs; its key is the action's hash.
    let action_result = b"\x0a\x20fake-action-result".to_vec();
    let ac = format!("/cache/bazel/ac/{}", sha256_hex(b"some action"));
    assert_eq!(put(&s, &ac, action_result.clone()).await.status(), 201);
    assert_eq!(get_bytes(&s, &cas).await, (StatusCode::OK, content.clone()));
    assert_eq!(get_bytes(&s, &ac).await, (StatusCode::OK, action_result));
    // Re-uploading the same CAS blob is fine.
    assert!(put(&s, &cas, content).await.status().is_success());
    let missing = format!("/cache/bazel/cas/{}", sha256_hex(b"never stored"));
    assert_eq!(get_bytes(&s, &missing).await.0, 404);
}

#[tokio::test]
async fn bazel_cas_hash_mismatch_is_400_and_stores_nothing() {
    let s = TestServer::start().await;
    let claimed = data(2048, 1);
    let sent = data(2048, 2);
    let path = format!("/cache/bazel/cas/{}", sha256_hex(&claimed));
    let before = blob_files(&s.data_dir()).len();
    let res = put(&s, &path, sent.clone()).await;
    assert_eq!(res.status(), 400);
    let text = res.text().await.unwrap();
    assert!(text.starts_with("400 "), "{text}");
    assert_eq!(get_bytes(&s, &path).await.0, 404);
    assert_eq!(files_holding(&s.data_dir(), &sent), 0);
    assert_eq!(blob_files(&s.data_dir()).len(), before);
}

#[tokio::test]
async fn ccache_layouts_round_trip() {
    let s = TestServer::start().await;
    let key = "0pme0l1g27hrub0cvonne11gb7d16shd4";
    let hex64 = sha256_hex(key.as_bytes());
    for (i, path) in [
        format!("/cache/cc/{}/{}", &key[..2], &key[2..]), // subdirs
        format!("/cache/cc/{key}"),                       // flat
        format!("/cache/cc/ac/{hex64}"),                  // bazel
    ]
    .iter()
    .enumerate()
    {
        let value = data(300 + i, i as u8);
        assert_eq!(put(&s, path, value.clone()).await.status(), 201, "{path}");
        assert_eq!(get_bytes(&s, path).await, (StatusCode::OK, value), "{path}");
    }
}

#[tokio::test]
async fn namespaces_do_not_see_each_other() {
    let s = TestServer::start().await;
    put(&s, "/cache/alpha/shared-key", b"alpha".to_vec()).await;
    assert_eq!(get_bytes(&s, "/cache/beta/shared-key").await.0, 404);
    put(&s, "/cache/beta/shared-key", b"beta".to_vec()).await;
    assert_eq!(get_bytes(&s, "/cache/alpha/shared-key").await.1, b"alpha");
    assert_eq!(get_bytes(&s, "/cache/beta/shared-key").await.1, b"beta");
}

#[tokio::test]
async fn hostile_paths_get_400_and_store_nothing() {
    let s = TestServer::start().await;
    put(&s, "/cache/other/x", b"victim".to_vec()).await;
    let payload = b"hostile payload".to_vec();
    for path in [
        "/cache/ns/../other/x",
        "/cache/ns/a/../../other/x",
        "/cache/ns/./x",
        "/cache/ns/%2e%2e/other/x",
        "/cache/ns/%2E%2E/other/x",
        "/cache/ns/..%2fother%2fx",
        "/cache/ns/a%2fb",
        "/cache/ns/a//b",
        "/cache/ns///x",
        "/cache/ns//a//b",
        "/cache//other/x",
        "/cache//etc/passwd",
        "/cache/ns/a\\..\\..\\other\\x",
        "/cache/ns\\..\\other/x",
        "/cache/../cache/other/x",
        "/cache/.hidden/x",
    ] {
        for method in ["PUT", "GET", "DELETE"] {
            let res = raw_request(&s, method, path, &[], &payload).await;
            assert_eq!(res.status, 400, "{method} {path}: {}", res.head);
            if method == "PUT" || method == "GET" {
                assert!(
                    res.body.starts_with(b"400 "),
                    "{method} {path}: {:?}",
                    String::from_utf8_lossy(&res.body)
                );
            }
        }
    }
    // A key names a value, never a collection.
    assert_eq!(
        raw_request(&s, "PUT", "/cache/ns/x/", &[], &payload)
            .await
            .status,
        400
    );
    let long = format!("/cache/ns/{}", "k".repeat(1025));
    assert_eq!(
        raw_request(&s, "PUT", &long, &[], &payload).await.status,
        400
    );
    assert_eq!(files_holding(&s.data_dir(), &payload), 0);
    assert_eq!(get_bytes(&s, "/cache/other/x").await.1, b"victim");
}

#[tokio::test]
async fn a_doubled_slash_after_the_namespace_is_the_webdav_root_join() {
    // sccache/OpenDAL sends `<endpoint>/` + `/key` for the documented
    // endpoint `…/cache/<ns>/`: the same key as `/cache/<ns>/key`.
    let s = TestServer::start().await;
    let res = raw_request(&s, "PUT", "/cache/sc//.sccache_check", &[], b"ok").await;
    assert_eq!(res.status, 201, "{}", res.head);
    assert_eq!(get_bytes(&s, "/cache/sc/.sccache_check").await.1, b"ok");
    let res = raw_request(&s, "GET", "/cache/sc//.sccache_check", &[], b"").await;
    assert_eq!((res.status, res.body), (200, b"ok".to_vec()));
}

#[tokio::test]
async fn values_above_max_blob_size_get_413_and_store_nothing() {
    let s = TestServer::start_with(|c| c.storage.max_blob_size = larder::config::Size(1024)).await;
    let big = data(4096, 9);
    let res = put(&s, "/cache/gradle/big", big.clone()).await;
    assert_eq!(res.status(), 413);
    // Without Content-Length (chunked), the limit applies while reading.
    let stream = futures_util::stream::iter(
        big.chunks(512)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let res = client()
        .put(s.url("/cache/gradle/big-chunked"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(files_holding(&s.data_dir(), &big), 0);
    assert_eq!(get_bytes(&s, "/cache/gradle/big").await.0, 404);
    assert_eq!(
        put(&s, "/cache/gradle/small", data(1024, 9)).await.status(),
        201
    );
}

#[tokio::test]
async fn a_full_disk_is_507_and_stores_nothing() {
    // A budget smaller than two values; the first one was just read, so its
    // lease keeps its bytes even once its key is evicted, and nothing can
    // make room for the second below the hard limit (4096 + 10 %).
    let s = TestServer::start_with(|c| c.storage.max_size = larder::config::Size(4096)).await;
    assert_eq!(put(&s, "/cache/ns/a", data(3000, 1)).await.status(), 201);
    assert_eq!(get_bytes(&s, "/cache/ns/a").await.0, 200);
    let res = put(&s, "/cache/ns/b", data(3000, 2)).await;
    assert_eq!(res.status(), 507);
    let text = res.text().await.unwrap();
    assert!(text.starts_with("507 "), "{text}");
    assert!(
        text.contains("hard limit") && text.contains("leases"),
        "{text}"
    );
    assert_eq!(files_holding(&s.data_dir(), &data(3000, 2)), 0);
    assert_eq!(files_holding(&s.data_dir(), &data(3000, 1)), 1);
}

#[tokio::test]
async fn options_and_unsupported_methods() {
    let s = TestServer::start().await;
    let res = client()
        .request(Method::OPTIONS, s.url("/cache/ns/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["dav"], "1");
    let res = client()
        .request(Method::PATCH, s.url("/cache/ns/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.headers()["allow"].to_str().unwrap().contains("PUT"));
    assert_eq!(get_bytes(&s, "/cache").await.0, 400);
}

#[tokio::test]
async fn content_saved_over_http_and_oci_is_stored_once() {
    let s = TestServer::start().await;
    let content = data(100_000, 42);
    assert_eq!(
        put(&s, "/cache/team/ccache-entry", content.clone())
            .await
            .status(),
        201
    );
    let digest = format!("sha256:{}", sha256_hex(&content));
    let res = client()
        .post(s.url(&format!("/v2/team/app/blobs/uploads/?digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(files_holding(&s.data_dir(), &content), 1);
    let res = client()
        .get(s.url(&format!("/v2/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap(), content);
    assert_eq!(get_bytes(&s, "/cache/team/ccache-entry").await.1, content);
}
