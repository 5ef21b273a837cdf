//! Cluster mode (DESIGN.md §Scale-out, docs/CLUSTER.md): replicas share
//! PostgreSQL for metadata and an S3-compatible object store for bytes.
//!
//! `store.rs` (`ClusterStore`) composes the rest into what protocols call;
//! the leader's work is `duties.rs`. `serve` refuses `cluster.enabled` until
//! the protocols run on `ClusterStore` (docs/CLUSTER.md, "Remaining work").

mod catch_up;
mod change;
pub mod collect;
pub mod duties;
pub mod entries;
pub mod entry_rows;
pub mod evict;
pub mod evictions;
mod generations;
pub mod leader;
pub mod links;
pub mod listen;
pub mod listing;
pub mod memo;
pub mod meta;
pub mod names;
pub mod objects;
pub mod pg;
pub mod replica;
pub mod replicas;
pub mod reservations;
pub mod schema;
mod secrets;
pub mod status;
pub mod store;
mod store_admin;
mod store_lookups;
mod store_named;
mod store_names;
mod store_reads;
mod store_record;
mod store_sessions;
mod store_upkeep;
mod store_uploads;
pub mod sweep;
pub mod tier;
mod tier_boot;
pub mod tokens;
pub mod touches;
pub mod uploads;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Config(String),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: i32,
        source: tokio_postgres::Error,
    },
    #[error(
        "the database's schema is version {found}, newer than this binary's {binary}: \
         run a larder at least as new as the one that migrated it"
    )]
    SchemaNewer { found: i32, binary: i32 },
    #[error(
        "the database's schema is version {found}, older than this binary's {binary}: \
         run `larder cluster migrate` first"
    )]
    SchemaOlder { found: i32, binary: i32 },
    #[error("object store: {0}")]
    Objects(#[from] objects::ObjectsError),
    /// Content that fails verification (a digest mismatch, over a limit).
    #[error("{0}")]
    Content(#[from] crate::cas::CasError),
    /// Recording the blob would cross the cluster's hard limit.
    #[error("storage is full: {needed} more bytes would take {used} past the hard limit of {hard_limit} bytes")]
    Full {
        needed: u64,
        used: u64,
        hard_limit: u64,
    },
    /// An entry's pins that are not live blobs (never pushed, or collected).
    #[error("blobs not stored: {0:?}")]
    MissingBlobs(Vec<crate::cas::ContentId>),
    /// The blob's object is gone from the object store (deleted behind
    /// Larder's back); the entries that needed it were dropped, so this is
    /// a miss.
    #[error("blob {0} is no longer stored")]
    Lost(crate::cas::ContentId),
    /// The same bytes stayed under deletion by GC for too long.
    #[error("blob {0} is being collected; try again")]
    Busy(crate::cas::ContentId),
    /// A record that cannot be read back (a column out of its domain).
    #[error("corrupt cluster record: {0}")]
    Corrupt(String),
    /// An upload finished with bytes missing.
    #[error("{0}")]
    Incomplete(String),
    // The upload errors below are `StoreError`'s, one for one, so that a
    // protocol answers the same whichever store it runs on.
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
}

impl ClusterError {
    /// A deadlock or serialization failure: the database rolled this
    /// transaction back for another's sake, and running it again succeeds.
    pub fn is_transient(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            ClusterError::Postgres(e) => e.code().is_some_and(|c| {
                *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
            }),
            _ => false,
        }
    }
}

/// This replica's name: `cluster.replica_id`, else the host name.
pub fn replica_id(cfg: &crate::config::ClusterConfig) -> String {
    if !cfg.replica_id.is_empty() {
        return cfg.replica_id.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "larder".into())
}

/// The application name a replica's sessions carry ("larder/<replica>").
pub fn application_name(replica: &str) -> String {
    format!("{APPLICATION_PREFIX}{replica}")
}

/// The replica an application name (`application_name`) belongs to.
pub fn replica_of(application: &str) -> &str {
    application
        .strip_prefix(APPLICATION_PREFIX)
        .unwrap_or(application)
}

const APPLICATION_PREFIX: &str = "larder/";

/// The index's clock (`cache::now_ms`) as PostgreSQL's bigint.
pub(crate) fn now_ms() -> i64 {
    crate::cache::now_ms() as i64
}
