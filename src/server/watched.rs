//! The connection's socket, telling the watchdog (conn.rs) what the client
//! does: a new request starting on an idle connection, a response waiting
//! for the client to read it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::phase::{Phase, PhaseCell};
use super::sendfile::Outbox;
use crate::metrics::Metrics;

/// The socket, noting when an idle connection starts a new request: from
/// its first byte, the headers must arrive within `header_read_timeout`.
pub struct Watched {
    inner: TcpStream,
    phase: Arc<PhaseCell>,
    /// Off for HTTP/2, whose idle connections still carry frames.
    pub head_on_read: bool,
    /// Set when the connection sends files (plain HTTP/1).
    outbox: Option<Outbox>,
}

impl Watched {
    pub fn new(inner: TcpStream, phase: Arc<PhaseCell>) -> Watched {
        Watched {
            inner,
            phase,
            head_on_read: true,
            outbox: None,
        }
    }

    /// Lets responses on this connection send files through the outbox
    /// returned.
    pub fn send_files(&mut self, metrics: &Arc<Metrics>) -> Outbox {
        self.outbox
            .get_or_insert_with(|| Outbox::new(metrics.clone()))
            .clone()
    }

    /// The TCP socket, for a peek before the TLS handshake.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.inner
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.head_on_read && buf.filled().len() > before {
            self.phase.update(|p| match p {
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
        self.phase.update(|p| match p {
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = match &this.outbox {
            Some(outbox) => outbox.poll_write(&mut this.inner, cx, bufs),
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        };
        this.note_write(&written);
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
