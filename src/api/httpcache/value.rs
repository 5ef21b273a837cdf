//! What every HTTP cache does with a value: store a request body as a blob
//! and pin it with an entry; find an entry; serve its bytes (with ranges).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{store_err, Dialect, HttpCacheError, Result};
use crate::api::range::{self, RangeRequest};
use crate::api::{content_length, AppState};
use crate::cache::{BlobInfo, BlobWrite, EntryKey, EntryRecord, NewEntry, Protocol};
use crate::cas::Digest;

pub fn entry_key(protocol: Protocol, namespace: &str, name: &str) -> EntryKey {
    EntryKey {
        protocol,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// Looks an entry up; a miss is `None` (cheap, never logged).
pub fn find(state: &AppState, key: &EntryKey, dialect: Dialect) -> Result<Option<EntryRecord>> {
    state.store.entry(key).map_err(store_err(dialect))
}

/// Streams the request body into the CAS, verified against `expected` when
/// given, refused above `storage.max_blob_size`. Nothing is stored on error.
pub async fn store_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    expected: Option<Digest>,
    dialect: Dialect,
) -> Result<BlobInfo> {
    let write = BlobWrite {
        expected,
        limit: state.blob_limit(),
        scope: None,
        size_hint: content_length(headers),
        defer_sync: false,
    };
    state
        .store
        .put_blob(body.into_data_stream(), write)
        .await
        .map_err(store_err(dialect))
}

/// Points `key` at `blob`, replacing (and re-pinning, atomically) whatever
/// the key held before.
pub async fn put_entry(
    state: &AppState,
    key: EntryKey,
    blob: &BlobInfo,
    meta: Vec<u8>,
    dialect: Dialect,
) -> Result<EntryRecord> {
    state
        .store
        .put_entry(&NewEntry {
            key,
            content: blob.id,
            size: blob.size,
            pins: vec![blob.id],
            meta,
            children: vec![],
        })
        .await
        .map_err(store_err(dialect))
}

/// The blob holding an entry's value.
pub fn content(state: &AppState, entry: &EntryRecord, dialect: Dialect) -> Result<BlobInfo> {
    state
        .store
        .blob(&Digest::Blake3(entry.content.0))
        .map_err(store_err(dialect))?
        // An entry always pins its blob; if the index disagrees, a miss is
        // the safe answer (never wrong bytes).
        .ok_or_else(|| HttpCacheError::not_found(dialect))
}

/// 200 (or 206 for a `Range`) with the entry's bytes; HEAD gets the headers.
pub async fn serve(
    state: &AppState,
    entry: &EntryRecord,
    method: &Method,
    headers: &HeaderMap,
    dialect: Dialect,
) -> Result<Response> {
    let blob = content(state, entry, dialect)?;
    state.store.touch_entry(entry.id);
    let (status, start, len) = match range::parse(headers, blob.size) {
        RangeRequest::Full => (StatusCode::OK, 0, blob.size),
        RangeRequest::Partial { start, len } => (StatusCode::PARTIAL_CONTENT, start, len),
        RangeRequest::Unsatisfiable => {
            return Err(HttpCacheError::range_not_satisfiable(dialect, blob.size))
        }
    };
    let body = if *method == Method::HEAD || len == 0 {
        Body::empty()
    } else {
        let stream = state
            .store
            .read_blob(&blob, start, len)
            .await
            .map_err(store_err(dialect))?;
        Body::from_stream(stream)
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag(&blob)) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&range::content_range(start, len, blob.size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(res)
}

/// A strong validator: the content's own hash.
pub fn etag(blob: &BlobInfo) -> String {
    format!("\"{}\"", blob.id.to_hex())
}
