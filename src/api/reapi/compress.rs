//! zstd for REAPI's compressed blobs, on the wire only. Blobs are stored
//! once, uncompressed, as the same `cas/<sha256>` entry HTTP reads: the
//! digest names the uncompressed bytes, so that is what is verified and
//! deduplicated; one copy serves both protocols and every encoding; and a
//! client's compressed bytes (whose level and framing vary) are never
//! something a reader must trust. The cost is compressing again on each
//! compressed read, at a fast level.
//!
//! Both directions stream: a write is decompressed a step of bounded output
//! at a time and refused as soon as it exceeds the digest's size (a zstd
//! bomb stores nothing), a read is compressed as its file is read.

use std::io::Write;

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use tonic::Status;
use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

/// zstd's level for what this server compresses: its fastest positive one.
/// A read costs server CPU every time; the client's link mostly gains from
/// compression at all, little from a higher level.
pub const LEVEL: i32 = 1;

/// The largest window a compressed upload may use (2^23, 8 MiB: RFC 8878
/// asks decoders to support that much and encoders to stay within it).
/// Bounds what one decoder allocates, whatever a frame header claims.
const WINDOW_LOG_MAX: u32 = 23;

/// The most bytes one decompression step produces: small enough that a
/// step never holds the runtime long, or memory much.
const STEP: usize = 64 << 10;

/// The most compressed bytes a write of `size` bytes may send: zstd adds a
/// few bytes per block to what does not compress, never a sixteenth.
pub fn compressed_bound(size: u64) -> u64 {
    size.saturating_add(size / 16).saturating_add(64 << 10)
}

fn invalid(why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("compressed blob: {why}"))
}

/// Decompresses `input` (one or more zstd frames) into the `size` bytes a
/// digest names: more is refused as soon as it appears, less at the end.
pub fn decompress<S>(input: S, size: u64) -> impl Stream<Item = Result<Bytes, Status>> + Send
where
    S: Stream<Item = Result<Bytes, Status>> + Send + 'static,
{
    let decoder = Decoder::new().and_then(|mut d| {
        d.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))?;
        Ok(d)
    });
    let state = decoder.map(|decoder| Inflate {
        input: Box::pin(input),
        decoder,
        pending: Bytes::new(),
        pos: 0,
        more: false,
        frame_open: false,
        out: 0,
        size,
        done: false,
    });
    let failed = state
        .as_ref()
        .err()
        .map(|e| Status::internal(format!("zstd: {e}")));
    let steps = stream::unfold(state.ok(), |st| async move {
        let mut st = st?;
        let item = st.step().await?;
        Some((item, Some(st)))
    });
    stream::iter(failed.map(Err)).chain(steps)
}

struct Inflate {
    input: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>,
    decoder: Decoder<'static>,
    /// Compressed bytes received and not yet all consumed (from `pos`).
    pending: Bytes,
    pos: usize,
    /// The decoder may have more to give without more input.
    more: bool,
    /// The last step ended inside a frame.
    frame_open: bool,
    out: u64,
    size: u64,
    done: bool,
}

