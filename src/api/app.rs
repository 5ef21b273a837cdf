//! What a connection serves: the router, and a direct path past it for the
//! requests most of a build cache's traffic is made of.
//!
//! A GET or HEAD of an HTTP cache key (`/cache/…`, Bazel, ccache, sccache,
//! Gradle) or a registry request (`/v2/…`, BuildKit's cache import and
//! export) is a few microseconds of real work; routing it through axum
//! (matching, path parameters, extractors, a boxed future per layer) cost
//! about as much again. The direct path runs the same request log, metrics,
//! auth and handler as the router does, minus the router.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use hyper::body::Body as _;
use tower::ServiceExt;

use super::{httpcache, oci, request_log, router, AppState};

#[derive(Clone)]
pub struct App {
    router: Router,
    /// Set when the direct path is on (not on the metrics-only port).
    direct: Option<Arc<AppState>>,
}

/// The handlers the direct path reaches.
#[derive(Clone, Copy)]
enum Direct {
    CacheRead,
    Registry,
}

impl App {
    /// Every route, with the direct path for cache reads and the registry.
    pub fn new(state: AppState) -> App {
        App {
            router: router(state.clone()),
            direct: Some(Arc::new(state)),
        }
    }

    /// `router` alone.
    pub fn routed(router: Router) -> App {
        App {
            router,
            direct: None,
        }
    }

    /// Boxed here, each way its own size: the connection's future holds
    /// only the pointer, instead of room for the largest of them that
    /// would be copied whole on every request.
    pub fn call(&self, req: Request) -> BoxFuture<'static, Response> {
        let direct = self.direct.as_ref().and_then(|s| Some((s, direct(&req)?)));
        match direct {
            Some((state, Direct::CacheRead)) => Box::pin(cache_read(state.clone(), req)),
            Some((state, Direct::Registry)) => Box::pin(registry(state.clone(), req)),
            None => Box::pin(self.router.clone().oneshot(req).map(|res| match res {
                Ok(res) => res,
                Err(never) => match never {},
            })),
        }
    }
}

/// Which handler the router would reach for `req` that the direct path
/// reaches instead: the HTTP cache's wildcard route for reads, the
/// registry's for every `/v2/…` request but the token endpoint.
fn direct(req: &Request) -> Option<Direct> {
    let path = req.uri().path();
    if path.starts_with("/cache/") {
        let read = req.method() == Method::GET || req.method() == Method::HEAD;
        return read.then_some(Direct::CacheRead);
    }
    let registry = path == "/v2" || (path.starts_with("/v2/") && path != "/v2/token");
    registry.then_some(Direct::Registry)
}

async fn cache_read(state: Arc<AppState>, req: Request) -> Response {
    let state = &state;
    request_log::around(state, req, move |req| async move {
        let head = req.method() == Method::HEAD;
        finish(head, httpcache::read(state, req).await)
    })
    .await
}

async fn registry(state: Arc<AppState>, req: Request) -> Response {
    let state = &state;
    request_log::around(state, req, move |req| async move {
        let head = req.method() == Method::HEAD;
        // Boxed where it is made: the log's wrappers around it would each
        // move the registry's future (sized by its reads' lookups) whole.
        let serving = Box::pin(oci::serve(State(state.as_ref().clone()), req));
        finish(head, serving.await)
    })
    .await
}

/// A handler's answer finished as axum finishes a routed one: the length a
/// body knows is announced, and a HEAD answer sends no body.
fn finish(head: bool, mut res: Response) -> Response {
    if !res.headers().contains_key(header::CONTENT_LENGTH) {
        if let Some(n) = res.body().size_hint().exact() {
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    if head {
        *res.body_mut() = Body::empty();
    }
    res
}
