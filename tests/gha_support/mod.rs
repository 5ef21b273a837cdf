//! Shared by the Actions cache tests: a server with token auth, tokens in the
//! exact shape BuildKit and actions/toolkit send, and the request sequences
//! those clients make. Test crates using it declare `mod common;` and
//! `mod gha_support;`; bytes and file listings come from `oci_support`.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use larder::auth::token::{mint, Grant, TokenSpec};
use larder::auth::{READ, WRITE};
use larder::config::{AuthMode, Config};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

use crate::common::TestServer;

/// The `Accept` header actions/toolkit sends to the v1 API.
pub const V1_ACCEPT: &str = "application/json;api-version=6.0-preview.1";
pub const TWIRP: &str = "/twirp/github.actions.results.api.v1.CacheService";
/// A version string like the ones clients compute (a SHA-256 in hex).
pub const VERSION: &str = "6f1ed002ab5595859014ebf0951522d9b6bcc4ab4a29e4e3b1f8dbd1e7d2e5d3";
pub const CHUNK: usize = 64 << 10;

/// A server that requires tokens, after `adjust` edits its config.
pub async fn start(adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.auth.mode = AuthMode::Token;
        adjust(c);
    })
    .await
}

/// The server's signing key, as `larder token create` reads it.
pub fn signing_key(server: &TestServer) -> Vec<u8> {
    let text = std::fs::read_to_string(server.data_dir().join("signing.key")).expect("signing.key");
    hex::decode(text.trim()).expect("hex key")
}

/// A token holding `grants` (scope, permission bits), in token order.
pub fn token(server: &TestServer, grants: &[(&str, u8)]) -> String {
    token_with_key(&signing_key(server), grants)
}

pub fn token_with_key(key: &[u8], grants: &[(&str, u8)]) -> String {
    let spec = TokenSpec {
        subject: "ci".into(),
        grants: grants
            .iter()
            .map(|(scope, permission)| Grant {
                scope: (*scope).into(),
                permission: *permission,
            })
            .collect(),
        admin: false,
        ttl_secs: 3600,
        parent: None,
    };
    mint(key, &spec).0
}

pub fn rw(scope: &str) -> (&str, u8) {
    (scope, READ | WRITE)
}

/// Polls `cond` (a state the server reaches on its own) until it holds or
/// `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

pub async fn json_of(res: Response) -> Value {
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// A v1 client: what BuildKit's `type=gha` and actions/toolkit send.
pub struct V1 {
    pub http: Client,
    pub base: String,
    pub token: Option<String>,
}

impl V1 {
    pub fn new(server: &TestServer, token: Option<String>) -> V1 {
        V1 {
            http: crate::common::client(),
            base: format!("{}/_apis/artifactcache/", server.base()),
            token,
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("accept", V1_ACCEPT);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn lookup(&self, keys: &str, version: &str) -> Response {
        self.request(reqwest::Method::GET, "cache")
            .query(&[("keys", keys), ("version", version)])
            .send()
            .await
            .expect("lookup")
    }

    pub async fn reserve(&self, key: &str, version: &str) -> Response {
        self.request(reqwest::Method::POST, "caches")
            .json(&json!({ "key": key, "version": version }))
            .send()
            .await
            .expect("reserve")
    }

    /// Reserves and returns the cache id, asserting 201.
    pub async fn reserve_id(&self, key: &str, version: &str) -> u64 {
        let res = self.reserve(key, version).await;
        assert_eq!(res.status(), StatusCode::CREATED, "reserve {key}");
        let body = json_of(res).await;
        body["cacheId"].as_u64().expect("numeric cacheId")
    }

    pub async fn patch(&self, id: u64, start: usize, chunk: &[u8]) -> Response {
        let end = start + chunk.len() - 1;
        self.request(reqwest::Method::PATCH, &format!("caches/{id}"))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("bytes {start}-{end}/*"))
            .body(chunk.to_vec())
            .send()
            .await
            .expect("patch")
    }

    pub async fn commit(&self, id: u64, size: usize) -> Response {
        self.request(reqwest::Method::POST, &format!("caches/{id}"))
            .json(&json!({ "size": size }))
            .send()
            .await
            .expect("commit")
    }

    /// Uploads `data` as BuildKit does: chunks of `CHUNK` bytes, all in
    /// flight at once, sent last to first.
    pub async fn upload_chunks(&self, id: u64, data: &[u8]) {
        let chunks: Vec<(usize, &[u8])> = data
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, c)| (i * CHUNK, c))
            .rev()
            .collect();
        let sends = chunks.iter().map(|(at, c)| self.patch(id, *at, c));
        for res in futures_util::future::join_all(sends).await {
            assert_eq!(res.status(), StatusCode::NO_CONTENT, "chunk upload");
        }
    }

    /// The whole save: reserve, parallel out-of-order chunks, commit.
    pub async fn save(&self, key: &str, version: &str, data: &[u8]) {
        let id = self.reserve_id(key, version).await;
        self.upload_chunks(id, data).await;
        let res = self.commit(id, data.len()).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "commit {key}");
    }

    /// Looks up and returns the JSON of a hit, asserting 200.
    pub async fn hit(&self, keys: &str, version: &str) -> Value {
        let res = self.lookup(keys, version).await;
        assert_eq!(res.status(), StatusCode::OK, "lookup {keys}");
        json_of(res).await
    }

    /// Looks up a hit and downloads its archive, token-free as clients do.
    pub async fn restore(&self, keys: &str, version: &str) -> Vec<u8> {
        let hit = self.hit(keys, version).await;
        let url = hit["archiveLocation"].as_str().expect("archiveLocation");
        let res = Client::new().get(url).send().await.expect("GET archive");
        assert_eq!(res.status(), StatusCode::OK, "archive of {keys}");
        res.bytes().await.expect("archive body").to_vec()
    }
}

