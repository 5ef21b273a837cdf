//! The admin API (`/admin/v1/…`, admin token): what is stored, by whom, and
//! the operations an operator needs (purge, gc, evict, tokens). JSON in and
//! out; errors `{"error":{"code","message"}}`. `openapi.json` describes it.

mod entries;
mod error;
mod history;
mod openapi;
mod schemas;
mod stats;
mod tokens;
mod viewer;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use axum::Router;

use super::AppState;
use crate::auth::Caller;
pub use error::AdminError;
pub use openapi::ROUTES;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/stats", get(stats::stats))
        .route("/admin/v1/namespaces", get(stats::namespaces))
        .route("/admin/v1/namespaces/{namespace}", delete(entries::purge))
        .route("/admin/v1/entries", get(entries::list))
        .route(
            "/admin/v1/entries/{id}",
            get(entries::detail).delete(entries::remove),
        )
        .route("/admin/v1/gc", post(stats::gc))
        .route("/admin/v1/evict", post(stats::evict))
        .route("/admin/v1/workers", get(stats::workers))
        .route("/admin/v1/history", get(history::history))
        .route("/admin/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/admin/v1/tokens/{jti}", delete(tokens::revoke))
        .route("/admin/v1/whoami", get(viewer::whoami))
        .route("/admin/v1/openapi.json", get(openapi::document))
}

/// An authenticated admin caller; extracting it enforces the admin claim.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = state.auth.caller(&parts.headers)?;
        state.auth.require_admin(&caller)?;
        Ok(Admin(caller))
    }
}

/// The most an admin request body may hold: the largest (a token with its
/// namespaces) is a few KiB.
const MAX_BODY: usize = 64 << 10;

/// Reads a small JSON request body, refusing a larger one with a JSON 413
/// (axum's own limit would answer in plain text).
pub(super) async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, AdminError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        AdminError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a request body has at most {MAX_BODY} bytes"),
        )
    })
}

/// Unix milliseconds as RFC 3339, for humans reading JSON.
pub(super) fn rfc3339_ms(ms: u64) -> String {
    crate::auth::token::rfc3339(ms / 1000)
}
