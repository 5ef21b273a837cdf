//! Turborepo's remote cache API (`turbo --api=… --token=… --team=…`):
//! `GET|HEAD|PUT /v8/artifacts/<hash>`, `POST /v8/artifacts` (query),
//! `GET /v8/artifacts/status`, `POST /v8/artifacts/events`.
//!
//! The namespace is the `teamId` (turbo sends it only for ids starting with
//! `team_`) or else the `slug` query parameter (`--team`); without either,
//! the token's first namespace. The `x-artifact-tag` (the artifact's
//! signature) and `x-artifact-duration` headers are stored in the entry's
//! meta and returned with it. Refusals are 4xx: turbo retries 5xx.

use axum::body::{to_bytes, Body};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{Dialect, HttpCacheError, Result};
use super::{keys, token_namespace, value};
use crate::api::{content_length, external_base, AppState};
use crate::auth::{READ, WRITE};
use crate::cache::{EntryRecord, Protocol};

const D: Dialect = Dialect::Turbo;
const PREFIX: &str = "/v8/artifacts/";
/// Vercel documents `x-artifact-tag` as at most 600 characters.
const MAX_TAG: usize = 600;
/// Request bodies of the JSON endpoints (events, queries) are small.
const MAX_JSON: usize = 1 << 20;
/// Hashes one query may ask about.
const MAX_QUERY_HASHES: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v8/artifacts/status", get(status))
        .route("/v8/artifacts/events", post(events))
        .route("/v8/artifacts", post(query))
        .route(
            "/v8/artifacts/{hash}",
            get(artifact_get).head(artifact_get).put(artifact_put),
        )
}

/// What turbo sent with an artifact, kept as the entry's meta.
#[derive(Serialize, Deserialize, Default, Debug)]
struct ArtifactMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
}

impl ArtifactMeta {
    fn decode(entry: &EntryRecord) -> ArtifactMeta {
        serde_json::from_slice(&entry.meta).unwrap_or_default()
    }
}

fn reply(res: Result<Response>) -> Response {
    res.unwrap_or_else(IntoResponse::into_response)
}

