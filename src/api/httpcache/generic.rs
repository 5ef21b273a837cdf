//! `/cache/<namespace>/<key>`: GET (with Range), HEAD, PUT, DELETE, plus the
//! WebDAV methods sccache needs. One wildcard route takes every request and
//! the raw path is validated here, before any decoding.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::error::{store_err, Dialect, HttpCacheError, Result};
use super::keys::{self, CachePath};
use super::{authorize, bazel, value, webdav};
use crate::api::AppState;
use crate::auth::{READ, WRITE};
use crate::cache::Protocol;

const D: Dialect = Dialect::Plain;
const ALLOW: &str = "GET, HEAD, PUT, DELETE, OPTIONS, PROPFIND, MKCOL";

/// Answers any request under `/cache` the router hands over.
pub async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    respond(route(&state, &parts.method, &parts.uri, parts.headers, body).await)
}

/// Answers a GET or HEAD under `/cache` on the direct path (`api::App`):
/// what `dispatch` does for them, in a future a sixth of the size of one
/// that could also write (it is moved whole on every request).
pub async fn read(state: &AppState, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    respond(read_key(state, &parts.method, &parts.uri, &parts.headers).await)
}

fn respond(answer: Result<Response>) -> Response {
    const TEMPLATE: &str = "/cache/{namespace}/{key}";
    let mut res = answer.unwrap_or_else(IntoResponse::into_response);
    res.extensions_mut()
        .insert(crate::api::observe::RouteTemplate(TEMPLATE));
    res
}

fn cache_path(uri: &Uri) -> Result<CachePath<'_>> {
    let rest = uri.path().strip_prefix("/cache").unwrap_or("");
    keys::parse_cache_path(rest).map_err(|e| HttpCacheError::bad_key(D, e))
}

async fn read_key(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response> {
    let path = cache_path(uri)?;
    authorize(state, headers, path.namespace, READ, D)?;
    get(state, &path, method, headers).await
}

async fn route(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    if method == Method::GET || method == Method::HEAD {
        return read_key(state, method, uri, &headers).await;
    }
    let path = cache_path(uri)?;
    match method.as_str() {
        "PUT" => {
            authorize(state, &headers, path.namespace, WRITE, D)?;
            put(state, &path, &headers, body).await
        }
        "DELETE" => {
            authorize(state, &headers, path.namespace, WRITE, D)?;
            delete(state, &path).await
        }
        "PROPFIND" => {
            authorize(state, &headers, path.namespace, READ, D)?;
            webdav::propfind(state, &path, &headers).await
        }
        "MKCOL" => {
            authorize(state, &headers, path.namespace, WRITE, D)?;
            webdav::mkcol(state, &path).await
        }
        "OPTIONS" => Ok(options()),
        _ => Err(HttpCacheError::method_not_allowed(D, ALLOW)),
    }
}

fn options() -> Response {
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    // WebDAV class 1: PROPFIND and MKCOL, no locking.
    h.insert("DAV", HeaderValue::from_static("1"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    res
}

fn value_key<'a>(path: &'a CachePath<'_>) -> Result<&'a str> {
    path.value_key().map_err(|e| HttpCacheError::bad_key(D, e))
}

async fn get(
    state: &AppState,
    path: &CachePath<'_>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response> {
    if path.collection {
        // Collections are virtual and have no bytes; WebDAV lists them with PROPFIND.
        return Err(HttpCacheError::not_found(D));
    }
    let key = value::entry_key(Protocol::Http, path.namespace, path.key);
    let Some(entry) = value::find(state, &key, D).await? else {
        if let Some(digest) = keys::bazel_cas_digest(path.key) {
            // Boxed: a miss path's future would make every hit's larger.
            let pinned = Box::pin(bazel::pinned_cas_blob(
                state,
                path.namespace,
                &digest,
                method,
                headers,
            ))
            .await?;
            if let Some(res) = pinned {
                return Ok(res);
            }
        }
        return Err(HttpCacheError::not_found(D));
    };
    if bazel::is_action_key(path.key) && !bazel::hit_is_whole(state, &entry).await? {
        return Err(HttpCacheError::not_found(D));
    }
    value::serve(state, &entry, method, headers, D).await
}

/// Stores the body under the key, replacing any previous value. Bazel's
/// `cas/<sha256>` is verified against its hash: a mismatch is a 400 and
/// nothing is stored.
async fn put(
    state: &AppState,
    path: &CachePath<'_>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let key = value_key(path)?;
    let expected = keys::bazel_cas_digest(key);
    let entry_key = value::entry_key(Protocol::Http, path.namespace, key);
    let ticket = (state.creations)
        .begin(&entry_key, || async {
            Ok(value::find(state, &entry_key, D).await?.is_some())
        })
        .await?;
    let body = if bazel::is_action_key(key) {
        bazel::put_action_result(state, path.namespace, entry_key.clone(), headers, body).await?
    } else {
        Err(body)
    };
    let blob = match body {
        Ok(blob) => blob,
        Err(body) => {
            value::store(state, headers, body, expected, entry_key, Vec::new(), D)
                .await?
                .0
        }
    };
    let status = if ticket.finish() {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    let mut res = status.into_response();
    res.headers_mut()
        .insert(header::ETAG, value::etag(&blob.id));
    Ok(res)
}

/// Removes a key; on a collection, every key under it (WebDAV semantics).
/// The namespace root cannot be deleted this way: wiping a namespace is an
/// admin operation, not something a build tool should do by accident.
async fn delete(state: &AppState, path: &CachePath<'_>) -> Result<Response> {
    if path.key.is_empty() {
        return Err(HttpCacheError::method_not_allowed(
            D,
            "GET, HEAD, OPTIONS, PROPFIND, MKCOL",
        ));
    }
    let store = &state.store;
    let mut ids = Vec::new();
    if !path.collection {
        let key = value::entry_key(Protocol::Http, path.namespace, path.key);
        if let Some(e) = value::find(state, &key, D).await? {
            ids.push(e.id);
        }
    }
    if ids.is_empty() {
        let members = store
            .entries_with_prefix(Protocol::Http, path.namespace, &path.prefix())
            .await
            .map_err(store_err(D))?;
        ids.extend(members.iter().map(|e| e.id));
    }
    if ids.is_empty() {
        return Err(HttpCacheError::not_found(D));
    }
    for id in ids {
        store.remove_entry(id).await.map_err(store_err(D))?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
