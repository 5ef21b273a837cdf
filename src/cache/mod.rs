//! The domain every protocol calls: blobs now; entries, pins, LRU and quotas
//! build on the same `Store`. Nothing here knows HTTP.

mod access;
mod blobs;
mod budget;
mod chunk_io;
mod chunks;
mod content_entries;
mod disk;
mod entries;
mod errors;
mod evict;
mod fsck;
mod gc;
mod leases;
mod leftovers;
mod listing;
mod named_uploads;
mod record;
mod release;
mod reservations;
pub mod small;
mod small_writes;
mod uploads;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cas::{Cas, CasError};
use crate::config::{Config, GcConfig};
use crate::datadir::DataDir;
use crate::index::{EntryBatches, GroupCommit, Index, IndexError};

pub use crate::index::{EntryKey, EntryRecord, NewEntry, Protocol};
pub use blobs::{BlobInfo, BlobWrite};
pub use budget::Refusal;
pub use chunks::{chunk_name, chunk_order};
pub use evict::{EvictReport, RECENT_EVICTIONS};
pub use fsck::{fsck, FsckError, FsckReport};
pub use gc::GcReport;
pub use listing::{EntryOrder, EntryPage, NamespaceInfo};
pub use named_uploads::NamedWrite;
pub use reservations::{exact, reservation_id, reservation_number, MAX_PART_NAME};
pub use uploads::UploadState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Cas(#[from] CasError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("blob store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob {0} is not stored")]
    MissingBlob(crate::cas::ContentId),
    #[error("upload {0} is unknown or expired")]
    UploadUnknown(String),
    #[error("upload is at offset {len}, the chunk starts elsewhere")]
    UploadOffset { len: u64 },
    #[error("upload has {len} bytes, not the {expected} announced")]
    UploadLength { len: u64, expected: u64 },
    #[error("upload is missing bytes from offset {missing_at} on: a chunk was never received")]
    UploadGap { missing_at: u64 },
    #[error("part {0:?} of the upload was never staged")]
    PartUnknown(String),
    #[error("storage is full: {needed} more bytes would cross the hard limit of {hard_limit} bytes{why}")]
    Full {
        needed: u64,
        hard_limit: u64,
        /// What holds the space, starting with "; ".
        why: String,
    },
    /// What holds the data cannot be reached (cluster mode: the database or
    /// the object store, after retries): a 503, worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A recorded blob whose bytes are gone (cluster mode: deleted from the
    /// object store behind Larder's back). Its entries are dropped; the
    /// request is answered as a miss.
    #[error("blob {0} is no longer stored")]
    Gone(crate::cas::ContentId),
}

impl From<crate::index::PutEntryError> for StoreError {
    fn from(e: crate::index::PutEntryError) -> Self {
        match e {
            crate::index::PutEntryError::MissingBlob(id) => StoreError::MissingBlob(id),
            crate::index::PutEntryError::Index(e) => StoreError::Index(e),
        }
    }
}

/// Blob files, their index, and the group commit that makes writes durable.
pub struct Store {
    cas: Cas,
    index: Index,
    commit: GroupCommit,
    /// Entry writes that share a transaction and a flush (blocking callers).
    batches: Arc<EntryBatches>,
    /// Small writes (values, manifests, pushed blobs), made durable in
    /// batches by one thread.
    small_writes: small_writes::SmallWrites,
    uploads: uploads::Uploads,
    access: access::Access,
    leases: Arc<leases::Leases>,
    /// Manifests and other small content, served without a file read.
    small: small::SmallContent,
    budget: budget::Budget,
    disk: Arc<disk::Disk>,
    locks: Arc<BlobLocks>,
    gc: GcConfig,
    /// Byte quotas by namespace.
    quotas: std::collections::HashMap<String, u64>,
    /// Blobs whose records are removed and whose files await deletion.
    pending_deletes: Mutex<Vec<crate::cas::ContentId>>,
    /// Cleared at a clean close; left behind by a crash (`DataDir::begin_run`).
    running_marker: std::path::PathBuf,
    evicted_entries: AtomicU64,
    freed_bytes: AtomicU64,
    /// The last eviction passes that removed something (see `evict.rs`).
    recent_evictions: Mutex<std::collections::VecDeque<(u64, EvictReport)>>,
}

/// Store-wide numbers for `/metrics` and the admin API.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StoreStats {
    pub blobs: u64,
    pub entries: u64,
    pub uploads: u64,
    pub evicted_entries: u64,
    pub evicted_bytes: u64,
}

/// Striped locks that order publishing a blob against deleting it.
pub(crate) struct BlobLocks([Mutex<()>; 64]);

impl BlobLocks {
    fn new() -> BlobLocks {
        BlobLocks(std::array::from_fn(|_| Mutex::new(())))
    }

