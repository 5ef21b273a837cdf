//! Helpers shared by the OCI Distribution tests (`tests/oci_*.rs`): digests,
//! pushing blobs and manifests the way BuildKit does, checking error bodies,
//! and `assert_manifest_refs_resolve`, which walks every tag of a repository
//! and proves that everything its manifests reference can be pulled.
//!
//! Every test crate that uses this module declares `mod common;` and
//! `mod oci_support;`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const BUILDKIT_CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";

/// The `Accept` header containerd (and so BuildKit) sends when resolving a tag.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, */*";

/// Media types whose content is a manifest (an index child of one of these
/// types must resolve as a manifest, not as a blob).
pub const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Blobs up to this size are downloaded and re-hashed by the reference checker.
const VERIFY_CONTENT_UP_TO: u64 = 1 << 20;

// ---------------------------------------------------------------- digests

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn sha512_digest(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
}

/// True when `digest` (sha256, sha512 or blake3) names exactly `bytes`.
pub fn digest_matches(digest: &str, bytes: &[u8]) -> bool {
    match digest.split_once(':') {
        Some(("sha256", _)) => sha256_digest(bytes) == digest,
        Some(("sha512", _)) => sha512_digest(bytes) == digest,
        Some(("blake3", hex)) => blake3::hash(bytes).to_hex().as_str() == hex,
        _ => false,
    }
}

/// Deterministic pseudo-random bytes (a xorshift32 stream): the same
/// `(seed, len)` always gives the same bytes, different seeds differ. The
/// BuildKit fixtures' layer digests were computed from this generator.
pub fn fixed_bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x: u32 = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------- URLs and headers

/// A response header as text.
pub fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A header that must be there.
pub fn must_header(res: &Response, name: &str) -> String {
    header(res, name).unwrap_or_else(|| {
        panic!(
            "{} {} has no {name} header; headers: {:?}",
            res.status(),
            res.url(),
            res.headers()
        )
    })
}

/// Resolves a `Location` (absolute URL or `/v2/…` path) against `base`
/// (`http://host:port`).
pub fn abs_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        panic!("Location {location:?} is neither an absolute URL nor an absolute path")
    }
}

/// The path and query of a URL or path, for re-basing it on another server
/// (after a restart the port changes).
pub fn path_and_query(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map(|i| rest[i..].to_owned())
            .unwrap_or_else(|| "/".to_owned()),
        None => location.to_owned(),
    }
}

/// Appends `key=value` to a URL the way BuildKit does: `&` when the URL
/// already has a query (which must be kept), `?` otherwise.
pub fn with_query(url: &str, kv: &str) -> String {
    if url.contains('?') {
        format!("{url}&{kv}")
    } else {
        format!("{url}?{kv}")
    }
}

/// The target of `Link: <…>; rel="next"`, if any.
pub fn next_link(res: &Response) -> Option<String> {
    let link = res.headers().get(LINK)?.to_str().ok()?.to_owned();
    assert!(
        link.contains("rel=\"next\""),
        "Link header {link:?} lacks rel=\"next\""
    );
    let start = link.find('<')? + 1;
    let end = link[start..].find('>')? + start;
    Some(link[start..end].to_owned())
}

// ---------------------------------------------------------------- errors

/// Checks an error body is `{"errors":[{"code","message","detail"}, …]}` and
/// returns its codes.
pub fn error_codes(body: &Value) -> Vec<String> {
    let errors = body
        .get("errors")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("error body has no \"errors\" array: {body}"));
    assert!(!errors.is_empty(), "\"errors\" is empty: {body}");
    errors
        .iter()
        .map(|e| {
            let code = e
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("error without a string code: {body}"));
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "code {code:?} is not an upper-case identifier"
            );
            assert!(
                e.get("message").is_some_and(Value::is_string),
                "error without a string message: {body}"
            );
            assert!(
                e.as_object().is_some_and(|o| o.contains_key("detail")),
                "error without a detail field: {body}"
            );
            code.to_owned()
        })
        .collect()
}

