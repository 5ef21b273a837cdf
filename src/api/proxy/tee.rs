//! A fetch streams to the client that started it while it is stored: each
//! chunk read from the upstream goes on into the CAS (hashed, written) and
//! is copied to that client, who so waits for the upstream's first bytes
//! rather than for the whole download and its verification. Clients that
//! joined the fetch (coalesced) wait for the stored, verified entry as
//! before: a late joiner would need the bytes it missed replayed from a
//! file that is not yet published, and once stored the entry is served at
//! disk speed, so they lose little against the upstream's pace.
//!
//! Verification can only fail at the end, after the client has most of the
//! body. The last chunk is therefore held back until the store says the
//! content matched; when it did not, the body ends with an error instead,
//! so the connection is cut and the client sees a truncated transfer (short
//! of its Content-Length, or a chunked body without its end), never a
//! completed wrong file: npm, pip and go then fail on their own checks and
//! retry, and nothing was stored.
//!
//! The fetch is never paced by a client that stopped reading: a chunk the
//! client has not taken within the proxy's `read_timeout` (the patience
//! given to the upstream too), or a client that hung up, is dropped from
//! the copy and the fetch goes on at the upstream's pace, because others
//! may be waiting for it and the bytes are already paid for. That client's
//! body then ends in an error (the store has more than it was sent).

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::cached::BodyStream;
use super::Result;
use crate::api::observe::Lookup;
use crate::cache::EntryRecord;
use crate::upstream::Joined;

/// Chunks buffered between the fetch and its client.
const BUFFERED: usize = 16;

/// The fetch's end of the copy.
pub struct Feed {
    chunks: mpsc::Sender<Bytes>,
    length: oneshot::Sender<Option<u64>>,
    patience: Duration,
}

/// The client's end of the copy.
pub struct Follow {
    chunks: mpsc::Receiver<Bytes>,
    length: oneshot::Receiver<Option<u64>>,
}

/// A copy of a fetch for one client; `patience` is how long a chunk waits
/// for that client before it is dropped from the copy.
pub fn channel(patience: Duration) -> (Feed, Follow) {
    let (chunks, rx) = mpsc::channel(BUFFERED);
    let (length, length_rx) = oneshot::channel();
    let feed = Feed {
        chunks,
        length,
        patience,
    };
    (
        feed,
        Follow {
            chunks: rx,
            length: length_rx,
        },
    )
}

impl Feed {
    /// `body` (of `len` bytes when the upstream said so) as it goes on to
    /// the store, copying every chunk to the client.
    pub fn tee(self, len: Option<u64>, body: BodyStream) -> BodyStream {
        let _ = self.length.send(len);
        let patience = self.patience;
        stream::unfold(
            (body, Some(self.chunks)),
            move |(mut body, mut to)| async move {
                let item = body.next().await?;
                if let (Ok(chunk), Some(tx)) = (&item, &to) {
                    let sent = tokio::time::timeout(patience, tx.send(chunk.clone())).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        to = None;
                    }
                }
                Some((item, (body, to)))
            },
        )
        .boxed()
    }
}

/// What the client's body still has to do.
struct Relay {
    chunks: mpsc::Receiver<Bytes>,
    /// Sent before the second chunk arrived (nothing is sent until then).
    first: Option<Bytes>,
    /// The latest chunk: sent when the next one arrives, or the last one
    /// once the store has verified the whole body.
    held: Bytes,
    sent: u64,
    result: Option<Joined<Result<EntryRecord>>>,
}

impl Follow {
    /// The client's response, once the fetch shows it streams: two chunks
    /// in, so that one can go out while the other is held back. `None` when
    /// the fetch ended first (it found the entry stored, the upstream
    /// refused, or the body came whole in one chunk); the caller then
    /// answers from the fetch's result as it would a coalesced client.
    pub async fn respond(
        mut self,
        result: Joined<Result<EntryRecord>>,
        content_type: &'static str,
    ) -> Option<Response> {
        let first = self.chunks.recv().await?;
        let held = self.chunks.recv().await?;
        let len = self.length.try_recv().ok().flatten();
        let relay = Relay {
            chunks: self.chunks,
            first: Some(first),
            held,
            sent: 0,
            result: Some(result),
        };
        let mut res = Response::new(Body::from_stream(stream::unfold(relay, next)));
        *res.status_mut() = StatusCode::OK;
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(n) = len {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        // The ETag is the stored content's hash, not known until the end:
        // the client's next request (a hit) gets it.
        res.extensions_mut().insert(Lookup(false));
        Some(res)
    }
}

async fn next(mut r: Relay) -> Option<(io::Result<Bytes>, Relay)> {
    if let Some(first) = r.first.take() {
        r.sent += first.len() as u64;
        return Some((Ok(first), r));
    }
    let result = r.result.clone()?;
    if let Some(chunk) = r.chunks.recv().await {
        let out = std::mem::replace(&mut r.held, chunk);
        r.sent += out.len() as u64;
        return Some((Ok(out), r));
    }
    // The fetch is over: the held chunk goes out only if what was stored
    // is exactly what this client was sent.
    r.result = None;
    let out = match result.await {
        Ok(rec) if r.sent + r.held.len() as u64 == rec.size => Ok(std::mem::take(&mut r.held)),
        Ok(_) => Err(io::Error::other(
            "this client fell behind the upstream fetch and was dropped from it",
        )),
        Err(e) => Err(io::Error::other(e.message)),
    };
    Some((out, r))
}
