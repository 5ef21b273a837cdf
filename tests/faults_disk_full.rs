//! A full disk, on a real small filesystem (a tmpfs the test mounts): every
//! protocol answers 507 in its own format and stores nothing, no chunk that
//! met ENOSPC is acknowledged, and the server takes writes again by itself
//! once space is back — no restart.

mod common;
mod faults_support;
mod gha_support;

use std::time::Duration;

use faults_support::*;
use gha_support::{json_of, V1, V2, VERSION};
use larder::config::Size;
use reqwest::StatusCode;
use serde_json::Value;

fn full_message(text: &str) {
    assert!(
        text.contains("storage is full"),
        "the error does not say the storage is full: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_is_507_in_every_protocol_and_nothing_is_stored() {
    let Some(disk) = SmallDisk::mount(32) else {
        return;
    };
    let server = common::TestServer::start_with(|c| {
        disk_config(&disk, c);
        c.storage.disk_reserve = Size(0);
    })
    .await;
    let c = common::client();
    let blob = vec![5u8; 64 << 10];
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&blob))
    );

    // OCI, monolithic.
    on_full_disk(&disk, &server, || async {
        let res = c
            .post(server.url(&format!("/v2/team/app/blobs/uploads/?digest={digest}")))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
        full_message(body["errors"][0]["message"].as_str().unwrap_or_default());
    })
    .await;

    // OCI, a chunk of a session: never 202 while its bytes are not written.
    let res = c
        .post(server.url("/v2/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let session = server.url(res.headers()["location"].to_str().unwrap());
    on_full_disk(&disk, &server, || async {
        let res = c
            .patch(&session)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("0-{}", blob.len() - 1))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
        let body: Value = res.json().await.unwrap();
        full_message(body["errors"][0]["message"].as_str().unwrap_or_default());
    })
    .await;
    let res = c.get(&session).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["range"], "0-0", "the refused chunk was kept");

    // GHA v2: a whole-blob PUT is not 201 unless its bytes are stored.
    let v2 = V2::new(&server, None);
    let url = v2.create("v2-key", VERSION).await;
    on_full_disk(&disk, &server, || async {
        let res = c
            .put(&url)
            .header("x-ms-blob-type", "BlockBlob")
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(res.headers()["x-ms-error-code"], "InsufficientStorage");
        full_message(&res.text().await.unwrap());
    })
    .await;
    let res = v2
        .finalize("v2-key", VERSION, serde_json::json!(blob.len()))
        .await;
    assert!(!res.status().is_success(), "finalized a refused upload");

    // The HTTP caches: plain, turbo, Nx.
    for (path, turbo) in [
        ("/cache/team/key-1", false),
        ("/v8/artifacts/a1aa6e5ae91490e9?slug=team", true),
        ("/v1/cache/4242", false),
    ] {
        on_full_disk(&disk, &server, || async {
            let res = c
                .put(server.url(path))
                .header("content-type", "application/octet-stream")
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE, "{path}");
            let text = res.text().await.unwrap();
            full_message(&text);
            if turbo {
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["error"]["code"], "storage_full");
            }
        })
        .await;
        let res = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path} was stored");
    }

    // Nothing of the refused writes is stored; writes work again.
    let res = c
        .head(server.url(&format!("/v2/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = c
        .post(server.url(&format!("/v2/team/app/blobs/uploads/?digest={digest}")))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let metrics = c
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("larder_storage_full 0"), "{metrics}");
    assert!(!metrics.contains("larder_storage_full_refusals_total 0"));
}

/// The sequence that once served ten zero bytes: a chunk written on a full
/// disk was acknowledged although its bytes never reached the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gha_v1_chunk_that_meets_a_full_disk_is_refused_and_never_served_as_zeros() {
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let server = common::TestServer::start_with(|c| {
        disk_config(&disk, c);
        c.storage.disk_reserve = Size(0);
    })
    .await;
    let v1 = V1::new(&server, None);
    let first = b"0123456789";
    let second = b"abcdefghij";
    let id = v1.reserve_id("zeros", VERSION).await;

    on_full_disk(&disk, &server, || async {
        let res = v1.patch(id, 0, first).await;
        assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
        let body = json_of(res).await;
        assert_eq!(body["typeKey"], "StorageFullException", "{body}");
    })
    .await;
    assert_eq!(v1.patch(id, 10, second).await.status(), 204);
    let res = v1.commit(id, 20).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "committed a cache with a chunk that was never written"
    );
    assert_eq!(v1.lookup("zeros", VERSION).await.status(), 204, "a miss");

    // The client sends the refused chunk again: now it is stored whole.
    assert_eq!(v1.patch(id, 0, first).await.status(), 204);
    assert_eq!(v1.commit(id, 20).await.status(), 204);
    let got = v1.restore("zeros", VERSION).await;
    assert_eq!(got, [&first[..], &second[..]].concat());
}