/// Asserts an error response: its status, a JSON content type and the
/// spec's error body whose first code is `code`. Returns that first error.
pub async fn expect_error(res: Response, status: StatusCode, code: &str) -> Value {
    let what = format!("{} {}", res.url(), res.status());
    let content_type = header(&res, "content-type").unwrap_or_default();
    let got = res.status();
    let text = res.text().await.expect("error body");
    assert_eq!(got, status, "{what}: status (body: {text})");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: error Content-Type is {content_type:?}, want application/json"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {text}"));
    let codes = error_codes(&body);
    assert_eq!(codes[0], code, "{what}: error code (body: {text})");
    body["errors"][0].clone()
}

/// Like `expect_error` but for a status whose code the spec leaves open.
pub async fn expect_error_status(res: Response, status: StatusCode) -> String {
    let what = format!("{} {}", res.url(), res.status());
    let got = res.status();
    let text = res.text().await.expect("error body");
    assert_eq!(got, status, "{what}: status (body: {text})");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {text}"));
    error_codes(&body).remove(0)
}

/// Asserts a status, printing the body when it differs.
pub async fn expect_status(res: Response, status: StatusCode) -> Response {
    if res.status() != status {
        let what = format!("{} {}", res.url(), res.status());
        let text = res.text().await.unwrap_or_default();
        panic!("{what}: want {status}; body: {text}");
    }
    res
}

// ---------------------------------------------------------------- pushing

/// `POST /v2/<repo>/blobs/uploads/` ⇒ 202; returns the absolute session URL.
pub async fn start_upload(client: &Client, base: &str, repo: &str) -> String {
    let res = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .header(CONTENT_LENGTH, "0")
        .send()
        .await
        .expect("POST upload");
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    abs_url(base, &must_header(&res, "location"))
}

/// Pushes a blob as BuildKit does (`POST`, then `PUT <Location>&digest=`
/// with the whole body) and returns its sha256 digest. Asserts the 201 and
/// its `Docker-Content-Digest`.
pub async fn push_blob(client: &Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let location = start_upload(client, base, repo).await;
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT upload");
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(
        header(&res, "docker-content-digest").as_deref(),
        Some(digest.as_str()),
        "blob PUT must answer with Docker-Content-Digest"
    );
    digest
}

/// `PUT /v2/<repo>/manifests/<reference>` with `Content-Type: media_type`.
pub async fn try_put_manifest(
    client: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Response {
    client
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header(CONTENT_TYPE, media_type)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT manifest")
}

/// Puts a manifest, asserts 201 with `Location` and a `Docker-Content-Digest`
/// equal to the sha256 of the exact bytes, and returns that digest.
pub async fn put_manifest(
    client: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    let res = try_put_manifest(client, base, repo, reference, media_type, bytes).await;
    let res = expect_status(res, StatusCode::CREATED).await;
    let digest = sha256_digest(bytes);
    assert_eq!(
        header(&res, "docker-content-digest").as_deref(),
        Some(digest.as_str()),
        "manifest PUT must answer with the sha256 of the bytes sent"
    );
    assert!(
        header(&res, "location").is_some(),
        "manifest PUT must answer with Location"
    );
    digest
}

/// GETs a manifest by tag or digest; asserts 200 and returns (bytes, content type, digest header).
pub async fn get_manifest(
    client: &Client,
    base: &str,
    repo: &str,
    reference: &str,
) -> (Vec<u8>, String, String) {
    let res = client
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header(ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await
        .expect("GET manifest");
    let res = expect_status(res, StatusCode::OK).await;
    let content_type = must_header(&res, "content-type");
    let digest = must_header(&res, "docker-content-digest");
    let bytes = res.bytes().await.expect("manifest body").to_vec();
    (bytes, content_type, digest)
}

/// GETs a blob; asserts 200 and returns its bytes.
pub async fn get_blob(client: &Client, base: &str, repo: &str, digest: &str) -> Vec<u8> {
    let res = client
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("GET blob");
    let res = expect_status(res, StatusCode::OK).await;
    res.bytes().await.expect("blob body").to_vec()
}

/// A descriptor of `bytes` as `media_type`.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len() })
}

/// An OCI image manifest over already-pushed content.
pub fn image_manifest(config: &Value, layers: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }))
    .unwrap()
}

