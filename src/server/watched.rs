//! The connection's socket, telling the watchdog (conn.rs) what the client
//! does: a new request starting on an idle connection, a response waiting
//! for the client to read it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::Phase;

/// The socket, noting when an idle connection starts a new request: from
/// its first byte, the headers must arrive within `header_read_timeout`.
pub struct Watched {
    inner: TcpStream,
    phase: Arc<watch::Sender<Phase>>,
    /// Off for HTTP/2, whose idle connections still carry frames.
    pub head_on_read: bool,
}

impl Watched {
    pub fn new(inner: TcpStream, phase: Arc<watch::Sender<Phase>>) -> Watched {
        Watched {
            inner,
            phase,
            head_on_read: true,
        }
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
        if self.head_on_read
            && buf.filled().len() > before
            && matches!(*self.phase.borrow(), Phase::Idle(_))
        {
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
