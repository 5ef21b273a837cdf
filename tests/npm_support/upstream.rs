//! The static-upstream side of the npm proxy tests: Larder configured for
//! an npm upstream, and packuments with tarballs written into a
//! `StaticUpstream`'s directory — including ones no honest registry serves.

use std::time::Duration;

use larder::config::{Config, Span};
use sha2::Digest as _;

use crate::common::{self, TestServer};
use crate::proxy_support::StaticUpstream;

/// `[proxy.npm]` on, fronting `upstream`, packuments fresh for `ttl`.
pub fn npm_proxy(upstream: &str, ttl: Duration) -> impl FnOnce(&mut Config) {
    let upstream = upstream.to_owned();
    move |c| {
        c.proxy.npm.enabled = true;
        c.proxy.npm.upstream = upstream;
        c.proxy.npm.metadata_ttl = Span(ttl);
        c.proxy.read_timeout = Span(Duration::from_secs(5));
    }
}

/// How a fixture's packument states its tarball's hash.
#[derive(Clone, Copy)]
pub enum Hash {
    Sha512,
    Sha1Only,
}

/// Writes packument `name` (unscoped, or scoped as `@s%2fx`) with one
/// version whose tarball holds `served` while the packument describes
/// `described` (the same bytes, unless the upstream tampers).
pub fn write_fixture(
    up: &StaticUpstream,
    name: &str,
    version: &str,
    described: &[u8],
    served: &[u8],
    hash: Hash,
) {
    let bare = name.rsplit('/').next().unwrap();
    let file = format!("files/{bare}-{version}.tgz");
    std::fs::create_dir_all(up.root.join("files")).unwrap();
    std::fs::write(up.root.join(&file), served).unwrap();
    let mut dist = serde_json::json!({
        "tarball": format!("{}/{file}", up.url()),
        "shasum": hex::encode(sha1::Sha1::digest(described)),
    });
    if let Hash::Sha512 = hash {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(described));
        dist["integrity"] = format!("sha512-{b64}").into();
    }
    let doc = serde_json::json!({
        "name": name,
        "dist-tags": { "latest": version },
        "modified": "2026-01-01T00:00:00.000Z",
        "readme": "only in the full form",
        "versions": { version: { "name": name, "version": version, "readme": "x", "dist": dist } },
    });
    let path = name.replacen('/', "%2f", 1);
    std::fs::write(up.root.join(path), doc.to_string()).unwrap();
}

/// A GET with `headers`.
pub async fn get(
    server: &TestServer,
    path: &str,
    headers: &[(reqwest::header::HeaderName, &str)],
) -> reqwest::Response {
    let mut req = common::client().get(server.url(path));
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.send().await.unwrap()
}