/// An OCI index over already-pushed manifests, given as (media type, bytes).
pub fn image_index(children: &[(&str, &[u8])]) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .enumerate()
        .map(|(i, (media_type, bytes))| {
            let mut d = descriptor(media_type, bytes);
            let architecture = ["amd64", "arm64", "riscv64", "s390x"][i % 4];
            d["platform"] = json!({
                "architecture": architecture,
                "os": "linux",
            });
            d
        })
        .collect();
    serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

/// An image pushed by `push_image`.
#[derive(Clone, Debug)]
pub struct PushedImage {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
    pub digest: String,
}

/// Pushes a small OCI image (a config and `layers` layers, derived from
/// `seed`) and tags its manifest `tag` (or pushes it by digest when `tag` is
/// None).
pub async fn push_image(
    client: &Client,
    base: &str,
    repo: &str,
    tag: Option<&str>,
    seed: u32,
    layers: usize,
) -> PushedImage {
    let layers: Vec<Vec<u8>> = (0..layers)
        .map(|i| fixed_bytes(seed * 100 + i as u32, 1000 + 777 * i + seed as usize))
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": [format!("SEED={seed}")] },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| sha256_digest(l)).collect::<Vec<_>>(),
        },
    }))
    .unwrap();
    push_blob(client, base, repo, &config).await;
    for layer in &layers {
        push_blob(client, base, repo, layer).await;
    }
    let manifest = image_manifest(
        &descriptor(OCI_CONFIG, &config),
        &layers
            .iter()
            .map(|l| descriptor(OCI_LAYER_GZIP, l))
            .collect::<Vec<_>>(),
    );
    let digest = sha256_digest(&manifest);
    let reference = tag.unwrap_or(&digest).to_owned();
    put_manifest(client, base, repo, &reference, OCI_MANIFEST, &manifest).await;
    PushedImage {
        config,
        layers,
        manifest,
        digest,
    }
}

// ---------------------------------------------------------------- listings

