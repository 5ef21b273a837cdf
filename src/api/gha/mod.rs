//! GitHub Actions cache: the v1 REST API (`/_apis/artifactcache/…`, BuildKit
//! `type=gha`, actions/toolkit), the v2 Twirp API (`/twirp/…CacheService/…`)
//! and the signed, Azure-Blob-like URLs both hand out for archive downloads
//! and v2 uploads. See docs/USING.md, actions/cache.
//!
//! The namespace is the token's scope (its `ac` claim). A saved archive is
//! one Larder entry (protocol `gha`) named `<version>/<key>`, pinning one blob
//! that deduplicates with every other protocol's content. Saving goes through
//! a reservation: an upload session that becomes the entry on commit.

mod blob;
mod blocklist;
mod error;
mod matching;
mod save;
mod signed;
mod v1;
mod v2;

use axum::body::{Body, Bytes};
use axum::http::Uri;
use axum::routing::{get, patch, post, put, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::auth::{Caller, ANY_NAMESPACE, WRITE};
pub use error::GhaError;
use error::Kind;

/// The namespace of callers that carry no scope: anonymous callers when
/// auth is off (or reads are open), and wildcard tokens.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The largest JSON request body (a lookup or commit is a few hundred bytes).
const MAX_JSON_BODY: usize = 64 << 10;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_apis/artifactcache/cache", v1_route(get(v1::lookup)))
        .route("/_apis/artifactcache/caches", v1_route(post(v1::reserve)))
        .route(
            "/_apis/artifactcache/caches/{id}",
            v1_route(patch(v1::upload).post(v1::commit)),
        )
        .route(
            "/twirp/github.actions.results.api.v1.CacheService/{method}",
            post(v2::call).fallback(v2::not_allowed),
        )
        .route(
            &format!("{}/{{id}}/{{content}}", signed::DOWNLOAD_PREFIX),
            get(blob::download).fallback(blob::not_allowed),
        )
        .route(
            &format!("{}/{{id}}", signed::UPLOAD_PREFIX),
            put(blob::upload).fallback(blob::not_allowed),
        )
}

/// A v1 route; other methods get a v1 error.
fn v1_route(r: MethodRouter<AppState>) -> MethodRouter<AppState> {
    r.fallback(v1::not_allowed)
}

/// What an archive is saved under: a namespace, a version (which the client
/// derives from the paths and compression) and a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub version: String,
    pub key: String,
}

impl Target {
    /// The scope of this target's reservation; unambiguous, and parsed back
    /// when a request names the reservation only by id.
    fn reservation_scope(&self) -> String {
        let parts = (&self.namespace, &self.version, &self.key);
        format!("gha:{}", serde_json::to_string(&parts).unwrap_or_default())
    }

    fn from_reservation_scope(scope: &str) -> Option<Target> {
        let (namespace, version, key) = serde_json::from_str(scope.strip_prefix("gha:")?).ok()?;
        Some(Target {
            namespace,
            version,
            key,
        })
    }
}

/// The namespaces `caller` holds `permission` on, in the token's order;
/// 401 or 403 when there are none.
fn namespaces(state: &AppState, caller: &Caller, permission: u8) -> Result<Vec<String>, GhaError> {
    let candidates: Vec<String> = match caller {
        Caller::Token(c) => c
            .grants()
            .into_iter()
            .map(|g| match g.scope.as_str() {
                ANY_NAMESPACE => DEFAULT_NAMESPACE.to_owned(),
                _ => g.scope,
            })
            // NUL separates namespace from name in entry keys.
            .filter(|ns| !ns.is_empty() && !ns.contains('\0'))
            .collect(),
        Caller::Anonymous => vec![DEFAULT_NAMESPACE.to_owned()],
    };
    let mut allowed: Vec<String> = Vec::new();
    for ns in &candidates {
        if !allowed.contains(ns) && state.auth.require(caller, ns, permission).is_ok() {
            allowed.push(ns.clone());
        }
    }
    if allowed.is_empty() {
        let first = candidates.first().map_or(DEFAULT_NAMESPACE, String::as_str);
        state.auth.require(caller, first, permission)?;
        return Err(GhaError::new(
            Kind::Forbidden,
            "the token grants no Actions cache scope for this",
        ));
    }
    Ok(allowed)
}

/// The namespace `caller` saves to: the first its token may write.
fn write_namespace(state: &AppState, caller: &Caller) -> Result<String, GhaError> {
    let first = namespaces(state, caller, WRITE)?.into_iter().next();
    first.ok_or_else(|| GhaError::new(Kind::Forbidden, "the token may write no cache scope"))
}

/// The caller of a request: 401 for credentials that are not valid.
fn caller(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, GhaError> {
    Ok(state.auth.caller(headers)?)
}

fn query(uri: &Uri) -> Result<Vec<(String, String)>, GhaError> {
    match uri.query() {
        None => Ok(Vec::new()),
        Some(_) => axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| q.0)
            .map_err(|e| GhaError::bad_request(format!("bad query string: {e}"))),
    }
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Reads a small JSON request body.
async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, GhaError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|e| GhaError::bad_request(format!("cannot read the request body: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        GhaError::bad_request(format!("the request body is not the JSON expected: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_scopes_round_trip_any_text() {
        let t = Target {
            namespace: "team/a".into(),
            version: "v\"1".into(),
            key: "key with \u{0}, \"quotes\" and \\".into(),
        };
        assert_eq!(
            Target::from_reservation_scope(&t.reservation_scope()),
            Some(t)
        );
        assert_eq!(Target::from_reservation_scope("oci:team/app"), None);
        assert_eq!(Target::from_reservation_scope("gha:[1,2]"), None);
    }
}
