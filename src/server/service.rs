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
use axum::http::header::HOST;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use super::body_rate::{BodyRate, RateLimited};
use super::conn::Phase;
use super::linger;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Svc {
    pub app: Router,
    pub phase: Arc<watch::Sender<Phase>>,
    /// Set when a request body was left unread (for a lingering close).
    pub unfinished: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub body_rate: Option<BodyRate>,
    pub peer: SocketAddr,
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
        let req = req.map(|b| linger::Tracked::new(b, unfinished));
        let req = match self.body_rate {
            Some(rate) => {
                let metrics = self.metrics.clone();
                req.map(|b| Body::new(RateLimited::new(b, rate, metrics)))
            }
            None => req.map(Body::new),
        };
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(req).await?;
            // The request ends when its response body is dropped (sent, or
            // abandoned with the connection), not when the handler returns.
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _busy = &busy;
                    frame
                }))
            }))
        })
    }
}

/// Marks a connection busy while a request is served.
struct Busy(Arc<watch::Sender<Phase>>);

impl Busy {
    fn begin(phase: &Arc<watch::Sender<Phase>>) -> Busy {
        phase.send_modify(|p| {
            *p = match *p {
                Phase::Busy(n, blocked) => Phase::Busy(n + 1, blocked),
                _ => Phase::Busy(1, None),
            }
        });
        Busy(phase.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|p| {
            *p = match *p {
                Phase::Busy(n, blocked) if n > 1 => Phase::Busy(n - 1, blocked),
                _ => Phase::Idle(Instant::now()),
            }
        });
    }
}
