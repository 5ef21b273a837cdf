//! The dashboard at `/ui/`: static files built into the binary (no build
//! step, no Node.js), which call the admin API with the token the page asks
//! for. Served with a strict Content-Security-Policy: scripts and styles
//! only from these files, so a name a client chose cannot run as code even
//! if a rendering bug let it into the page.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// (file name, content type, contents).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/app.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/chart.js"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/overview.js"),
    ),
    (
        "overview-scoped.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/overview-scoped.js"),
    ),
    (
        "namespaces.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/namespaces.js"),
    ),
    (
        "entries.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/entries.js"),
    ),
    (
        "tokens.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/tokens.js"),
    ),
    (
        "health.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/health.js"),
    ),
    (
        "connect.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/connect.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/style.css"),
    ),
];

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { file("index.html") }))
        .route(
            "/ui/{name}",
            get(|Path(name): Path<String>| async move { file(&name) }),
        )
}

fn file(name: &str) -> Response {
    let Some((_, kind, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such file in the dashboard\n").into_response();
    };
    let mut res = (*body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary: revalidate rather than keep a stale
    // script after an upgrade. They are small.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
