//! The cluster's errors as the protocols know them: the same `StoreError`
//! a single node gives, so that each protocol answers alike on either.

use crate::cache::StoreError;
use crate::cluster::ClusterError;

impl From<ClusterError> for StoreError {
    fn from(e: ClusterError) -> StoreError {
        match e {
            ClusterError::Content(e) => StoreError::Cas(e),
            ClusterError::Full {
                needed,
                used,
                hard_limit,
            } => StoreError::Full {
                needed,
                hard_limit,
                why: format!("; the cluster stores {used} bytes"),
            },
            ClusterError::MissingBlobs(ids) => match ids.first() {
                Some(id) => StoreError::MissingBlob(*id),
                None => StoreError::Unavailable("an entry's blobs changed; retry".into()),
            },
            ClusterError::Lost(id) => StoreError::Gone(id),
            ClusterError::UploadUnknown(id) => StoreError::UploadUnknown(id),
            ClusterError::UploadOffset { len } => StoreError::UploadOffset { len },
            ClusterError::UploadLength { len, expected } => {
                StoreError::UploadLength { len, expected }
            }
            ClusterError::UploadGap { missing_at } => StoreError::UploadGap { missing_at },
            ClusterError::PartUnknown(part) => StoreError::PartUnknown(part),
            // A GC of the same bytes outlasting the wait, the database or the
            // object store away after retries: worth retrying, never a 500.
            e @ (ClusterError::Busy(_)
            | ClusterError::Postgres(_)
            | ClusterError::Pool(_)
            | ClusterError::Objects(_)) => StoreError::Unavailable(e.to_string()),
            e @ (ClusterError::Config(_)
            | ClusterError::Migration { .. }
            | ClusterError::SchemaNewer { .. }
            | ClusterError::SchemaOlder { .. }
            | ClusterError::Corrupt(_)
            | ClusterError::Incomplete(_)) => StoreError::Io(std::io::Error::other(e.to_string())),
        }
    }
}
