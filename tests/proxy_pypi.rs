//! The PyPI proxy at `/pypi/<ns>/simple/` with real pip, uv and pip-compile against a
//! real pypiserver holding a wheel and an sdist the test writes: installs
//! through Larder, again with pypiserver stopped; both forms of the simple
//! index; and, against a static upstream, every attribute carried over and
//! escaped, tampered files refused, and names that could escape refused.

mod common;
mod proxy_support;

use std::path::Path;
use std::time::Duration;

use common::TestServer;
use proxy_support::pypi::{
    have_pypiserver, install, pypi_proxy, sha256_hex, text, write_dists, PypiServer,
};
use proxy_support::{metric, StaticUpstream};
use reqwest::StatusCode;
use serde_json::Value;

const JSON: &str = "application/vnd.pypi.simple.v1+json";

async fn get(url: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = common::client().get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_installs_through_larder_and_again_with_pypiserver_stopped() {
    if common::require_tool("python3").is_none() || !have_pypiserver() {
        return;
    }
    let packages = write_dists();
    let wheel = std::fs::read(packages.path().join("larder_demo-1.0-py3-none-any.whl")).unwrap();
    let mut upstream = PypiServer::start(packages.path()).await;
    // TTL zero: every page request revalidates, so the second install
    // depends on the stale copies.
    let server = TestServer::start_with(pypi_proxy(upstream.url(), Duration::ZERO)).await;
    let index = server.url("/pypi/team/simple/");

    let first = install("pip", &index).await;
    assert!(
        first.status.success(),
        "pip through Larder: {}",
        text(&first)
    );

    // Both forms of pypiserver's page, its relative file URLs now Larder's.
    let page = server.url("/pypi/team/simple/larder-demo/");
    let res = get(&page, Some(JSON)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], JSON);
    assert_eq!(res.headers()["vary"], "Accept");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["name"], "larder-demo");
    let file = &doc["files"][0];
    assert_eq!(file["filename"], "larder_demo-1.0-py3-none-any.whl");
    assert_eq!(
        file["url"],
        "../../files/larder-demo/larder_demo-1.0-py3-none-any.whl"
    );
    assert_eq!(file["hashes"]["sha256"], sha256_hex(&wheel));
    let html = get(&page, Some("text/html")).await.text().await.unwrap();
    let href = format!(
        "href=\"../../files/larder-demo/larder_demo-1.0-py3-none-any.whl#sha256={}\"",
        sha256_hex(&wheel)
    );
    assert!(html.contains(&href), "{html}");
    let fetched = get(
        &server.url("/pypi/team/files/larder-demo/larder_demo-1.0-py3-none-any.whl"),
        None,
    )
    .await;
    assert_eq!(fetched.bytes().await.unwrap(), wheel);

    upstream.stop().await;
    let second = install("pip", &index).await;
    assert!(
        second.status.success(),
        "pip with pypiserver stopped: {}",
        text(&second)
    );
    let m = server.metrics().await;
    assert!(
        metric(&m, "larder_proxy_stale_served_total{ecosystem=\"pypi\"}") >= 1.0,
        "{m}"
    );
    let stale = get(&page, Some(JSON)).await;
    assert!(stale.headers().contains_key("warning"));

    if common::require_tool("uv").is_some() {
        let uv = install("uv", &index).await;
        assert!(
            uv.status.success(),
            "uv with pypiserver stopped: {}",
            text(&uv)
        );
    }
}

/// pip-tools resolves through Larder and pins every file with the sha256
/// the upstream published, so the lockfile it writes verifies against the
/// upstream as well as against Larder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_compile_pins_hashes_through_larder() {
    if common::require_tool("python3").is_none() || !have_pypiserver() {
        return;
    }
    let have_piptools = std::process::Command::new("python3")
        .args(["-m", "piptools", "compile", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_piptools {
        common::skip("pip-tools is not installed (python3 -m pip install pip-tools)");
        return;
    }
    let packages = write_dists();
    let wheel = std::fs::read(packages.path().join("larder_demo-1.0-py3-none-any.whl")).unwrap();
    let sdist = std::fs::read(packages.path().join("larder_sdist_demo-1.0.tar.gz")).unwrap();
    let upstream = PypiServer::start(packages.path()).await;
    let server = TestServer::start_with(pypi_proxy(upstream.url(), Duration::ZERO)).await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("requirements.in"), "larder-sdist-demo\n").unwrap();
    let out = tokio::process::Command::new("python3")
        .args(["-m", "piptools", "compile", "--quiet", "--generate-hashes"])
        .args(["--no-emit-index-url", "--rebuild", "--index-url"])
        .arg(server.url("/pypi/team/simple/"))
        .args(["--output-file", "requirements.txt", "requirements.in"])
        .current_dir(work.path())
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .output()
        .await
        .expect("pip-compile runs");
    assert!(out.status.success(), "pip-compile: {}", text(&out));
    let pinned = std::fs::read_to_string(work.path().join("requirements.txt")).unwrap();
    assert!(pinned.contains("larder-sdist-demo==1.0"), "{pinned}");
    assert!(pinned.contains("larder-demo==1.0"), "{pinned}");
    for file in [&wheel, &sdist] {
        let hash = format!("--hash=sha256:{}", sha256_hex(file));
        assert!(pinned.contains(&hash), "{hash} missing from:\n{pinned}");
    }
}