/// Authenticates, resolves the namespace and checks `permission` on it.
fn namespace(state: &AppState, uri: &Uri, headers: &HeaderMap, permission: u8) -> Result<String> {
    let query = match uri.query() {
        Some(_) => {
            Query::<Vec<(String, String)>>::try_from_uri(uri)
                .map_err(|e| HttpCacheError::bad_request(D, format!("bad query string: {e}")))?
                .0
        }
        None => Vec::new(),
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let denied = |d| HttpCacheError::denied(D, d);
    let caller = state.auth.caller(headers).map_err(denied)?;
    let ns = match param("teamId").or_else(|| param("slug")) {
        Some(team) => keys::namespace(team)
            .map_err(|e| HttpCacheError::bad_key(D, e))?
            .to_owned(),
        None => token_namespace(&caller),
    };
    state
        .auth
        .require(&caller, &ns, permission)
        .map_err(denied)?;
    Ok(ns)
}

/// The hash from the raw path (never percent-decoded).
fn hash(uri: &Uri) -> Result<&str> {
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    keys::hash(raw).map_err(|e| HttpCacheError::bad_key(D, e))
}

async fn status(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    reply(
        namespace(&state, &uri, &headers, READ)
            .map(|_| Json(json!({ "status": "enabled" })).into_response()),
    )
}

/// Usage analytics (hits and misses). Larder keeps its own access times, so
/// the events are read (to keep the connection usable) and dropped.
async fn events(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    reply(
        async {
            namespace(&state, &uri, &headers, READ)?;
            // Dropped, but still bounded: an unbounded body would be read
            // (and the connection held) for as long as a client sends.
            let too_large = || {
                HttpCacheError::new(
                    D,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("an events body has at most {MAX_JSON} bytes"),
                )
            };
            if content_length(&headers).is_some_and(|n| n > MAX_JSON as u64) {
                return Err(too_large());
            }
            to_bytes(body, MAX_JSON).await.map_err(|_| too_large())?;
            Ok(Json(json!({})).into_response())
        }
        .await,
    )
}

#[derive(Deserialize)]
struct QueryBody {
    hashes: Vec<String>,
}

/// `POST /v8/artifacts {"hashes":[…]}`: size, duration and tag of each.
async fn query(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    reply(
        async {
            let ns = namespace(&state, &uri, &headers, READ)?;
            let bytes = to_bytes(body, MAX_JSON)
                .await
                .map_err(|_| HttpCacheError::bad_request(D, "request body is too large"))?;
            let q: QueryBody = serde_json::from_slice(&bytes).map_err(|e| {
                HttpCacheError::bad_request(D, format!("expected {{\"hashes\":[…]}}: {e}"))
            })?;
            if q.hashes.len() > MAX_QUERY_HASHES {
                return Err(HttpCacheError::bad_request(
                    D,
                    format!("at most {MAX_QUERY_HASHES} hashes per query"),
                ));
            }
            let mut out = Map::new();
            for h in q.hashes {
                let found = match keys::hash(&h) {
                    Ok(k) => {
                        value::find(&state, &value::entry_key(Protocol::Turbo, &ns, k), D).await?
                    }
                    Err(_) => None,
                };
                let v = match found {
                    Some(e) => {
                        let meta = ArtifactMeta::decode(&e);
                        let mut v =
                            json!({ "size": e.size, "taskDurationMs": meta.duration.unwrap_or(0) });
                        if let Some(tag) = meta.tag {
                            v["tag"] = Value::String(tag);
                        }
                        v
                    }
                    None => json!({ "error": { "message": "artifact not found" } }),
                };
                out.insert(h, v);
            }
            Ok(Json(Value::Object(out)).into_response())
        }
        .await,
    )
}

async fn artifact_get(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    reply(
        async {
            let hash = hash(&uri)?;
            let ns = namespace(&state, &uri, &headers, READ)?;
            let key = value::entry_key(Protocol::Turbo, &ns, hash);
            let entry = value::find(&state, &key, D).await?.ok_or_else(|| {
                HttpCacheError::new(D, StatusCode::NOT_FOUND, "not_found", "artifact not found")
            })?;
            let mut res = value::serve(&state, &entry, &method, &headers, D).await?;
            let meta = ArtifactMeta::decode(&entry);
            let h = res.headers_mut();
            if let Some(d) = meta.duration {
                h.insert("x-artifact-duration", HeaderValue::from(d));
            }
            if let Some(v) = meta.tag.and_then(|t| HeaderValue::from_str(&t).ok()) {
                h.insert("x-artifact-tag", v);
            }
            Ok(res)
        }
        .await,
    )
}

async fn artifact_put(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    reply(
        async {
            let hash = hash(&uri)?;
            let ns = namespace(&state, &uri, &headers, WRITE)?;
            // Headers are checked before the body is read, so a bad request
            // stores nothing.
            let meta = ArtifactMeta {
                tag: header_text(&headers, "x-artifact-tag")?,
                duration: header_text(&headers, "x-artifact-duration")?
                    .map(|d| {
                        d.parse::<u64>().map_err(|_| {
                            HttpCacheError::bad_request(
                                D,
                                "x-artifact-duration must be a whole number of milliseconds",
                            )
                        })
                    })
                    .transpose()?,
            };
            if meta.tag.as_ref().is_some_and(|t| t.len() > MAX_TAG) {
                return Err(HttpCacheError::bad_request(
                    D,
                    format!("x-artifact-tag is longer than {MAX_TAG} characters"),
                ));
            }
            let encoded = serde_json::to_vec(&meta).unwrap_or_default();
            let key = value::entry_key(Protocol::Turbo, &ns, hash);
            value::store(&state, &headers, body, None, key, encoded, D).await?;
            let url = format!("{}{PREFIX}{hash}", external_base(&headers, &state.config));
            Ok((StatusCode::ACCEPTED, Json(json!({ "urls": [url] }))).into_response())
        }
        .await,
    )
}

/// A header's text, `None` when absent; not visible ASCII ⇒ 400.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| HttpCacheError::bad_request(D, format!("{name} is not valid text"))),
    }
}
