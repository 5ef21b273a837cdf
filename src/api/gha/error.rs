//! Actions cache errors. One problem, three renderings, each the format its
//! client reads: the v1 REST API's JSON (`message`, `typeKey`), Twirp JSON
//! for v2 (`code`, `msg`), and Azure Blob's XML on signed blob URLs.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::observe::STORAGE_FULL;
use crate::auth::Denied;
use crate::cache::StoreError;
use crate::cas::CasError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The key and version are taken (an entry, or a reservation in flight).
    AlreadyExists,
    LengthRequired,
    TooLarge,
    RangeNotSatisfiable,
    /// The disk budget is exhausted and nothing can be evicted.
    Full,
    /// The cluster's database or object store cannot be reached: retry.
    Unavailable,
    Internal,
}

#[derive(Debug)]
pub struct GhaError {
    pub kind: Kind,
    pub message: String,
    /// Azure's error code, where a more precise one than the kind's exists.
    pub azure_code: Option<&'static str>,
    /// The blob size, for a 416's `Content-Range: bytes */size`.
    pub size: Option<u64>,
}

impl GhaError {
    pub fn new(kind: Kind, message: impl Into<String>) -> GhaError {
        GhaError {
            kind,
            message: message.into(),
            azure_code: None,
            size: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> GhaError {
        Self::new(Kind::BadRequest, message)
    }

    /// 416 for a range outside a blob of `size` bytes.
    pub fn range_not_satisfiable(size: u64) -> GhaError {
        let mut e = Self::new(Kind::RangeNotSatisfiable, "the range is outside the blob")
            .azure("InvalidRange");
        e.size = Some(size);
        e
    }

    pub fn azure(mut self, code: &'static str) -> GhaError {
        self.azure_code = Some(code);
        self
    }

    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::AlreadyExists => StatusCode::CONFLICT,
            Kind::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Kind::Full => StatusCode::INSUFFICIENT_STORAGE,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Adds what every rendering shares: `Connection: close` where the
    /// request body was refused unread (the connection cannot carry another
    /// request), and the range a 416 is about.
    fn finish(&self, mut res: Response) -> Response {
        let h = res.headers_mut();
        if matches!(
            self.kind,
            Kind::TooLarge | Kind::Full | Kind::LengthRequired
        ) {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(size) = self.size {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
        }
        res
    }
}

impl From<Denied> for GhaError {
    fn from(d: Denied) -> GhaError {
        match d {
            Denied::Unauthenticated(m) => GhaError::new(Kind::Unauthenticated, m),
            Denied::Forbidden(m) => GhaError::new(Kind::Forbidden, m),
        }
    }
}

impl From<StoreError> for GhaError {
    fn from(e: StoreError) -> GhaError {
        if e.is_disk_full() {
            return GhaError::new(Kind::Full, STORAGE_FULL).azure("InsufficientStorage");
        }
        if let StoreError::Gone(_) = e {
            return GhaError::new(Kind::NotFound, e.to_string()).azure("BlobNotFound");
        }
        if let StoreError::Unavailable(_) = e {
            return GhaError::new(Kind::Unavailable, format!("{e}; retry later"));
        }
        match e {
            StoreError::Cas(CasError::TooLarge { limit }) => GhaError::new(
                Kind::TooLarge,
                format!("the cache entry would exceed the limit of {limit} bytes"),
            )
            .azure("RequestBodyTooLarge"),
            StoreError::Cas(CasError::Body(why)) => GhaError::bad_request(why),
            full @ StoreError::Full { .. } => {
                GhaError::new(Kind::Full, format!("{full}; retry later"))
            }
            StoreError::UploadUnknown(_) => GhaError::new(
                Kind::NotFound,
                "the reservation is unknown, expired or already committed",
            )
            .azure("BlobNotFound"),
            StoreError::UploadLength { len, expected } => GhaError::bad_request(format!(
                "size {expected} does not match the {len} bytes uploaded"
            )),
            StoreError::UploadGap { missing_at } => GhaError::bad_request(format!(
                "the upload is missing the chunk at offset {missing_at}; send it, then commit again"
            )),
            StoreError::PartUnknown(part) => {
                GhaError::bad_request(format!("block {part:?} was never uploaded"))
                    .azure("InvalidBlockList")
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                GhaError::new(
                    Kind::Internal,
                    format!("internal storage error: {}", other.failure()),
                )
            }
        }
    }
}

/// Lets `?` turn every error the handlers meet into a rendering.
macro_rules! renderings {
    ($rendering:ident) => {
        impl<E: Into<GhaError>> From<E> for $rendering {
            fn from(e: E) -> $rendering {
                $rendering(e.into())
            }
        }
    };
}

/// The v1 REST API's error: `{"message","typeName","typeKey","errorCode"}`,
/// the shape of the service the clients were written against.
pub struct V1Error(pub GhaError);
renderings!(V1Error);

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let e = self.0;
        let type_key = match e.kind {
            Kind::AlreadyExists => "ReservationAlreadyExistsException",
            Kind::BadRequest | Kind::LengthRequired | Kind::TooLarge | Kind::MethodNotAllowed => {
                "ArgumentException"
            }
            Kind::Unauthenticated => "UnauthorizedRequestException",
            Kind::Forbidden => "AccessDeniedException",
            Kind::NotFound => "CacheNotFoundException",
            Kind::RangeNotSatisfiable => "InvalidRangeException",
            Kind::Full => "StorageFullException",
            Kind::Unavailable => "ServiceUnavailableException",
            Kind::Internal => "InternalServerErrorException",
        };
        let body = json!({
            "$id": "1",
            "innerException": null,
            "message": e.message,
            "typeName": format!("Larder.ActionsCache.{type_key}"),
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 0,
        });
        e.finish((e.status(), axum::Json(body)).into_response())
    }
}

/// A Twirp error: `{"code","msg"}` (and `message`, which some clients read).
pub struct TwirpError(pub GhaError);
renderings!(TwirpError);

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let e = self.0;
        let code = match e.kind {
            Kind::BadRequest | Kind::LengthRequired | Kind::TooLarge => "invalid_argument",
            Kind::Unauthenticated => "unauthenticated",
            Kind::Forbidden => "permission_denied",
            Kind::NotFound => "not_found",
            Kind::MethodNotAllowed => "bad_route",
            Kind::AlreadyExists => "already_exists",
            Kind::RangeNotSatisfiable => "out_of_range",
            // Twirp would say 429 here; Larder's "full" is 507 everywhere,
            // and a client must not retry it in a tight loop.
            Kind::Full => "resource_exhausted",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal",
        };
        let body = json!({ "code": code, "msg": e.message, "message": e.message });
        e.finish((e.status(), axum::Json(body)).into_response())
    }
}

