//! The checksum database through the Go proxy: `supported`, lookups and
//! tiles come from the upstream's `/sumdb/<name>/…` once and from Larder
//! afterwards, also while the upstream is down; other paths are refused.
//! The real `go` verifies modules against a database (tests/fixtures/gosumdb,
//! built from the golang.org/x/mod the Go distribution vendors) through
//! Larder, and again once that upstream is gone.

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

/// Builds tests/fixtures/gosumdb (a module proxy with a checksum database)
/// against the golang.org/x/mod that the Go distribution vendors.
async fn build_sumdb_fixture(work: &std::path::Path) -> std::path::PathBuf {
    let goroot = std::process::Command::new("go")
        .args(["env", "GOROOT"])
        .output()
        .unwrap();
    let goroot = String::from_utf8(goroot.stdout).unwrap();
    let vendored = std::path::Path::new(goroot.trim()).join("src/cmd/vendor/golang.org/x/mod");
    let xmod = work.join("xmod");
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(&vendored)
        .arg(&xmod)
        .status()
        .unwrap();
    assert!(copied.success(), "copying {}", vendored.display());
    std::fs::write(xmod.join("go.mod"), "module golang.org/x/mod\n\ngo 1.23\n").unwrap();
    let fx = work.join("fixture");
    std::fs::create_dir_all(&fx).unwrap();
    let main = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gosumdb/main.go"
    );
    std::fs::copy(main, fx.join("main.go")).unwrap();
    std::fs::write(
        fx.join("go.mod"),
        "module gosumdbfixture\n\ngo 1.23\n\nrequire golang.org/x/mod v0.0.0\n\nreplace golang.org/x/mod => ../xmod\n",
    )
    .unwrap();
    let bin = work.join("gosumdb");
    let out = tokio::process::Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(".")
        .current_dir(&fx)
        .env("GOFLAGS", "-mod=mod -modcacherw")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off")
        .env("GOCACHE", work.join("gocache"))
        .env("GOPATH", work.join("gopath"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "building the fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_verifies_modules_against_the_checksum_database_through_larder() {
    use proxy_support::gomod::{source, write_module};
    use tokio::io::AsyncBufReadExt;

    if common::require_tool("go").is_none() || common::require_tool("python3").is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let bin = build_sumdb_fixture(work.path()).await;
    let root = work.path().join("proxy");
    write_module(
        &root,
        "example.com/Hello",
        "v1.0.0",
        &[("hello.go", source("hello", 1, 10))],
    );
    let mut fixture = tokio::process::Command::new(bin)
        .arg(&root)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(fixture.stdout.take().unwrap()).lines();
    let addr = lines.next_line().await.unwrap().expect("fixture address");
    let key = lines.next_line().await.unwrap().expect("fixture key");

    let server = TestServer::start_with(|c| {
        c.proxy.go.enabled = true;
        c.proxy.go.upstream = format!("http://{addr}");
        c.proxy.go.metadata_ttl = Span(Duration::ZERO);
    })
    .await;
    let project = tempfile::tempdir().unwrap();
    let go_mod = "module example.com/app\n\ngo 1.21\n\nrequire example.com/Hello v1.0.0\n";
    std::fs::write(project.path().join("go.mod"), go_mod).unwrap();
    let download = |home: std::path::PathBuf| {
        // No go.sum: every module is checked against the database.
        let _ = std::fs::remove_file(project.path().join("go.sum"));
        tokio::process::Command::new("go")
            .args(["mod", "download", "-x"])
            .current_dir(project.path())
            .env("GOPROXY", server.url("/go/team/"))
            .env("GOSUMDB", &key)
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GOPATH", home.join("gopath"))
            .env("GOMODCACHE", home.join("modcache"))
            .env("GOCACHE", home.join("gocache"))
            .env("GOTOOLCHAIN", "local")
            .env("GOENV", "off")
            .env("GOTELEMETRY", "off")
            .env("GONOSUMDB", "")
            .env("GOPRIVATE", "")
            .env("GONOSUMCHECK", "")
            .output()
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let out = download(work.path().join("first")).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("/sumdb/sumdb.test/lookup/"),
        "go looked the module up through Larder: {}",
        text(&out)
    );
    let sums = std::fs::read_to_string(project.path().join("go.sum")).unwrap();
    assert!(
        sums.contains("example.com/Hello v1.0.0/go.mod h1:"),
        "{sums}"
    );

    fixture.kill().await.unwrap();
    let out = download(work.path().join("second")).await.unwrap();
    assert!(
        out.status.success(),
        "verified from Larder alone: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("/sumdb/sumdb.test/lookup/"),
        "{}",
        text(&out)
    );
}
