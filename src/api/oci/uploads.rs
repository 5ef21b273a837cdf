//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic with
//! `?digest=`, or cross-repository `?mount=&from=`), then `PATCH`, `PUT`,
//! `GET` and `DELETE` on the session URL.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::upload_range;
use super::{parse_digest, path, scope, OciError, Req};
use futures_util::future::Either;
use futures_util::TryStreamExt;

use crate::api::{content_length, refuse_declared_over};
use crate::auth::READ;
use crate::cache::{exact, BlobWrite, StoreError, UploadState};
use crate::cas::{CasError, Digest};

pub async fn start(req: Req, name: &str) -> Result<Response, OciError> {
    let store = req.state.store.clone();
    if let Some(mount) = req.param("mount") {
        let digest = parse_digest(mount)?;
        if let Some(from) = req.param("from") {
            // Mounting reads `from`: a caller that may not pull there gets a
            // plain upload instead, as if the blob were not there.
            let readable = path::validate_name(from).is_ok()
                && req
                    .state
                    .auth
                    .require(&req.caller, path::namespace(from), READ)
                    .is_ok();
            if readable {
                if let Some(blob) = store.blob_in(&scope(from), &digest).await? {
                    store.link_blob(&scope(name), &blob).await?;
                    return Ok(created(name, &digest));
                }
            }
        }
        // Not mountable: continue as a normal upload, as the spec says.
    } else if let Some(d) = req.param("digest") {
        let digest = parse_digest(d)?;
        let write = BlobWrite {
            expected: Some(digest.clone()),
            limit: req.state.blob_limit(),
            scope: Some(&scope(name)),
            size_hint: content_length(&req.headers),
        };
        store.put_blob(req.body.into_data_stream(), write).await?;
        return Ok(created(name, &digest));
    }
    let session = store.create_upload(&scope(name)).await?;
    Ok(session_response(StatusCode::ACCEPTED, name, &session))
}

pub async fn patch(req: Req, name: &str, id: &str) -> Result<Response, OciError> {
    let range = content_range(&req.headers)?;
    let limit = req.state.blob_limit();
    refuse_declared_over(&req.headers, limit)?;
    let declared = content_length(&req.headers);
    let body = req.body.into_data_stream().map_err(|e| e.to_string());
    let (start, body) = match range {
        Some((start, end)) => {
            let len = end - start + 1;
            if let Some(n) = declared.filter(|n| *n != len) {
                return Err(range_mismatch(format!(
                    "Content-Range {start}-{end} announces {len} bytes, Content-Length {n}"
                )));
            }
            if end >= limit {
                return Err(StoreError::from(CasError::TooLarge { limit }).into());
            }
            // A body of another length than its range is refused, not stored.
            (Some(start), Either::Left(exact(body, len)))
        }
        None => (None, Either::Right(body)),
    };
    let session = req
        .state
        .store
        .append_upload(&scope(name), id, start, body, limit)
        .await?;
    Ok(session_response(StatusCode::ACCEPTED, name, &session))
}

pub async fn put(req: Req, name: &str, id: &str) -> Result<Response, OciError> {
    let digest = match req.param("digest") {
        Some(d) => parse_digest(d)?,
        None => {
            return Err(OciError::digest_invalid(
                "the digest query parameter is required",
            ))
        }
    };
    let limit = req.state.blob_limit();
    refuse_declared_over(&req.headers, limit)?;
    req.state
        .store
        .finish_upload(
            &scope(name),
            id,
            req.body.into_data_stream(),
            digest.clone(),
            limit,
            content_length(&req.headers),
        )
        .await?;
    Ok(created(name, &digest))
}

pub async fn status(req: Req, name: &str, id: &str) -> Result<Response, OciError> {
    let session = req.state.store.upload(&scope(name), id).await?;
    Ok(session_response(StatusCode::NO_CONTENT, name, &session))
}

pub async fn cancel(req: Req, name: &str, id: &str) -> Result<Response, OciError> {
    req.state.store.cancel_upload(&scope(name), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The range of a chunk from `Content-Range: <start>-<end>` (the OCI form;
/// a `bytes ` prefix is tolerated). Absent means a streamed append.
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || range_mismatch("Content-Range must be <start>-<end>".into());
    let text = value.to_str().map_err(|_| bad())?.trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

fn range_mismatch(why: String) -> OciError {
    OciError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "BLOB_UPLOAD_INVALID",
        why,
    )
}

fn session_response(status: StatusCode, name: &str, session: &UploadState) -> Response {
    let mut res = status.into_response();
    let h = res.headers_mut();
    let location = format!("/v2/{name}/blobs/uploads/{}", session.id);
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&session.id) {
        h.insert("Docker-Upload-UUID", v);
    }
    if let Ok(v) = HeaderValue::from_str(&upload_range(session.len)) {
        h.insert(header::RANGE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    res
}

fn created(name: &str, digest: &Digest) -> Response {
    let mut res = StatusCode::CREATED.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/{name}/blobs/{digest}")) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("Docker-Content-Digest", v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    res
}
