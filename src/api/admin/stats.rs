//! `GET stats`, `GET namespaces`, `GET workers`, `POST gc`, `POST evict`.

use axum::body::Body;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{rfc3339_ms, Admin, AdminError};
use crate::api::AppState;

pub async fn stats(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, AdminError> {
    let store = &state.store;
    let s = store.stats().await?;
    let entries: serde_json::Map<String, Value> = (store.entry_counts().await?)
        .into_iter()
        .map(|(p, n)| (p.name().to_owned(), json!(n)))
        .collect();
    let traffic: serde_json::Map<String, Value> = state
        .metrics
        .by_protocol()
        .into_iter()
        .filter(|(p, _)| !matches!(*p, "admin" | "other"))
        .map(|(p, [hits, misses, bytes_in, bytes_out])| {
            (p.to_owned(), json!({ "hits": hits, "misses": misses, "bytes_in": bytes_in, "bytes_out": bytes_out }))
        })
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.metrics.uptime().as_secs(),
        "used_bytes": store.usage().await?,
        "max_bytes": store.max_size(),
        "hard_limit_bytes": store.hard_limit(),
        "leased_bytes": store.leased_bytes().await?,
        "blobs": s.blobs,
        "entries": entries,
        "namespaces": store.namespace_names().await?.len(),
        "uploads_in_progress": s.uploads,
        "evictions": s.evicted_entries,
        "evicted_bytes": s.evicted_bytes,
        "traffic": traffic,
    })))
}

/// Every namespace for an admin; the ones it may read for another token.
pub async fn namespaces(
    State(state): State<AppState>,
    viewer: super::viewer::Viewer,
) -> Result<Json<Value>, AdminError> {
    let lookups = state.metrics.lookups_by_namespace();
    let list: Vec<Value> = state
        .store
        .namespaces()
        .await?
        .into_iter()
        .filter(|n| viewer.may_read(&n.name))
        .map(|n| {
            let [hits, misses] = lookups.get(&n.name).copied().unwrap_or_default();
            json!({
                "hits": hits,
                "misses": misses,
                "name": n.name,
                "used_bytes": n.used_bytes,
                "entries": n.entries,
                "last_used": (n.last_used > 0).then(|| rfc3339_ms(n.last_used)),
                "quota_bytes": n.quota,
            })
        })
        .collect();
    Ok(Json(json!({ "namespaces": list })))
}

pub async fn workers(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, AdminError> {
    let board: serde_json::Map<String, Value> = state
        .workers
        .snapshot()
        .into_iter()
        .map(|(name, s)| {
            let mut v = json!(s);
            if let Some(ms) = s.last_run {
                v["last_run"] = json!(rfc3339_ms(ms));
            }
            (name.to_owned(), v)
        })
        .collect();
    let evictions: Vec<Value> = (state.store.recent_evictions().await?)
        .into_iter()
        .rev()
        .map(|(at, report)| {
            let mut v = json!(report);
            v["at"] = json!(rfc3339_ms(at));
            v
        })
        .collect();
    Ok(Json(
        json!({ "workers": board, "recent_evictions": evictions }),
    ))
}

pub async fn gc(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, AdminError> {
    let report = state.store.gc().await?;
    Ok(Json(json!(report)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvictRequest {
    /// Evict until usage is at most this many bytes.
    target_bytes: u64,
}

pub async fn evict(
    State(state): State<AppState>,
    _: Admin,
    body: Body,
) -> Result<Json<Value>, AdminError> {
    let body = super::read_body(body).await?;
    let req: EvictRequest = serde_json::from_slice(&body).map_err(|e| {
        AdminError::bad_request(format!("expected {{\"target_bytes\": <number>}}: {e}"))
    })?;
    let report = state.store.evict_to(req.target_bytes).await?;
    let mut body = json!(report);
    if !report.reached {
        body["held_by"] = json!(report.shortfall());
    }
    Ok(Json(body))
}