/// Every tag of `repo`, following `Link` pagination with pages of `page`;
/// `None` when the repository is unknown (404 NAME_UNKNOWN).
pub async fn list_tags(
    client: &Client,
    base: &str,
    repo: &str,
    page: usize,
) -> Option<Vec<String>> {
    let mut url = format!("{base}/v2/{repo}/tags/list?n={page}");
    let mut tags = Vec::new();
    for _ in 0..100_000 {
        let res = client.get(&url).send().await.expect("GET tags");
        if res.status() == StatusCode::NOT_FOUND && tags.is_empty() {
            expect_error(res, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
            return None;
        }
        let res = expect_status(res, StatusCode::OK).await;
        let next = next_link(&res);
        let body: Value = res.json().await.expect("tags JSON");
        assert_eq!(body["name"], repo, "tags list names its repository");
        let page_tags: Vec<String> = match &body["tags"] {
            Value::Null => Vec::new(),
            v => serde_json::from_value(v.clone()).expect("tags is a list of strings"),
        };
        let empty = page_tags.is_empty();
        tags.extend(page_tags);
        match next {
            Some(next) if !empty => url = abs_url(base, &next),
            _ => return Some(tags),
        }
    }
    panic!("tags pagination of {repo} does not end");
}

// ---------------------------------------------------------------- data dir

/// Every regular file under `dir`, recursively (empty when `dir` is missing).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.expect("dir entry");
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The blob files of a data dir.
pub fn blob_files(data_dir: &Path) -> Vec<PathBuf> {
    files_under(&data_dir.join("blobs"))
}

/// The path a blob with these bytes has in the data dir (`blobs/<xx>/<blake3 hex>`).
pub fn blob_path(data_dir: &Path, bytes: &[u8]) -> PathBuf {
    let hex = blake3::hash(bytes).to_hex().to_string();
    data_dir.join("blobs").join(&hex[..2]).join(hex)
}

// ---------------------------------------------------------------- the reference checker

/// What `check_manifest_refs` found.
#[derive(Debug, Default)]
pub struct RefReport {
    /// Tags listed for the repository.
    pub tags: Vec<String>,
    /// Manifests (by digest) that were served and checked.
    pub manifests: BTreeSet<String>,
    /// Blobs (by digest) that resolved.
    pub blobs: BTreeSet<String>,
    /// Tags listed whose manifest answers 404 MANIFEST_UNKNOWN: a clean cache
    /// miss, not a broken reference.
    pub dangling_tags: Vec<String>,
    /// Every violation: a served manifest whose reference does not resolve,
    /// wrong digests, sizes or headers, malformed responses.
    pub broken: Vec<String>,
}

/// Walks every tag of `repo` (plus `extra` manifest digests): each tag's
/// manifest is fetched with HEAD and GET, its digest checked against its
/// bytes, and every blob it references (config, layers, blobs, and the
/// children of an index, which may be manifests or — BuildKit's cache index —
/// plain blobs) is HEADed; child manifests are walked recursively; blobs up to
/// 1 MiB are downloaded and re-hashed. `subject` is not required to exist and
/// descriptors with `urls` (foreign layers) are skipped. Never panics on what
/// the server answers: everything wrong ends up in `broken`.
pub async fn check_manifest_refs(
    client: &Client,
    base: &str,
    repo: &str,
    extra: &[String],
) -> RefReport {
    let mut checker = Checker {
        client,
        base,
        repo,
        report: RefReport::default(),
    };
    checker.run(extra).await;
    checker.report
}

/// `check_manifest_refs` on a test server, asserting that nothing is broken
/// and no tag dangles. Eviction tests that allow tags to become clean misses
/// call `check_manifest_refs` and assert on `broken` only.
pub async fn assert_manifest_refs_resolve(
    server: &crate::common::TestServer,
    repo: &str,
) -> RefReport {
    let client = crate::common::client();
    let report = check_manifest_refs(&client, &server.base(), repo, &[]).await;
    assert!(
        report.broken.is_empty(),
        "repository {repo}: broken references:\n  {}",
        report.broken.join("\n  ")
    );
    assert!(
        report.dangling_tags.is_empty(),
        "repository {repo}: tags listed but not served: {:?}",
        report.dangling_tags
    );
    report
}

struct Checker<'a> {
    client: &'a Client,
    base: &'a str,
    repo: &'a str,
    report: RefReport,
}

