//! Request metrics (a middleware on every route) and `GET /metrics`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{content_length, AppState};
use crate::metrics::{protocol_of, RequestRecord};

/// What every protocol says when the disk is full (ENOSPC, EDQUOT, or the
/// server is read-only until space is freed).
pub const STORAGE_FULL: &str =
    "storage is full: the disk has no space left for this write; retry once space is freed";

/// Set on a response by a handler whose route is a wildcard (the OCI API),
/// naming the precise route template.
#[derive(Clone, Copy, Debug)]
pub struct RouteTemplate(pub &'static str);

/// Set on a response by a lookup whose hit or miss the status does not tell
/// (a POST lookup, a 204 miss).
#[derive(Clone, Copy, Debug)]
pub struct Lookup(pub bool);

/// Routes that answer GET/HEAD but are not cache lookups.
const NOT_LOOKUPS: &[&str] = &[
    "/v2/",
    "/v2/_catalog",
    "/v2/{name}/tags/list",
    "/v2/{name}/referrers/{digest}",
    "/v2/{name}/blobs/uploads/{id}",
    "/v2/token",
    "/v8/artifacts/status",
    // An Actions cache archive download follows its lookup, which counted.
    "/gha/blobs/{id}/{content}",
];

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let protocol = protocol_of(req.uri().path());
    let method = req.method().clone();
    let bytes_in = content_length(req.headers()).unwrap_or(0);
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    if protocol == "other" {
        return next.run(req).await; // probes and /metrics itself
    }
    state.metrics.begin_request();
    let res = next.run(req).await;
    // The request log's slot, which auth filled: observe runs inside it.
    let namespace = crate::auth::seen::allowed_namespace();
    let route = match res.extensions().get::<RouteTemplate>() {
        Some(t) => t.0.to_owned(),
        None => matched.unwrap_or_else(|| "unmatched".into()),
    };
    let status = res.status();
    let hit = match res.extensions().get::<Lookup>() {
        Some(l) => Some(l.0),
        None if (method == Method::GET || method == Method::HEAD)
            && protocol != "admin"
            && !NOT_LOOKUPS.contains(&route.as_str()) =>
        {
            match status {
                StatusCode::OK | StatusCode::PARTIAL_CONTENT => Some(true),
                StatusCode::NOT_FOUND => Some(false),
                _ => None,
            }
        }
        None => None,
    };
    let bytes_out = if method == Method::HEAD {
        0
    } else {
        content_length(res.headers()).unwrap_or(0)
    };
    state.metrics.record(&RequestRecord {
        protocol,
        route: &route,
        method: method.as_str(),
        status: status.as_u16(),
        latency: started.elapsed(),
        bytes_in,
        bytes_out,
        hit,
        namespace: namespace.as_deref(),
    });
    res
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    // Rendering reads the index (usage, and the entry counts it walks once
    // a minute), which must not stall a runtime worker serving requests.
    let render = tokio::task::spawn_blocking(move || state.metrics.render(&state.store));
    let text = match render.await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "rendering the metrics failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut res = (StatusCode::OK, Body::from(text)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
