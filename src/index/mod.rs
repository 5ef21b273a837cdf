//! The index: every record Larder keeps about blobs, entries and uploads, in
//! sled. This is the only module that imports sled; callers see typed records.
//!
//! Durability: sled writes land in memory first. A write that will be
//! acknowledged to a client waits on `GroupCommit`, which shares one flush
//! among every writer that arrived meanwhile.

mod blobs;
mod codec;
mod commit;
mod entries;
mod names;
mod uploads;

use std::path::Path;

pub use blobs::BlobRecord;
pub use commit::GroupCommit;
pub use entries::{EntryKey, EntryRecord, NewEntry, Protocol, PutEntryError};
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

#[derive(Clone)]
pub struct Index {
    db: sled::Db,
    blobs: sled::Tree,
    aliases: sled::Tree,
    entries: sled::Tree,
    entry_keys: sled::Tree,
    lru: sled::Tree,
    pins: sled::Tree,
    unpinned: sled::Tree,
    names: sled::Tree,
    links: sled::Tree,
    uploads: sled::Tree,
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
        Ok(Index {
            blobs: db.open_tree("blobs")?,
            aliases: db.open_tree("aliases")?,
            entries: db.open_tree("entries")?,
            entry_keys: db.open_tree("entry_keys")?,
            lru: db.open_tree("lru")?,
            pins: db.open_tree("pins")?,
            unpinned: db.open_tree("unpinned")?,
            names: db.open_tree("names")?,
            links: db.open_tree("links")?,
            uploads: db.open_tree("uploads")?,
            db,
        })
    }

    /// Makes every write so far durable. Blocking: call it off the runtime.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        Ok(())
    }

    /// A cheap read that fails if the index is unusable (readiness probe).
    pub fn check(&self) -> Result<(), IndexError> {
        self.db.get(b"readiness-probe")?;
        Ok(())
    }
}
