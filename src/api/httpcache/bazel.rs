//! Bazel's HTTP cache beyond plain key → bytes: an `ac/` value that is a
//! REAPI ActionResult pins the CAS blobs it names (`action_result`), so
//! eviction never leaves a hit whose outputs are gone; reading it leases
//! them; and `cas/<sha256>` serves a blob an action result still pins
//! after its own key was evicted.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use super::action_result::{self, Needed};
use super::error::{store_err, Dialect, HttpCacheError, Result};
use super::value;
use crate::api::{content_length, range, AppState};
use crate::cache::{BlobInfo, BlobWrite, EntryKey, EntryRecord, NewEntry, Protocol};
use crate::cas::Digest;

const D: Dialect = Dialect::Plain;

/// The error code of an action result naming a blob the cache lacks.
pub const MISSING_OUTPUT: &str = "missing_output";

/// The scope in which blobs an action result pins stay readable as
/// `cas/<sha256>` of that namespace.
fn scope(namespace: &str) -> String {
    format!("cache/{namespace}")
}

pub fn is_action_key(key: &str) -> bool {
    key.starts_with("ac/")
}

/// Finds a blob a namespace may read by SHA-256: under its `cas/` key, or
/// pinned there by an action result.
pub async fn find(state: &AppState, namespace: &str, n: &Needed) -> Result<Option<BlobInfo>> {
    let found = match value::find(state, &cas_key(namespace, n), D).await? {
        Some(entry) => Some(value::content(state, &entry, D).await?),
        None => state
            .store
            .blob_in(&scope(namespace), &n.digest())
            .await
            .map_err(store_err(D))?,
    };
    Ok(found.filter(|b| b.size == n.size))
}

/// A blob's bytes when its `cas/` entry names content held in memory: a
/// hit with one index read and no file, as an HTTP GET hit is. `None` is
/// not a miss, only "ask `find`".
pub async fn find_in_memory(
    state: &AppState,
    namespace: &str,
    n: &Needed,
) -> Result<Option<Bytes>> {
    let Some(entry) = value::find(state, &cas_key(namespace, n), D).await? else {
        return Ok(None);
    };
    let bytes =
        (state.store.in_memory(&entry.content, entry.size)).filter(|b| b.len() as u64 == n.size);
    if bytes.is_some() {
        state.store.touch_entry(&entry);
    }
    Ok(bytes)
}

fn cas_key(namespace: &str, n: &Needed) -> EntryKey {
    let key = format!("cas/{}", hex::encode(n.sha256));
    value::entry_key(Protocol::Http, namespace, &key)
}

/// Every blob an action result needs, with the files of its output trees;
/// `Err(hash)` names the first one this namespace does not have.
async fn resolve(
    state: &AppState,
    namespace: &str,
    parsed: &action_result::Parsed,
) -> Result<std::result::Result<Vec<BlobInfo>, String>> {
    let mut out = Vec::new();
    let mut wanted: Vec<Needed> = parsed.blobs.clone();
    for tree in &parsed.trees {
        let Some(blob) = find(state, namespace, tree).await? else {
            return Ok(Err(hex::encode(tree.sha256)));
        };
        if blob.size <= action_result::MAX_PARSED {
            let bytes = state
                .store
                .read_content(&blob.id, blob.size)
                .await
                .map_err(store_err(D))?;
            wanted.extend(action_result::tree_files(&bytes).unwrap_or_default());
        }
        out.push(blob);
    }
    for n in &wanted {
        match find(state, namespace, n).await? {
            Some(blob) => out.push(blob),
            None => return Ok(Err(hex::encode(n.sha256))),
        }
    }
    out.sort_by_key(|b| b.id.0);
    out.dedup_by_key(|b| b.id);
    Ok(Ok(out))
}

