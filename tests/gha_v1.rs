//! The Actions cache v1 API as BuildKit (`type=gha`) and actions/toolkit use
//! it: reserve, parallel out-of-order chunks, commit, lookup (newest prefix
//! match), and the signed, token-free archive download.

mod common;
mod gha_support;
mod oci_support;

use std::time::Duration;

use gha_support::*;
use larder::auth::{READ, WRITE};
use larder::cache::Protocol;
use larder::config::Span;
use oci_support::{blob_files, files_under, fixed_bytes, sha256_digest};
use reqwest::StatusCode;

const SCOPE: &str = "team";

#[tokio::test]
async fn buildkit_saves_then_loads_the_newest_index_by_prefix_with_a_ranged_download() {
    let server = start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let first = fixed_bytes(1, 4 * CHUNK);
    let second = fixed_bytes(2, 4 * CHUNK - 123);
    v1.save("index-app-1-0a1b2c3d#1", VERSION, &first).await;
    v1.save("index-app-1-0a1b2c3d#2", VERSION, &second).await;

    let hit = v1.hit("index-app-1-0a1b2c3d#", VERSION).await;
    assert_eq!(hit["cacheKey"], "index-app-1-0a1b2c3d#2");
    assert_eq!(hit["scope"], SCOPE);
    assert_eq!(hit["cacheVersion"], VERSION);
    let created = hit["creationTime"].as_str().expect("creationTime");
    humantime::parse_rfc3339(created).expect("creationTime is RFC 3339");
    let url = hit["archiveLocation"].as_str().expect("archiveLocation");

    // No Authorization: the URL authorizes itself.
    let http = common::client();
    let res = http.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), second);
    let from = 100_000;
    let res = http
        .get(url)
        .header("range", format!("bytes={from}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let expected_range = format!("bytes {from}-{}/{}", second.len() - 1, second.len());
    assert_eq!(res.headers()["content-range"], expected_range.as_str());
    assert!(res.headers().contains_key("x-ms-request-id"));
    assert_eq!(res.bytes().await.unwrap(), second[from..]);

    // The exact key still finds the older entry.
    let hit = v1.hit("index-app-1-0a1b2c3d#1", VERSION).await;
    let res = http
        .get(hit["archiveLocation"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap(), first);
}

#[tokio::test]
async fn exact_keys_come_first_then_prefixes_in_key_order() {
    let server = start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    v1.save("deps-linux-aaa", VERSION, b"exact").await;
    v1.save("deps-linux-aaab", VERSION, b"newer, longer").await;
    v1.save("deps-mac-1", VERSION, b"mac").await;

    assert_eq!(
        v1.hit("deps-linux-aaa", VERSION).await["cacheKey"],
        "deps-linux-aaa"
    );
    assert_eq!(
        v1.hit("deps-linux-a", VERSION).await["cacheKey"],
        "deps-linux-aaab"
    );
    let restored = v1
        .hit("deps-linux-zzz,deps-mac-,deps-linux-", VERSION)
        .await;
    assert_eq!(restored["cacheKey"], "deps-mac-1");
    let res = v1.lookup("nothing,here", VERSION).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The same key under another version is a different entry: a miss.
    let res = v1.lookup("deps-linux-aaa", "another-version").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn reserving_an_existing_or_reserved_key_conflicts() {
    let server = start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let id = v1.reserve_id("busy", VERSION).await;
    assert_ne!(id, 0);
    let conflict = || async {
        let res = v1.reserve("busy", VERSION).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        let body = json_of(res).await;
        assert!(
            body["typeKey"].as_str().unwrap().contains("AlreadyExists"),
            "{body}"
        );
        assert!(body["message"].as_str().unwrap().contains("busy"), "{body}");
    };
    // While the first reservation is in flight, and once it is committed.
    conflict().await;
    v1.upload_chunks(id, b"payload").await;
    assert_eq!(v1.commit(id, 7).await.status(), StatusCode::NO_CONTENT);
    conflict().await;
    // Another version of the same key is another entry.
    v1.save("busy", "v2", b"other").await;
}

#[tokio::test]
async fn missing_or_invalid_tokens_are_401_and_missing_permissions_403() {
    let server = start(|_| {}).await;
    let anonymous = V1::new(&server, None);
    let garbage = V1::new(&server, Some("not-a-token".into()));
    let foreign = V1::new(&server, Some(token_with_key(&[7; 32], &[rw(SCOPE)])));
    for client in [&anonymous, &garbage, &foreign] {
        for res in [
            client.lookup("k", VERSION).await,
            client.reserve("k", VERSION).await,
        ] {
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            let body = json_of(res).await;
            assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
        }
    }
    let reader = V1::new(&server, Some(token(&server, &[(SCOPE, READ)])));
    let res = reader.reserve("k", VERSION).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(json_of(res).await["message"].is_string());

    // A writer of one scope cannot touch another scope's reservation.
    let owner = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let id = owner.reserve_id("k", VERSION).await;
    let intruder = V1::new(&server, Some(token(&server, &[rw("other")])));
    assert_eq!(
        intruder.patch(id, 0, b"x").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(intruder.commit(id, 1).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        owner.patch(id + 1, 0, b"x").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_chunk_missing_from_the_middle_is_refused_at_commit_until_it_arrives() {
    let server = start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let payload = fixed_bytes(4, 3 * CHUNK);
    let id = v1.reserve_id("holey", VERSION).await;
    // The first and last chunks: the file already has the full size.
    for i in [0, 2] {
        let chunk = &payload[i * CHUNK..(i + 1) * CHUNK];
        assert_eq!(
            v1.patch(id, i * CHUNK, chunk).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let res = v1.commit(id, payload.len()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let message = json_of(res).await["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&format!("offset {CHUNK}")), "{message}");
    assert_eq!(
        v1.lookup("holey", VERSION).await.status(),
        StatusCode::NO_CONTENT
    );

    // The missing chunk arrives; now the archive is whole and stored.
    let res = v1.patch(id, CHUNK, &payload[CHUNK..2 * CHUNK]).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        v1.commit(id, payload.len()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(v1.restore("holey", VERSION).await, payload);
}

#[tokio::test]
async fn a_commit_of_the_wrong_size_is_400_and_the_reservation_stays_open() {
    let server = start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let payload = fixed_bytes(3, 3 * CHUNK);
    let id = v1.reserve_id("sized", VERSION).await;
    // The last chunk is missing.
    for (i, chunk) in payload.chunks(CHUNK).take(2).enumerate() {
        assert_eq!(
            v1.patch(id, i * CHUNK, chunk).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let res = v1.commit(id, payload.len()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(json_of(res).await["message"]
        .as_str()
        .unwrap()
        .contains("does not match"));
    assert_eq!(
        v1.lookup("sized", VERSION).await.status(),
        StatusCode::NO_CONTENT
    );

    let res = v1.patch(id, 2 * CHUNK, &payload[2 * CHUNK..]).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        v1.commit(id, payload.len()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(v1.restore("sized", VERSION).await, payload);
}

#[tokio::test]
async fn chunks_that_disagree_with_their_content_range_are_refused() {
    let server = start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let id = v1.reserve_id("ranges", VERSION).await;
    let send = |range: &'static str, body: &'static [u8]| {
        v1.request(reqwest::Method::PATCH, &format!("caches/{id}"))
            .header("content-range", range)
            .body(body)
            .send()
    };
    for (range, body) in [
        ("bytes 0-9/*", &b"short"[..]),
        ("bytes 0-1/*", b"too long"),
        ("bytes 5-1/*", b"x"),
        ("items 0-0/*", b"x"),
    ] {
        let res = send(range, body).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{range}");
        assert!(json_of(res).await["message"].is_string());
    }
    let res = v1
        .request(reqwest::Method::PATCH, &format!("caches/{id}"))
        .body("x")
        .send()
        .await;
    assert_eq!(
        res.unwrap().status(),
        StatusCode::BAD_REQUEST,
        "no Content-Range"
    );
    // A chunk past the largest entry allowed (5 GiB by default) is refused
    // before anything is written, however sparse the file would be.
    let res = send("bytes 6000000000-6000000000/*", b"x").await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json_of(res).await["message"].is_string());
    // Nothing was kept from the refused chunks.
    assert_eq!(v1.commit(id, 0).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn invalid_keys_and_versions_are_400_with_a_message_and_store_nothing() {
    let server = start(|_| {}).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let long = "k".repeat(513);
    let eleven = (0..11)
        .map(|i| format!("k{i}"))
        .collect::<Vec<_>>()
        .join(",");
    for (keys, version) in [
        (long.as_str(), VERSION),
        (eleven.as_str(), VERSION),
        ("k", ""),
        ("k", "a/b"),
        ("", VERSION),
    ] {
        let res = v1.lookup(keys, version).await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "lookup {keys:.20} {version}"
        );
        assert!(!json_of(res).await["message"].as_str().unwrap().is_empty());
    }
    for (key, version) in [
        (long.as_str(), VERSION),
        ("a,b", VERSION),
        ("", VERSION),
        ("k", ""),
        ("k", "a/b"),
    ] {
        let res = v1.reserve(key, version).await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "reserve {key:.20} {version}"
        );
        assert!(!json_of(res).await["message"].as_str().unwrap().is_empty());
    }
    let res = v1
        .request(reqwest::Method::POST, "caches")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(json_of(res).await["message"].is_string());
    // A key of exactly 512 characters is fine.
    v1.save(&"k".repeat(512), VERSION, b"ok").await;
    assert!(files_under(&server.data_dir().join("uploads")).is_empty());
}

#[tokio::test]
async fn download_urls_refuse_any_tampering_and_expire() {
    let server = start(|c| c.gha.url_ttl = Span::secs(1)).await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    v1.save("signed", VERSION, b"secret bytes").await;
    v1.save("other", VERSION, b"other bytes").await;
    let url = v1.hit("signed", VERSION).await["archiveLocation"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = common::client();
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    let (path, query) = url.split_once('?').unwrap();
    let sig_at = url.find("sig=").unwrap() + 4;
    let se_at = url.find("se=").unwrap() + 3;
    let id_at = path.rfind('/').unwrap() - 1; // last digit of the entry id
    let content_at = path.len() - 1;
    let flip = |at: usize| {
        let mut s = url.clone().into_bytes();
        s[at] = if s[at] == b'1' { b'2' } else { b'1' };
        String::from_utf8(s).unwrap()
    };
    for tampered in [
        flip(sig_at),
        flip(se_at),
        flip(id_at),
        flip(content_at),
        path.to_owned(),
        format!("{path}?{}", query.replace("se=", "se=1")),
    ] {
        let res = http.get(&tampered).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{tampered}");
        let body = res.text().await.unwrap();
        assert!(body.contains("<Code>AuthenticationFailed</Code>"), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_uncommitted_reservation_expires_with_its_bytes() {
    let server = start(|c| {
        c.gc.upload_expiry = Span(Duration::from_millis(300));
        c.gc.interval = Span(Duration::from_millis(100));
    })
    .await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    let id = v1.reserve_id("abandoned", VERSION).await;
    assert_eq!(
        v1.patch(id, 0, &fixed_bytes(4, CHUNK)).await.status(),
        StatusCode::NO_CONTENT
    );
    let uploads = server.data_dir().join("uploads");
    assert!(!files_under(&uploads).is_empty());
    let gone = eventually(Duration::from_secs(10), || async {
        files_under(&uploads).is_empty()
    })
    .await;
    assert!(gone, "the reservation never expired");
    assert_eq!(
        v1.patch(id, CHUNK, b"late").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(v1.commit(id, CHUNK).await.status(), StatusCode::NOT_FOUND);
    // The key is free again.
    v1.save("abandoned", VERSION, b"second try").await;
}

#[tokio::test]
async fn committed_archives_are_gha_entries_and_share_bytes_with_oci() {
    let mut server = start(|_| {}).await;
    let tok = token(&server, &[rw(SCOPE)]);
    let v1 = V1::new(&server, Some(tok.clone()));
    let layer = fixed_bytes(5, 3 * CHUNK + 17);
    v1.save("buildkit-blob-1-sha256:feed", VERSION, &layer)
        .await;

    // The same bytes pushed as an OCI layer are not stored twice.
    let digest = sha256_digest(&layer);
    let res = common::client()
        .post(server.url(&format!("/v2/{SCOPE}/app/blobs/uploads/?digest={digest}")))
        .bearer_auth(&tok)
        .body(layer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = common::client()
        .get(server.url(&format!("/v2/{SCOPE}/app/blobs/{digest}")))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap(), layer);
    assert_eq!(blob_files(&server.data_dir()).len(), 1);

    server.shutdown().await;
    let index = larder::index::Index::open(&server.data_dir().join("index")).unwrap();
    let entries: Vec<_> = index
        .entries_with_prefix(Protocol::Gha, SCOPE, &format!("{VERSION}/"))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry.key.protocol, Protocol::Gha);
    assert_eq!(
        entry.key.name,
        format!("{VERSION}/buildkit-blob-1-sha256:feed")
    );
    assert_eq!(entry.size, layer.len() as u64);
    assert_eq!(entry.pins, vec![entry.content]);
    assert_eq!(index.pin_count(&entry.content).unwrap(), 1);
}

#[tokio::test]
async fn a_token_with_several_scopes_reads_each_and_writes_the_first_writable() {
    let server = start(|_| {}).await;
    let main = V1::new(&server, Some(token(&server, &[rw("main")])));
    main.save("deps-1", VERSION, b"from main").await;
    let branch = V1::new(
        &server,
        Some(token(
            &server,
            &[("base", READ), ("branch", WRITE | READ), ("main", READ)],
        )),
    );
    branch.save("deps-2", VERSION, b"from branch").await;
    let hit = branch.hit("deps-", VERSION).await;
    assert_eq!(
        (hit["cacheKey"].as_str(), hit["scope"].as_str()),
        (Some("deps-2"), Some("branch"))
    );
    let hit = branch.hit("deps-1", VERSION).await;
    assert_eq!(hit["scope"], "main");
    // The main scope's writer cannot see the branch's entry.
    assert_eq!(
        main.lookup("deps-2", VERSION).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn without_auth_everything_lives_in_the_default_namespace() {
    let server = common::TestServer::start().await;
    let v1 = V1::new(&server, None);
    v1.save("open", VERSION, b"anyone").await;
    assert_eq!(v1.hit("open", VERSION).await["scope"], "default");
}

#[tokio::test]
async fn archives_are_evicted_least_recently_used_first_like_any_entry() {
    // Room for three archives and the staged chunks of the one being
    // committed (a commit briefly holds both), not for a fourth.
    let server = start(|c| {
        c.storage.max_size = larder::config::Size(5 << 18);
        c.gc.lease = Span(Duration::ZERO);
        c.gc.interval = Span::secs(3600);
    })
    .await;
    let v1 = V1::new(&server, Some(token(&server, &[rw(SCOPE)])));
    for (i, key) in ["e1", "e2", "e3"].into_iter().enumerate() {
        v1.save(key, VERSION, &fixed_bytes(20 + i as u32, 4 * CHUNK))
            .await;
    }
    // Using e1 makes e2 the least recently used.
    v1.hit("e1", VERSION).await;
    v1.save("e4", VERSION, &fixed_bytes(30, 4 * CHUNK)).await;

    assert_eq!(
        v1.lookup("e2", VERSION).await.status(),
        StatusCode::NO_CONTENT
    );
    for key in ["e1", "e4"] {
        assert_eq!(v1.restore(key, VERSION).await.len(), 4 * CHUNK, "{key}");
    }
}
