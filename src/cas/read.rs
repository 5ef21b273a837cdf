//! Ranged reads of blob files.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::{Cas, ContentId};

/// Bytes per blocking call. Each chunk is a round trip to the blocking pool;
/// 4 MiB keeps a 32 MiB blob at 8. A mapped chunk is page cache, not heap,
/// so a slow client holding one costs no memory of ours.
const READ_CHUNK: u64 = 4 << 20;

/// Chunks at least this large are mapped rather than read (see `chunk_at`).
const MAP_AT_LEAST: u64 = 128 << 10;

pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

impl Cas {
    /// Streams `len` bytes of blob `id` starting at `offset`. The caller has
    /// already checked the range against the blob's size; a file shorter
    /// than that is an error, never a short body under a promised
    /// Content-Length.
    pub async fn read_range(
        &self,
        id: &ContentId,
        offset: u64,
        len: u64,
    ) -> io::Result<BlobStream> {
        let path = self.path(id);
        // The first chunk is read before the response starts, so a missing
        // or short file is an error status rather than a truncated body.
        let (first, file) =
            tokio::task::spawn_blocking(move || -> io::Result<(Bytes, Arc<File>)> {
                let file = File::open(&path)?;
                let size = file.metadata()?.len();
                if offset.checked_add(len).is_none_or(|end| end > size) {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("range {offset}+{len} is past the end of a {size}-byte blob"),
                    ));
                }
                let first = chunk_at(&file, offset, len.min(READ_CHUNK))?;
                Ok((first, Arc::new(file)))
            })
            .await
            .map_err(io::Error::other)??;
        let at = offset + first.len() as u64;
        let end = offset + len;
        let rest = futures_util::stream::try_unfold((file, at), move |(file, at)| async move {
            if at >= end {
                return Ok(None);
            }
            let want = (end - at).min(READ_CHUNK);
            let reader = file.clone();
            let chunk = tokio::task::spawn_blocking(move || chunk_at(&reader, at, want))
                .await
                .map_err(io::Error::other)??;
            Ok(Some((chunk, (file, at + want))))
        });
        Ok(Box::pin(futures_util::StreamExt::chain(
            futures_util::stream::once(async move { Ok(first) }),
            rest,
        )))
    }
}

/// `len` bytes at `offset`, mapped rather than copied where the kernel
/// allows: a read into a fresh heap buffer costs the kernel zeroing its
/// pages, a copy out of the page cache and the allocator's churn, which was
/// most of a large GET's CPU. The socket write then copies straight from the
/// page cache.
///
/// Small chunks are read: mapping costs three syscalls and unmapping a TLB
/// flush on every core, more than copying a few pages (4 KiB GETs ran at
/// two thirds of their rate mapped).
fn chunk_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    if len < MAP_AT_LEAST {
        return read_at(file, offset, len);
    }
    map_at(file, offset, len).or_else(|_| read_at(file, offset, len))
}

/// The mapping is populated here, on the blocking pool, so the runtime
/// thread writing it to the socket never waits for the disk, and a disk
/// error surfaces as this error (then the plain read reports it) instead
/// of a fault later. Blob files are immutable and replaced only by rename,
/// so the mapped bytes cannot change or shrink underneath.
fn map_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: see above: nothing writes or truncates a published blob file.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)?
    };
    map.advise(memmap2::Advice::PopulateRead)?;
    Ok(Bytes::from_owner(map))
}

/// Exactly `len` bytes at `offset`, or an error if the file ends first.
fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    // Not zero-filled first: `read_to_end` reads into the spare capacity.
    let mut buf = Vec::with_capacity(len as usize);
    FileReader { file, at: offset }
        .take(len)
        .read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("blob file ended {} bytes early", len - buf.len() as u64),
        ));
    }
    Ok(Bytes::from(buf))
}

/// Positioned reads through `Read`, so a shared file needs no seek.
struct FileReader<'a> {
    file: &'a File,
    at: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}
