//! Ranged reads of blob files.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::{Cas, ContentId};

/// Bytes read per blocking call. Each read is a round trip to the blocking
/// pool; 1 MiB makes a typical layer one round trip and keeps a 32 MiB blob
/// at 32, while a slow client holds at most one chunk in memory.
const READ_CHUNK: u64 = 1 << 20;

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
                let first = read_at(&file, offset, len.min(READ_CHUNK))?;
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
            let chunk = tokio::task::spawn_blocking(move || read_at(&reader, at, want))
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
