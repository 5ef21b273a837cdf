//! The index: every record Larder keeps about blobs, entries and uploads, in
//! sled. This is the only module that imports sled; callers see typed records.
//!
//! Durability: sled writes land in memory first. A write that will be
//! acknowledged to a client waits on `GroupCommit`, which shares one flush
//! among every writer that arrived meanwhile, or goes through
//! `EntryBatches`, which also shares the transaction.

mod batch;
mod blobs;
mod codec;
mod commit;
mod entries;
mod names;
mod pins;
mod rebuild;
mod tokens;
mod upgrade;
mod uploads;

use std::path::Path;

pub use batch::{EntryBatches, EntryWrite};
pub use blobs::BlobRecord;
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

#[derive(Clone)]
pub struct Index {
    db: sled::Db,
    /// sled's log file, for the fsync `flush` adds to sled's own.
    log_file: std::sync::Arc<std::fs::File>,
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
}

impl Index {
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            // Durability comes from GroupCommit; sled's timer flush is only a
            // backstop for records nobody waits on (access times).
            .flush_every_ms(Some(1000))
            .open()?;
        let blobs = db.open_tree("blobs")?;
        let links = db.open_tree("links")?;
        Index::upgrade_format_1(&db, &blobs, &links)?;
        let meta = db.open_tree("meta")?;
        Index::count_blobs_once(&blobs, &meta)?;
        // sled's recovery decodes its whole snapshot and log into buffers it
        // frees before `open` returns: ~50 MiB at 1M blobs.
        crate::heap::return_free_heap();
        let log_file = std::sync::Arc::new(
            std::fs::File::open(dir.join("db")).map_err(|e| IndexError::Storage(e.into()))?,
        );
        Ok(Index {
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
            tokens: db.open_tree("tokens")?,
            db,
        })
    }

    /// Makes every write so far durable. Blocking: call it off the runtime.
    ///
    /// sled's flush writes its log with `sync_file_range`, which neither
    /// flushes the disk's write cache nor the file's metadata: without the
    /// fsync below, a power loss could take back an acknowledged write.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        self.log_file
            .sync_data()
            .map_err(|e| IndexError::Storage(e.into()))?;
        Ok(())
    }

    /// A cheap read that fails if the index is unusable (readiness probe).
    pub fn check(&self) -> Result<(), IndexError> {
        self.db.get(b"readiness-probe")?;
        Ok(())
    }
}
