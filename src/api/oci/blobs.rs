//! `HEAD|GET|DELETE /v2/<name>/blobs/<digest>`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{parse_digest, path, scope, OciError, Req};
use crate::api::range;
use crate::cache::Protocol;

pub async fn get(req: Req, name: &str, digest: &str) -> Result<Response, OciError> {
    let d = parse_digest(digest)?;
    let store = &req.state.store;
    let blob = store
        .blob_in(&scope(name), &d)
        .await?
        .ok_or_else(|| OciError::blob_unknown(digest))?;
    store.touch_blob(&blob);
    let mut res = range::blob_response(store, &blob, &req.method, &req.headers)
        .await?
        .ok_or_else(|| OciError::range_invalid(blob.size))?;
    if let Ok(v) = HeaderValue::from_str(&d.to_string()) {
        let h = res.headers_mut();
        h.insert("Docker-Content-Digest", v.clone());
        h.insert(header::ETAG, v);
    }
    Ok(res)
}

/// Removes the blob from this repository. The bytes stay while anything else
/// needs them; garbage collection reclaims them otherwise.
pub async fn delete(req: Req, name: &str, digest: &str) -> Result<Response, OciError> {
    let d = parse_digest(digest)?;
    let store = &req.state.store;
    let blob = store
        .blob_in(&scope(name), &d)
        .await?
        .ok_or_else(|| OciError::blob_unknown(digest))?;
    // A manifest here that needs the blob would be left broken.
    let users = store
        .entries_with_prefix(Protocol::Oci, path::namespace(name), &format!("{name}@"))
        .await?;
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