    pub fn lock(&self, id: &crate::cas::ContentId) -> std::sync::MutexGuard<'_, ()> {
        self.stripe(Self::stripe_of(id))
    }

    /// The locks of several blobs, each stripe once and in one order: no
    /// other holder takes more than one, so this cannot deadlock with them.
    pub fn lock_all<'a>(
        &self,
        ids: impl Iterator<Item = &'a crate::cas::ContentId>,
    ) -> Vec<std::sync::MutexGuard<'_, ()>> {
        let stripes: std::collections::BTreeSet<usize> = ids.map(Self::stripe_of).collect();
        stripes.into_iter().map(|s| self.stripe(s)).collect()
    }

    fn stripe_of(id: &crate::cas::ContentId) -> usize {
        id.0[0] as usize % 64
    }

    fn stripe(&self, i: usize) -> std::sync::MutexGuard<'_, ()> {
        self.0[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store {
    /// Opens the store of a locked data dir. Must run inside a tokio runtime
    /// (the group-commit flusher is a task).
    pub fn open(dir: &DataDir, config: &Config) -> Result<Store, StoreError> {
        let disk = Arc::new(disk::Disk::open(
            dir.root(),
            config.storage.disk_reserve.bytes(),
        ));
        let mut cas = Cas::open(&dir.blobs_dir(), &dir.tmp_dir())?;
        if !config.storage.group_sync {
            cas = cas.without_group_sync();
        }
        let index = Index::open(&dir.index_dir())?;
        let commit = GroupCommit::start(index.clone());
        let batches = Arc::new(EntryBatches::new(index.clone(), commit.flushes.clone()));
        let uploads = uploads::Uploads::open(&dir.uploads_dir())?;
        if dir.needs_sweep() {
            // Not fatal: what stays is reported by fsck and swept next time.
            if let Err(e) = leftovers::sweep(&cas, &index, &dir.uploads_dir()) {
                tracing::warn!(error = %e, "could not remove the leftovers of the last run");
            }
        }
        if let Err(e) = dir.begin_run() {
            tracing::warn!(error = %e, "cannot mark the data dir in use; a crash would leave leftovers until fsck --repair");
        }
        let budget = budget::Budget::new(&config.storage);
        budget.add_uploads(uploads.bytes_on_disk()?);
        let leases = Arc::new(leases::Leases::new(
            config.gc.lease.0.as_millis() as u64,
            index.leases()?,
        ));
        let locks = Arc::new(BlobLocks::new());
        let small_writes = small_writes::SmallWrites::start(record::Parts {
            cas: cas.clone(),
            index: index.clone(),
            batches: batches.clone(),
            locks: locks.clone(),
        })?;
        let store = Store {
            cas,
            index,
            commit,
            batches,
            small_writes,
            uploads,
            access: access::Access::default(),
            leases,
            small: small::SmallContent::new(config.storage.memory_cache.bytes()),
            budget,
            disk,
            locks,
            gc: config.gc.clone(),
            quotas: config
                .namespaces
                .iter()
                .filter_map(|(ns, c)| Some((ns.clone(), c.max_size?.bytes())))
                .collect(),
            pending_deletes: Mutex::new(Vec::new()),
            running_marker: dir.running_marker(),
            evicted_entries: AtomicU64::new(0),
            freed_bytes: AtomicU64::new(0),
            recent_evictions: Mutex::default(),
        };
        store.empty_trash()?;
        Ok(store)
    }

    pub fn cas(&self) -> &Cas {
        &self.cas
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            blobs: self.index.blob_count().unwrap_or(0),
            entries: Protocol::ALL
                .iter()
                .map(|p| self.index.entry_count(*p))
                .sum(),
            uploads: self.index.uploads().map(|u| u.len() as u64).unwrap_or(0),
            evicted_entries: self.evicted_entries.load(Ordering::Relaxed),
            evicted_bytes: self.freed_bytes.load(Ordering::Relaxed),
        }
    }

    pub fn entry_count(&self, protocol: Protocol) -> u64 {
        self.index.entry_count(protocol)
    }

    pub fn flush_histogram(&self) -> &crate::metrics::Histogram {
        &self.commit.flushes
    }

    /// Flushes everything and releases the index, so the data dir can be
    /// reopened (in this process too) as soon as this returns.
    pub async fn close(self) -> Result<(), StoreError> {
        self.flush().await?;
        let Store {
            index,
            commit,
            running_marker,
            small_writes,
            ..
        } = self;
        // Its thread holds the index open until it ends.
        drop(small_writes);
        commit.close().await;
        // Writes that a broken index dropped may have left orphan files:
        // keep the mark, so the next start sweeps them.
        let clean = index.recoveries() == 0;
        drop(index);
        if clean {
            crate::datadir::end_run(&running_marker)?;
        }
        Ok(())
    }

    /// Flushes recency and the index; used at shutdown so nothing buffered is lost.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.flush_access().await?;
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.flush())
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        Ok(())
    }
}

/// Wall-clock Unix milliseconds, the unit of every time in the index.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
