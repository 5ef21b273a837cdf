//! The index: every record Larder keeps about blobs, entries and uploads, in
//! sled. This is the only module that imports sled; callers see typed records.
//!
//! Durability: sled writes land in memory first. A write that will be
//! acknowledged to a client waits on `GroupCommit`, which shares one flush
//! among every writer that arrived meanwhile, or goes through
//! `EntryBatches`, which also shares the transaction.

mod batch;
mod blob_record;
mod blobs;
mod codec;
mod commit;
mod entries;
mod entry_record;
mod entry_tx;
mod hot;
mod leases;
mod names;
mod pins;
mod rebuild;
mod reopen;
mod tokens;
mod upgrade;
mod uploads;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{ArcRwLockReadGuard, MappedRwLockReadGuard, RawRwLock, RwLock, RwLockReadGuard};

pub use batch::{EntryBatches, EntryWrite};
pub use blob_record::BlobRecord;
pub use commit::GroupCommit;
pub use entries::{EntryKey, EntryRecord, EntryWith, NewEntry, Protocol, PutEntryError};
pub use rebuild::Derived;
pub use uploads::UploadRecord;

/// sled's page cache; larger only speeds up cold lookups on big indexes.
const CACHE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index storage failed: {0}")]
    Storage(#[from] sled::Error),
    #[error("index record is corrupt: {0}")]
    Corrupt(String),
    #[error("index is unavailable: {0}")]
    Unavailable(&'static str),
}

impl IndexError {
    /// The error of a write refused because the storage is full (ENOSPC):
    /// what writers that shared a failed flush get, so they can say so.
    pub fn disk_full() -> IndexError {
        IndexError::Storage(sled::Error::Io(std::io::ErrorKind::StorageFull.into()))
    }

    /// What each of the writes that shared a failed write or flush gets:
    /// "storage is full" when it was, else a plain failure.
    pub fn failed_write(e: &IndexError) -> IndexError {
        if e.is_disk_full() {
            IndexError::disk_full()
        } else {
            IndexError::Unavailable("index write failed")
        }
    }

    /// True when the storage had no room left (ENOSPC, or EDQUOT: a quota).
    pub fn is_disk_full(&self) -> bool {
        match self {
            IndexError::Storage(sled::Error::Io(e)) => crate::cas::is_disk_full(e),
            _ => false,
        }
    }
}

/// Key of the usage counter in `meta`: bytes of all blobs with a record.
const USED_BYTES: &[u8] = b"used_bytes";
/// Key of the blob counter in `meta`: blobs with a record. sled's `len`
/// walks the whole tree, 1.6 s and every page in memory at 1M blobs, too
/// much for each metrics scrape.
const BLOB_COUNT: &[u8] = b"blob_count";

type TxTree = sled::transaction::TransactionalTree;

/// Adds `delta` to a u64 counter inside a transaction (never below zero).
fn add_to_counter<E>(
    tree: &TxTree,
    key: &[u8],
    delta: i64,
) -> sled::transaction::ConflictableTransactionResult<u64, E> {
    let old = tree.get(key)?.map(|v| codec::decode_u64(&v)).unwrap_or(0);
    let new = old.saturating_add_signed(delta);
    if new == 0 {
        tree.remove(key)?;
    } else {
        tree.insert(key, &new.to_be_bytes())?;
    }
    Ok(new)
}

fn tx_error(e: sled::transaction::TransactionError<IndexError>) -> IndexError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => IndexError::Storage(e),
    }
}

/// The index, shared by every clone. Each call reaches sled through a read
/// lock on the open database, so `reopen` can close it and open it again
/// once no call is in flight.
#[derive(Clone)]
pub struct Index {
    live: Arc<Live>,
}

struct Live {
    dir: PathBuf,
    /// `None` only while `reopen` holds the write lock.
    open: Arc<RwLock<Option<Trees>>>,
    reopens: AtomicU64,
    /// Reopens of a database that refused writes (see `recover`).
    recoveries: AtomicU64,
    hot: hot::HotEntries,
}

/// The open database and its trees.
struct Trees {
    db: sled::Db,
    /// sled's log file, for the fsync `flush` adds to sled's own.
    log_file: std::fs::File,
    blobs: sled::Tree,
    aliases: sled::Tree,
    entries: sled::Tree,
    entry_keys: sled::Tree,
    lru: sled::Tree,
    unpinned: sled::Tree,
    names: sled::Tree,
    name_refs: sled::Tree,
    links: sled::Tree,
    uploads: sled::Tree,
    meta: sled::Tree,
    trash: sled::Tree,
    ns_usage: sled::Tree,
    ns_lru: sled::Tree,
    parents: sled::Tree,
    revoked: sled::Tree,
    entry_counts: sled::Tree,
    tokens: sled::Tree,
    leases: sled::Tree,
}

