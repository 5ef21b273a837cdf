//! Streaming ingest: bytes are hashed (SHA-256 and BLAKE3 in one pass, SHA-512
//! only when a sha512 digest is expected) and written to a temp file on a
//! blocking thread, so the async runtime only moves buffers.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest as _, Sha256, Sha512};
use tokio::sync::mpsc;

use super::{sync_dir, BlobMeta, Cas, CasError, ContentId, Digest};

/// Large enough that writes are not the bottleneck next to hashing.
const WRITE_BUFFER: usize = 1 << 20;
/// Body chunks queued between the socket and the hashing thread.
const QUEUE_DEPTH: usize = 32;

/// The hashes computed in one pass over a blob's bytes.
struct Hashes {
    blake3: blake3::Hasher,
    sha256: Sha256,
    sha512: Option<Sha512>,
}

impl Hashes {
    fn new(expected: Option<&Digest>) -> Hashes {
        Hashes {
            blake3: blake3::Hasher::new(),
            sha256: Sha256::new(),
            sha512: matches!(expected, Some(Digest::Sha512(_))).then(Sha512::new),
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.blake3.update(data);
        self.sha256.update(data);
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }

    /// The content's identity and SHA-256, if it matches `expected`.
    fn verify(self, expected: Option<&Digest>) -> Result<(ContentId, [u8; 32]), CasError> {
        let id = ContentId(*self.blake3.finalize().as_bytes());
        let sha256: [u8; 32] = self.sha256.finalize().into();
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
    path: PathBuf,
    file: Option<File>,
    pub meta: BlobMeta,
}

impl Verified {
    /// Makes the content durable and publishes it under its BLAKE3 name; when
    /// that content is already published the temp file is simply deleted.
    pub fn publish(mut self, cas: &Cas) -> io::Result<BlobMeta> {
        let id = self.meta.id;
        if !cas.path(&id).is_file() {
            if let Some(file) = self.file.take() {
                file.sync_all()?;
            }
            std::fs::rename(&self.path, cas.path(&id))?;
        }
        // Also when deduplicating: the writer that renamed may not have synced
        // the directory yet, and our caller is about to acknowledge the blob.
        sync_dir(&cas.shard_dir(&id))?;
        Ok(self.meta)
    }
}

impl Drop for Verified {
    fn drop(&mut self) {
        // After a successful rename this path no longer exists.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A blob being written. Dropping it unfinished deletes the temp file.
pub struct TempBlob {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    hashes: Hashes,
    len: u64,
    limit: u64,
}

impl TempBlob {
    pub fn create(cas: &Cas, expected: Option<&Digest>, limit: u64) -> io::Result<TempBlob> {
        let path = cas
            .tmp_dir()
            .join(format!("{:032x}.part", rand::random::<u128>()));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(TempBlob {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            path,
            hashes: Hashes::new(expected),
            len: 0,
            limit,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), CasError> {
        let new_len = self.len + data.len() as u64;
        if new_len > self.limit {
            return Err(CasError::TooLarge { limit: self.limit });
        }
        self.hashes.update(data);
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("temp blob already finished"))?
            .write_all(data)?;
        self.len = new_len;
        Ok(())
    }

    /// Verifies the content against `expected`. On a mismatch the temp file
    /// is removed; on success the caller publishes the `Verified` blob.
    pub fn finish(mut self, expected: Option<&Digest>) -> Result<Verified, CasError> {
        let writer = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("temp blob already finished"))?;
        let hashes = std::mem::replace(&mut self.hashes, Hashes::new(None));
        let (id, sha256) = hashes.verify(expected)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        Ok(Verified {
            path: std::mem::take(&mut self.path),
            file: Some(file),
            meta: BlobMeta {
                id,
                sha256,
                size: self.len,
            },
        })
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        // Empty once `finish` handed the file to `Verified`.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Hashes a complete file written elsewhere (an upload session assembled from
/// chunks) and verifies it. Blocking. The returned `Verified` owns the file:
/// publishing moves it into the store, dropping deletes it, and so does a
/// failed verification, which leaves nothing behind.
pub fn verify_file(path: &Path, expected: Option<&Digest>) -> Result<Verified, CasError> {
    let mut verified = Verified {
        path: path.to_owned(),
        file: None,
        meta: BlobMeta {
            id: ContentId([0; 32]),
            sha256: [0; 32],
            size: 0,
        },
    };
    let mut file = File::open(path)?;
    let mut hashes = Hashes::new(expected);
    let mut buf = vec![0u8; WRITE_BUFFER];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hashes.update(&buf[..n]);
        verified.meta.size += n as u64;
    }
    let (id, sha256) = hashes.verify(expected)?;
    verified.meta.id = id;
    verified.meta.sha256 = sha256;
    verified.file = Some(file);
    Ok(verified)
}

/// What the async side hands the writer thread. The channel closing without
/// `End` (the request was dropped, the body failed) means "abort": a blob is
/// only published when the whole body arrived.
enum Piece {
    Data(Bytes),
    End,
}

/// Ingests a request body. The body is pulled on the async side and handed to
/// a blocking thread that hashes and writes it.
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
    let (tx, mut rx) = mpsc::channel::<Piece>(QUEUE_DEPTH);
    let cas_for_writer = cas.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<Verified, CasError> {
        let mut blob = TempBlob::create(&cas_for_writer, expected.as_ref(), limit)?;
        loop {
            match rx.blocking_recv() {
                Some(Piece::Data(chunk)) => blob.write(&chunk)?,
                Some(Piece::End) => return blob.finish(expected.as_ref()),
                None => return Err(CasError::Body("request body ended early".into())),
            }
        }
    });

    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) if chunk.is_empty() => {}
            Ok(chunk) => {
                if tx.send(Piece::Data(chunk)).await.is_err() {
                    break; // the writer stopped early; its result says why
                }
            }
            Err(e) => {
                drop(tx);
                let _ = writer.await;
                return Err(CasError::Body(e.to_string()));
            }
        }
    }
    let _ = tx.send(Piece::End).await;
    drop(tx);
    writer
        .await
        .map_err(|e| CasError::Io(io::Error::other(e)))?
}
