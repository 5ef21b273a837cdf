//! `POST tokens` (mint), `GET tokens` (metadata, never the secret),
//! `DELETE tokens/{jti}` (revoke).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Admin, AdminError};
use crate::api::AppState;
use crate::auth::names::check_token_spec;
use crate::auth::{Grant, TokenSpec, READ, WRITE};
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
    if !(req.read || req.write || req.admin) {
        return Err(AdminError::bad_request(
            "give at least one of read, write, admin",
        ));
    }
    let permission = (if req.read { READ } else { 0 }) | (if req.write { WRITE } else { 0 });
    let ttl = req.ttl.unwrap_or(Span::secs(30 * 86_400));
    let spec = TokenSpec {
        subject: req.name.clone().unwrap_or_else(|| "admin-api".into()),
        grants: req
            .namespaces
            .iter()
            .map(|ns| Grant {
                scope: ns.clone(),
                permission,
            })
            .collect(),
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
    Ok(Json(json!({ "tokens": state.store.tokens()? })))
}

pub async fn revoke(
    State(state): State<AppState>,
    _: Admin,
    Path(jti): Path<String>,
) -> Result<StatusCode, AdminError> {
    if jti.is_empty()
        || jti.len() > 128
        || !jti.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(AdminError::bad_request(
            "token id must be the `id` (jti) of a token",
        ));
    }
    // Tokens minted offline (`larder token create`) are not listed but can be
    // revoked by id all the same; keep the record until they would expire.
    let until = state
        .store
        .token_meta(&jti)?
        .and_then(|m| m["expires_at"].as_u64())
        .unwrap_or(u64::MAX);
    state.store.revoke_token(&jti, until).await?;
    Ok(StatusCode::NO_CONTENT)
}
