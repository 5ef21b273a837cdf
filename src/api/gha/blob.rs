//! The signed blob URLs, speaking the subset of Azure Blob the cache clients
//! use. Downloads: `GET|HEAD /gha/blobs/{entry}/{content}` with optional
//! `Range` / `x-ms-range` (206). Uploads into a reservation:
//! `PUT /gha/uploads/{id}?comp=block&blockid=<base64>` (blocks in any order),
//! `PUT …?comp=blocklist` (XML; its order is the bytes' order), or one
//! `PUT` with `x-ms-blob-type: BlockBlob`. Every reply carries
//! `x-ms-request-id`, without which Azure's Go SDK fails.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::error::{BlobError, GhaError, Kind};
use super::signed::{download_resource, upload_resource, Signer};
use super::{blocklist, query, save};
use crate::api::range;
use crate::api::{content_length, refuse_declared_over, AppState};
use crate::cache::{reservation_number, Protocol};
use crate::cas::Digest;

type BlobResult = Result<Response, BlobError>;

/// The Azure API version the replies claim to speak.
const AZURE_VERSION: &str = "2024-11-04";
/// A block list names at most 50 000 blocks of at most 64 bytes.
const MAX_BLOCK_LIST: usize = 8 << 20;

/// Headers Azure puts on every reply.
pub fn azure_headers(h: &mut HeaderMap) {
    let id = rand::random::<u128>();
    let request_id = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        id >> 96,
        (id >> 80) & 0xffff,
        (id >> 64) & 0xffff,
        (id >> 48) & 0xffff,
        id & 0xffff_ffff_ffff
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-ms-request-id", v);
    }
    h.insert("x-ms-version", HeaderValue::from_static(AZURE_VERSION));
}

pub async fn download(
    State(state): State<AppState>,
    Path((id, content)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> BlobResult {
    Signer::new(&state).verify(&download_resource(&id, &content), &query(&uri)?)?;
    let gone = || GhaError::new(Kind::NotFound, "the cache entry no longer exists");
    let store = &state.store;
    let entry = match id.parse::<u64>() {
        Ok(id) => store.entry_by_id(id).await?,
        Err(_) => None,
    }
    .filter(|e| e.key.protocol == Protocol::Gha && e.content.to_hex() == content);
    // The signed URL names the content itself: if the entry was evicted
    // after the lookup that handed it out, the lookup's lease still holds
    // the bytes, and the download goes on.
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&content, &mut hash).map_err(|_| gone())?;
    let blob = store.blob(&Digest::Blake3(hash)).await?.ok_or_else(gone)?;
    if let Some(entry) = &entry {
        store.touch_entry(entry);
    }
    store.touch_blob(&blob);
    let mut res = range::blob_response(store, &blob, &method, &headers)
        .await?
        .ok_or_else(|| GhaError::range_not_satisfiable(blob.size))?;
    let h = res.headers_mut();
    h.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{content}\"")) {
        h.insert(header::ETAG, v);
    }
    azure_headers(h);
    Ok(res)
}

pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> BlobResult {
    let query = query(&uri)?;
    Signer::new(&state).verify(&upload_resource(&id), &query)?;
    if reservation_number(&id).is_none() {
        return Err(GhaError::new(Kind::NotFound, "no such upload").into());
    }
    let target = save::reservation(&state, &id).await?;
    let scope = target.reservation_scope();
    let store = &state.store;
    let limit = state.blob_limit();
    refuse_declared_over(&headers, limit).map_err(GhaError::from)?;
    let comp = super::param(&query, "comp");
    match comp {
        Some("block") => {
            let block = super::param(&query, "blockid").unwrap_or_default();
            check_block_id(block)?;
            let len = required_length(&headers)?;
            store
                .stage_part(&scope, &id, block, len, body.into_data_stream(), limit)
                .await?;
        }
        Some("blocklist") => {
            let bytes = axum::body::to_bytes(body, MAX_BLOCK_LIST)
                .await
                .map_err(|e| invalid_list(format!("cannot read the block list: {e}")))?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| invalid_list("the block list is not UTF-8".into()))?;
            let order = blocklist::parse(text).map_err(invalid_list)?;
            store.assemble_parts(&scope, &id, &order, limit).await?;
        }
        None => {
            let blob_type = headers.get("x-ms-blob-type").and_then(|v| v.to_str().ok());
            if blob_type != Some("BlockBlob") {
                return Err(GhaError::bad_request(
                    "a whole-blob upload needs x-ms-blob-type: BlockBlob",
                )
                .azure("InvalidHeaderValue")
                .into());
            }
            let len = required_length(&headers)?;
            store
                .replace_upload(&scope, &id, len, body.into_data_stream(), limit)
                .await?;
        }
        Some(other) => {
            return Err(
                GhaError::bad_request(format!("comp={other} is not supported"))
                    .azure("InvalidQueryParameterValue")
                    .into(),
            )
        }
    }
    let mut res = StatusCode::CREATED.into_response();
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    azure_headers(res.headers_mut());
    Ok(res)
}

pub async fn not_allowed() -> BlobError {
    BlobError(GhaError::new(
        Kind::MethodNotAllowed,
        "this blob URL takes GET and HEAD (downloads) or PUT (uploads)",
    ))
}

fn invalid_list(why: String) -> GhaError {
    GhaError::bad_request(why).azure("InvalidBlockList")
}

/// Azure's rule: a block id is base64 of at most 64 bytes.
fn check_block_id(block: &str) -> Result<(), GhaError> {
    let decoded = STANDARD.decode(block).ok();
    match decoded {
        Some(d) if !d.is_empty() && d.len() <= 64 => Ok(()),
        _ => Err(
            GhaError::bad_request("blockid must be base64 of 1 to 64 bytes")
                .azure("InvalidQueryParameterValue"),
        ),
    }
}

/// Azure requires the length of every block and blob up front.
fn required_length(headers: &HeaderMap) -> Result<u64, GhaError> {
    content_length(headers).ok_or_else(|| {
        GhaError::new(Kind::LengthRequired, "Content-Length is required")
            .azure("MissingContentLengthHeader")
    })
}
