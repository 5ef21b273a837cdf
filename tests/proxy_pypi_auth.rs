//! Tokens on the PyPI proxy: the namespace in `/pypi/<ns>/simple/` is the
//! tenant, pip authenticates with the token in its index URL (Basic, the
//! token as password), and Larder authenticates to its upstream with its
//! own credentials, never the client's.

mod common;
mod httpcache_support;
mod proxy_support;

use std::path::Path;
use std::time::Duration;

use common::TestServer;
use httpcache_support::{token, RO};
use larder::config::{AuthMode, Span};
use proxy_support::pypi::{install, sha256_hex, text, write_dists};
use proxy_support::StaticUpstream;

/// A simple page per project, as a static index would serve them, for the
/// files in `dists` (copied under `files/`).
fn write_index(root: &Path, dists: &Path) {
    for (project, file) in [
        ("larder-demo", "larder_demo-1.0-py3-none-any.whl"),
        ("larder-sdist-demo", "larder_sdist_demo-1.0.tar.gz"),
    ] {
        let body = std::fs::read(dists.join(file)).unwrap();
        let page = format!(
            "<a href=\"../../files/{file}#sha256={}\">{file}</a>\n",
            sha256_hex(&body)
        );
        std::fs::create_dir_all(root.join("simple").join(project)).unwrap();
        std::fs::write(root.join("simple").join(project).join("index.html"), page).unwrap();
        std::fs::create_dir_all(root.join("files")).unwrap();
        std::fs::write(root.join("files").join(file), body).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_with_a_token_in_its_index_url_reads_its_namespace() {
    if common::require_tool("python3").is_none() {
        return;
    }
    let dists = write_dists();
    let root = tempfile::tempdir().unwrap();
    write_index(root.path(), dists.path());
    let upstream = StaticUpstream::start(root.path()).await;
    let secrets = tempfile::tempdir().unwrap();
    let upstream_token = secrets.path().join("upstream-token");
    std::fs::write(&upstream_token, "upstream-secret\n").unwrap();
    let url = format!("{}/simple", upstream.url());
    let server = TestServer::start_with(|c| {
        c.auth.mode = AuthMode::Token;
        c.proxy.pypi.enabled = true;
        c.proxy.pypi.upstream = url;
        c.proxy.pypi.token_file = Some(upstream_token);
        c.proxy.pypi.metadata_ttl = Span(Duration::from_secs(300));
    })
    .await;
    let index = |password: Option<&str>| match password {
        Some(p) => format!("http://pip:{p}@{}/pypi/team/simple/", server.addr),
        None => server.url("/pypi/team/simple/"),
    };

    let out = install("pip", &index(None)).await;
    assert!(
        !out.status.success(),
        "no token, no packages: {}",
        text(&out)
    );
    let other = token(&server, &[("elsewhere", RO)]);
    let out = install("pip", &index(Some(&other))).await;
    assert!(
        !out.status.success(),
        "a token for another namespace: {}",
        text(&out)
    );
    // pip reports both as "no versions"; what Larder answered:
    let page = server.url("/pypi/team/simple/larder-demo/");
    let res = common::client().get(&page).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let res = common::client().get(&page).basic_auth("pip", Some(&other));
    assert_eq!(res.send().await.unwrap().status(), 403);
    assert_eq!(upstream.total(), 0, "refused requests fetch nothing");

    let reader = token(&server, &[("team", RO)]);
    let out = install("pip", &index(Some(&reader))).await;
    assert!(out.status.success(), "{}", text(&out));

    let seen = upstream.authorizations();
    assert_eq!(
        seen.len(),
        upstream.total(),
        "every upstream request signed in"
    );
    assert!(
        seen.iter().all(|a| a == "Bearer upstream-secret"),
        "the upstream got Larder's own credentials, never the client's: {seen:?}"
    );
}