/// An Azure Blob error, for the signed blob URLs: XML `<Error><Code>` and
/// `x-ms-error-code`.
pub struct BlobError(pub GhaError);
renderings!(BlobError);

impl IntoResponse for BlobError {
    fn into_response(self) -> Response {
        let e = self.0;
        let code = e.azure_code.unwrap_or(match e.kind {
            Kind::BadRequest => "InvalidInput",
            Kind::Unauthenticated => "NoAuthenticationInformation",
            Kind::Forbidden => "AuthenticationFailed",
            Kind::NotFound => "BlobNotFound",
            Kind::MethodNotAllowed => "UnsupportedHttpVerb",
            Kind::AlreadyExists => "BlobAlreadyExists",
            Kind::LengthRequired => "MissingContentLengthHeader",
            Kind::TooLarge => "RequestBodyTooLarge",
            Kind::RangeNotSatisfiable => "InvalidRange",
            Kind::Full => "InsufficientStorage",
            Kind::Unavailable => "ServerBusy",
            Kind::Internal => "InternalError",
        });
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}</Message></Error>",
            xml_escape(&e.message)
        );
        let mut res = (
            e.status(),
            [(header::CONTENT_TYPE, "application/xml")],
            body,
        )
            .into_response();
        res.headers_mut()
            .insert("x-ms-error-code", HeaderValue::from_static(code));
        super::blob::azure_headers(res.headers_mut());
        e.finish(res)
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
