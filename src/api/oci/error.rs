//! OCI Distribution errors: `{"errors":[{"code","message","detail"}]}` with the
//! spec's codes and statuses.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::observe::STORAGE_FULL;
use crate::cache::StoreError;
use crate::cas::CasError;

#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: serde_json::Value,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> OciError {
        OciError {
            status,
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> OciError {
        self.detail = detail;
        self
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> OciError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn blob_unknown(digest: &str) -> OciError {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        )
        .detail(json!({ "digest": digest }))
    }

    pub fn manifest_unknown(reference: &str) -> OciError {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        )
        .detail(json!({ "reference": reference }))
    }

    pub fn name_unknown(name: &str) -> OciError {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )
        .detail(json!({ "name": name }))
    }

    pub fn name_invalid(why: impl Into<String>) -> OciError {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", why)
    }

    pub fn digest_invalid(why: impl Into<String>) -> OciError {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", why)
    }

    pub fn manifest_invalid(why: impl Into<String>) -> OciError {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", why)
    }

    pub fn upload_unknown() -> OciError {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        )
    }

    pub fn upload_invalid(why: impl Into<String>) -> OciError {
        Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", why)
    }

    pub fn unsupported(why: impl Into<String>) -> OciError {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", why)
    }

    pub fn range_invalid(size: u64) -> OciError {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "RANGE_INVALID",
            "requested range not satisfiable",
        )
        .header(
            axum::http::header::CONTENT_RANGE,
            &format!("bytes */{size}"),
        )
    }
}

impl From<StoreError> for OciError {
    fn from(e: StoreError) -> OciError {
        if e.is_disk_full() {
            return OciError::new(StatusCode::INSUFFICIENT_STORAGE, "DENIED", STORAGE_FULL);
        }
        if let StoreError::Gone(id) = e {
            return OciError::blob_unknown(&id.to_string());
        }
        if let StoreError::Unavailable(_) = e {
            // distribution's code for a 503.
            return OciError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("{e}; retry later"),
            );
        }
        match e {
            StoreError::Cas(CasError::DigestMismatch { expected }) => {
                OciError::digest_invalid("provided digest did not match uploaded content")
                    .detail(json!({ "digest": expected.to_string() }))
            }
            StoreError::Cas(CasError::TooLarge { limit }) => OciError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "SIZE_INVALID",
                format!("blob is larger than the limit of {limit} bytes"),
            ),
            StoreError::Cas(CasError::Body(why)) => OciError::upload_invalid(why),
            full @ StoreError::Full { .. } => OciError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "DENIED",
                format!("{full}; retry later"),
            ),
            StoreError::UploadUnknown(_) => OciError::upload_unknown(),
            StoreError::UploadOffset { len } => OciError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!("chunk out of order: the upload has {len} bytes"),
            )
            .header(axum::http::header::RANGE, &upload_range(len)),
            StoreError::MissingBlob(id) => OciError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!("manifest references blob {id} which is not stored"),
            ),
            other => {
                tracing::error!(error = %other, "storage failure");
                OciError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    format!("internal storage error: {}", other.failure()),
                )
            }
        }
    }
}

/// The `Range` header of an upload session holding `len` bytes.
pub fn upload_range(len: u64) -> String {
    format!("0-{}", len.saturating_sub(1))
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": self.detail }]
        });
        let mut res = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::INSUFFICIENT_STORAGE
        ) {
            // Refused before its body was read: the connection cannot carry
            // another request, and a client must not try.
            res.headers_mut().insert(
                axum::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
        }
        res
    }
}
