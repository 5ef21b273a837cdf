//! `HEAD|GET|DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{parse_digest, path, scope, OciError, Req};
use crate::api::range::{self, RangeRequest};
use crate::cache::Protocol;

pub async fn get(req: Req, name: &str, digest: &str) -> Result<Response, OciError> {
    let d = parse_digest(digest)?;
    let store = &req.state.store;
    let blob = store
        .blob_in(&scope(name), &d)?
        .ok_or_else(|| OciError::blob_unknown(digest))?;
    store.touch_blob(&blob);
    let (status, start, len) = match range::parse(&req.headers, blob.size) {
        RangeRequest::Full => (StatusCode::OK, 0, blob.size),
        RangeRequest::Partial { start, len } => (StatusCode::PARTIAL_CONTENT, start, len),
        RangeRequest::Unsatisfiable => return Err(OciError::range_invalid(blob.size)),
    };
    let body = if req.method == Method::HEAD || len == 0 {
        Body::empty()
    } else {
        Body::from_stream(store.read_blob(&blob, start, len).await?)
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&d.to_string()) {
        h.insert("Docker-Content-Digest", v.clone());
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&range::content_range(start, len, blob.size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(res)
}

/// Removes the blob from this repository. The bytes stay while anything else
/// needs them; garbage collection reclaims them otherwise.
pub async fn delete(req: Req, name: &str, digest: &str) -> Result<Response, OciError> {
    let d = parse_digest(digest)?;
    let store = &req.state.store;
    let blob = store
        .blob_in(&scope(name), &d)?
        .ok_or_else(|| OciError::blob_unknown(digest))?;
    // A manifest here that needs the blob would be left broken.
    let users =
        store.entries_with_prefix(Protocol::Oci, path::namespace(name), &format!("{name}@"))?;
    if let Some(user) = users.iter().find(|e| e.pins.contains(&blob.id)) {
        return Err(OciError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!(
                "blob is referenced by manifest {}; delete the manifest first",
                user.key.name.split_once('@').map_or("?", |(_, d)| d)
            ),
        ));
    }
    store.unlink_blob(&scope(name), &blob).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
