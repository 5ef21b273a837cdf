//! Streaming ingest: bytes are hashed (SHA-256 and BLAKE3, SHA-512 only when a
//! sha512 digest is expected) and written to a temp file on a blocking
//! thread. A streamed body's BLAKE3 is computed on the runtime thread as each
//! chunk comes off the socket, still in cache, while the writer thread
//! computes SHA-256 (the slower hash): a large push then takes the time of
//! one hash, not of both in turn, and no byte is read from memory twice.

use std::io::{self, IoSlice, Read};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest as _, Sha256, Sha512};
use tokio::sync::mpsc;

use super::sync::SyncGroup;
use super::tmpfile::TempFile;
use super::{sync_dir, BlobMeta, Cas, CasError, ContentId, Digest};

/// Large enough that reads are not the bottleneck next to hashing.
const READ_BUFFER: usize = 1 << 20;
/// Batches of body chunks queued between the socket and the hashing thread.
const QUEUE_DEPTH: usize = 16;
/// The most chunks that already arrived which are handed over as one batch:
/// one wake-up of the writer thread and one `writev` for all of them.
const BATCH: usize = 64;

/// The hashes computed beside the BLAKE3 in one pass over a blob's bytes.
/// The BLAKE3 is the caller's, which may compute it on another thread.
struct Hashes {
    /// None for a copy of a blob recorded elsewhere (`ingest_copy`).
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
}

impl Hashes {
    fn new(expected: Option<&Digest>) -> Hashes {
        Hashes {
            sha256: Some(Sha256::new()),
            sha512: matches!(expected, Some(Digest::Sha512(_))).then(Sha512::new),
        }
    }

    fn blake3_only() -> Hashes {
        Hashes {
            sha256: None,
            sha512: None,
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }

    /// The content's identity and SHA-256, if it matches `expected`.
    fn verify(
        self,
        expected: Option<&Digest>,
        blake3: &blake3::Hasher,
    ) -> Result<(ContentId, [u8; 32]), CasError> {
        let id = ContentId(*blake3.finalize().as_bytes());
        let sha256: [u8; 32] = self.sha256.map_or([0; 32], |h| h.finalize().into());
        let matches = match expected {
            None => true,
            Some(Digest::Sha256(h)) => *h == sha256,
            Some(Digest::Blake3(h)) => *h == id.0,
            Some(Digest::Sha512(h)) => self
                .sha512
                .is_some_and(|s| s.finalize().as_slice() == &h[..]),
        };
        match (matches, expected) {
            (false, Some(want)) => Err(CasError::DigestMismatch {
                expected: want.clone(),
            }),
            _ => Ok((id, sha256)),
        }
    }
}

/// A complete temp file whose content matched what was expected, not yet
/// visible in the store. Dropping it deletes the temp file.
pub struct Verified {
    temp: TempFile,
    pub meta: BlobMeta,
}

impl Verified {
    /// Another handle on the verified bytes (for a copy elsewhere before
    /// publishing); it shares the file position, so readers seek first.
    pub fn file(&self) -> io::Result<std::fs::File> {
        self.temp.file().try_clone()
    }

    /// Makes the content durable and publishes it under its BLAKE3 name; when
    /// that content is already published the temp file is simply deleted.
    pub fn publish(self, cas: &Cas) -> io::Result<BlobMeta> {
        let (meta, owed) = self.publish_unsynced(cas)?;
        if let Some(group) = owed {
            group.sync()?;
        }
        Ok(meta)
    }

    /// Publishes the content under its BLAKE3 name without making it
    /// durable: for a copy whose loss in a crash is handled otherwise (the
    /// cluster's tier, `cluster/tier_boot.rs`).
    pub fn place(self, cas: &Cas) -> io::Result<BlobMeta> {
        self.temp.place(&cas.path(&self.meta.id))?;
        Ok(self.meta)
    }

    /// `publish`, except that a blob a shared sync covers is only placed:
    /// the returned group's `sync` must return before anything depends on
    /// the blob (an index batch runs it once for all its writes).
    pub fn publish_unsynced(self, cas: &Cas) -> io::Result<(BlobMeta, Option<Arc<SyncGroup>>)> {
        let id = self.meta.id;
        // Also when deduplicating, sync: the writer that published may not
        // have synced yet, and our caller is about to acknowledge the blob.
        match cas.sync_group(self.meta.size) {
            Some(group) => {
                self.temp.place(&cas.path(&id))?;
                Ok((self.meta, Some(group.clone())))
            }
            None => {
                self.temp.publish(&cas.path(&id))?;
                sync_dir(&cas.shard_dir(&id))?;
                Ok((self.meta, None))
            }
        }
    }
}

/// Bytes written before their writeback is started, so the device works
/// while the rest of the body arrives instead of all at the final fsync.
const WRITEBACK_AFTER: u64 = 8 << 20;

/// A blob being written. Dropping it unfinished deletes the temp file.
struct TempBlob {
    temp: TempFile,
    hashes: Hashes,
    len: u64,
    limit: u64,
    /// Where the writeback not yet started begins.
    written_back: u64,
}

impl TempBlob {
    fn create(cas: &Cas, hashes: Hashes, limit: u64) -> io::Result<TempBlob> {
        Ok(TempBlob {
            temp: cas.temp_file()?,
            hashes,
            len: 0,
            limit,
            written_back: 0,
        })
    }

