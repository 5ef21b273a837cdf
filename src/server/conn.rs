//! The accept loop: HTTP/1 connections (and HTTP/2 over TLS) served by hyper under the
//! `[server]` limits (docs/ARCHITECTURE.md, Faults). axum::serve offers
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

use crate::api::App;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body_rate::BodyRate;
use super::linger;
use super::phase::{Phase, PhaseCell, Timeouts};
use super::service::Svc;
use super::tls;
use super::watched::Watched;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// The longest a connection's orderly close may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeouts: Timeouts,
    pub body_rate: Option<BodyRate>,
    pub max_connections: usize,
}

impl Limits {
    pub fn new(c: &ServerConfig) -> Limits {
        let body_rate = (c.min_body_rate.bytes() > 0).then_some(BodyRate {
            min: c.min_body_rate.bytes(),
            window: c.body_rate_window.0,
        });
        Limits {
            timeouts: Timeouts {
                header_read: c.header_read_timeout.0,
                keep_alive: c.keep_alive_timeout.0,
                send_stall: body_rate.map(|r| r.window),
            },
            body_rate,
            max_connections: c.max_connections.max(1),
        }
    }
}

/// Serves `app` until `shutdown` resolves, then stops accepting, lets every
/// connection finish the request it is serving, and returns once all closed.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: Limits,
    metrics: Arc<Metrics>,
    tls: Option<TlsAcceptor>,
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
            tls: tls.clone(),
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

/// A hyper connection of either version, as the watchdog drives it.
trait Served {
    fn poll_served(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>>;
    fn graceful(&mut self);
}

impl<I> Served for http1::Connection<TokioIo<I>, Svc>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_served(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        // Without shutdown: the socket is wanted back for a lingering close.
        self.poll_without_shutdown(cx)
    }

    fn graceful(&mut self) {
        Pin::new(self).graceful_shutdown();
    }
}

impl<I> Served for Pin<Box<http2::Connection<TokioIo<I>, Svc, TokioExecutor>>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_served(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.as_mut().poll(cx)
    }

    fn graceful(&mut self) {
        self.as_mut().graceful_shutdown();
    }
}

/// One accepted connection and what it needs besides its socket.
struct Conn {
    limits: Limits,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    /// For the request log (`ConnectInfo` on every request).
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    async fn serve(self, stream: TcpStream, app: App) {
        // An HTTP/2 response is several writes (headers, data, trailers for
        // gRPC): with Nagle's algorithm the later ones wait for the client's
        // delayed ACK, 40 ms per small ByteStream read.
        let _ = stream.set_nodelay(true);
        let counters = &self.metrics.connections;
        counters.open.fetch_add(1, Ordering::Relaxed);
        self.run(stream, app).await;
        counters.open.fetch_sub(1, Ordering::Relaxed);
    }

    async fn run(&self, stream: TcpStream, app: App) {
        let started = Instant::now();
        let phase = Arc::new(PhaseCell::new(Phase::Head(started), self.limits.timeouts));
        let unfinished = Arc::new(AtomicBool::new(false));
        let mut service = Svc {
            app,
            phase: phase.clone(),
            unfinished: unfinished.clone(),
            metrics: self.metrics.clone(),
            body_rate: self.limits.body_rate,
            peer: self.peer,
            outbox: None,
        };
        let mut socket = Watched::new(stream, phase.clone());
        let Some(acceptor) = &self.tls else {
            let deadline = started + self.limits.timeouts.header_read;
            let preface = tokio::select! {
                p = tokio::time::timeout_at(deadline, h2_preface(socket.socket())) => p,
                () = self.stop.cancelled() => return,
            };
            return match preface {
                Err(_) => self.cut(Phase::Head(started)),
                Ok(true) => {
                    // As over TLS: idle HTTP/2 frames start no header timer.
                    socket.head_on_read = false;
                    self.http2(socket, service, &phase).await
                }
                Ok(false) => {
                    service.outbox = Some(socket.send_files(&self.metrics));
                    self.http1(socket, service, &phase, &unfinished).await
                }
            };
        };
        let deadline = started + self.limits.timeouts.header_read;
        let accepted = tokio::select! {
            accepted = tls::accept(acceptor, socket, Watched::socket, deadline) => accepted,
            // A shutdown does not wait for handshakes in progress.
            () = self.stop.cancelled() => return,
        };
        let mut stream = match accepted {
            Ok(stream) => stream,
            Err(tls::Refused::Timeout) => return self.cut(Phase::Head(started)),
            Err(tls::Refused::Failed) => return,
        };
        if tls::is_h2(&stream) {
            // HTTP/2 clients send frames (pings, window updates) while idle:
            // those must not start the header timer.
            stream.get_mut().0.head_on_read = false;
            self.http2(stream, service, &phase).await;
        } else {
            self.http1(stream, service, &phase, &unfinished).await;
        }
    }

    async fn http2<I>(&self, io: I, service: Svc, phase: &PhaseCell)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let builder = http2::Builder::new(TokioExecutor::new());
        let mut conn = Box::pin(builder.serve_connection(TokioIo::new(io), service));
        self.drive(&mut conn, phase).await;
    }

    async fn http1<I>(&self, io: I, service: Svc, phase: &PhaseCell, unfinished: &AtomicBool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = http1::Builder::new();
        // The watchdog below times headers itself: hyper's timer would also
        // run while idle, merging both limits into one.
        builder.header_read_timeout(None);
        let mut conn = builder.serve_connection(TokioIo::new(io), service);
        if !self.drive(&mut conn, phase).await {
            return;
        }
        let mut io = conn.into_parts().io.into_inner();
        if unfinished.load(Ordering::Relaxed) {
            linger::close(io).await;
        } else {
            // Over TLS, a close_notify tells the client the end is deliberate
            // (over TCP, it is the FIN a drop would send). Bounded: a client
            // that stopped reading must not hold the connection.
            let _ = tokio::time::timeout(CLOSE_WAIT, io.shutdown()).await;
        }
    }

    /// Serves `conn` under the watchdog. True when it ended by itself,
    /// false when it failed or was cut.
    async fn drive(&self, conn: &mut impl Served, phase: &PhaseCell) -> bool {
        let mut stop = pin!(self.stop.cancelled());
        let mut draining = false;
        let mut timer = pin!(tokio::time::sleep_until(Instant::now()));
        let mut timer_at: Option<Instant> = None;
        std::future::poll_fn(|cx| {
            if !draining && stop.as_mut().poll(cx).is_ready() {
                draining = true;
                conn.graceful();
            }
            if let Poll::Ready(result) = conn.poll_served(cx) {
                if let Err(e) = &result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return Poll::Ready(result.is_ok());
            }
            loop {
                let (now, deadline, at) = phase.watch(cx, timer_at);
                if at != timer_at {
                    if let Some(at) = at {
                        timer.as_mut().reset(at);
                    }
                    timer_at = at;
                }
                if timer_at.is_none() || timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                timer_at = None;
                if deadline.is_some_and(|d| d <= Instant::now()) {
                    self.cut(now);
                    return Poll::Ready(false);
                }
            }
        })
        .await
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

/// Whether a cleartext client opens with HTTP/2's connection preface
/// (`PRI * HTTP/2.0`), as gRPC clients do over `grpc://` (h2c with prior
/// knowledge): no HTTP/1 method starts with "PRI". Peeks, so the bytes
/// stay for whichever protocol serves them.
async fn h2_preface(socket: &TcpStream) -> bool {
    let mut buf = [0u8; 4];
    matches!(socket.peek(&mut buf).await, Ok(n) if n >= 3 && buf.starts_with(b"PRI"))
}
