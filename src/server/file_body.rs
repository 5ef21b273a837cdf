//! A response body read from a blob file: sent by the kernel from the page
//! cache where the connection allows it (`sendfile.rs`), else read in
//! chunks on the blocking pool like any stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::sendfile::Outbox;
use crate::cas::FileRange;

type Reading = Pin<Box<dyn Future<Output = io::Result<Bytes>> + Send>>;

/// Where a file body learns that its connection can send files. The
/// response carries it as an extension; only the connection's service
/// fills it, after every layer of the app has had the response. A layer
/// that rewrites response bodies (compression, say) must remove it, or it
/// would read stand-ins.
#[derive(Clone, Default)]
pub struct SendfileSlot(Arc<OnceLock<Outbox>>);

impl SendfileSlot {
    /// Lets the body send files through `outbox`, if its size is still
    /// `len`: a body rewritten by some layer no longer is.
    pub fn enable(&self, outbox: &Outbox, size: SizeHint, len: Option<u64>) {
        if size.exact().is_some() && size.exact() == len {
            let _ = self.0.set(outbox.clone());
        }
    }
}

pub struct FileBody {
    range: FileRange,
    /// The next byte to send, in the file.
    at: u64,
    slot: SendfileSlot,
    reading: Option<Reading>,
}

impl FileBody {
    pub fn new(range: FileRange) -> (FileBody, SendfileSlot) {
        let slot = SendfileSlot::default();
        let at = range.offset;
        let body = FileBody {
            range,
            at,
            slot: slot.clone(),
            reading: None,
        };
        (body, slot)
    }

    /// The next chunk as a stand-in frame, when the connection sends files
    /// and the chunk is in the page cache (so sending it cannot block the
    /// runtime thread on the disk).
    fn stand_in(&self, len: u64) -> Option<Bytes> {
        let outbox = self.slot.0.get()?;
        if !self.range.cached(self.at, len) {
            return None;
        }
        outbox.stage(&self.range.file, self.at, usize::try_from(len).ok()?)
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let reading = match &mut this.reading {
            Some(reading) => reading,
            None => {
                let len = this.range.chunk_len(this.at);
                if len == 0 {
                    return Poll::Ready(None);
                }
                if let Some(frame) = this.stand_in(len) {
                    this.at += len;
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                let (range, at) = (this.range.clone(), this.at);
                this.reading
                    .insert(Box::pin(async move { range.read_chunk(at).await }))
            }
        };
        let chunk = ready!(reading.as_mut().poll(cx));
        this.reading = None;
        let chunk = chunk?;
        this.at += chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.reading.is_none() && self.at >= self.range.end()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.range.end().saturating_sub(self.at))
    }
}