    /// Hashes and appends chunks as they came off the socket, in one write.
    fn write_chunks(&mut self, chunks: &[Bytes]) -> Result<(), CasError> {
        let added: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let new_len = self.len + added;
        if new_len > self.limit {
            return Err(CasError::TooLarge { limit: self.limit });
        }
        let mut slices = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            self.hashes.update(chunk);
            slices.push(IoSlice::new(chunk));
        }
        self.temp.write_all_vectored(&mut slices)?;
        self.len = new_len;
        if self.len - self.written_back >= WRITEBACK_AFTER {
            self.temp
                .start_writeback(self.written_back, self.len - self.written_back);
            self.written_back = self.len;
        }
        Ok(())
    }

    /// Verifies the content against `expected`. On a mismatch the temp file
    /// is removed; on success the caller publishes the `Verified` blob.
    fn finish(
        self,
        expected: Option<&Digest>,
        blake3: &blake3::Hasher,
    ) -> Result<Verified, CasError> {
        let (id, sha256) = self.hashes.verify(expected, blake3)?;
        Ok(Verified {
            temp: self.temp,
            meta: BlobMeta {
                id,
                sha256,
                size: self.len,
            },
        })
    }
}

/// Hashes a complete file written elsewhere (an upload session assembled from
/// chunks) and verifies it. Blocking. The returned `Verified` owns the file:
/// publishing moves it into the store, dropping deletes it, and so does a
/// failed verification, which leaves nothing behind.
pub fn verify_file(path: &Path, expected: Option<&Digest>) -> Result<Verified, CasError> {
    let temp = TempFile::adopt(path)?;
    let mut hashes = Hashes::new(expected);
    let mut blake3 = blake3::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = temp.file().read(&mut buf)?;
        if n == 0 {
            break;
        }
        hashes.update(&buf[..n]);
        blake3.update(&buf[..n]);
        size += n as u64;
    }
    let (id, sha256) = hashes.verify(expected, &blake3)?;
    Ok(Verified {
        temp,
        meta: BlobMeta { id, sha256, size },
    })
}

/// Ingests content already in memory (a manifest), on the calling thread:
/// blocking, and without the hand-off to a writer thread that a streamed
/// body needs.
pub fn ingest_bytes(
    cas: &Cas,
    content: &Bytes,
    expected: Option<&Digest>,
    limit: u64,
) -> Result<Verified, CasError> {
    let mut blob = TempBlob::create(cas, Hashes::new(expected), limit)?;
    blob.write_chunks(std::slice::from_ref(content))?;
    blob.finish(expected, blake3::Hasher::new().update(content))
}

/// What the async side hands the writer thread. The channel closing without
/// `End` (the request was dropped, the body failed) means "abort": a blob is
/// only published when the whole body arrived.
enum Piece {
    Data(Vec<Bytes>),
    /// The whole body arrived; its BLAKE3 so far.
    End(Box<blake3::Hasher>),
}

/// Ingests a request body. The body is pulled and BLAKE3-hashed on the async
/// side and handed to a blocking thread that computes the other hashes and
/// writes it.
pub async fn ingest_stream<S, E>(
    cas: &Cas,
    body: S,
    expected: Option<Digest>,
    limit: u64,
) -> Result<Verified, CasError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let hashes = Hashes::new(expected.as_ref());
    ingest(cas, body, expected, limit, hashes).await
}

/// `ingest_stream` for a copy of blob `id`, which is recorded elsewhere (a
/// cluster replica's local tier): verified against its BLAKE3 alone. Its
/// SHA-256 is not computed (the slower hash, and the one that held a cold
/// read's client back): `meta.sha256` is zero, so this never feeds a record.
pub async fn ingest_copy<S, E>(cas: &Cas, body: S, id: ContentId) -> Result<Verified, CasError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let expected = Some(Digest::Blake3(id.0));
    ingest(cas, body, expected, u64::MAX, Hashes::blake3_only()).await
}

async fn ingest<S, E>(
    cas: &Cas,
    body: S,
    expected: Option<Digest>,
    limit: u64,
    hashes: Hashes,
) -> Result<Verified, CasError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let (tx, mut rx) = mpsc::channel::<Piece>(QUEUE_DEPTH);
    let cas_for_writer = cas.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<Verified, CasError> {
        let mut blob = TempBlob::create(&cas_for_writer, hashes, limit)?;
        loop {
            match rx.blocking_recv() {
                Some(Piece::Data(chunks)) => blob.write_chunks(&chunks)?,
                Some(Piece::End(blake3)) => return blob.finish(expected.as_ref(), &blake3),
                None => return Err(CasError::Body("request body ended early".into())),
            }
        }
    });

    let mut blake3 = Box::new(blake3::Hasher::new());
    let mut body = std::pin::pin!(body.ready_chunks(BATCH));
    'body: while let Some(batch) = body.next().await {
        let mut chunks = Vec::with_capacity(batch.len());
        for chunk in batch {
            match chunk {
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) => {
                    blake3.update(&chunk);
                    chunks.push(chunk);
                }
                Err(e) => {
                    drop(tx);
                    let _ = writer.await;
                    return Err(CasError::Body(e.to_string()));
                }
            }
        }
        if !chunks.is_empty() && tx.send(Piece::Data(chunks)).await.is_err() {
            break 'body; // the writer stopped early; its result says why
        }
    }
    let _ = tx.send(Piece::End(blake3)).await;
    drop(tx);
    writer
        .await
        .map_err(|e| CasError::Io(io::Error::other(e)))?
}
