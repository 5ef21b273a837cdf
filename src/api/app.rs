//! What a connection serves: the router, and a direct path past it for the
//! requests most of a build cache's traffic is made of.
//!
//! A GET or HEAD of an HTTP cache key (`/cache/…`, Bazel, ccache, sccache,
//! Gradle) is a few microseconds of real work; routing it through axum
//! (matching, path parameters, extractors, a boxed future per layer) cost
//! about as much again. The direct path runs the same request log, metrics,
//! auth and handler as the router does, minus the router.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use hyper::body::Body as _;
use tower::ServiceExt;

use super::{httpcache, request_log, router, AppState};

#[derive(Clone)]
pub struct App {
    router: Router,
    /// Set when the direct path is on (not on the metrics-only port).
    direct: Option<Arc<AppState>>,
}

impl App {
    /// Every route, with the direct path for cache reads.
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
    /// only the pointer, instead of room for the larger of the two that
    /// would be copied whole on every request.
    pub fn call(&self, req: Request) -> BoxFuture<'static, Response> {
        match self.direct.clone().filter(|_| is_cache_read(&req)) {
            Some(state) => Box::pin(direct(state, req)),
            None => Box::pin(self.router.clone().oneshot(req).map(|res| match res {
                Ok(res) => res,
                Err(never) => match never {},
            })),
        }
    }
}

async fn direct(state: Arc<AppState>, req: Request) -> Response {
    request_log::around(&state, req, |req| read(&state, req)).await
}

/// The requests the router would hand to the HTTP cache's wildcard route
/// that the direct path takes instead.
fn is_cache_read(req: &Request) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && req.uri().path().starts_with("/cache/")
}

/// The HTTP cache's answer, finished as axum finishes a routed one: the
/// length a body knows is announced, and a HEAD answer sends no body.
async fn read(state: &AppState, req: Request) -> Response {
    let head = req.method() == Method::HEAD;
    let mut res = httpcache::read(state, req).await;
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
