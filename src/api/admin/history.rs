//! `GET history?range=hour|day|week[&namespace=NS]`: the dashboard's time
//! series, the server's (admin only) or one namespace's (any token that may
//! read it).

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::viewer::Viewer;
use super::AdminError;
use crate::api::AppState;
use crate::auth::names::check_namespace;
use crate::history::{now_secs, Reading, PROTOCOLS, PROTOCOL_COUNT, RANGES, REASONS};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    range: Option<String>,
    namespace: Option<String>,
}

pub async fn history(
    State(state): State<AppState>,
    viewer: Viewer,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(q) = query.map_err(|e| AdminError::bad_request(e.body_text()))?;
    let range = q.range.unwrap_or_else(|| "hour".to_owned());
    let names: Vec<&str> = RANGES.iter().map(|(n, _, _)| *n).collect();
    if !names.contains(&range.as_str()) {
        return Err(AdminError::bad_request(format!(
            "unknown range {range:?} ({})",
            names.join(", ")
        )));
    }
    if let Some(ns) = q.namespace {
        return namespace_history(state, viewer, ns, range).await;
    }
    if !viewer.admin {
        return Err(crate::auth::Denied::Forbidden(
            "the server's history needs an admin token; name a namespace this token may read"
                .into(),
        )
        .into());
    }
    // Reading the store's usage and counters is quick but touches the
    // index, so it runs off the async workers like /metrics does.
    let s = state.clone();
    let name = range.clone();
    let ring = tokio::task::spawn_blocking(move || {
        let reading = Reading::take(&s.metrics, s.store.local().map(|s| &**s));
        s.metrics.history.view(&range, reading, now_secs())
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| AdminError::bad_request("range not available"))?;
    let by_protocol = |v: &[u64; PROTOCOL_COUNT]| by_name(&PROTOCOLS, v);
    let points: Vec<Value> = ring
        .buckets
        .iter()
        .map(|b| {
            let c = &b.counts;
            json!({
                "t": b.start,
                "used_bytes": c.used_bytes,
                "bytes_in": c.bytes_in,
                "bytes_out": c.bytes_out,
                "evictions": c.evictions,
                "evicted_bytes": c.evicted_bytes,
                "refusals": c.refusals,
                "hits": by_protocol(&c.hits),
                "misses": by_protocol(&c.misses),
                "bytes_in_by_protocol": by_protocol(&c.bytes_in_by),
                "bytes_out_by_protocol": by_protocol(&c.bytes_out_by),
                "refusals_by_reason": by_name(&REASONS, &c.refused),
            })
        })
        .collect();
    let store = &state.store;
    let s = &state.config.storage;
    let max = store.max_size();
    Ok(Json(json!({
        "range": name,
        "bucket_seconds": ring.width,
        "buckets": ring.capacity,
        "max_bytes": max,
        "hard_limit_bytes": store.hard_limit(),
        "high_watermark_bytes": (max as f64 * s.high_watermark) as u64,
        "low_watermark_bytes": (max as f64 * s.low_watermark) as u64,
        "points": points,
    })))
}

/// `{name: value}` for counters kept in arrays in the order of `names`.
fn by_name(names: &[&str], values: &[u64]) -> Value {
    names
        .iter()
        .zip(values)
        .map(|(p, n)| ((*p).to_owned(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn namespace_history(
    state: AppState,
    viewer: Viewer,
    ns: String,
    range: String,
) -> Result<Json<Value>, AdminError> {
    check_namespace(&ns).map_err(AdminError::bad_request)?;
    if !viewer.may_read(&ns) {
        return Err(crate::auth::Denied::Forbidden(format!(
            "this token may not read namespace {ns:?}"
        ))
        .into());
    }
    let (name, namespace) = (range.clone(), ns.clone());
    let ring = tokio::task::spawn_blocking(move || {
        let now =
            crate::history::namespaces::take(&state.metrics, state.store.local().map(|s| &**s));
        let reading = now.get(&ns).copied().unwrap_or_default();
        state
            .metrics
            .history
            .view_namespace(&ns, &range, &reading, now_secs())
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| AdminError::bad_request("range not available"))?;
    let points: Vec<Value> = ring
        .buckets
        .iter()
        .map(|b| {
            json!({
                "t": b.start,
                "hits": b.counts.hits,
                "misses": b.counts.misses,
                "used_bytes": b.counts.used_bytes,
            })
        })
        .collect();
    Ok(Json(json!({
        "range": name,
        "namespace": namespace,
        "bucket_seconds": ring.width,
        "buckets": ring.capacity,
        "points": points,
    })))
}
