//! Errors of the HTTP build caches, each in the format its clients expect:
//! plain text (`404 not found\n`) for Bazel, ccache, sccache and Gradle;
//! `{"error":{"code","message"}}` for turbo (which parses it on 403 and
//! shows the message); plain text for Nx (its spec returns `text/plain`
//! messages that the CLI prints).

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::keys::KeyError;
use crate::api::observe::STORAGE_FULL;
use crate::auth::Denied;
use crate::cache::StoreError;
use crate::cas::CasError;

/// Which client family an error is rendered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Bazel, ccache, sccache (WebDAV), Gradle: `/cache/<ns>/…`.
    Plain,
    Turbo,
    Nx,
}

#[derive(Debug)]
pub struct HttpCacheError {
    pub dialect: Dialect,
    pub status: StatusCode,
    /// Machine-readable code (turbo's `error.code`).
    pub code: &'static str,
    /// Borrowed when fixed: a miss is answered without building its text.
    pub message: Cow<'static, str>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

pub type Result<T> = std::result::Result<T, HttpCacheError>;

impl HttpCacheError {
    pub fn new(
        dialect: Dialect,
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> HttpCacheError {
        HttpCacheError {
            dialect,
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> HttpCacheError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn not_found(dialect: Dialect) -> HttpCacheError {
        Self::new(dialect, StatusCode::NOT_FOUND, "not_found", "not found")
    }

    pub fn bad_request(dialect: Dialect, why: impl Into<Cow<'static, str>>) -> HttpCacheError {
        Self::new(dialect, StatusCode::BAD_REQUEST, "bad_request", why)
    }

    pub fn bad_key(dialect: Dialect, e: KeyError) -> HttpCacheError {
        Self::new(
            dialect,
            StatusCode::BAD_REQUEST,
            "invalid_key",
            format!("invalid key: {e}"),
        )
    }

    pub fn method_not_allowed(dialect: Dialect, allow: &str) -> HttpCacheError {
        Self::new(
            dialect,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        )
        .header(header::ALLOW, allow)
    }

    pub fn range_not_satisfiable(dialect: Dialect, size: u64) -> HttpCacheError {
        Self::new(
            dialect,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            "range not satisfiable",
        )
        .header(header::CONTENT_RANGE, &format!("bytes */{size}"))
    }

    /// 401 or 403. Plain HTTP caches get a Basic challenge: ccache and
    /// Gradle send Basic credentials preemptively, but HTTP clients that wait
    /// for a challenge (curl --anyauth, Java's Authenticator) need one; the
    /// token goes in the Basic password.
    pub fn denied(dialect: Dialect, d: Denied) -> HttpCacheError {
        match d {
            Denied::Unauthenticated(why) => {
                let e = Self::new(dialect, StatusCode::UNAUTHORIZED, "unauthorized", why);
                match dialect {
                    Dialect::Plain => e.header(header::WWW_AUTHENTICATE, "Basic realm=\"larder\""),
                    Dialect::Turbo | Dialect::Nx => {
                        e.header(header::WWW_AUTHENTICATE, "Bearer realm=\"larder\"")
                    }
                }
            }
            // turbo reads `code == "forbidden"` as "no write access".
            Denied::Forbidden(why) => Self::new(dialect, StatusCode::FORBIDDEN, "forbidden", why),
        }
    }

    /// Maps a storage failure. A full disk is 507 for the plain caches and
    /// Nx, but 413 for turbo: turbo retries 5xx (and 429), and a 403 with a
    /// `remote_caching_*` code would switch its remote cache off for the run,
    /// reads included; a 413 fails this one upload and nothing else.
    /// A full disk, unlike a full budget, is 507 for turbo too: it lasts
    /// until an operator acts, so a retry or two costs nothing.
    pub fn store(dialect: Dialect, e: StoreError) -> HttpCacheError {
        if e.is_disk_full() {
            return Self::new(
                dialect,
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                STORAGE_FULL,
            );
        }
        match e {
            StoreError::Cas(CasError::DigestMismatch { expected }) => Self::new(
                dialect,
                StatusCode::BAD_REQUEST,
                "digest_mismatch",
                format!("content does not match its hash {expected}"),
            ),
            StoreError::Cas(CasError::TooLarge { limit }) => Self::new(
                dialect,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("value is larger than the limit of {limit} bytes"),
            ),
            StoreError::Cas(CasError::Body(why)) => Self::new(
                dialect,
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("reading the request body failed: {why}"),
            ),
            full @ StoreError::Full { .. } => Self::new(
                dialect,
                match dialect {
                    Dialect::Turbo => StatusCode::PAYLOAD_TOO_LARGE,
                    Dialect::Plain | Dialect::Nx => StatusCode::INSUFFICIENT_STORAGE,
                },
                "storage_full",
                format!("{full}; retry later"),
            ),
            StoreError::Gone(_) => Self::not_found(dialect),
            unavailable @ StoreError::Unavailable(_) => Self::new(
                dialect,
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("{unavailable}; retry later"),
            ),
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::new(
                    dialect,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("internal storage error: {}", other.failure()),
                )
            }
        }
    }
}

/// `map_err` adapter: `.map_err(store_err(Dialect::Plain))`.
pub fn store_err(dialect: Dialect) -> impl Fn(StoreError) -> HttpCacheError {
    move |e| HttpCacheError::store(dialect, e)
}

impl IntoResponse for HttpCacheError {
    fn into_response(self) -> Response {
        let text = |body: String| {
            let mut res = Response::new(Body::from(body));
            *res.status_mut() = self.status;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            res
        };
        let mut res = match self.dialect {
            Dialect::Plain => text([self.status.as_str(), " ", &self.message, "\n"].concat()),
            Dialect::Nx => text([&*self.message, "\n"].concat()),
            Dialect::Turbo => (
                self.status,
                axum::Json(json!({ "error": { "code": self.code, "message": self.message } })),
            )
                .into_response(),
        };
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::INSUFFICIENT_STORAGE
        ) {
            // Refused before its body was read: the connection cannot carry
            // another request, and a client must not try.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}
