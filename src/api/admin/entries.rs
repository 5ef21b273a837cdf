//! `GET entries`, `DELETE entries/{id}`, `DELETE namespaces/{namespace}`.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::viewer::Viewer;
use super::{rfc3339_ms, AdminError};
use crate::api::AppState;
use crate::auth::names::check_namespace;
use crate::cache::{EntryOrder, EntryRecord, Protocol};

const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    namespace: Option<String>,
    protocol: Option<String>,
    /// Only entries whose name starts with this.
    prefix: Option<String>,
    order: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub fn entry_json(e: &EntryRecord) -> Value {
    json!({
        "id": e.id,
        "protocol": e.key.protocol.name(),
        "namespace": e.key.namespace,
        "name": e.key.name,
        "size": e.size,
        "blobs": e.pins.len(),
        "created": rfc3339_ms(e.created),
        "last_used": rfc3339_ms(e.last_used),
    })
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(q) = query.map_err(|e| AdminError::bad_request(e.body_text()))?;
    match &q.namespace {
        Some(ns) => {
            check_namespace(ns).map_err(AdminError::bad_request)?;
            if !viewer.may_read(ns) {
                return Err(crate::auth::Denied::Forbidden(format!(
                    "this token may not read namespace {ns:?}"
                ))
                .into());
            }
        }
        // Paging over every namespace would skip pages of others' entries.
        None if !viewer.admin => {
            return Err(AdminError::bad_request(
                "name a namespace: this token sees only some",
            ))
        }
        None => {}
    }
    let protocol = match q.protocol.as_deref() {
        None => None,
        Some(p) => Some(Protocol::from_name(p).ok_or_else(|| {
            AdminError::bad_request(format!(
                "unknown protocol {p:?} (oci, gha, http, turbo, nx, npm, pypi, go)"
            ))
        })?),
    };
    let order = match q.order.as_deref().unwrap_or("lru") {
        "lru" => EntryOrder::Lru,
        "mru" => EntryOrder::Mru,
        "size" => EntryOrder::Size,
        other => {
            return Err(AdminError::bad_request(format!(
                "unknown order {other:?} (lru, mru, size)"
            )))
        }
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AdminError::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    if let Some(c) = &q.cursor {
        if c.parse::<usize>().is_err() {
            return Err(AdminError::bad_request(
                "cursor is not one this API returned",
            ));
        }
    }
    let page = state
        .store
        .list_entries(
            q.namespace.as_deref(),
            protocol,
            q.prefix.as_deref().filter(|p| !p.is_empty()),
            order,
            limit,
            q.cursor.as_deref(),
        )
        .await?;
    let entries: Vec<Value> = page.entries.iter().map(entry_json).collect();
    Ok(Json(
        json!({ "entries": entries, "next_cursor": page.next }),
    ))
}

/// One entry and the blobs it pins: each blob's size and how many entries
/// pin it (this one included), which is what deleting the entry would free:
/// a blob only this entry pins goes with it.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let id: u64 = id
        .parse()
        .map_err(|_| AdminError::bad_request(format!("entry id {id:?} is not a number")))?;
    // Another namespace's entry is as absent as one that never was.
    let entry = (state.store.entry_by_id(id).await?)
        .filter(|e| viewer.may_read(&e.key.namespace))
        .ok_or_else(|| AdminError::not_found(format!("no entry {id}")))?;
    let mut seen = std::collections::HashSet::new();
    let mut blobs = Vec::new();
    for pin in entry.pins.iter().filter(|p| seen.insert(**p)) {
        let (blob, shared_by) = state.store.pinned_blob(pin).await?;
        blobs.push(json!({
            "id": pin.to_hex(),
            "sha256": blob.as_ref().map(|b| hex::encode(b.sha256)),
            "size": blob.as_ref().map(|b| b.size),
            "shared_by": shared_by,
        }));
    }
    let mut body = entry_json(&entry);
    body["pinned_blobs"] = json!(blobs);
    body["only_here_bytes"] = json!(blobs
        .iter()
        .filter(|b| b["shared_by"].as_u64() == Some(1))
        .filter_map(|b| b["size"].as_u64())
        .sum::<u64>());
    Ok(Json(body))
}

pub async fn remove(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let id: u64 = id
        .parse()
        .map_err(|_| AdminError::bad_request(format!("entry id {id:?} is not a number")))?;
    let Some(entry) = state
        .store
        .entry_by_id(id)
        .await?
        .filter(|e| viewer.may_read(&e.key.namespace))
    else {
        return Err(AdminError::not_found(format!("no entry {id}")));
    };
    viewer.require_write(&entry.key.namespace)?;
    let removed = state.store.remove_entry(id).await?;
    let removed: Vec<Value> = removed.iter().map(entry_json).collect();
    Ok(Json(json!({ "removed": removed })))
}

pub async fn purge(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, AdminError> {
    check_namespace(&namespace).map_err(AdminError::bad_request)?;
    viewer.require_write(&namespace)?;
    let removed = state.store.purge_namespace(&namespace).await?;
    Ok(Json(
        json!({ "namespace": namespace, "entries_removed": removed }),
    ))
}
