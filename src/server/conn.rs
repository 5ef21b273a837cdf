//! The accept loop: HTTP/1 connections served by hyper under the
//! `[server]` limits (DESIGN.md §Faults, hostile clients). axum::serve offers
//! none of them, so this replaces it, with the same graceful shutdown.
//!
//! Each connection is in one phase at a time: reading a request's headers,
//! busy with requests, or idle between them. A watchdog closes it when the
//! headers take longer than `header_read_timeout` or the idle time exceeds
//! `keep_alive_timeout`; a busy connection is never cut by it (its body has
//! the minimum rate, its handler may take as long as it needs).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::body_rate::{BodyRate, RateLimited};
use super::linger;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub body_rate: Option<BodyRate>,
    pub max_connections: usize,
}

impl Limits {
    pub fn new(c: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: c.header_read_timeout.0,
            keep_alive_timeout: c.keep_alive_timeout.0,
            body_rate: (c.min_body_rate.bytes() > 0).then_some(BodyRate {
                min: c.min_body_rate.bytes(),
                window: c.body_rate_window.0,
            }),
            max_connections: c.max_connections.max(1),
        }
    }
}

/// Serves `app` until `shutdown` resolves, then stops accepting, lets every
/// connection finish the request it is serving, and returns once all closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut saturated = false;
    let mut shutdown = pin!(shutdown);
    loop {
        saturated = note_saturation(saturated, slots.available_permits(), &limits);
        // Over the cap, clients wait in the kernel's backlog rather than
        // being accepted and costing a file descriptor each.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let conn = Conn {
            limits,
            stop: stop.clone(),
            metrics: metrics.clone(),
            peer,
            _slot: slot,
        };
        connections.spawn(conn.serve(stream, app.clone()));
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// Logs when the connection cap is reached, and when there is room again
/// (a tenth of it free, so that a server at the cap does not log each
/// connection). Returns whether it is saturated now.
fn note_saturation(was: bool, free: usize, limits: &Limits) -> bool {
    if !was && free == 0 {
        tracing::warn!(
            max_connections = limits.max_connections,
            "connection cap reached; new clients wait in the listen backlog \
             (raise server.max_connections if this is normal load)"
        );
        return true;
    }
    if was && free * 10 >= limits.max_connections {
        tracing::info!("connections are below the cap again");
        return false;
    }
    was
}

async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    // The peer gave up before we got to it: nothing to do.
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    // Out of file descriptors (or similar): retrying at once would spin.
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers since then.
    Head(Instant),
    /// Serving this many requests (their responses are not yet sent); and
    /// since when a response has waited for the client to read it, if it has.
    Busy(usize, Option<Instant>),
    /// Idle between requests since then.
    Idle(Instant),
}

impl Phase {
    fn deadline(self, limits: &Limits) -> Option<Instant> {
        match self {
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Idle(since) => Some(since + limits.keep_alive_timeout),
            // A client that stops reading holds its connection (and a slot
            // under the cap) as surely as one that stops sending.
            Phase::Busy(_, Some(since)) => limits.body_rate.map(|r| since + r.window),
            Phase::Busy(_, None) => None,
        }
    }
}

/// One accepted connection and what it needs besides its socket.
struct Conn {
    limits: Limits,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    /// For the request log (`ConnectInfo` on every request).
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    async fn serve(self, stream: TcpStream, app: Router) {
        let counters = &self.metrics.connections;
        counters.open.fetch_add(1, Ordering::Relaxed);
        self.run(stream, app).await;
        counters.open.fetch_sub(1, Ordering::Relaxed);
    }

    async fn run(&self, stream: TcpStream, app: Router) {
        let limits = self.limits;
        let phase = Arc::new(watch::Sender::new(Phase::Head(Instant::now())));
        let mut watched = phase.subscribe();
        let io = TokioIo::new(Watched {
            inner: stream,
            phase: phase.clone(),
        });
        let service_phase = phase.clone();
        let metrics = self.metrics.clone();
        let peer = self.peer;
        let unfinished = Arc::new(AtomicBool::new(false));
        let body_unfinished = unfinished.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::begin(&service_phase);
            let mut req = req;
            req.extensions_mut().insert(ConnectInfo(peer));
            let req = req.map(|b| linger::Tracked::new(b, body_unfinished.clone()));
            let req = match limits.body_rate {
                Some(rate) => req.map(|b| Body::new(RateLimited::new(b, rate, metrics.clone()))),
                None => req.map(Body::new),
            };
            let app = app.clone();
            // Boxed: hyper hands the socket back only for Unpin futures.
            Box::pin(async move {
                let response = app.oneshot(req).await?;
                // The request ends when its response body is dropped (sent,
                // or abandoned with the connection), not when the handler
                // returns.
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _busy = &busy;
                        frame
                    }))
                }))
            })
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The watchdog below times headers itself: hyper's timer would also
        // run while idle, merging both limits into one.
        builder.header_read_timeout(None);
        let mut conn = builder.serve_connection(io, service);
        let mut draining = false;
        loop {
            let deadline = watched.borrow_and_update().deadline(&limits);
            tokio::select! {
                result = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                        return;
                    }
                    let stream = conn.into_parts().io.into_inner().inner;
                    if unfinished.load(Ordering::Relaxed) {
                        linger::close(stream).await;
                    }
                    return;
                }
                () = sleep_until(deadline) => {
                    let now = *watched.borrow();
                    if now.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                        self.cut(now);
                        return;
                    }
                }
                // Never fails: `phase` is held here.
                _ = watched.changed() => {}
                () = self.stop.cancelled(), if !draining => {
                    draining = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
    }

    fn cut(&self, phase: Phase) {
        let counters = &self.metrics.connections;
        let (why, counter) = match phase {
            Phase::Head(_) => (
                "its request headers did not arrive in time",
                &counters.header_timeout,
            ),
            Phase::Busy(..) => (
                "the client stopped reading its response",
                &counters.send_stall,
            ),
            Phase::Idle(_) => ("it was idle for too long", &counters.idle_timeout),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // Not a warning: every idle client ends this way.
        tracing::debug!(why, "closing a connection");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
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

/// The socket, noting when an idle connection starts a new request: from
/// its first byte, the headers must arrive within `header_read_timeout`.
struct Watched {
    inner: TcpStream,
    phase: Arc<watch::Sender<Phase>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && matches!(*self.phase.borrow(), Phase::Idle(_)) {
            self.phase.send_if_modified(|p| match p {
                Phase::Idle(_) => {
                    *p = Phase::Head(Instant::now());
                    true
                }
                _ => false,
            });
        }
        result
    }
}

impl Watched {
    /// Notes when a response starts waiting for the client to read, and
    /// when it moves again.
    fn note_write(&self, written: &Poll<io::Result<usize>>) {
        let blocked = match written {
            Poll::Pending => true,
            Poll::Ready(Ok(n)) if *n > 0 => false,
            _ => return,
        };
        // Most writes change nothing: check before taking the write lock.
        if !matches!(*self.phase.borrow(), Phase::Busy(_, b) if b.is_some() != blocked) {
            return;
        }
        self.phase.send_if_modified(|p| match p {
            Phase::Busy(_, b) if b.is_some() != blocked => {
                *b = blocked.then(Instant::now);
                true
            }
            _ => false,
        });
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
