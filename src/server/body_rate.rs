//! The minimum body rate: a request body that arrives slower than
//! `server.min_body_rate` fails, so a stalled or trickling upload cannot
//! hold a connection, a session lock and its budget reservation forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::metrics::Metrics;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug)]
pub struct BodyRate {
    /// Bytes per second.
    pub min: u64,
    pub window: Duration,
}

impl BodyRate {
    fn quota(&self) -> u64 {
        let per_window = self.min as u128 * self.window.as_millis() / 1000;
        u64::try_from(per_window).unwrap_or(u64::MAX).max(1)
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived slower than {min} bytes/s over {window}; the request was cut \
     (server.min_body_rate)"
)]
pub struct TooSlow {
    min: u64,
    window: humantime::FormattedDuration,
}

/// A body that fails once the client, over a window of time spent waiting
/// for it, sent less than the window's quota. Only time spent waiting for
/// the client counts: while the handler is busy elsewhere (writing to disk,
/// waiting for the evictor) the body is not polled and no time accrues.
pub struct RateLimited<B> {
    inner: B,
    rate: BodyRate,
    quota: u64,
    /// Bytes received in the current window.
    got: u64,
    /// Time spent waiting for the client in the current window, not
    /// counting the wait in progress.
    waited: Duration,
    /// When the wait in progress began.
    waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    metrics: Arc<Metrics>,
    cut: bool,
}

impl<B> RateLimited<B> {
    pub fn new(inner: B, rate: BodyRate, metrics: Arc<Metrics>) -> RateLimited<B> {
        RateLimited {
            inner,
            rate,
            quota: rate.quota(),
            got: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            metrics,
            cut: false,
        }
    }

    /// The error of a cut body. A consumer may poll again after it (a drain
    /// of the rest): the cut is counted and logged once, and every later
    /// poll gets the same error, never an early end that would pass for a
    /// complete body.
    fn too_slow(&mut self) -> BoxError {
        if !self.cut {
            self.cut = true;
            self.metrics
                .connections
                .body_rate
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                min = self.rate.min,
                "cutting a request body that arrives too slowly"
            );
        }
        Box::new(TooSlow {
            min: self.rate.min,
            window: humantime::format_duration(self.rate.window),
        })
    }

    fn end_wait(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
    }
}

impl<B> Body for RateLimited<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(Some(Err(this.too_slow())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.end_wait();
                if let Some(data) = frame.data_ref() {
                    this.got += data.len() as u64;
                }
                if this.got >= this.quota {
                    // The client kept up for a whole window: start a new one.
                    this.got = 0;
                    this.waited = Duration::ZERO;
                } else if this.waited >= this.rate.window {
                    return Poll::Ready(Some(Err(this.too_slow())));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.end_wait();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.end_wait();
                Poll::Ready(None)
            }
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let left = this.rate.window.saturating_sub(this.waited);
                let deadline = since + left;
                if deadline <= now {
                    return Poll::Ready(Some(Err(this.too_slow())));
                }
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(this.too_slow()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
