//! Admin API errors: `{"error":{"code","message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::api::observe::STORAGE_FULL;
use crate::auth::Denied;
use crate::cache::StoreError;

#[derive(Debug)]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AdminError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AdminError {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> AdminError {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> AdminError {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<Denied> for AdminError {
    fn from(d: Denied) -> AdminError {
        match d {
            Denied::Unauthenticated(m) => Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", m),
            Denied::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        if e.is_disk_full() {
            return Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                STORAGE_FULL,
            );
        }
        if let StoreError::Gone(_) = e {
            return Self::not_found(e.to_string());
        }
        if let StoreError::Unavailable(_) = e {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            );
        }
        tracing::error!(error = %e, "admin operation failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal storage error: {}", e.failure()),
        )
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"larder-admin\""),
            );
        }
        res
    }
}