impl Checker<'_> {
    fn broken(&mut self, what: String) {
        self.report.broken.push(what);
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, what: &str) -> Option<Response> {
        match req.send().await {
            Ok(res) => Some(res),
            Err(e) => {
                self.broken(format!("{what}: request failed: {e}"));
                None
            }
        }
    }

    async fn run(&mut self, extra: &[String]) {
        let tags = self.tags().await;
        self.report.tags = tags.clone();
        for tag in &tags {
            self.check_tag(tag).await;
        }
        for digest in extra {
            self.check_manifest(digest, None).await;
        }
    }

    async fn tags(&mut self) -> Vec<String> {
        let mut url = format!("{}/v2/{}/tags/list?n=100", self.base, self.repo);
        let mut tags = Vec::new();
        for _ in 0..10_000 {
            let what = format!("GET {url}");
            let Some(res) = self.send(self.client.get(&url), &what).await else {
                return tags;
            };
            let status = res.status();
            if status == StatusCode::NOT_FOUND && tags.is_empty() {
                return tags; // The repository is gone (or never was): no tags.
            }
            if status != StatusCode::OK {
                self.broken(format!("{what}: {status}"));
                return tags;
            }
            let next = next_link(&res);
            let body: Value = match res.json().await {
                Ok(v) => v,
                Err(e) => {
                    self.broken(format!("{what}: body is not JSON: {e}"));
                    return tags;
                }
            };
            let page: Vec<String> = match &body["tags"] {
                Value::Null => Vec::new(),
                v => match serde_json::from_value(v.clone()) {
                    Ok(t) => t,
                    Err(e) => {
                        self.broken(format!("{what}: tags is not a list of strings: {e}"));
                        return tags;
                    }
                },
            };
            let empty = page.is_empty();
            tags.extend(page);
            match next {
                Some(next) if !empty => url = abs_url(self.base, &next),
                _ => return tags,
            }
        }
        self.broken(format!("{}: tags pagination does not end", self.repo));
        tags
    }

    async fn check_tag(&mut self, tag: &str) {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.repo);
        let what = format!("HEAD {url}");
        let head = self.client.head(&url).header(ACCEPT, ACCEPT_MANIFESTS);
        let Some(head) = self.send(head, &what).await else {
            return;
        };
        if head.status() == StatusCode::NOT_FOUND {
            let get = self.client.get(&url).header(ACCEPT, ACCEPT_MANIFESTS);
            if let Some(get) = self.send(get, &format!("GET {url}")).await {
                let status = get.status();
                let body: Value = get.json().await.unwrap_or(Value::Null);
                if status == StatusCode::NOT_FOUND
                    && body["errors"][0]["code"] == "MANIFEST_UNKNOWN"
                {
                    self.report.dangling_tags.push(tag.to_owned());
                } else {
                    self.broken(format!(
                        "GET {url}: HEAD said 404, GET said {status} {body}"
                    ));
                }
            }
            return;
        }
        if head.status() != StatusCode::OK {
            self.broken(format!("{what}: {}", head.status()));
            return;
        }
        let head_digest = header(&head, "docker-content-digest");
        let head_len = header(&head, "content-length");
        let head_type = header(&head, "content-type");
        let Some(digest) = head_digest.clone() else {
            self.broken(format!("{what}: no Docker-Content-Digest"));
            return;
        };
        let get = self.client.get(&url).header(ACCEPT, ACCEPT_MANIFESTS);
        let Some(get) = self.send(get, &format!("GET {url}")).await else {
            return;
        };
        if get.status() != StatusCode::OK {
            self.broken(format!("GET {url}: {} after HEAD 200", get.status()));
            return;
        }
        let get_digest = header(&get, "docker-content-digest");
        let get_type = header(&get, "content-type");
        let bytes = match get.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                self.broken(format!("GET {url}: body: {e}"));
                return;
            }
        };
        if get_digest.as_deref() != Some(digest.as_str()) {
            // A concurrent re-tag can legitimately change the answer between
            // HEAD and GET; judge the GET on its own.
            if get_digest.is_none() {
                self.broken(format!("GET {url}: no Docker-Content-Digest"));
                return;
            }
        } else {
            if head_len.as_deref() != Some(bytes.len().to_string().as_str()) {
                self.broken(format!(
                    "HEAD {url}: Content-Length {head_len:?} but GET has {} bytes",
                    bytes.len()
                ));
            }
            if head_type != get_type {
                self.broken(format!(
                    "{url}: HEAD Content-Type {head_type:?} differs from GET {get_type:?}"
                ));
            }
        }
        let digest = get_digest.unwrap_or(digest);
        if !digest_matches(&digest, &bytes) {
            self.broken(format!(
                "GET {url}: Docker-Content-Digest {digest} does not match the {} bytes served",
                bytes.len()
            ));
            return;
        }
        self.check_manifest(&digest, Some(bytes)).await;
    }

    /// Checks a manifest by digest (fetching it) and everything it references.
    async fn check_manifest(&mut self, digest: &str, by_tag: Option<Vec<u8>>) {
        let mut stack = vec![(digest.to_owned(), by_tag)];
        while let Some((digest, by_tag)) = stack.pop() {
            if !self.report.manifests.insert(digest.clone()) {
                continue;
            }
            let url = format!("{}/v2/{}/manifests/{digest}", self.base, self.repo);
            let get = self.client.get(&url).header(ACCEPT, ACCEPT_MANIFESTS);
            let Some(get) = self.send(get, &format!("GET {url}")).await else {
                continue;
            };
            if get.status() != StatusCode::OK {
                self.broken(format!(
                    "GET {url}: {} (a referenced manifest)",
                    get.status()
                ));
                continue;
            }
            if header(&get, "docker-content-digest").as_deref() != Some(digest.as_str()) {
                self.broken(format!(
                    "GET {url}: Docker-Content-Digest is {:?}",
                    header(&get, "docker-content-digest")
                ));
            }
            let bytes = match get.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    self.broken(format!("GET {url}: body: {e}"));
                    continue;
                }
            };
            if !digest_matches(&digest, &bytes) {
                self.broken(format!("GET {url}: the bytes do not match the digest"));
                continue;
            }
            if by_tag.as_ref().is_some_and(|b| *b != bytes) {
                self.broken(format!("GET {url}: differs from the bytes served by tag"));
            }
            let doc: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    self.broken(format!("GET {url}: manifest is not JSON: {e}"));
                    continue;
                }
            };
            let blob_refs = doc
                .get("config")
                .into_iter()
                .chain(doc["layers"].as_array().into_iter().flatten())
                .chain(doc["blobs"].as_array().into_iter().flatten())
                .cloned()
                .collect::<Vec<_>>();
            for d in blob_refs {
                self.check_blob_descriptor(&digest, &d).await;
            }
            let children = doc["manifests"].as_array().cloned().unwrap_or_default();
            for d in children {
                let Some(child) = d["digest"].as_str().map(str::to_owned) else {
                    self.broken(format!("manifest {digest}: child without a digest: {d}"));
                    continue;
                };
                if has_urls(&d) {
                    continue;
                }
                let media_type = d["mediaType"].as_str().unwrap_or("");
                let must_be_manifest = MANIFEST_TYPES.contains(&media_type);
                let url = format!("{}/v2/{}/manifests/{child}", self.base, self.repo);
                let head = self.client.head(&url).header(ACCEPT, ACCEPT_MANIFESTS);
                let Some(head) = self.send(head, &format!("HEAD {url}")).await else {
                    continue;
                };
                if head.status() == StatusCode::OK {
                    if let Some(size) = d["size"].as_u64() {
                        if header(&head, "content-length") != Some(size.to_string()) {
                            self.broken(format!(
                                "HEAD {url}: Content-Length {:?}, descriptor size {size}",
                                header(&head, "content-length")
                            ));
                        }
                    }
                    stack.push((child, None));
                } else if must_be_manifest {
                    self.broken(format!(
                        "manifest {digest}: child manifest {child} ({media_type}) answers {}",
                        head.status()
                    ));
                } else {
                    self.check_blob_descriptor(&digest, &d).await;
                }
            }
        }
    }

    async fn check_blob_descriptor(&mut self, manifest: &str, d: &Value) {
        if has_urls(d) {
            return;
        }
        let Some(digest) = d["digest"].as_str() else {
            self.broken(format!(
                "manifest {manifest}: descriptor without a digest: {d}"
            ));
            return;
        };
        let size = d["size"].as_u64();
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repo);
        let Some(head) = self
            .send(self.client.head(&url), &format!("HEAD {url}"))
            .await
        else {
            return;
        };
        if head.status() != StatusCode::OK {
            self.broken(format!(
                "manifest {manifest}: blob {digest} answers HEAD {}",
                head.status()
            ));
            return;
        }
        if header(&head, "docker-content-digest").as_deref() != Some(digest) {
            self.broken(format!(
                "HEAD {url}: Docker-Content-Digest {:?}",
                header(&head, "docker-content-digest")
            ));
        }
        let len = header(&head, "content-length").and_then(|v| v.parse::<u64>().ok());
        if size.is_some() && len != size {
            self.broken(format!(
                "HEAD {url}: Content-Length {len:?}, descriptor size {size:?}"
            ));
        }
        if !self.report.blobs.insert(digest.to_owned()) {
            return;
        }
        if len.is_some_and(|l| l <= VERIFY_CONTENT_UP_TO) {
            let Some(get) = self
                .send(self.client.get(&url), &format!("GET {url}"))
                .await
            else {
                return;
            };
            if get.status() != StatusCode::OK {
                self.broken(format!("GET {url}: {} after HEAD 200", get.status()));
                return;
            }
            match get.bytes().await {
                Ok(b) if digest_matches(digest, &b) => {}
                Ok(b) => self.broken(format!(
                    "GET {url}: {} bytes that do not match the digest",
                    b.len()
                )),
                Err(e) => self.broken(format!("GET {url}: body: {e}")),
            }
        }
    }
}

fn has_urls(d: &Value) -> bool {
    d["urls"].as_array().is_some_and(|u| !u.is_empty())
}
