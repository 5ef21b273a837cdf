//! Blob files. One file per distinct content, named by its BLAKE3 hex and
//! sharded by its first byte: `blobs/ab/ab12…`. Files only appear there
//! complete (temp → rename), so a file that exists holds exactly the bytes
//! its name says; it is made durable (fsync of the file before the rename
//! and of the directory after, or for small files one shared `syncfs`, see
//! `sync`) before the index records it. After a crash, files the index does
//! not record are removed before anything is served.

mod digest;
mod ingest;
mod read;
mod sync;
mod tmpfile;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use digest::{ContentId, Digest, DigestError};
pub use ingest::{ingest_bytes, ingest_copy, ingest_stream, verify_file, Verified};
pub use read::{BlobStream, FileRange, READ_CHUNK};
pub use sync::SyncGroup;

/// What ingest learned about a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub id: ContentId,
    pub sha256: [u8; 32],
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CasError {
    #[error("content does not match digest {expected}")]
    DigestMismatch { expected: Digest },
    #[error("blob is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("blob store I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// The blob directory tree of one data dir.
#[derive(Clone, Debug)]
pub struct Cas {
    blobs: PathBuf,
    tmp: PathBuf,
    /// Anonymous (`O_TMPFILE`) temp files, where the filesystem has them;
    /// otherwise temp files are named in `tmp`. Started on the first write.
    anonymous: Option<Arc<OnceLock<Arc<tmpfile::TempPool>>>>,
    /// Shared syncs for small blobs (Linux, where `syncfs` exists).
    group: Option<Arc<sync::SyncGroup>>,
}

/// Blobs up to this size are made durable by a shared sync: above it the
/// file's own fsync is the cost, not the syscalls around it.
const GROUP_SYNC_MAX: u64 = 256 << 10;

impl Cas {
    /// Opens (creating if needed) the blob tree under `root`; `tmp` must be
    /// on the same filesystem so that publishing a blob is a rename.
    pub fn open(blobs: &Path, tmp: &Path) -> io::Result<Cas> {
        std::fs::create_dir_all(tmp)?;
        for shard in 0..=255u8 {
            std::fs::create_dir_all(blobs.join(format!("{shard:02x}")))?;
        }
        Ok(Cas {
            blobs: blobs.to_owned(),
            tmp: tmp.to_owned(),
            anonymous: tmpfile::anonymous_supported(tmp).then(Default::default),
            group: cfg!(target_os = "linux")
                .then(|| sync::SyncGroup::open(blobs).map(Arc::new))
                .transpose()?,
        })
    }

    /// The same store with every blob made durable by its own fsyncs
    /// (`storage.group_sync = false`).
    pub fn without_group_sync(self) -> Cas {
        Cas {
            group: None,
            ..self
        }
    }

    /// Whether a new blob of `size` bytes is made durable by a shared sync.
    pub fn syncs_as_group(&self, size: u64) -> bool {
        self.sync_group(size).is_some()
    }

    /// The shared sync that makes a new blob of `size` bytes durable, when
    /// one does; otherwise the blob's own fsyncs do.
    fn sync_group(&self, size: u64) -> Option<&Arc<sync::SyncGroup>> {
        self.group.as_ref().filter(|_| size <= GROUP_SYNC_MAX)
    }

    /// The same store, writing named temp files as on filesystems without
    /// `O_TMPFILE` (so tests cover that path on any machine).
    pub fn with_named_temp_files(self) -> Cas {
        Cas {
            anonymous: None,
            ..self
        }
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    fn temp_file(&self) -> io::Result<tmpfile::TempFile> {
        match &self.anonymous {
            Some(pool) => pool
                .get_or_init(|| tmpfile::TempPool::start(&self.tmp))
                .take(),
            None => tmpfile::TempFile::create(&self.tmp, false),
        }
    }

    pub fn path(&self, id: &ContentId) -> PathBuf {
        let hex = id.to_hex();
        self.blobs.join(&hex[..2]).join(hex)
    }

    fn shard_dir(&self, id: &ContentId) -> PathBuf {
        self.blobs.join(format!("{:02x}", id.0[0]))
    }

    pub fn exists(&self, id: &ContentId) -> bool {
        self.path(id).is_file()
    }

    /// Deletes a blob file; a file already gone is not an error.
    pub fn remove(&self, id: &ContentId) -> io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every blob file on disk with its size, for recounts and orphan checks.
    pub fn list(&self) -> io::Result<Vec<(ContentId, u64)>> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(&self.blobs)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(shard.path())? {
                let file = file?;
                let name = file.file_name();
                if let Some(id) = name.to_str().and_then(ContentId::from_hex) {
                    out.push((id, file.metadata()?.len()));
                }
            }
        }
        Ok(out)
    }
}

/// True when an I/O error means the storage has no room left: ENOSPC, or
/// EDQUOT (a quota). Both are a full disk as far as clients can tell.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// fsync a directory so that a rename or unlink in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
