//! The dashboard's files at `/ui/`: served from the binary with a strict
//! Content-Security-Policy and the headers that keep it out of frames and
//! content sniffing; no inline script or style, nothing from another origin.

mod common;

use common::TestServer;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_strict_headers_and_no_inline_code() {
    let server = TestServer::start().await;
    let c = common::client();

    let res = c.get(server.url("/ui")).send().await.expect("GET /ui");
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()["location"], "/ui/");

    for (path, kind) in [
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/chart.js", "text/javascript"),
        ("/ui/overview.js", "text/javascript"),
        ("/ui/overview-scoped.js", "text/javascript"),
        ("/ui/namespaces.js", "text/javascript"),
        ("/ui/entries.js", "text/javascript"),
        ("/ui/tokens.js", "text/javascript"),
        ("/ui/health.js", "text/javascript"),
        ("/ui/connect.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let res = c.get(server.url(path)).send().await.expect("GET");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers().clone();
        let header = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}: {h:?}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let body = res.text().await.expect("body");
        assert!(
            !body.contains("http://") && !body.contains("https://") || path.ends_with(".js"),
            "{path} refers to another origin"
        );
        if path == "/ui/" {
            // Scripts and styles come from files only: no inline code, no
            // event-handler attributes.
            assert!(body.contains("<script src=\"app.js\""), "{body}");
            assert!(
                !body.contains("<script>") && !body.contains("<style") && !body.contains(" on"),
                "{body}"
            );
        } else {
            assert!(
                !body.contains("innerHTML")
                    && !body.contains("insertAdjacentHTML")
                    && !body.contains("eval("),
                "{path} builds HTML from strings"
            );
        }
    }

    // Every file in ui/ is built in: a page split into a new file cannot be
    // forgotten in src/api/ui.rs.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    for file in std::fs::read_dir(dir).expect("ui/") {
        let name = file.expect("ui/ entry").file_name();
        let name = name.to_string_lossy();
        let res = c.get(server.url(&format!("/ui/{name}"))).send().await;
        assert_eq!(res.expect("GET").status(), StatusCode::OK, "ui/{name}");
    }

    let res = c.get(server.url("/ui/nope.js")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = c
        .get(server.url("/ui/..%2FCargo.toml"))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