/// A v2 client: the Twirp calls, with the bearer token.
pub struct V2 {
    pub http: Client,
    pub base: String,
    pub token: Option<String>,
}

impl V2 {
    pub fn new(server: &TestServer, token: Option<String>) -> V2 {
        V2 {
            http: crate::common::client(),
            base: server.base(),
            token,
        }
    }

    pub async fn call(&self, method: &str, body: Value) -> Response {
        let r = self
            .http
            .post(format!("{}{TWIRP}/{method}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        let r = match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        r.send().await.expect("twirp call")
    }

    /// `CreateCacheEntry`, returning the signed upload URL.
    pub async fn create(&self, key: &str, version: &str) -> String {
        let res = self
            .call(
                "CreateCacheEntry",
                json!({ "key": key, "version": version }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "CreateCacheEntry {key}");
        let body = json_of(res).await;
        assert_eq!(body["ok"], true);
        body["signed_upload_url"].as_str().expect("url").to_owned()
    }

    pub async fn finalize(&self, key: &str, version: &str, size: Value) -> Response {
        self.call(
            "FinalizeCacheEntryUpload",
            json!({ "key": key, "version": version, "size_bytes": size }),
        )
        .await
    }

    pub async fn download_url(&self, key: &str, restore: &[&str], version: &str) -> Value {
        let res = self
            .call(
                "GetCacheEntryDownloadURL",
                json!({ "key": key, "restore_keys": restore, "version": version }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "GetCacheEntryDownloadURL");
        json_of(res).await
    }
}

/// `PUT <url>&comp=block&blockid=<id>` as Azure's SDKs send it.
pub async fn put_block(http: &Client, url: &str, block_id: &str, data: &[u8]) -> Response {
    http.put(url)
        .query(&[("comp", "block"), ("blockid", block_id)])
        .header("x-ms-version", "2024-11-04")
        .body(data.to_vec())
        .send()
        .await
        .expect("put block")
}

/// `PUT <url>&comp=blocklist` naming `ids` in order.
pub async fn put_block_list(http: &Client, url: &str, ids: &[String]) -> Response {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in ids {
        xml.push_str(&format!("<Latest>{id}</Latest>"));
    }
    xml.push_str("</BlockList>");
    http.put(url)
        .query(&[("comp", "blocklist")])
        .header("content-type", "application/xml")
        .body(xml)
        .send()
        .await
        .expect("put block list")
}

/// Block ids as Azure's SDKs make them: base64 of equal-length strings.
pub fn block_id(i: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("block-{i:06}"))
}