/// A static upstream whose `demo` page uses every attribute, some of them
/// hostile, and whose `evil` page publishes a hash its file does not have.
fn write_static_upstream(root: &Path, wheel: &[u8], metadata: &[u8]) {
    let w = sha256_hex(wheel);
    let m = sha256_hex(metadata);
    let other = "ab".repeat(32);
    let demo = format!(
        r#"<!DOCTYPE html><html><body><!-- <a href="x.whl#sha256={other}">x.whl</a> -->
<A HREF="../../files/demo-1.0-py3-none-any.whl#sha256={w}" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256={m}">demo-1.0-py3-none-any.whl</A><br>
<a href='http://127.0.0.1:9/dl/demo-0.9.tar.gz#sha256={other}' data-yanked="broken &quot;build&quot;" data-requires-python='&lt;4"&gt;&lt;script&gt;alert(1)&lt;/script&gt;'>demo-0.9.tar.gz</a>
<a href="javascript:alert(1)#sha256={other}">demo-0.8.tar.gz</a>
<a href="../../files/demo-0.7.tar.gz#md5=0123456789abcdef0123456789abcdef">demo-0.7.tar.gz</a>
<a href="../../files/..%2f..%2fetc#sha256={other}">../../etc/passwd</a>
</body></html>"#
    );
    let evil =
        format!(r#"<a href="../../files/evil-1.0.tar.gz#sha256={other}">evil-1.0.tar.gz</a>"#);
    for (path, body) in [
        ("simple/demo/index.html", demo.as_bytes()),
        ("simple/evil/index.html", evil.as_bytes()),
        ("files/demo-1.0-py3-none-any.whl", wheel),
        ("files/demo-1.0-py3-none-any.whl.metadata", metadata),
        ("files/evil-1.0.tar.gz", b"not what the page says"),
    ] {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, body).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_keep_their_attributes_escaped_and_unverified_files_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (wheel, metadata) = (
        b"a wheel's bytes".as_slice(),
        b"Metadata-Version: 2.1\n".as_slice(),
    );
    write_static_upstream(root.path(), wheel, metadata);
    let mut upstream = StaticUpstream::start(root.path()).await;
    let base = format!("{}/simple", upstream.url());
    let server = TestServer::start_with(pypi_proxy(base, Duration::ZERO)).await;
    let page = server.url("/pypi/team/simple/demo/");
    let (w, m) = (sha256_hex(wheel), sha256_hex(metadata));

    let res = get(&page, Some(JSON)).await;
    assert_eq!(res.headers()["content-type"], JSON);
    assert_eq!(res.headers()["vary"], "Accept");
    let doc: Value = res.json().await.unwrap();
    let files = doc["files"].as_array().unwrap();
    // No javascript: URL, no file without a sha256, no name with a path.
    assert_eq!(files.len(), 2, "{doc}");
    assert_eq!(
        files[0]["url"],
        "../../files/demo/demo-1.0-py3-none-any.whl"
    );
    assert_eq!(files[0]["hashes"]["sha256"], w.as_str());
    assert_eq!(files[0]["requires-python"], ">=3.8");
    assert_eq!(files[0]["yanked"], false);
    assert_eq!(files[0]["core-metadata"]["sha256"], m.as_str());
    assert_eq!(files[0]["dist-info-metadata"]["sha256"], m.as_str());
    assert_eq!(files[1]["url"], "../../files/demo/demo-0.9.tar.gz");
    assert_eq!(files[1]["yanked"], "broken \"build\"");
    assert_eq!(
        files[1]["requires-python"],
        "<4\"><script>alert(1)</script>"
    );
    assert!(files[1].get("core-metadata").is_none());

    let res = get(&page, Some("text/html")).await;
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let html = res.text().await.unwrap();
    assert!(html.contains(&format!(
        "<a href=\"../../files/demo/demo-1.0-py3-none-any.whl#sha256={w}\" data-requires-python=\"&gt;=3.8\" \
         data-core-metadata=\"sha256={m}\" data-dist-info-metadata=\"sha256={m}\">demo-1.0-py3-none-any.whl</a>"
    )), "{html}");
    assert!(
        html.contains("data-yanked=\"broken &quot;build&quot;\""),
        "{html}"
    );
    assert!(html.contains("&lt;4&quot;&gt;&lt;script&gt;"), "{html}");
    assert!(
        !html.contains("<script") && !html.contains("javascript:"),
        "{html}"
    );
    let v1 = get(&page, Some("application/vnd.pypi.simple.v1+html")).await;
    assert_eq!(
        v1.headers()["content-type"],
        "application/vnd.pypi.simple.v1+html"
    );

    // The file and its metadata, verified and stored.
    let file = server.url("/pypi/team/files/demo/demo-1.0-py3-none-any.whl");
    assert_eq!(get(&file, None).await.bytes().await.unwrap(), wheel);
    let meta = get(&format!("{file}.metadata"), None).await;
    assert_eq!(meta.status(), StatusCode::OK);
    assert_eq!(meta.bytes().await.unwrap(), metadata);
    assert_eq!(upstream.hits("/files/demo-1.0-py3-none-any.whl"), 1);
    get(&file, None).await;
    assert_eq!(upstream.hits("/files/demo-1.0-py3-none-any.whl"), 1);

    // A file whose bytes do not match the page: 502, never stored, so the
    // next request asks the upstream again.
    let evil = server.url("/pypi/team/files/evil/evil-1.0.tar.gz");
    for n in 1..=2 {
        let res = get(&evil, None).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert!(res.text().await.unwrap().contains("does not match"));
        assert_eq!(upstream.hits("/files/evil-1.0.tar.gz"), n);
    }

    // Other spellings redirect to the normalized name; names that could
    // leave their segment, and files the page does not list, are 404s that
    // ask the upstream nothing.
    let res = get(&server.url("/pypi/team/simple/Demo_Pkg.x/"), None).await;
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(res.headers()["location"], "/pypi/team/simple/demo-pkg-x/");
    let res = get(&server.url("/pypi/team/simple/demo"), None).await;
    assert_eq!(res.headers()["location"], "/pypi/team/simple/demo/");
    let before = upstream.total();
    for path in [
        "/pypi/team/simple/..%2f..%2fetc/",
        "/pypi/team/simple/a%2fb/",
        "/pypi/team/files/demo/..",
        "/pypi/team/files/demo/a%2f..%2fb.whl",
        "/pypi/team/files/..%2fx/demo-1.0.tar.gz",
        "/pypi/team/simple/demo/extra/",
        "/pypi/..%2fother/simple/demo/",
    ] {
        let res = get(&server.url(path), None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(upstream.total(), before);
    let unlisted = get(&server.url("/pypi/team/files/demo/demo-2.0.tar.gz"), None).await;
    assert_eq!(unlisted.status(), StatusCode::NOT_FOUND);

    // Upstream down: the page is served stale, with a warning; the stored
    // file still is.
    upstream.stop();
    let res = get(&page, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["warning"]
        .to_str()
        .unwrap()
        .starts_with("110"));
    assert_eq!(get(&file, None).await.bytes().await.unwrap(), wheel);
    let m = server.metrics().await;
    assert!(
        metric(&m, "larder_proxy_stale_served_total{ecosystem=\"pypi\"}") >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "larder_proxy_upstream_errors_total{ecosystem=\"pypi\"}") >= 2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_list_and_a_json_upstream() {
    let root = tempfile::tempdir().unwrap();
    let wheel = b"wheel".as_slice();
    let list =
        r#"<a href="/simple/Demo/">Demo</a><a href="x/">Zope.Interface</a><a href="y">../bad</a>"#;
    let json = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": "jsonpkg",
        "files": [{
            "filename": "jsonpkg-1.0-py3-none-any.whl",
            "url": "https://127.0.0.1:9/f/jsonpkg-1.0-py3-none-any.whl",
            "hashes": {"sha256": sha256_hex(wheel)},
            "requires-python": ">=3.9",
            "yanked": true,
            "core-metadata": true
        }]
    });
    std::fs::create_dir_all(root.path().join("simple/jsonpkg")).unwrap();
    std::fs::write(root.path().join("simple/index.html"), list).unwrap();
    std::fs::write(
        root.path().join("simple/jsonpkg/index.html"),
        json.to_string(),
    )
    .unwrap();
    let upstream = StaticUpstream::start(root.path()).await;
    let server = TestServer::start_with(pypi_proxy(
        format!("{}/simple", upstream.url()),
        Duration::from_secs(300),
    ))
    .await;

    let res = get(&server.url("/pypi/team/simple/"), Some(JSON)).await;
    let doc: Value = res.json().await.unwrap();
    assert_eq!(
        doc["projects"],
        serde_json::json!([{"name": "demo"}, {"name": "zope-interface"}])
    );
    let html = get(&server.url("/pypi/team/simple/"), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<a href=\"zope-interface/\">zope-interface</a>"),
        "{html}"
    );
    assert!(!html.contains("bad"), "{html}");

    let doc: Value = get(&server.url("/pypi/team/simple/jsonpkg/"), Some(JSON))
        .await
        .json()
        .await
        .unwrap();
    let f = &doc["files"][0];
    assert_eq!(f["url"], "../../files/jsonpkg/jsonpkg-1.0-py3-none-any.whl");
    assert_eq!(f["yanked"], true);
    assert_eq!(f["core-metadata"], true);
    assert_eq!(f["requires-python"], ">=3.9");
    let html = get(&server.url("/pypi/team/simple/jsonpkg/"), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("data-yanked=\"\" data-core-metadata=\"true\""),
        "{html}"
    );
    // One upstream fetch per page while it is fresh, whatever the form.
    assert_eq!(upstream.hits("/simple/jsonpkg/"), 1);
}
