//! The hyper service for one connection: each request gets the connection's
//! peer address, a tracked and rate-limited body, and marks the connection
//! busy until its response body is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONTENT_LENGTH, HOST};
use axum::http::HeaderValue;
use axum::response::Response;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body_rate::{BodyRate, RateLimited};
use super::file_body::SendfileSlot;
use super::linger;
use super::phase::{Phase, PhaseCell};
use super::sendfile::Outbox;
use crate::api::App;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Svc {
    pub app: App,
    pub phase: Arc<PhaseCell>,
    /// Set when a request body was left unread (for a lingering close).
    pub unfinished: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub body_rate: Option<BodyRate>,
    pub peer: SocketAddr,
    /// Set on plain HTTP/1 connections, whose socket sends files.
    pub outbox: Option<Outbox>,
}

type Responding = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for Svc {
    type Response = Response;
    type Error = Infallible;
    // Boxed: hyper hands the socket back only for Unpin futures.
    type Future = Responding;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Responding {
        let busy = Busy::begin(&self.phase);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        // HTTP/2 carries the host in the URI (`:authority`), not in a Host
        // header; the handlers building absolute URLs read the header.
        if !req.headers().contains_key(HOST) {
            let authority = req.uri().authority().map(|a| a.as_str().to_owned());
            if let Some(v) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
                req.headers_mut().insert(HOST, v);
            }
        }
        let unfinished = self.unfinished.clone();
        let req = if hyper::body::Body::is_end_stream(req.body()) {
            // Nothing to track or pace (most GETs and HEADs): two body
            // wrappers fewer on the hot path.
            req.map(|_| Body::empty())
        } else {
            self.wrap_body(req.map(|b| linger::Tracked::new(b, unfinished)))
        };
        let responding = self.app.call(req);
        let outbox = self.outbox.clone();
        Box::pin(async move {
            let response = responding.await;
            if let (Some(outbox), Some(slot)) =
                (&outbox, response.extensions().get::<SendfileSlot>())
            {
                let len = response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                slot.enable(outbox, hyper::body::Body::size_hint(response.body()), len);
            }
            // The request ends when its response body is dropped (sent, or
            // abandoned with the connection), not when the handler returns.
            Ok(response.map(|inner| Body::new(HeldBody { inner, _busy: busy })))
        })
    }
}

impl Svc {
    fn wrap_body(&self, req: hyper::Request<linger::Tracked>) -> axum::extract::Request {
        match self.body_rate {
            Some(rate) => {
                let metrics = self.metrics.clone();
                req.map(|b| Body::new(RateLimited::new(b, rate, metrics)))
            }
            None => req.map(Body::new),
        }
    }
}

/// A response body that keeps its connection busy until it is dropped; it
/// forwards the size hint, so a full body stays one write with its length.
struct HeldBody {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Marks a connection busy while a request is served.
struct Busy(Arc<PhaseCell>);

impl Busy {
    fn begin(phase: &Arc<PhaseCell>) -> Busy {
        phase.update(|p| {
            *p = match *p {
                Phase::Busy(n, blocked) => Phase::Busy(n + 1, blocked),
                _ => Phase::Busy(1, None),
            };
            true
        });
        Busy(phase.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|p| {
            *p = match *p {
                Phase::Busy(n, blocked) if n > 1 => Phase::Busy(n - 1, blocked),
                _ => Phase::Idle(Instant::now()),
            };
            true
        });
    }
}
