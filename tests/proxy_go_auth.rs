//! Tokens on the Go module proxy: the namespace in `/go/<ns>/` is the
//! tenant, `go` authenticates with `.netrc` (Basic, the token as password;
//! `go` sends credentials over https only, so Larder serves TLS here), and
//! Larder authenticates to its upstream with its own credentials.

mod common;
mod httpcache_support;
mod proxy_support;
mod tls_support;

use std::time::Duration;

use common::TestServer;
use httpcache_support::{token, RO};
use larder::config::{AuthMode, Span};
use proxy_support::gomod::{source, write_module};
use proxy_support::StaticUpstream;
use tls_support::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_with_a_token_reads_its_namespace_and_larder_signs_in_upstream() {
    if common::require_tool("go").is_none() || common::require_tool("python3").is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    write_module(
        root.path(),
        "example.com/hello",
        "v1.0.0",
        &[("hello.go", source("hello", 1, 10))],
    );
    let upstream = StaticUpstream::start(root.path()).await;
    let secrets = tempfile::tempdir().unwrap();
    let upstream_token = secrets.path().join("upstream-token");
    std::fs::write(&upstream_token, "upstream-secret\n").unwrap();
    let url = upstream.url();
    let ca = TestCa::new();
    ca.install("larder-test");
    let (cert, key) = (ca.cert_path(), ca.key_path());
    let server = TestServer::start_with(|c| {
        c.server.tls_cert = Some(cert);
        c.server.tls_key = Some(key);
        c.auth.mode = AuthMode::Token;
        c.proxy.go.enabled = true;
        c.proxy.go.upstream = url;
        c.proxy.go.token_file = Some(upstream_token);
        c.proxy.go.metadata_ttl = Span(Duration::from_secs(300));
    })
    .await;

    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("go.mod"),
        "module example.com/app\n\ngo 1.21\n\nrequire example.com/hello v1.0.0\n",
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let netrc = home.path().join("netrc");
    let go = |password: Option<String>| {
        let line = password.map(|p| {
            // go looks the machine up by host:port when the URL names a port.
            format!("machine {} login go password {p}\n", server.addr)
        });
        std::fs::write(&netrc, line.unwrap_or_default()).unwrap();
        tokio::process::Command::new("go")
            .args(["mod", "download"])
            .current_dir(project.path())
            .env("GOPROXY", format!("https://{}/go/team/", server.addr))
            .env("SSL_CERT_FILE", ca.ca_path())
            .env("NETRC", &netrc)
            .env("GOSUMDB", "off")
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GOPATH", home.path().join("gopath"))
            .env("GOMODCACHE", home.path().join("modcache"))
            .env("GOCACHE", home.path().join("gocache"))
            .env("GOTOOLCHAIN", "local")
            .env("GOENV", "off")
            .env("GOTELEMETRY", "off")
            .output()
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let out = go(None).await.unwrap();
    assert!(!out.status.success(), "no token, no modules");
    assert!(text(&out).contains("401"), "{}", text(&out));

    let other = token(&server, &[("elsewhere", RO)]);
    let out = go(Some(other)).await.unwrap();
    assert!(!out.status.success(), "a token for another namespace");
    assert!(text(&out).contains("403"), "{}", text(&out));
    assert_eq!(upstream.total(), 0, "refused requests fetch nothing");

    let reader = token(&server, &[("team", RO)]);
    let out = go(Some(reader)).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let seen = upstream.authorizations();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|a| a == "Bearer upstream-secret"),
        "the upstream got Larder's own credentials, never the client's: {seen:?}"
    );
}
