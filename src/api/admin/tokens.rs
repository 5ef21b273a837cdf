//! `POST tokens` (mint), `GET tokens` (metadata, never the secret),
//! `DELETE tokens/{jti}` (revoke).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Admin, AdminError};
use crate::api::AppState;
use crate::auth::names::check_token_spec;
use crate::auth::TokenSpec;
use crate::config::Span;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    namespaces: Vec<String>,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    metrics: bool,
    /// e.g. "30d"; default 30 days.
    ttl: Option<Span>,
    name: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    body: Body,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let body = super::read_body(body).await?;
    let req: CreateRequest =
        serde_json::from_slice(&body).map_err(|e| AdminError::bad_request(e.to_string()))?;
    if !(req.read || req.write || req.admin || req.metrics) {
        return Err(AdminError::bad_request(
            "give at least one of read, write, admin, metrics",
        ));
    }
    let grants = crate::auth::names::grants(&req.namespaces, req.read, req.write, req.metrics)
        .map_err(AdminError::bad_request)?;
    let ttl = req.ttl.unwrap_or(Span::secs(30 * 86_400));
    let spec = TokenSpec {
        subject: req.name.clone().unwrap_or_else(|| "admin-api".into()),
        grants,
        admin: req.admin,
        ttl_secs: ttl.0.as_secs(),
        parent: None,
    };
    check_token_spec(&spec).map_err(AdminError::bad_request)?;
    let (token, claims) = state.auth.mint(&spec);
    let meta = json!({
        "id": claims.jti,
        "name": claims.sub,
        "namespaces": req.namespaces,
        "read": req.read,
        "write": req.write,
        "admin": req.admin,
        "metrics": req.metrics,
        "issued_at": claims.iat,
        "expires_at": claims.exp,
        "created_by": caller.subject(),
        "revoked": false,
    });
    state.store.record_token(&claims.jti, &meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "id": claims.jti, "expires_at": claims.exp })),
    ))
}

pub async fn list(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, AdminError> {
    let mut tokens = state.store.tokens().await?;
    for t in &mut tokens {
        // Uses since the last flush are only in memory; show the newest.
        let recent = t["id"].as_str().and_then(|id| state.auth.last_used(id));
        if let Some(at) = recent {
            if t["last_used"].as_u64().is_none_or(|old| old < at) {
                t["last_used"] = json!(at);
            }
        }
        if t.get("last_used").is_none() {
            t["last_used"] = Value::Null;
        }
    }
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    /// Revoke an id this server has never seen (a token minted offline and
    /// not used here yet).
    #[serde(default)]
    force: bool,
}

pub async fn revoke(
    State(state): State<AppState>,
    _: Admin,
    Path(jti): Path<String>,
    query: Result<Query<RevokeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, AdminError> {
    let Query(q) = query.map_err(|e| AdminError::bad_request(e.body_text()))?;
    if jti.is_empty()
        || jti.len() > 128
        || !jti.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(AdminError::bad_request(
            "token id must be the `id` (jti) of a token",
        ));
    }
    let meta = state.store.token_meta(&jti).await?;
    // A typo must not look like a revocation; an id only the caller knows
    // (minted offline, never presented here) is revoked when they insist.
    if meta.is_none() && !q.force && !state.store.token_revoked(&jti).await? {
        return Err(AdminError::not_found(format!(
            "no token {jti} is known to this server: it knows the tokens its admin API \
             minted and tokens minted offline once it has verified them; to revoke an id \
             it has not seen, add ?force=true (larder admin tokens revoke --force)"
        )));
    }
    // Keep the revocation until the token would have expired anyway.
    let until = meta
        .and_then(|m| m["expires_at"].as_u64())
        .unwrap_or(u64::MAX);
    state.store.revoke_token(&jti, until).await?;
    Ok(StatusCode::NO_CONTENT)
}
