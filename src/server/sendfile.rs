//! Zero-copy blob bodies on plain HTTP/1 connections: the kernel sends
//! page-cache pages to the socket (`sendfile`) instead of the response
//! copying them through user space. A mapped 1 MiB GET spent two fifths of
//! its CPU mapping, unmapping and copying (docs/PERFORMANCE.md, issue 22).
//!
//! hyper owns the socket and writes only the bytes it is given, and no
//! crate lets a hyper response hand it a file. So a file-backed frame
//! (`file_body.rs`) is a slice of a private static region, the *stand-in*,
//! and the connection's socket (`Watched`) asks this connection's `Outbox`
//! what each stand-in slice stands for, sending that part of the file in
//! its place. hyper writes a frame's bytes in the order it polled the
//! frames, and the outbox queues them in that order; every stand-in slice
//! must match the head of the queue exactly (its position in the region
//! names the frame), or the connection fails: a desynchronised queue cuts
//! the response short, it never sends stand-in zeros or another file's
//! bytes.
//!
//! Only the connection's own service enables this (`service.rs`), for
//! plain-TCP HTTP/1: over TLS or HTTP/2 the bytes are copied into frames,
//! and a file body there reads its chunks as any stream does.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

use crate::cas::READ_CHUNK;
use crate::metrics::Metrics;

/// Distinct start positions in the stand-in: consecutive frames start at
/// different ones, so a frame queued and never written cannot pass for
/// the next.
const TAGS: usize = 4096;
/// The largest frame: one chunk.
const FRAME_MAX: usize = READ_CHUNK as usize;

/// Never read or written: only its addresses mean anything. Zeroed, so it
/// costs address space, not memory.
static STAND_IN: [u8; FRAME_MAX + TAGS] = [0; FRAME_MAX + TAGS];

/// The file parts the connection's queued response frames stand for.
#[derive(Clone)]
pub struct Outbox {
    queue: Arc<Mutex<Queue>>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Frame>,
    next_tag: usize,
}

struct Frame {
    file: Arc<File>,
    /// Where this frame's bytes start in the file.
    offset: u64,
    len: usize,
    /// Its position in the stand-in.
    tag: usize,
    sent: usize,
}

impl Outbox {
    pub fn new(metrics: Arc<Metrics>) -> Outbox {
        Outbox {
            queue: Arc::default(),
            metrics,
        }
    }

    /// Queues `len` bytes of `file` from `offset`, returning the frame that
    /// stands for them; `None` when they do not fit one frame.
    pub fn stage(&self, file: &Arc<File>, offset: u64, len: usize) -> Option<Bytes> {
        if len == 0 || len > FRAME_MAX {
            return None;
        }
        let mut q = self.queue.lock();
        let tag = q.next_tag;
        q.next_tag = (tag + 1) % TAGS;
        q.frames.push_back(Frame {
            file: file.clone(),
            offset,
            len,
            tag,
            sent: 0,
        });
        Some(Bytes::from_static(&STAND_IN[tag..tag + len]))
    }

    /// Writes `bufs` up to the first stand-in, or the file part that
    /// stand-in is for.
    pub fn poll_write(
        &self,
        socket: &mut TcpStream,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match bufs.iter().position(|b| stand_in_at(b).is_some()) {
            None => std::pin::Pin::new(socket).poll_write_vectored(cx, bufs),
            Some(0) => self.send_file(socket, cx, &bufs[0]),
            Some(n) => std::pin::Pin::new(socket).poll_write_vectored(cx, &bufs[..n]),
        }
    }

    fn send_file(
        &self,
        socket: &mut TcpStream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut q = self.queue.lock();
        let Some(frame) = q.frames.front_mut() else {
            return Poll::Ready(Err(out_of_step()));
        };
        if stand_in_at(buf) != Some(frame.tag + frame.sent) || buf.len() != frame.len - frame.sent {
            return Poll::Ready(Err(out_of_step()));
        }
        let (out, from) = (socket.as_raw_fd(), frame.file.as_raw_fd());
        loop {
            ready!(socket.poll_write_ready(cx))?;
            let mut at =
                i64::try_from(frame.offset + frame.sent as u64).map_err(io::Error::other)?;
            let want = frame.len - frame.sent;
            let sent = socket.try_io(Interest::WRITABLE, || {
                // SAFETY: both descriptors are open for the call; `at` is
                // a valid offset out-parameter.
                match unsafe { libc::sendfile(out, from, &mut at, want) } {
                    n if n < 0 => Err(io::Error::last_os_error()),
                    n => Ok(n as usize),
                }
            });
            match sent {
                // The file is shorter than the range checked at open: cut
                // the response rather than pad it.
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob file ended before its response",
                    )))
                }
                Ok(n) => {
                    let sent = &self.metrics.connections.sent_from_files;
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    frame.sent += n;
                    if frame.sent == frame.len {
                        q.frames.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Where `buf` starts in the stand-in, if it lies in it.
fn stand_in_at(buf: &[u8]) -> Option<usize> {
    let base = STAND_IN.as_ptr() as usize;
    let at = (buf.as_ptr() as usize).wrapping_sub(base);
    (!buf.is_empty() && at < STAND_IN.len()).then_some(at)
}

fn out_of_step() -> io::Error {
    io::Error::other("response frames out of step with their files; closing the connection")
}
