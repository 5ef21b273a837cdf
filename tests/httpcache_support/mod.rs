//! Helpers for the HTTP build-cache tests: tokens, raw requests (for paths
//! an HTTP client library would normalise before sending), digests, and a
//! look at the blob files on disk.
#![allow(dead_code)]

pub mod bazel;

use std::path::{Path, PathBuf};

use larder::auth::token::{mint, Grant, TokenSpec};
use larder::auth::{READ, WRITE};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::TestServer;

/// A token for `server` holding `grants` (namespace, permission bits).
pub fn token(server: &TestServer, grants: &[(&str, u8)]) -> String {
    let text = std::fs::read_to_string(server.data_dir().join("signing.key")).expect("signing key");
    let key = hex::decode(text.trim()).expect("signing key is hex");
    let spec = TokenSpec {
        subject: "test".into(),
        grants: grants
            .iter()
            .map(|(scope, permission)| Grant {
                scope: (*scope).to_owned(),
                permission: *permission,
            })
            .collect(),
        admin: false,
        ttl_secs: 3600,
        parent: None,
    };
    mint(&key, &spec).0
}

pub const RW: u8 = READ | WRITE;
pub const RO: u8 = READ;

/// Starts a server with `auth.mode = "token"`.
pub async fn token_server() -> TestServer {
    TestServer::start_with(|c| c.auth.mode = larder::config::AuthMode::Token).await
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// The first `ac/` entry of an admin API entry listing.
pub fn ac_entry(listing: &serde_json::Value) -> serde_json::Value {
    listing["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str().is_some_and(|n| n.starts_with("ac/")))
        .cloned()
        .unwrap_or_else(|| panic!("no ac entry: {listing}"))
}

/// Deterministic bytes that differ per `seed`.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// Every blob file on disk (the CAS), as paths.
pub fn blob_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(data_dir.join("blobs")) else {
        return out;
    };
    for shard in shards.flatten() {
        if let Ok(files) = std::fs::read_dir(shard.path()) {
            out.extend(files.flatten().map(|f| f.path()));
        }
    }
    out
}

/// Blob files holding exactly `content` (named by its BLAKE3).
pub fn files_holding(data_dir: &Path, content: &[u8]) -> usize {
    let name = blake3_hex(content);
    blob_files(data_dir)
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == name.as_str()))
        .count()
}

/// A response read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Sends one request with the path exactly as given (no normalisation of
/// `..`, `%2e` or `\`, which reqwest/url would apply) and reads the reply.
pub async fn raw_request(
    server: &TestServer,
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        server.addr,
        body.len()
    );
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    RawResponse {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    }
}

/// Finds an npm-installed program under `tests/<dir>/node_modules/.bin`;
/// skips (None) when it is not installed, fails under CI=true.
pub fn require_npm_tool(dir: &str, name: &str) -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir)
        .join("node_modules/.bin")
        .join(name);
    if bin.is_file() {
        return Some(bin);
    }
    crate::common::skip(&format!(
        "{name} is not installed; run `npm ci` in tests/{dir}"
    ));
    None
}