impl Inflate {
    async fn step(&mut self) -> Option<Result<Bytes, Status>> {
        loop {
            if self.done {
                return None;
            }
            if self.pos < self.pending.len() || self.more {
                match self.run() {
                    Ok(Some(out)) => return Some(Ok(out)),
                    Ok(None) => continue,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            match self.input.next().await {
                Some(Ok(b)) => (self.pending, self.pos) = (b, 0),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    if self.frame_open {
                        return Some(Err(invalid("the stream ends inside a zstd frame")));
                    }
                    if self.out != self.size {
                        let why = format!("{} bytes where the digest says {}", self.out, self.size);
                        return Some(Err(invalid(why)));
                    }
                    return None;
                }
            }
        }
    }

    /// One bounded step of decompression: its output, if any.
    fn run(&mut self) -> Result<Option<Bytes>, Status> {
        let mut buf = vec![0u8; STEP];
        let mut input = InBuffer::around(&self.pending[self.pos..]);
        let mut output = OutBuffer::around(&mut buf[..]);
        let hint = self
            .decoder
            .run(&mut input, &mut output)
            .map_err(|e| invalid(format!("not valid zstd: {e}")))?;
        let (consumed, produced) = (input.pos(), output.pos());
        self.pos += consumed;
        // zstd may take in the last bytes and decode them on a later call
        // ("decoding left to do"), so a step that made progress inside a
        // frame is followed by another even with no input left.
        self.more = produced == STEP || (hint != 0 && (consumed > 0 || produced > 0));
        // A call that makes no progress past a frame's end already asks
        // for the next frame's header: only progress says where we are.
        if consumed > 0 || produced > 0 {
            self.frame_open = hint != 0;
        }
        if produced == 0 {
            if consumed == 0 && !self.more && self.pos < self.pending.len() {
                return Err(invalid("zstd made no progress"));
            }
            return Ok(None);
        }
        self.out += produced as u64;
        if self.out > self.size {
            return Err(invalid(format!(
                "decompresses to more than the digest's {} bytes",
                self.size
            )));
        }
        buf.truncate(produced);
        Ok(Some(Bytes::from(buf)))
    }
}

/// Compresses a stream of plain bytes as one zstd frame, off the runtime.
pub fn compress<S, E>(input: S) -> impl Stream<Item = Result<Bytes, Status>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let encoder = zstd::stream::write::Encoder::new(Vec::new(), LEVEL)
        .map_err(|e| Status::internal(format!("zstd: {e}")));
    stream::unfold(
        (Box::pin(input), Some(encoder)),
        |(mut input, encoder)| async move {
            let mut encoder = match encoder? {
                Ok(e) => e,
                Err(e) => return Some((Err(e), (input, None))),
            };
            loop {
                let (next, last) = match input.next().await {
                    Some(Ok(b)) => (b, false),
                    Some(Err(e)) => {
                        let e = Status::internal(format!("reading the blob: {e}"));
                        return Some((Err(e), (input, None)));
                    }
                    None => (Bytes::new(), true),
                };
                let done = tokio::task::spawn_blocking(move || {
                    encoder.write_all(&next)?;
                    if last {
                        return encoder.finish().map(|out| (None, out));
                    }
                    let out = std::mem::take(encoder.get_mut());
                    Ok((Some(encoder), out))
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
                match done {
                    Err(e) => {
                        let e = Status::internal(format!("zstd: {e}"));
                        return Some((Err(e), (input, None)));
                    }
                    Ok((None, out)) => return Some((Ok(Bytes::from(out)), (input, None))),
                    Ok((Some(e), out)) if out.is_empty() => encoder = e,
                    Ok((Some(e), out)) => {
                        return Some((Ok(Bytes::from(out)), (input, Some(Ok(e)))))
                    }
                }
            }
        },
    )
}

/// A whole small blob, compressed (for a batch read), off the runtime.
pub async fn compress_bytes(data: Bytes) -> Result<Bytes, Status> {
    tokio::task::spawn_blocking(move || zstd::bulk::compress(&data, LEVEL))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map(Bytes::from)
        .map_err(|e| Status::internal(format!("zstd: {e}")))
}

/// A whole small compressed blob (of a batch update), decompressed into at
/// most `size` bytes, off the runtime.
pub async fn decompress_bytes(data: Vec<u8>, size: u64) -> Result<Vec<u8>, Status> {
    let cap = usize::try_from(size).map_err(|_| invalid("too large"))?;
    let out = tokio::task::spawn_blocking(move || {
        let mut d = zstd::bulk::Decompressor::new()?;
        d.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))?;
        d.decompress(&data, cap)
    })
    .await
    .map_err(|e| Status::internal(format!("zstd: {e}")))?
    .map_err(|e| invalid(format!("not valid zstd of at most {size} bytes: {e}")))?;
    if out.len() as u64 != size {
        return Err(invalid(format!(
            "{} bytes where the digest says {size}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn inflate(chunks: Vec<Vec<u8>>, size: u64) -> Result<Vec<u8>, Status> {
        let input = stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        let mut out = Vec::new();
        let mut s = std::pin::pin!(decompress(input, size));
        while let Some(b) = s.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn frames_split_anywhere_decompress_and_bombs_stop_early() {
        let data: Vec<u8> = (0..500_000u32).map(|i| (i % 7) as u8).collect();
        let z = zstd::bulk::compress(&data, 3).unwrap();
        let pieces: Vec<Vec<u8>> = z.chunks(1000).map(<[u8]>::to_vec).collect();
        assert_eq!(inflate(pieces, data.len() as u64).await.unwrap(), data);
        let two = [z.clone(), zstd::bulk::compress(b"tail", 1).unwrap()].concat();
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(inflate(vec![two], want.len() as u64).await.unwrap(), want);

        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap();
        assert!(bomb.len() < 64 << 10);
        let e = inflate(vec![bomb], 1000).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = inflate(vec![z[..z.len() - 3].to_vec()], data.len() as u64).await;
        assert_eq!(e.unwrap_err().code(), tonic::Code::InvalidArgument);
        let e = inflate(vec![b"not zstd at all".to_vec()], 15).await;
        assert_eq!(e.unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn a_compressed_stream_round_trips() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
        let input = stream::iter(
            data.chunks(70_000)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let z: Vec<Bytes> = compress(input).map(|r| r.unwrap()).collect().await;
        let z = z.concat();
        assert!(z.len() < data.len() / 10);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), data);
        let empty = compress(stream::empty::<Result<Bytes, std::io::Error>>());
        let empty: Vec<Bytes> = empty.map(|r| r.unwrap()).collect().await;
        assert!(zstd::decode_all(&empty.concat()[..]).unwrap().is_empty());
    }
}
