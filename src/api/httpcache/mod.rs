//! HTTP build caches: key → bytes over plain HTTP.
//!
//! - `/cache/<namespace>/<key>`: one namespace-aware tree for Bazel
//!   (`ac/<sha256>`, verified `cas/<sha256>`), ccache (subdirs, flat and
//!   bazel layouts), sccache (WebDAV: PROPFIND, MKCOL) and Gradle.
//! - `/v8/artifacts/…`: Turborepo's remote cache API.
//! - `/v1/cache/<hash>`: Nx's self-hosted remote cache API.
//!
//! Every key is an entry (protocol http, turbo or nx) pinning the blob of its
//! value, so the bytes dedup with everything else in the CAS and the key takes
//! part in LRU, quotas and admin listings like any entry.

pub(crate) mod action_result;
pub(crate) mod bazel;
mod creations;
pub(crate) mod error;
mod generic;
pub mod keys;
mod nx;
mod turbo;
pub(crate) mod value;
mod webdav;

use axum::http::HeaderMap;
use axum::routing::any;
use axum::Router;

use super::AppState;
use crate::auth::{Caller, ANY_NAMESPACE};
pub use creations::Creations;
pub use error::{Dialect, HttpCacheError};
pub use generic::read;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cache", any(generic::dispatch))
        .route("/cache/", any(generic::dispatch))
        .route("/cache/{*rest}", any(generic::dispatch))
        .merge(turbo::routes())
        .merge(nx::routes())
}

/// Authenticates the request and checks `permission` on `namespace`.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    namespace: &str,
    permission: u8,
    dialect: Dialect,
) -> error::Result<Caller> {
    state
        .auth
        .check(headers, namespace, permission)
        .map_err(|d| HttpCacheError::denied(dialect, d))
}

/// The namespace of a client that does not name one (Nx; turbo without a
/// team): the first namespace its token is granted, or `default` when
/// there is no token (auth mode none) or it only holds the `*` wildcard.
fn token_namespace(caller: &Caller) -> String {
    match caller {
        Caller::Token(claims) => claims
            .grants()
            .into_iter()
            .map(|g| g.scope)
            .find(|s| s != ANY_NAMESPACE && keys::namespace(s).is_ok())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        Caller::Anonymous => DEFAULT_NAMESPACE.to_owned(),
    }
}

/// Where clients that name no namespace, with no token to take one from, go.
pub const DEFAULT_NAMESPACE: &str = "default";
