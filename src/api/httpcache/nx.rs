//! Nx's self-hosted remote cache (Nx ≥ 20.8, `NX_SELF_HOSTED_REMOTE_CACHE_SERVER`):
//! `GET /v1/cache/<hash>` ⇒ 200 or 404; `PUT /v1/cache/<hash>` needs
//! `Content-Length` (else 400), never overwrites (409), and a token without
//! write permission gets 403. Errors are `text/plain` messages, which the Nx
//! CLI shows to its user. The namespace is the token's first namespace
//! (`default` without auth).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::{store_err, Dialect, HttpCacheError, Result};
use super::{keys, token_namespace, value};
use crate::api::{content_length, AppState};
use crate::auth::{READ, WRITE};
use crate::cache::Protocol;

const D: Dialect = Dialect::Nx;
const PREFIX: &str = "/v1/cache/";

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/cache/{hash}", get(get_output).put(put_output))
}

/// The hash from the raw path (never percent-decoded).
fn hash(uri: &Uri) -> Result<&str> {
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    keys::hash(raw).map_err(|e| HttpCacheError::bad_key(D, e))
}

/// Authenticates and checks `permission` on the caller's namespace.
fn namespace(state: &AppState, headers: &HeaderMap, permission: u8) -> Result<String> {
    let denied = |d| HttpCacheError::denied(D, d);
    let caller = state.auth.caller(headers).map_err(denied)?;
    let ns = token_namespace(&caller);
    state
        .auth
        .require(&caller, &ns, permission)
        .map_err(denied)?;
    Ok(ns)
}

fn conflict() -> HttpCacheError {
    HttpCacheError::new(
        D,
        StatusCode::CONFLICT,
        "exists",
        "cannot override an existing record",
    )
}

async fn get_output(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let res = async {
        let hash = hash(&uri)?;
        let ns = namespace(&state, &headers, READ)?;
        let key = value::entry_key(Protocol::Nx, &ns, hash);
        let entry = value::find(&state, &key, D)
            .await?
            .ok_or_else(|| HttpCacheError::not_found(D))?;
        value::serve(&state, &entry, &method, &headers, D).await
    };
    res.await.unwrap_or_else(IntoResponse::into_response)
}

async fn put_output(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let res = async {
        let hash = hash(&uri)?;
        let ns = namespace(&state, &headers, WRITE)?;
        if content_length(&headers).is_none() {
            return Err(HttpCacheError::bad_request(
                D,
                "missing or invalid Content-Length header",
            ));
        }
        let key = value::entry_key(Protocol::Nx, &ns, hash);
        // Checked before the body is read (the common case costs no upload)
        // and again before the entry is written, which narrows the window
        // for two concurrent writers to the index write itself; a blob
        // stored by the loser is unpinned and collected once its write lease ends.
        if value::find(&state, &key, D).await?.is_some() {
            return Err(conflict());
        }
        let blob = value::store_body(&state, &headers, body, None, D).await?;
        if state
            .store
            .entry(&key)
            .await
            .map_err(store_err(D))?
            .is_some()
        {
            return Err(conflict());
        }
        value::put_entry(&state, key, &blob, Vec::new(), D).await?;
        Ok(StatusCode::OK.into_response())
    };
    res.await.unwrap_or_else(IntoResponse::into_response)
}
