//! The v1 REST API under `<base>_apis/artifactcache/`: lookup (`GET cache`),
//! reserve (`POST caches`), chunks (`PATCH caches/{id}`, in any order and in
//! parallel, each at its `Content-Range` offset, staged until the commit
//! assembles them in order) and commit (`POST caches/{id}`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::json;

use super::error::{GhaError, Kind, V1Error};
use super::matching::{self, check_lookup};
use super::signed::Signer;
use super::{caller, json_body, namespaces, param, query, save, write_namespace, Target};
use crate::api::observe::Lookup;
use crate::api::{content_length, external_base, refuse_declared_over, AppState};
use crate::auth::{Caller, READ, WRITE};
use crate::cache::{reservation_id, reservation_number, StoreError};
use crate::cas::CasError;

type V1Result = Result<Response, V1Error>;

/// `GET cache?keys=k1,k2&version=V`: 200 with the entry, 204 on a miss.
pub async fn lookup(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> V1Result {
    let caller = caller(&state, &headers)?;
    let namespaces = namespaces(&state, &caller, READ)?;
    let query = query(&uri)?;
    let keys = matching::lookup_keys(
        param(&query, "keys")
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_owned),
    );
    let version = param(&query, "version").unwrap_or_default();
    check_lookup(&keys, version)?;
    let store = &state.store;
    let Some(hit) = matching::find(store, &namespaces, version, &keys).await? else {
        return Ok((StatusCode::NO_CONTENT, Extension(Lookup(false))).into_response());
    };
    store.touch_entry(&hit.entry);
    let url = Signer::new(&state).download_url(&external_base(&headers, &state.config), &hit.entry);
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_millis(hit.entry.created);
    let body = json!({
        "cacheKey": hit.key,
        "scope": hit.namespace,
        "cacheVersion": version,
        "creationTime": humantime::format_rfc3339_millis(created).to_string(),
        "archiveLocation": url,
    });
    Ok((Extension(Lookup(true)), axum::Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReserveRequest {
    key: String,
    version: String,
    #[serde(default)]
    cache_size: Option<u64>,
}

/// `POST caches` `{"key","version","cacheSize"?}`: 201 `{"cacheId"}`.
pub async fn reserve(State(state): State<AppState>, headers: HeaderMap, body: Body) -> V1Result {
    let caller = caller(&state, &headers)?;
    let namespace = write_namespace(&state, &caller)?;
    let req: ReserveRequest = json_body(body).await?;
    let target = Target::new(&namespace, &req.version, &req.key)?;
    let reservation = save::reserve(&state, &target, req.cache_size).await?;
    let id = reservation_number(&reservation.id).unwrap_or_default();
    Ok((StatusCode::CREATED, axum::Json(json!({ "cacheId": id }))).into_response())
}

/// `PATCH caches/{id}` with `Content-Range: bytes a-b/*`: 204.
pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> V1Result {
    let caller = caller(&state, &headers)?;
    let limit = state.blob_limit();
    refuse_declared_over(&headers, limit).map_err(GhaError::from)?;
    let (start, end) = content_range(&headers)?;
    let len = end - start + 1;
    if content_length(&headers).is_some_and(|n| n != len) {
        return Err(GhaError::bad_request(format!(
            "Content-Length does not match the {len} bytes of Content-Range"
        ))
        .into());
    }
    let (id, target) = writable_reservation(&state, &caller, &id).await?;
    // Checked before a byte is read: a chunk past what the client reserved
    // is a client error, not something to store until the commit fails.
    match state.store.reserved_size(&id).await? {
        Some(size) if end >= size => {
            return Err(GhaError::bad_request(format!(
                "bytes {start}-{end} end past the cacheSize of {size} bytes this cache was reserved with"
            ))
            .into())
        }
        _ if end >= limit => {
            return Err(GhaError::from(StoreError::from(CasError::TooLarge { limit })).into())
        }
        _ => {}
    }
    let scope = target.reservation_scope();
    state
        .store
        .stage_chunk(&scope, &id, start, len, body.into_data_stream(), limit)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct CommitRequest {
    size: u64,
}

/// `POST caches/{id}` `{"size"}`: 204 once the entry is stored.
pub async fn commit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> V1Result {
    let caller = caller(&state, &headers)?;
    let (id, target) = writable_reservation(&state, &caller, &id).await?;
    let req: CommitRequest = json_body(body).await?;
    let scope = target.reservation_scope();
    state
        .store
        .assemble_chunks(&scope, &id, req.size, state.blob_limit())
        .await?;
    save::commit(&state, &target, &id, req.size).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn not_allowed() -> V1Error {
    V1Error(GhaError::new(
        Kind::MethodNotAllowed,
        "method not allowed on this Actions cache endpoint",
    ))
}

/// The reservation a `cacheId` names, if `caller` may write to it: 404 when
/// it is unknown or expired (asked only of callers who may write somewhere).
async fn writable_reservation(
    state: &AppState,
    caller: &Caller,
    cache_id: &str,
) -> Result<(String, Target), GhaError> {
    write_namespace(state, caller)?;
    let id = cache_id
        .parse::<u64>()
        .ok()
        .map(reservation_id)
        .filter(|id| reservation_number(id).is_some())
        .ok_or_else(|| {
            GhaError::new(Kind::NotFound, format!("no cache reservation {cache_id:?}"))
        })?;
    let target = save::reservation(state, &id).await?;
    state.auth.require(caller, &target.namespace, WRITE)?;
    Ok((id, target))
}

/// `Content-Range: bytes <first>-<last>/<total or *>`, the chunk's place.
fn content_range(headers: &HeaderMap) -> Result<(u64, u64), GhaError> {
    let bad = || GhaError::bad_request("Content-Range must be \"bytes <first>-<last>/*\"");
    let value = headers
        .get(header::CONTENT_RANGE)
        .ok_or_else(bad)?
        .to_str()
        .map_err(|_| bad())?;
    let spec = value.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let range = spec.split('/').next().unwrap_or_default();
    let (first, last) = range.split_once('-').ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_name_the_chunk() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_RANGE, v.parse().unwrap());
            content_range(&h).ok()
        };
        assert_eq!(with("bytes 0-99/*"), Some((0, 99)));
        assert_eq!(with("bytes 100-199/1000"), Some((100, 199)));
        assert_eq!(with("bytes 5-4/*"), None);
        assert_eq!(with("0-4"), None);
        assert_eq!(with("bytes x-4/*"), None);
        assert_eq!(content_range(&HeaderMap::new()).ok(), None);
    }
}
