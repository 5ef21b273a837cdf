//! The proxies' errors: a status and a message, rendered as plain text by
//! default. An ecosystem whose clients expect another format (npm's JSON
//! `{"error": …}`) renders `status` and `message` its own way.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::httpcache::{Dialect, HttpCacheError};
use crate::auth::Denied;
use crate::cache::StoreError;
use crate::cas::CasError;
use crate::upstream::UpstreamError;

#[derive(Clone, Debug)]
pub struct ProxyError {
    pub status: StatusCode,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

pub type Result<T> = std::result::Result<T, ProxyError>;

impl ProxyError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ProxyError {
        ProxyError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn not_found() -> ProxyError {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    /// A package, module or file name the ecosystem does not allow: 404, so
    /// that clients with a list of proxies try the next one (Go), and
    /// nothing is fetched or stored.
    pub fn bad_name(why: impl std::fmt::Display) -> ProxyError {
        Self::new(StatusCode::NOT_FOUND, format!("invalid name: {why}"))
    }

    pub fn disabled(ecosystem: &str) -> ProxyError {
        Self::new(
            StatusCode::NOT_FOUND,
            format!(
                "the {ecosystem} proxy is not enabled on this server (proxy.{ecosystem}.enabled)"
            ),
        )
    }

    pub fn method_not_allowed() -> ProxyError {
        let mut e = Self::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        e.headers
            .push((header::ALLOW, HeaderValue::from_static("GET, HEAD")));
        e
    }

    /// 401 with a Basic challenge (Go's `.netrc`, pip's URL credentials;
    /// npm sends its Bearer token unasked), or 403.
    pub fn denied(d: Denied) -> ProxyError {
        match d {
            Denied::Unauthenticated(why) => {
                let mut e = Self::new(StatusCode::UNAUTHORIZED, why);
                e.headers.push((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"larder\""),
                ));
                e
            }
            Denied::Forbidden(why) => Self::new(StatusCode::FORBIDDEN, why),
        }
    }

    pub fn upstream(e: &UpstreamError) -> ProxyError {
        Self::new(e.status(), e.to_string())
    }

    /// A failure storing what the upstream sent. A body that does not match
    /// the hash the upstream published is the upstream's fault: 502.
    pub fn store(e: StoreError) -> ProxyError {
        match e {
            StoreError::Cas(CasError::DigestMismatch { expected }) => Self::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the upstream sent content that does not match its published hash {expected}; \
                     it was not stored"
                ),
            ),
            StoreError::Cas(CasError::TooLarge { limit }) => Self::new(
                StatusCode::BAD_GATEWAY,
                format!("the upstream's file is larger than storage.max_blob_size ({limit} bytes)"),
            ),
            StoreError::Cas(CasError::Body(why)) => Self::new(StatusCode::BAD_GATEWAY, why),
            other => Self::from(HttpCacheError::store(Dialect::Plain, other)),
        }
    }
}

impl From<HttpCacheError> for ProxyError {
    fn from(e: HttpCacheError) -> ProxyError {
        ProxyError::new(e.status, e.message)
    }
}

/// `map_err` adapter for store calls.
pub fn store_err(e: StoreError) -> ProxyError {
    ProxyError::store(e)
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response();
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        res
    }
}
