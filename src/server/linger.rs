//! Lingering close. A request refused before its body was read (413 on a
//! declared size) leaves the client still sending. Closing the socket with
//! unread data in it resets the connection, and a reset can destroy the
//! response before the client reads it: the client sees "connection reset"
//! instead of the 413 that tells it why. So after such a request the server
//! closes its side first and reads (and drops) what keeps arriving, for a
//! bounded time, before closing for good, as nginx's `lingering_close` does.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// The longest a close lingers, whatever the client does.
const LINGER_TOTAL: Duration = Duration::from_secs(10);
/// A client silent for this long has stopped sending.
const LINGER_GAP: Duration = Duration::from_secs(2);
/// The most a lingering close reads before giving up on the client.
const LINGER_BYTES: u64 = 64 << 20;

/// Closes `stream` after a refused body: our side first, then the rest once
/// the client stops sending (or the bounds above are reached).
pub async fn close(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let end = Instant::now() + LINGER_TOTAL;
    let mut buf = vec![0u8; 64 << 10];
    let mut read = 0u64;
    while read < LINGER_BYTES {
        let gap = LINGER_GAP.min(end.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(gap, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => read += n as u64,
            _ => return,
        }
    }
}

/// A request body that notes, when dropped, whether it was left unfinished.
pub struct Tracked {
    inner: Incoming,
    ended: bool,
    unfinished: Arc<AtomicBool>,
}

impl Tracked {
    pub fn new(inner: Incoming, unfinished: Arc<AtomicBool>) -> Tracked {
        Tracked {
            inner,
            ended: false,
            unfinished,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ended && !self.inner.is_end_stream() {
            self.unfinished.store(true, Ordering::Relaxed);
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.ended = true;
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
