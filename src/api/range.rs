//! HTTP `Range` requests on blobs, shared by every protocol that serves bytes.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::backend::Backend;
use crate::cache::{BlobInfo, StoreError};
use crate::server::file_body::FileBody;

/// What to send for a request on a body of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) range: the whole body with 200.
    Full,
    /// 206 with bytes `start..start+len`.
    Partial { start: u64, len: u64 },
    /// 416: the range lies outside the body.
    Unsatisfiable,
}

/// Reads `Range` (or Azure's `x-ms-range`). Multi-range and malformed
/// headers are ignored and answered with the whole body, which RFC 9110
/// allows and every client here tolerates.
pub fn parse(headers: &HeaderMap, size: u64) -> RangeRequest {
    let value = headers
        .get(header::RANGE)
        .or_else(|| headers.get("x-ms-range"))
        .and_then(|v| v.to_str().ok());
    match value {
        Some(v) => parse_value(v, size),
        None => RangeRequest::Full,
    }
}

fn parse_value(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        return match last.parse::<u64>() {
            Ok(0) => RangeRequest::Unsatisfiable,
            Ok(_) if size == 0 => RangeRequest::Unsatisfiable,
            Ok(n) => {
                let len = n.min(size);
                RangeRequest::Partial {
                    start: size - len,
                    len,
                }
            }
            Err(_) => RangeRequest::Full,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        size.saturating_sub(1)
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end.min(size.saturating_sub(1)),
            _ => return RangeRequest::Full,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start,
        len: end - start + 1,
    }
}

/// A blob's bytes as a response: 200, or 206 for a satisfiable range, with
/// `Content-Length`, `Content-Type`, `Accept-Ranges` and `Content-Range`;
/// HEAD gets the headers alone. `None` when the range lies outside the blob
/// (a 416 in the protocol's own format, for the caller to render).
pub async fn blob_response(
    store: &Backend,
    blob: &BlobInfo,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Response>, StoreError> {
    let Some((status, start, len)) = resolve(headers, blob.size) else {
        return Ok(None);
    };
    let mut slot = None;
    let body = if *method == Method::HEAD || len == 0 {
        Body::empty()
    } else if store.serves_from_memory(blob.size) {
        let bytes = store.read_content(&blob.id, blob.size).await?;
        full_body(&bytes, start, len)
    } else if let Some(file) = store.open_blob(blob, start, len).await? {
        let (body, sendfile) = FileBody::new(file);
        slot = Some(sendfile);
        Body::new(body)
    } else {
        Body::from_stream(store.read_blob(blob, start, len).await?)
    };
    let mut res = respond(status, body, start, len, blob.size);
    if let Some(slot) = slot {
        res.extensions_mut().insert(slot);
    }
    Ok(Some(res))
}

/// `blob_response` for content already in memory.
pub fn bytes_response(content: &Bytes, method: &Method, headers: &HeaderMap) -> Option<Response> {
    let size = content.len() as u64;
    let (status, start, len) = resolve(headers, size)?;
    let body = if *method == Method::HEAD || len == 0 {
        Body::empty()
    } else {
        full_body(content, start, len)
    };
    Some(respond(status, body, start, len, size))
}

fn resolve(headers: &HeaderMap, size: u64) -> Option<(StatusCode, u64, u64)> {
    match parse(headers, size) {
        RangeRequest::Full => Some((StatusCode::OK, 0, size)),
        RangeRequest::Partial { start, len } => Some((StatusCode::PARTIAL_CONTENT, start, len)),
        RangeRequest::Unsatisfiable => None,
    }
}

/// One full body: `Content-Length` and one write, no stream. The range was
/// resolved against the content's length.
fn full_body(content: &Bytes, start: u64, len: u64) -> Body {
    Body::from(content.slice(start as usize..(start + len) as usize))
}

fn respond(status: StatusCode, body: Body, start: u64, len: u64, size: u64) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    // Room for these, the validator and the request id at once: growing
    // the map is an allocation on every small GET.
    h.reserve(8);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&content_range(start, len, size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    res
}

/// `Content-Range` value for a partial response.
pub fn content_range(start: u64, len: u64, size: u64) -> String {
    format!("bytes {}-{}/{}", start, start + len - 1, size)
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::*;
    use super::*;

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(parse_value("bytes=0-", 10), Partial { start: 0, len: 10 });
        assert_eq!(parse_value("bytes=4-", 10), Partial { start: 4, len: 6 });
        assert_eq!(parse_value("bytes=2-5", 10), Partial { start: 2, len: 4 });
        assert_eq!(parse_value("bytes=2-500", 10), Partial { start: 2, len: 8 });
        assert_eq!(parse_value("bytes=-3", 10), Partial { start: 7, len: 3 });
        assert_eq!(parse_value("bytes=-30", 10), Partial { start: 0, len: 10 });
        assert_eq!(parse_value("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_value("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_value("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_value("bytes=5-2", 10), Full);
        assert_eq!(parse_value("bytes=0-1,4-5", 10), Full);
        assert_eq!(parse_value("items=0-1", 10), Full);
        assert_eq!(parse_value("bytes=x-", 10), Full);
        assert_eq!(content_range(4, 6, 10), "bytes 4-9/10");
    }
}
