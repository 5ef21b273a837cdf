//! One log line per request (target `larder::request`) that answers "who
//! did what": method, route template, path, status, the bytes actually sent
//! and received, the latency to the end of the response body, the request
//! id, the client, and the token name and namespace auth saw.
//!
//! The line is written when the response body ends or is dropped, not when
//! the handler returns: a 400 MiB download is still being sent then, and its
//! Content-Length says what was promised, not what the client got.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, SizeHint};
use tracing::Instrument;

use line::{Line, Route};

use super::observe::{self, RouteTemplate};
use super::AppState;
use crate::auth::seen::{self, Seen};

mod line;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-chosen request id kept; longer ones are replaced.
const MAX_ID_LEN: usize = 128;

/// The request log as the router's middleware.
pub async fn log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    around(&state, req, |req| next.run(req)).await
}

/// Logs and counts `req` as answered by `handler`: the one place every
/// request passes, whether the router or the direct path answers it.
pub async fn around<F, Fut>(state: &AppState, req: Request, handler: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let request_id = request_id(req.headers());
    let peer = (req.extensions().get::<ConnectInfo<SocketAddr>>()).map(|c| c.0.ip());
    let trust_forwarded = state.config.server.trust_forwarded_headers;
    let forwarded = trust_forwarded
        .then(|| forwarded_client(req.headers()))
        .flatten();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let pending = observe::start(state, &req);
    // What the line says is kept as the request holds it (shared, not
    // copied): most lines are never written (a 2xx at the default `warn`).
    let mut line = Line {
        started,
        method: req.method().clone(),
        version: req.version(),
        // The line reads the path of this, never the query: signed download
        // URLs carry secrets there.
        uri: req.uri().clone(),
        route: Route::Unmatched,
        status: 0,
        request_id,
        forwarded,
        peer,
        seen: Seen::default(),
        received: None,
    };
    // A body that is over before it starts (a GET's) needs no counting.
    let req = if req.body().is_end_stream() {
        req
    } else {
        let counter = Arc::new(AtomicU64::new(0));
        line.received = Some(counter.clone());
        req.map(|b| Body::new(Counted { inner: b, counter }))
    };
    // Handler logs carry the request id, so they can be joined to this line.
    // `%`: written as is (it is plain text), not escaped through `Debug`.
    let span = tracing::info_span!("request", request_id = %line.request_id());
    let slot = seen::Slot::default();
    let mut res = seen::scope(slot.clone(), handler(req))
        .instrument(span)
        .await;
    line.seen = slot.lock().clone();
    line.status = res.status().as_u16();
    line.route = match (res.extensions().get::<RouteTemplate>(), matched) {
        (Some(t), _) => Route::Template(t.0),
        (None, Some(m)) => Route::Matched(m),
        (None, None) => Route::Unmatched,
    };
    if let Some(pending) = pending {
        let namespace = line.seen.allowed_namespace();
        observe::finish(state, pending, line.route.as_str(), &res, namespace);
    }
    res.headers_mut()
        .insert(REQUEST_ID, line.request_id.clone());
    let declared = super::content_length(res.headers());
    res.map(|body| {
        Body::new(Logged {
            expected: body.size_hint().exact().or(declared),
            inner: body,
            sent: 0,
            line: Some(line),
        })
    })
}

/// The client's `X-Request-Id` when it is short and plain, else a new one.
/// Client ids end up in log lines and response headers: anything that could
/// forge a field or a header is replaced rather than escaped.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let given = headers
        .get(REQUEST_ID)
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_ID_LEN
                && id
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
        });
    given
        .and_then(|id| HeaderValue::from_bytes(id).ok())
        .unwrap_or_else(new_id)
}

/// 32 random hex digits.
fn new_id() -> HeaderValue {
    let mut id = [0u8; 32];
    let hex = hex::encode_to_slice(rand::random::<u128>().to_be_bytes(), &mut id);
    (HeaderValue::from_bytes(&id).ok())
        .filter(|_| hex.is_ok())
        .unwrap_or_else(|| unreachable!("32 hex digits are a valid value"))
}

/// The first `X-Forwarded-For` hop (the original client, as the proxy
/// chain tells it) or `X-Real-IP`, only when it parses as an address; read
/// only when the proxy in front is trusted.
fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let first_hop = header("x-forwarded-for").and_then(|v| v.split(',').next());
    first_hop
        .or_else(|| header("x-real-ip"))
        .and_then(|v| v.trim().parse().ok())
}

/// The response body, counting what is handed to the connection and
/// writing the log line when it ends or is dropped.
struct Logged {
    inner: Body,
    /// The body's length when known up front (its size hint, or the
    /// Content-Length a streamed body declares): hyper stops polling a body
    /// once that much is sent, so its end is never seen.
    expected: Option<u64>,
    sent: u64,
    line: Option<Line>,
}

impl Logged {
    fn finish(&mut self, complete: bool) {
        if let Some(line) = self.line.take() {
            // HEAD responses announce a length but send nothing.
            let sent = if line.method == Method::HEAD {
                0
            } else {
                self.sent
            };
            line.emit(sent, complete);
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // Unpolled but empty (HEAD, 204) or sent in full is complete;
        // anything else dropped before its end was abandoned by the client.
        let complete = self.inner.is_end_stream()
            || self.expected.is_some_and(|n| self.sent >= n)
            || self.line.as_ref().is_some_and(|l| l.method == Method::HEAD);
        self.finish(complete);
    }
}

impl hyper::body::Body for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body, counting what the handler read of it.
struct Counted {
    inner: Body,
    counter: Arc<AtomicU64>,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn request_id_kept_when_plain_else_generated() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-123")])),
            "abc-123"
        );
        for bad in ["", "a b", "x\"y", &"a".repeat(MAX_ID_LEN + 1)] {
            let id = request_id(&headers(&[("x-request-id", bad)]));
            assert_eq!(id.len(), 32, "{bad:?} → {id:?}");
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn forwarded_client_is_the_first_hop_and_must_parse() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.1")]);
        assert_eq!(forwarded_client(&h), Some([203, 0, 113, 7].into()));
        let h = headers(&[("x-real-ip", " 2001:db8::1 ")]);
        assert_eq!(forwarded_client(&h), "2001:db8::1".parse().ok());
        let h = headers(&[("x-forwarded-for", "evil\" status=200")]);
        assert_eq!(forwarded_client(&h), None);
    }
}
