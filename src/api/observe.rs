//! Request metrics (counted by the request log's middleware) and `GET /metrics`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{content_length, AppState};
use crate::backend::Backend;
use crate::metrics::cluster::ClusterNumbers;
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

/// What `finish` needs of a request, taken before its handler runs. The
/// request log calls both, so every request passes one middleware, not two.
pub struct Pending {
    started: Instant,
    protocol: &'static str,
    method: Method,
    bytes_in: u64,
}

/// Starts counting a request; `None` for probes and `/metrics` itself,
/// which are not counted.
pub fn start(state: &AppState, req: &Request) -> Option<Pending> {
    let protocol = protocol_of(req.uri().path());
    if protocol == "other" {
        return None;
    }
    state.metrics.begin_request();
    Some(Pending {
        started: Instant::now(),
        protocol,
        method: req.method().clone(),
        bytes_in: content_length(req.headers()).unwrap_or(0),
    })
}

/// Records the handler's answer under `route` (the route template), for
/// `namespace` when auth allowed one.
pub fn finish(state: &AppState, p: Pending, route: &str, res: &Response, namespace: Option<&str>) {
    let status = res.status();
    let hit = match res.extensions().get::<Lookup>() {
        Some(l) => Some(l.0),
        None if (p.method == Method::GET || p.method == Method::HEAD)
            && p.protocol != "admin"
            && !NOT_LOOKUPS.contains(&route) =>
        {
            match status {
                StatusCode::OK | StatusCode::PARTIAL_CONTENT => Some(true),
                StatusCode::NOT_FOUND => Some(false),
                _ => None,
            }
        }
        None => None,
    };
    let bytes_out = if p.method == Method::HEAD {
        0
    } else {
        content_length(res.headers()).unwrap_or(0)
    };
    state.metrics.record(&RequestRecord {
        protocol: p.protocol,
        route,
        method: p.method.as_str(),
        status: status.as_u16(),
        latency: p.started.elapsed(),
        bytes_in: p.bytes_in,
        bytes_out,
        hit,
        namespace,
    });
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    // Rendering reads the index (usage, and the entry counts it walks once
    // a minute), which must not stall a runtime worker serving requests.
    let cluster = match &state.store {
        Backend::Cluster(store) => {
            let cfg = &state.config.cluster;
            let me = crate::cluster::replica_id(cfg);
            let beat = cfg.heartbeat_interval.0.as_secs_f64();
            Some(ClusterNumbers::read(store, &me, beat).await)
        }
        Backend::Local(_) => None,
    };
    let render = tokio::task::spawn_blocking(move || {
        (state.metrics).render(state.store.local().map(|s| &**s), cluster.as_ref())
    });
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
