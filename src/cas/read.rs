//! Ranged reads of blob files.

use std::io::{self, SeekFrom};
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{Cas, ContentId};

/// Read size for streaming a blob to a socket.
const READ_CHUNK: usize = 256 << 10;
/// Blobs up to this size are read in one blocking call instead of a stream of
/// small async reads; most cache metadata and small layers fall under it.
const SMALL_READ: u64 = 256 << 10;

pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

impl Cas {
    /// Streams `len` bytes of blob `id` starting at `offset`. The caller has
    /// already checked the range against the blob's size.
    pub async fn read_range(
        &self,
        id: &ContentId,
        offset: u64,
        len: u64,
    ) -> io::Result<BlobStream> {
        let path = self.path(id);
        if len <= SMALL_READ {
            let bytes = tokio::task::spawn_blocking(move || read_exact_at(&path, offset, len))
                .await
                .map_err(io::Error::other)??;
            return Ok(Box::pin(futures_util::stream::once(
                async move { Ok(bytes) },
            )));
        }
        let mut file = tokio::fs::File::open(path).await?;
        // A short file would otherwise end the stream early, silently,
        // under a Content-Length already promised to the client.
        let size = file.metadata().await?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("range {offset}+{len} is past the end of a {size}-byte blob"),
            ));
        }
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).await?;
        }
        Ok(Box::pin(ReaderStream::with_capacity(
            file.take(len),
            READ_CHUNK,
        )))
    }
}

fn read_exact_at(path: &std::path::Path, offset: u64, len: u64) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}
