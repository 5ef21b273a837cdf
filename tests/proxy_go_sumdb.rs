//! The checksum database through the Go proxy: `supported`, lookups and
//! tiles come from the upstream's `/sumdb/<name>/…` once and from Larder
//! afterwards, also while the upstream is down; other paths are refused.

mod common;
mod proxy_support;

use std::time::Duration;

use common::TestServer;
use larder::config::Span;
use proxy_support::StaticUpstream;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_tiles_are_cached_and_served_with_the_upstream_down() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("sumdb/sum.golang.org");
    let files = [
        ("supported", b"".to_vec()),
        ("latest", b"go.sum database tree\n42\nhash\n".to_vec()),
        (
            "lookup/example.com/!cased@v1.0.0",
            b"7\nexample.com/Cased v1.0.0 h1:x=\n".to_vec(),
        ),
        ("tile/8/0/x001/234", vec![1u8; 256]),
        ("tile/8/1/000.p/5", vec![2u8; 160]),
    ];
    for (path, bytes) in &files {
        let file = db.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
    let mut upstream = StaticUpstream::start(root.path()).await;
    let url = upstream.url();
    let server = TestServer::start_with(|c| {
        c.proxy.go.enabled = true;
        c.proxy.go.upstream = url;
        c.proxy.go.metadata_ttl = Span(Duration::from_secs(300));
    })
    .await;
    let c = common::client();
    // go percent-encodes the '!' of a case-encoded path.
    let request = |path: &str| path.replace('!', "%21");
    for round in 0..2 {
        if round == 1 {
            upstream.stop();
        }
        for (path, bytes) in &files {
            let res = c
                .get(server.url(&format!("/go/team/sumdb/sum.golang.org/{}", request(path))))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}, round {round}");
            assert_eq!(res.bytes().await.unwrap(), bytes[..], "{path}");
        }
    }
    for (path, _) in &files {
        assert_eq!(
            upstream.hits(&format!("/sumdb/sum.golang.org/{path}")),
            1,
            "{path}"
        );
    }
    for bad in [
        "/go/team/sumdb/sum.golang.org/tile/8/0/..%2f..%2fx",
        "/go/team/sumdb/sum.golang.org/lookup/example.com/m",
        "/go/team/sumdb/sum.golang.org/other",
        "/go/team/sumdb/Sum.golang.org/latest",
    ] {
        let res = c.get(server.url(bad)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}