/// The disk fills with the cache's own data: eviction and purging a
/// namespace work on the full disk, and the server takes writes again by
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_and_purge_on_a_full_disk_succeed_and_writes_resume_without_a_restart() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let server = common::TestServer::start_with(|c| {
        disk_config(&disk, c);
        c.gc.interval = larder::config::Span(Duration::from_millis(200));
        c.gc.lease = larder::config::Span(Duration::from_millis(100));
    })
    .await;
    let c = common::client();
    let mut stored = Vec::new();
    let refused = loop {
        let i = stored.len();
        assert!(i < 100, "the disk never filled");
        let value = vec![i as u8; 1 << 20];
        let path = format!("/cache/team/key-{i}");
        let res = c.put(server.url(&path)).body(value).send().await.unwrap();
        match res.status() {
            StatusCode::CREATED => stored.push(path),
            StatusCode::INSUFFICIENT_STORAGE => break res.text().await.unwrap(),
            other => panic!("PUT {path}: {other} {}", res.text().await.unwrap()),
        }
    };
    full_message(&refused);
    assert!(!stored.is_empty());
    let body = ready_becomes(&server, 503, RESUME).await;
    assert!(body.contains("storage is full"), "{body}");
    // Reads keep working while full.
    let res = c.get(server.url(&stored[0])).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), vec![0u8; 1 << 20]);

    // Eviction and a purge both work on the full disk.
    let half = (stored.len() as u64 / 2) << 20;
    let res = c
        .post(server.url("/admin/v1/evict"))
        .json(&serde_json::json!({ "target_bytes": half }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let res = c
        .delete(server.url("/admin/v1/namespaces/team"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );

    ready_becomes(&server, 200, RESUME).await;
    let res = c
        .put(server.url("/cache/team/after"))
        .body(b"back".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = c.get(server.url("/cache/team/after")).send().await.unwrap();
    assert_eq!(res.bytes().await.unwrap(), &b"back"[..]);
}

/// A restart on a disk that filled while the server ran serves reads,
/// deletes and the admin API, refuses writes, says why in `/readyz`, and
/// leaves that mode once space is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_full_disk_is_read_only_until_space_is_back() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let mut server = start_on(&disk).await;
    let c = common::client();
    for key in ["kept", "dropped"] {
        let res = c
            .put(server.url(&format!("/cache/team/{key}")))
            .body(key.as_bytes().to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    // The disk fills while the server runs: it turns read-only and gives up
    // part of its reserve, which the disk's other user then takes too. A
    // restart before space comes back still opens the store.
    disk.fill();
    let body = ready_becomes(&server, 503, RESUME).await;
    assert!(body.contains("storage is full"), "{body}");
    disk.fill();
    server.shutdown().await;

    let server = server.restart().await;
    let body = ready_becomes(&server, 503, RESUME).await;
    assert!(body.contains("storage is full"), "{body}");
    let res = c.get(server.url("/cache/team/kept")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), &b"kept"[..]);
    let res = c
        .put(server.url("/cache/team/new"))
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
    full_message(&res.text().await.unwrap());
    // Writes that would add only index records are refused too: the room
    // the reserve gave is for the deletes that free space.
    let res = c
        .post(server.url("/v2/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::INSUFFICIENT_STORAGE,
        "OCI session"
    );
    let body: Value = res.json().await.unwrap();
    full_message(body["errors"][0]["message"].as_str().unwrap_or_default());
    let res = V1::new(&server, None).reserve("read-only", VERSION).await;
    assert_eq!(
        res.status(),
        StatusCode::INSUFFICIENT_STORAGE,
        "GHA reserve"
    );
    let body = json_of(res).await;
    assert_eq!(body["typeKey"], "StorageFullException", "{body}");
    let res = c
        .delete(server.url("/cache/team/dropped"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "delete: {}", res.status());
    let res = c.get(server.url("/admin/v1/stats")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    disk.free_filler();
    ready_becomes(&server, 200, RESUME).await;
    let res = c
        .put(server.url("/cache/team/new"))
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = c
        .get(server.url("/cache/team/dropped"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
