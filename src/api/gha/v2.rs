//! The v2 Twirp API (JSON only):
//! `POST /twirp/github.actions.results.api.v1.CacheService/<Method>`.
//! Bytes do not pass through it: `CreateCacheEntry` hands out a signed
//! upload URL (see `blob`), `GetCacheEntryDownloadURL` a signed download URL.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::json;

use super::error::{GhaError, Kind, TwirpError};
use super::matching::{self, check_lookup};
use super::signed::Signer;
use super::{caller, json_body, namespaces, save, write_namespace, Target};
use crate::api::observe::Lookup;
use crate::api::{external_base, AppState};
use crate::auth::READ;

type TwirpResult = Result<Response, TwirpError>;

pub async fn call(
    State(state): State<AppState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> TwirpResult {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type.starts_with("application/json") {
        return Err(GhaError::bad_request(format!(
            "only JSON Twirp requests are served, not {content_type:?}"
        ))
        .into());
    }
    let caller = caller(&state, &headers)?;
    let base = external_base(&headers, &state.config);
    match method.as_str() {
        "CreateCacheEntry" => {
            let namespace = write_namespace(&state, &caller)?;
            create(&state, &base, &namespace, json_body(body).await?).await
        }
        "FinalizeCacheEntryUpload" => {
            let namespace = write_namespace(&state, &caller)?;
            finalize(&state, &namespace, json_body(body).await?).await
        }
        "GetCacheEntryDownloadURL" => {
            let namespaces = namespaces(&state, &caller, READ)?;
            download_url(&state, &base, &namespaces, json_body(body).await?).await
        }
        other => Err(GhaError::new(
            Kind::NotFound,
            format!("CacheService has no method {other:?}"),
        )
        .into()),
    }
}

pub async fn not_allowed() -> TwirpError {
    TwirpError(GhaError::new(
        Kind::MethodNotAllowed,
        "Twirp methods are called with POST",
    ))
}

#[derive(Deserialize)]
struct CreateRequest {
    #[serde(default)]
    key: String,
    #[serde(default)]
    version: String,
}

async fn create(state: &AppState, base: &str, namespace: &str, req: CreateRequest) -> TwirpResult {
    let target = Target::new(namespace, &req.version, &req.key)?;
    let reservation = save::reserve(state, &target, None).await?;
    let url = Signer::new(state).upload_url(base, &reservation.id);
    Ok(axum::Json(json!({ "ok": true, "signed_upload_url": url })).into_response())
}

/// An int64 in protobuf's JSON mapping: a string (actions/toolkit) or a
/// number (Go clients).
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Number(i64),
    Text(String),
}

impl Int64 {
    fn size(&self) -> Result<u64, GhaError> {
        let n = match self {
            Int64::Number(n) => Some(*n),
            Int64::Text(s) => s.trim().parse().ok(),
        };
        n.and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| GhaError::bad_request("size_bytes must be a non-negative integer"))
    }
}

#[derive(Deserialize)]
struct FinalizeRequest {
    #[serde(default)]
    key: String,
    #[serde(default)]
    version: String,
    size_bytes: Option<Int64>,
}

async fn finalize(state: &AppState, namespace: &str, req: FinalizeRequest) -> TwirpResult {
    let target = Target::new(namespace, &req.version, &req.key)?;
    let size = req
        .size_bytes
        .as_ref()
        .ok_or_else(|| GhaError::bad_request("size_bytes is required"))?
        .size()?;
    let id = state
        .store
        .reserved_upload(&target.reservation_scope())
        .await?
        .ok_or_else(|| {
            GhaError::new(
                Kind::NotFound,
                format!(
                    "no upload in progress for cache entry {:?} (version {}); create it first",
                    target.key, target.version
                ),
            )
        })?;
    let entry = save::commit(state, &target, &id, size).await?;
    Ok(axum::Json(json!({ "ok": true, "entry_id": entry.id.to_string() })).into_response())
}

#[derive(Deserialize)]
struct DownloadRequest {
    #[serde(default)]
    key: String,
    #[serde(default)]
    restore_keys: Vec<String>,
    #[serde(default)]
    version: String,
}

async fn download_url(
    state: &AppState,
    base: &str,
    namespaces: &[String],
    req: DownloadRequest,
) -> TwirpResult {
    let keys = matching::lookup_keys(std::iter::once(req.key).chain(req.restore_keys));
    check_lookup(&keys, &req.version)?;
    let store = &state.store;
    let Some(hit) = matching::find(store, namespaces, &req.version, &keys).await? else {
        let miss = axum::Json(json!({ "ok": false }));
        return Ok((Extension(Lookup(false)), miss).into_response());
    };
    store.touch_entry(&hit.entry);
    let url = Signer::new(state).download_url(base, &hit.entry);
    let body = json!({
        "ok": true,
        "signed_download_url": url,
        "matched_key": hit.key,
    });
    Ok((Extension(Lookup(true)), axum::Json(body)).into_response())
}
