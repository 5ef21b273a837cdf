//! What every HTTP cache does with a value: store a request body as a blob
//! and pin it with an entry; find an entry; serve its bytes (with ranges).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;

use super::error::{store_err, Dialect, HttpCacheError, Result};
use crate::api::range;
use crate::api::{content_length, AppState};
use crate::cache::{BlobInfo, BlobWrite, EntryKey, EntryRecord, NewEntry, Protocol};
use crate::cas::{ContentId, Digest};

pub fn entry_key(protocol: Protocol, namespace: &str, name: &str) -> EntryKey {
    EntryKey {
        protocol,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// Stores the request body as a blob (verified against `expected` when
/// given, refused above `storage.max_blob_size`) and points `key` at it,
/// replacing (and re-pinning, atomically) whatever the key held before.
/// Both or nothing, durably, in one index write.
pub async fn store(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    expected: Option<Digest>,
    key: EntryKey,
    meta: Vec<u8>,
    dialect: Dialect,
) -> Result<(BlobInfo, EntryRecord)> {
    let write = BlobWrite {
        expected,
        limit: state.blob_limit(),
        scope: None,
        size_hint: content_length(headers),
    };
    let entry = move |blob: &BlobInfo| value_entry(key, blob, meta);
    state
        .store
        .put_entry_with_streamed_content(body.into_data_stream(), write, entry)
        .await
        .map_err(store_err(dialect))
}

pub(crate) fn value_entry(key: EntryKey, blob: &BlobInfo, meta: Vec<u8>) -> NewEntry {
    NewEntry {
        key,
        content: blob.id,
        size: blob.size,
        pins: vec![blob.id],
        meta,
        children: vec![],
    }
}

/// Looks an entry up; a miss is `None` (cheap, never logged).
pub async fn find(
    state: &AppState,
    key: &EntryKey,
    dialect: Dialect,
) -> Result<Option<EntryRecord>> {
    state.store.entry(key).await.map_err(store_err(dialect))
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
        .put_entry(&value_entry(key, blob, meta))
        .await
        .map_err(store_err(dialect))
}

/// The blob holding an entry's value.
pub async fn content(state: &AppState, entry: &EntryRecord, dialect: Dialect) -> Result<BlobInfo> {
    state
        .store
        .blob(&Digest::Blake3(entry.content.0))
        .await
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
    let res = match state.store.in_memory(&entry.content, entry.size) {
        Some(bytes) => range::bytes_response(&bytes, method, headers),
        // Boxed: the small hit's future stays small (it is moved whole).
        None => {
            Box::pin(async {
                let blob = content(state, entry, dialect).await?;
                range::blob_response(&state.store, &blob, method, headers)
                    .await
                    .map_err(store_err(dialect))
            })
            .await?
        }
    };
    state.store.touch_entry(entry);
    let mut res = res.ok_or_else(|| HttpCacheError::range_not_satisfiable(dialect, entry.size))?;
    res.headers_mut().insert(header::ETAG, etag(&entry.content));
    Ok(res)
}

/// A strong validator: the content's own hash, quoted. Built in place: it
/// is on every hit.
pub fn etag(content: &ContentId) -> HeaderValue {
    let mut quoted = [b'"'; 66];
    let hex = hex::encode_to_slice(content.0, &mut quoted[1..65]);
    (HeaderValue::from_bytes(&quoted).ok())
        .filter(|_| hex.is_ok())
        .unwrap_or_else(|| unreachable!("64 hex digits in quotes are a valid value"))
}