/// Stores an `ac/` value whose length is known and small: parsed, and if it
/// is an ActionResult, pinning what it names. `None` hands the body back
/// for a plain streamed write.
pub async fn put_action_result(
    state: &AppState,
    namespace: &str,
    key: EntryKey,
    headers: &HeaderMap,
    body: Body,
) -> Result<std::result::Result<BlobInfo, Body>> {
    if content_length(headers).is_none_or(|n| n > action_result::MAX_PARSED) {
        return Ok(Err(body));
    }
    let bytes = axum::body::to_bytes(body, action_result::MAX_PARSED as usize)
        .await
        .map_err(|e| HttpCacheError::bad_request(D, format!("reading the body: {e}")))?;
    store_action_result(state, namespace, key, bytes)
        .await
        .map(Ok)
}

/// Stores an `ac/` value held in memory (the HTTP body, or a gRPC
/// `UpdateActionResult`), pinning the blobs it names; refused when one of
/// them is not in this namespace.
pub async fn store_action_result(
    state: &AppState,
    namespace: &str,
    key: EntryKey,
    bytes: Bytes,
) -> Result<BlobInfo> {
    let pinned = match action_result::parse(&bytes) {
        None => Vec::new(),
        Some(parsed) => match resolve(state, namespace, &parsed).await? {
            Ok(blobs) => blobs,
            Err(hash) => {
                return Err(HttpCacheError::new(
                    D,
                    StatusCode::BAD_REQUEST,
                    MISSING_OUTPUT,
                    format!("the action result names cas/{hash}, which this cache does not hold: upload outputs before their action result"),
                ))
            }
        },
    };
    // Linked first, so once the entry is visible its blobs are readable as
    // `cas/` keys even after those keys are evicted.
    let scope = scope(namespace);
    for blob in &pinned {
        state
            .store
            .link_blob(&scope, blob)
            .await
            .map_err(store_err(D))?;
    }
    let write = BlobWrite {
        expected: None,
        limit: state.blob_limit(),
        scope: None,
        size_hint: Some(bytes.len() as u64),
    };
    let pins: Vec<_> = pinned.iter().map(|b| b.id).collect();
    let entry = move |blob: &BlobInfo| {
        let mut all = vec![blob.id];
        all.extend(pins.into_iter().filter(|p| *p != blob.id));
        NewEntry {
            key,
            content: blob.id,
            size: blob.size,
            pins: all,
            meta: action_result::CHECKED.to_vec(),
            children: vec![],
        }
    };
    let (blob, _) = state
        .store
        .put_entry_with_content(bytes, write, entry, None)
        .await
        .map_err(store_err(D))?;
    Ok(blob)
}

/// Whether an `ac/` hit is whole. An entry parsed when it was stored holds
/// its outputs by the invariant; an older one (stored before action
/// results were parsed) is checked blob by blob, and a missing one makes it
/// a miss, never a hit Bazel cannot use. Not reading the value again spares
/// every hit of an opaque `ac/` value (ccache's) a read and a parse.
pub async fn hit_is_whole(state: &AppState, entry: &EntryRecord) -> Result<bool> {
    if entry.meta == action_result::CHECKED
        || entry.pins.len() > 1
        || entry.size > action_result::MAX_PARSED
    {
        return Ok(true);
    }
    // Boxed: most hits never get here, and their future stays small.
    Box::pin(references_resolve(state, entry)).await
}

async fn references_resolve(state: &AppState, entry: &EntryRecord) -> Result<bool> {
    let bytes = state
        .store
        .read_content(&entry.content, entry.size)
        .await
        .map_err(store_err(D))?;
    let Some(parsed) = action_result::parse(&bytes) else {
        return Ok(true);
    };
    Ok(resolve(state, &entry.key.namespace, &parsed).await?.is_ok())
}

/// `GET|HEAD cas/<sha256>` whose key is gone but whose blob an action
/// result of the namespace still pins.
pub async fn pinned_cas_blob(
    state: &AppState,
    namespace: &str,
    digest: &Digest,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Response>> {
    let Some(blob) = state
        .store
        .blob_in(&scope(namespace), digest)
        .await
        .map_err(store_err(D))?
    else {
        return Ok(None);
    };
    state.store.touch_blob(&blob);
    let res = range::blob_response(&state.store, &blob, method, headers)
        .await
        .map_err(store_err(D))?
        .ok_or_else(|| HttpCacheError::range_not_satisfiable(D, blob.size))?;
    Ok(Some(res))
}
