//! OCI Distribution API (BuildKit's `type=registry` cache target).
//! Repository names contain slashes, so one wildcard route receives every
//! `/v2/…` request and `path::parse` picks the operation.

mod blobs;
mod challenge;
mod error;
mod listing;
mod manifests;
mod path;
mod token;
mod uploads;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::observe::RouteTemplate;
use super::AppState;
use crate::auth::Caller;
pub use error::OciError;
use path::Route;

const API_VERSION: &str = "Docker-Distribution-API-Version";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/token",
            axum::routing::get(token::get).post(token::post),
        )
        .route("/v2", any(serve))
        .route("/v2/", any(serve))
        .route("/v2/{*rest}", any(serve))
}

/// A request as the handlers see it.
pub(super) struct Req {
    pub state: AppState,
    pub caller: Caller,
    pub method: Method,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Req {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The scope under which a repository's blobs, tags and links are recorded.
pub(super) fn scope(name: &str) -> String {
    format!("oci:{name}")
}

/// Every `/v2/…` request but the token endpoint, from the router's
/// wildcard or from the direct path (`api::App`) past it.
pub async fn serve(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let path = uri.path();
    let rest = path.strip_prefix("/v2").unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let mut res = match path::parse(rest) {
        Some(route) => {
            let template = route.template();
            let mut res = match handle(state, route, method, &uri, headers, body).await {
                Ok(res) => res,
                Err(e) => e.into_response(),
            };
            res.extensions_mut().insert(RouteTemplate(template));
            res
        }
        None => {
            let mut res = OciError::new(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "no such registry endpoint",
            )
            .into_response();
            // What the router matches it with: its wildcard.
            res.extensions_mut().insert(RouteTemplate("/v2/{*rest}"));
            res
        }
    };
    res.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    res
}

async fn handle(
    state: AppState,
    route: Route<'_>,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let query = match uri.query() {
        Some(_) => {
            Query::<Vec<(String, String)>>::try_from_uri(uri)
                .map_err(|e| {
                    OciError::new(
                        StatusCode::BAD_REQUEST,
                        "UNSUPPORTED",
                        format!("bad query string: {e}"),
                    )
                })?
                .0
        }
        None => Vec::new(),
    };
    let caller = challenge::authorize(&state, &route, &method, &headers)?;
    let req = Req {
        state,
        caller,
        method,
        query,
        headers,
        body,
    };
    // Every branch but the reads of blobs and manifests (what BuildKit's
    // import sends) is boxed: the future is moved whole on each request,
    // and an upload's would size the reads' too.
    match route {
        Route::Base => match req.method {
            Method::GET | Method::HEAD => Ok(StatusCode::OK.into_response()),
            _ => Err(not_allowed()),
        },
        Route::Catalog => match req.method {
            Method::GET => Box::pin(listing::catalog(req)).await,
            _ => Err(not_allowed()),
        },
        Route::Tags { name } => {
            path::validate_name(name)?;
            match req.method {
                Method::GET => Box::pin(listing::tags(req, name)).await,
                _ => Err(not_allowed()),
            }
        }
        Route::Referrers { name, digest } => {
            path::validate_name(name)?;
            match req.method {
                Method::GET => Box::pin(listing::referrers(req, name, digest)).await,
                _ => Err(not_allowed()),
            }
        }
        Route::Blob { name, digest } => {
            path::validate_name(name)?;
            match req.method {
                Method::GET | Method::HEAD => blobs::get(req, name, digest).await,
                Method::DELETE => Box::pin(blobs::delete(req, name, digest)).await,
                _ => Err(not_allowed()),
            }
        }
        Route::UploadStart { name } => {
            path::validate_name(name)?;
            match req.method {
                Method::POST => Box::pin(uploads::start(req, name)).await,
                _ => Err(not_allowed()),
            }
        }
        Route::Upload { name, id } => {
            path::validate_name(name)?;
            match req.method {
                Method::PATCH => Box::pin(uploads::patch(req, name, id)).await,
                Method::PUT => Box::pin(uploads::put(req, name, id)).await,
                Method::GET => Box::pin(uploads::status(req, name, id)).await,
                Method::DELETE => Box::pin(uploads::cancel(req, name, id)).await,
                _ => Err(not_allowed()),
            }
        }
        Route::Manifest { name, reference } => {
            path::validate_name(name)?;
            match req.method {
                Method::GET | Method::HEAD => manifests::get(req, name, reference).await,
                Method::PUT => Box::pin(manifests::put(req, name, reference)).await,
                Method::DELETE => Box::pin(manifests::delete(req, name, reference)).await,
                _ => Err(not_allowed()),
            }
        }
    }
}

fn not_allowed() -> OciError {
    OciError::unsupported("method not allowed on this endpoint")
}

/// Parses a digest from a client, as `DIGEST_INVALID` when malformed.
pub(super) fn parse_digest(s: &str) -> Result<crate::cas::Digest, OciError> {
    s.parse()
        .map_err(|e: crate::cas::DigestError| OciError::digest_invalid(e.to_string()))
}