/// How long an open waits for the file lock of a database this process
/// just closed: sled's I/O threads can hold it for a moment after the last
/// handle is gone. Another process never gets this far: the data dir's own
/// lock keeps a second larder out.
const LOCK_WAIT: Duration = Duration::from_secs(10);

fn open_sled(dir: &Path) -> Result<sled::Db, IndexError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            // Durability comes from GroupCommit; sled's timer flush is only a
            // backstop for records nobody waits on (access times).
            .flush_every_ms(Some(1000))
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            opened => return Ok(opened?),
        }
    }
}

impl Trees {
    fn open(dir: &Path) -> Result<Trees, IndexError> {
        let db = open_sled(dir)?;
        let blobs = db.open_tree("blobs")?;
        let links = db.open_tree("links")?;
        Index::upgrade_format_1(&db, &blobs, &links)?;
        let meta = db.open_tree("meta")?;
        Index::count_blobs_once(&blobs, &meta)?;
        // sled's recovery decodes its whole snapshot and log into buffers it
        // frees before `open` returns: ~50 MiB at 1M blobs.
        crate::heap::return_free_heap();
        let log_file =
            std::fs::File::open(dir.join("db")).map_err(|e| IndexError::Storage(e.into()))?;
        Ok(Trees {
            log_file,
            blobs,
            aliases: db.open_tree("aliases")?,
            entries: db.open_tree("entries")?,
            entry_keys: db.open_tree("entry_keys")?,
            lru: db.open_tree("lru")?,
            unpinned: db.open_tree("unpinned")?,
            names: db.open_tree("names")?,
            name_refs: db.open_tree("name_refs")?,
            links,
            uploads: db.open_tree("uploads")?,
            meta,
            trash: db.open_tree("trash")?,
            ns_usage: db.open_tree("ns_usage")?,
            ns_lru: db.open_tree("ns_lru")?,
            parents: db.open_tree("parents")?,
            revoked: db.open_tree("revoked")?,
            entry_counts: db.open_tree("entry_counts")?,
            leases: db.open_tree("leases")?,
            tokens: db.open_tree("tokens")?,
            db,
        })
    }

    /// See `Index::flush`.
    fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        self.log_file
            .sync_data()
            .map_err(|e| IndexError::Storage(e.into()))?;
        Ok(())
    }
}

impl Index {
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        Ok(Index {
            live: Arc::new(Live {
                dir: dir.to_owned(),
                open: Arc::new(RwLock::new(Some(Trees::open(dir)?))),
                reopens: AtomicU64::new(0),
                recoveries: AtomicU64::new(0),
                hot: hot::HotEntries::new(),
            }),
        })
    }

    /// The open database, for the length of one call. Recursive, so a call
    /// that makes another never waits behind a waiting `reopen`.
    fn t(&self) -> MappedRwLockReadGuard<'_, Trees> {
        let open = match self.live.open.try_read_recursive() {
            Some(open) => open,
            None => off_runtime(|| self.live.open.read_recursive()),
        };
        RwLockReadGuard::map(open, |open| {
            open.as_ref()
                .expect("the index is open whenever reopen does not hold the write lock")
        })
    }

    /// The open database, held by an iterator for as long as it lives.
    fn hold<I>(&self, iter: impl FnOnce(&Trees) -> I) -> Held<I> {
        let open = match self.live.open.try_read_arc() {
            Some(open) => open,
            None => off_runtime(|| self.live.open.read_arc_recursive()),
        };
        let trees = open
            .as_ref()
            .expect("the index is open whenever reopen does not hold the write lock");
        Held {
            iter: iter(trees),
            _open: open,
        }
    }

    /// Makes every write so far durable. Blocking: call it off the runtime.
    ///
    /// sled's flush writes its log with `sync_file_range`, which neither
    /// flushes the disk's write cache nor the file's metadata: without the
    /// fsync below, a power loss could take back an acknowledged write.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.t().flush()
    }

    /// A cheap read that fails if the index is unusable (readiness probe).
    pub fn check(&self) -> Result<(), IndexError> {
        self.t().db.get(b"readiness-probe")?;
        Ok(())
    }
}

/// Waits for a reopen (the only holder of the write lock). Lookups run on
/// the async runtime, since sled answers them from memory; while the index
/// reopens they would stall a runtime thread for as long as a start, so the
/// runtime is told to move its other tasks off this thread first.
fn off_runtime<T>(wait: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// An iterator over index records that keeps the database it reads open:
/// `reopen` waits for it. Fields drop in order, so the iterator's sled
/// handles are gone before the lock is released.
struct Held<I> {
    iter: I,
    _open: ArcRwLockReadGuard<RawRwLock, Option<Trees>>,
}

impl<I: Iterator> Iterator for Held<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.iter.next()
    }
}
