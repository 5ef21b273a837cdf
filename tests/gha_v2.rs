//! The Actions cache v2 API: Twirp calls with a bearer token, bytes through
//! signed Azure-Blob-like URLs (blocks in any order, a block list, or one
//! whole-blob PUT), downloads with `Range` / `x-ms-range`.

mod common;
mod gha_support;
mod oci_support;

use std::time::Duration;

use gha_support::*;
use larder::auth::READ;
use larder::config::Span;
use oci_support::{files_under, fixed_bytes};
use reqwest::StatusCode;
use serde_json::{json, Value};

const SCOPE: &str = "team";

/// Uploads `data` in blocks of `CHUNK`, all at once and last first, then
/// commits the block list in order; asserts every reply.
async fn upload_in_blocks(url: &str, data: &[u8]) {
    let http = common::client();
    let blocks: Vec<(String, &[u8])> = data
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| (block_id(i), c))
        .collect();
    let puts = blocks
        .iter()
        .rev()
        .map(|(id, c)| put_block(&http, url, id, c));
    for res in futures_util::future::join_all(puts).await {
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(res.headers().contains_key("x-ms-request-id"));
    }
    let ids: Vec<String> = blocks.into_iter().map(|(id, _)| id).collect();
    let res = put_block_list(&http, url, &ids).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers().contains_key("x-ms-request-id"));
}

async fn save(v2: &V2, key: &str, data: &[u8]) -> Value {
    let url = v2.create(key, VERSION).await;
    upload_in_blocks(&url, data).await;
    let res = v2
        .finalize(key, VERSION, json!(data.len().to_string()))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    json_of(res).await
}

#[tokio::test]
async fn blocks_in_any_order_become_an_entry_restored_by_prefix_with_ranges() {
    let server = start(|_| {}).await;
    let v2 = V2::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let older = fixed_bytes(10, 4 * CHUNK);
    let newer = fixed_bytes(11, 4 * CHUNK + 999);
    let body = save(&v2, "index-app-1-feedbeef#1", &older).await;
    assert_eq!(body["ok"], true);
    let entry_id = body["entry_id"]
        .as_str()
        .expect("entry_id is a JSON string");
    assert!(entry_id.parse::<u64>().is_ok(), "{entry_id}");
    save(&v2, "index-app-1-feedbeef#2", &newer).await;

    let hit = v2
        .download_url(
            "index-app-1-feedbeef#9",
            &["nope-", "index-app-1-feedbeef#"],
            VERSION,
        )
        .await;
    assert_eq!(hit["ok"], true);
    assert_eq!(hit["matched_key"], "index-app-1-feedbeef#2");
    let url = hit["signed_download_url"].as_str().expect("url");

    let http = common::client();
    let res = http.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-ms-request-id"));
    assert_eq!(res.bytes().await.unwrap(), newer);
    for header in ["range", "x-ms-range"] {
        let res = http
            .get(url)
            .header(header, "bytes=1000-4999")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{header}");
        let total = newer.len();
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes 1000-4999/{total}").as_str()
        );
        assert_eq!(res.bytes().await.unwrap(), newer[1000..5000]);
    }
    let res = http.head(url).send().await.unwrap();
    assert_eq!(
        res.headers()["content-length"],
        newer.len().to_string().as_str()
    );
}

#[tokio::test]
async fn a_whole_blob_put_and_a_numeric_size_are_accepted() {
    let server = start(|_| {}).await;
    let v2 = V2::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let payload = fixed_bytes(12, 100_000);
    let url = v2.create("small", VERSION).await;
    let http = common::client();
    let res = http.put(&url).body(payload.clone()).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "x-ms-blob-type is required"
    );
    let res = http
        .put(&url)
        .header("x-ms-blob-type", "BlockBlob")
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers().contains_key("x-ms-request-id"));
    let res = v2.finalize("small", VERSION, json!(payload.len())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = json_of(res).await;
    assert!(body["entry_id"].is_string(), "{body}");

    let hit = v2.download_url("small", &[], VERSION).await;
    assert_eq!(hit["matched_key"], "small");
    let got = http
        .get(hit["signed_download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), payload);
}

#[tokio::test]
async fn duplicates_conflict_misses_are_not_ok_and_errors_are_twirp_json() {
    let server = start(|_| {}).await;
    let v2 = V2::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let url = v2.create("dup", VERSION).await;
    for round in ["in flight", "saved"] {
        let res = v2
            .call(
                "CreateCacheEntry",
                json!({ "key": "dup", "version": VERSION }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "{round}");
        let body = json_of(res).await;
        assert_eq!(body["code"], "already_exists", "{round}");
        let msg = body["msg"].as_str().unwrap();
        // BuildKit's Go client knows a conflict by this phrase.
        assert!(
            msg.contains("dup") && msg.contains("already exists"),
            "{body}"
        );
        assert_eq!(body["msg"], body["message"]);
        if round == "in flight" {
            upload_in_blocks(&url, b"dup bytes").await;
            let res = v2.finalize("dup", VERSION, json!("9")).await;
            assert_eq!(res.status(), StatusCode::OK);
        }
    }
    // BuildKit repeats the primary key among the restore keys; it counts once.
    let nine: Vec<String> = (0..9).map(|i| format!("r{i}")).collect();
    let mut restore: Vec<&str> = vec!["absent"];
    restore.extend(nine.iter().map(String::as_str));
    let miss = v2.download_url("absent", &restore, VERSION).await;
    assert_eq!(miss, json!({ "ok": false }));
    let miss = v2.download_url("absent", &["also-absent"], VERSION).await;
    assert_eq!(miss, json!({ "ok": false }));
    let miss = v2.download_url("dup", &[], "another-version").await;
    assert_eq!(miss["ok"], false);

    let anonymous = V2::new(&server, None);
    let res = anonymous
        .call(
            "GetCacheEntryDownloadURL",
            json!({ "key": "dup", "version": VERSION }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(res).await["code"], "unauthenticated");
    let reader = V2::new(&server, Some(token(&server, &[(SCOPE, READ)])));
    let res = reader
        .call(
            "CreateCacheEntry",
            json!({ "key": "new", "version": VERSION }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(res).await["code"], "permission_denied");
    let res = v2.call("NoSuchMethod", json!({})).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(json_of(res).await["msg"].is_string());
}

#[tokio::test]
async fn bad_requests_are_400_and_change_nothing() {
    let server = start(|_| {}).await;
    let v2 = V2::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let eleven: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    for (method, body) in [
        (
            "CreateCacheEntry",
            json!({ "key": "a,b", "version": VERSION }),
        ),
        (
            "CreateCacheEntry",
            json!({ "key": "k".repeat(513), "version": VERSION }),
        ),
        ("CreateCacheEntry", json!({ "key": "k" })),
        (
            "GetCacheEntryDownloadURL",
            json!({ "key": "k", "restore_keys": eleven, "version": VERSION }),
        ),
        (
            "FinalizeCacheEntryUpload",
            json!({ "key": "k", "version": VERSION, "size_bytes": "-1" }),
        ),
        (
            "FinalizeCacheEntryUpload",
            json!({ "key": "k", "version": VERSION, "size_bytes": "many" }),
        ),
        ("CreateCacheEntry", json!("not an object")),
    ] {
        let res = v2.call(method, body.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{method} {body}");
        let err = json_of(res).await;
        assert_eq!(err["code"], "invalid_argument", "{err}");
        assert!(!err["msg"].as_str().unwrap().is_empty());
    }
    // Finalizing what was never created is a Twirp not_found.
    let res = v2.finalize("never", VERSION, json!(1)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(res).await["code"], "not_found");

    // A block list naming a block never uploaded, or that is not XML.
    let url = v2.create("blocks", VERSION).await;
    let http = common::client();
    assert_eq!(
        put_block(&http, &url, &block_id(0), b"abc").await.status(),
        StatusCode::CREATED
    );
    let res = put_block(&http, &url, "not base64!", b"abc").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = put_block_list(&http, &url, &[block_id(0), block_id(1)]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("<Code>InvalidBlockList</Code>"));
    let res = http
        .put(&url)
        .query(&[("comp", "blocklist")])
        .body("<nope/>")
        .send()
        .await;
    assert_eq!(res.unwrap().status(), StatusCode::BAD_REQUEST);
    // Nothing was assembled: the entry is still empty, and a finalize of the
    // wrong size fails.
    let res = v2.finalize("blocks", VERSION, json!(3)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        put_block_list(&http, &url, &[block_id(0)]).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        v2.finalize("blocks", VERSION, json!(3)).await.status(),
        StatusCode::OK
    );
    assert!(files_under(&server.data_dir().join("uploads")).is_empty());
}

#[tokio::test]
async fn upload_urls_refuse_tampering_and_expire() {
    let server = start(|c| c.gha.url_ttl = Span::secs(1)).await;
    let v2 = V2::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let url = v2.create("signed", VERSION).await;
    let other = v2.create("other", VERSION).await;
    let http = common::client();
    let sig_at = url.find("sig=").unwrap() + 4;
    let se_at = url.find("se=").unwrap() + 3;
    let id_at = url.find('?').unwrap() - 1;
    let flip = |at: usize| {
        let mut s = url.clone().into_bytes();
        s[at] = if s[at] == b'1' { b'2' } else { b'1' };
        String::from_utf8(s).unwrap()
    };
    let other_path = other.split_once('?').unwrap().0;
    let url_query = url.split_once('?').unwrap().1;
    for tampered in [
        flip(sig_at),
        flip(se_at),
        flip(id_at),
        format!("{other_path}?{url_query}"),
        url.split_once('?').unwrap().0.to_owned(),
    ] {
        let res = put_block(&http, &tampered, &block_id(0), b"x").await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{tampered}");
        assert!(res.headers().contains_key("x-ms-request-id"));
        assert_eq!(res.headers()["x-ms-error-code"], "AuthenticationFailed");
    }
    assert_eq!(
        put_block(&http, &url, &block_id(0), b"x").await.status(),
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = put_block(&http, &url, &block_id(1), b"y").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn lookups_of_both_apis_are_counted_as_gha_hits_and_misses() {
    let server = common::TestServer::start().await;
    let (v1, v2) = (V1::new(&server, None), V2::new(&server, None));
    v1.save("counted", VERSION, b"bytes").await;
    let url = v1.hit("counted", VERSION).await["archiveLocation"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        v1.lookup("absent", VERSION).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(v2.download_url("counted", &[], VERSION).await["ok"], true);
    assert_eq!(v2.download_url("absent", &[], VERSION).await["ok"], false);
    // Fetching the archive is not another lookup.
    let http = common::client();
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    let metrics = http.get(server.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    for line in [
        "larder_cache_hits_total{protocol=\"gha\"} 2",
        "larder_cache_misses_total{protocol=\"gha\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}
