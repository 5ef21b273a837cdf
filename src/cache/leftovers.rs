//! Leftovers of requests a crash interrupted, removed at the next start:
//! blob files published just before the crash whose index record was never
//! made durable, upload sessions that never received a byte (their creation is
//! not waited for, so nothing acknowledged depends on them), and files in
//! `uploads/` that no session owns. None holds an acknowledged write, and
//! orphan blob files hold disk space the budget does not count.
//!
//! The sweep runs while the store opens, before anything is served, so no
//! write is in flight. It runs only after a run that did not stop cleanly
//! (see `DataDir::needs_sweep`): a clean stop leaves none, and listing every
//! blob file costs about a second per million.

use std::path::Path;

use crate::cas::Cas;
use crate::index::{Index, IndexError};

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub blob_files: u64,
    pub blob_bytes: u64,
    pub sessions: u64,
    pub upload_files: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Whether session `id` never received a byte: it has no file, and no
/// staged part either (those live in a second session, its stage).
pub(super) fn holds_nothing(uploads: &Path, id: &str) -> bool {
    !uploads.join(id).is_file() && !uploads.join(super::reservations::stage_id(id)).is_file()
}

/// Removes the leftovers of interrupted requests; blocking. Files an
/// unfinished deletion still lists are left to the trash.
pub(super) fn sweep(cas: &Cas, index: &Index, uploads: &Path) -> Result<Swept, SweepError> {
    let mut swept = Swept::default();
    let trash: std::collections::HashSet<_> = index.trash()?.into_iter().collect();
    for (id, len) in cas.list()? {
        if index.blob(&id)?.is_none() && !trash.contains(&id) {
            cas.remove(&id)?;
            swept.blob_files += 1;
            swept.blob_bytes += len;
        }
    }
    // Files first: a stage's file whose session record was lost leaves its
    // reservation holding nothing, which the pass below must then see.
    for file in std::fs::read_dir(uploads)? {
        let file = file?;
        let owned = file
            .file_name()
            .to_str()
            .is_some_and(|n| super::uploads::valid_id(n) && matches!(index.upload(n), Ok(Some(_))));
        if !owned {
            std::fs::remove_file(file.path())?;
            swept.upload_files += 1;
        }
    }
    for (id, _) in index.uploads()? {
        if holds_nothing(uploads, &id) {
            index.remove_upload(&id)?;
            swept.sessions += 1;
        }
    }
    if swept != Swept::default() {
        index.flush()?;
        tracing::info!(
            blob_files = swept.blob_files,
            blob_bytes = swept.blob_bytes,
            upload_sessions = swept.sessions,
            upload_files = swept.upload_files,
            "removed leftovers of requests interrupted by the last stop"
        );
    } else {
        tracing::info!("the last run did not stop cleanly; it left nothing behind");
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::UploadRecord;

    /// A crash after a reservation's staged chunk reached its file but
    /// before the stage's session record did: the stage file is unowned,
    /// and once it is gone the reservation holds nothing. One sweep removes
    /// both, so fsck after the next clean stop finds no leftover.
    #[test]
    fn a_stage_file_without_its_record_and_its_empty_reservation_go_in_one_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let (blobs, tmp, uploads) = (
            dir.path().join("blobs"),
            dir.path().join("tmp"),
            dir.path().join("uploads"),
        );
        std::fs::create_dir_all(&uploads).unwrap();
        let cas = Cas::open(&blobs, &tmp).unwrap();
        let index = Index::open(&dir.path().join("index")).unwrap();
        let reservation = super::super::reservations::reservation_id(7);
        let rec = UploadRecord {
            scope: "gha:team:key".into(),
            created: 1,
            updated: 1,
            size: Some(20),
        };
        index.put_upload(&reservation, &rec).unwrap();
        let stage = super::super::reservations::stage_id(&reservation);
        std::fs::write(uploads.join(&stage), b"chunk").unwrap();

        let swept = sweep(&cas, &index, &uploads).unwrap();
        assert_eq!(swept.upload_files, 1);
        assert_eq!(swept.sessions, 1);
        assert!(index.upload(&reservation).unwrap().is_none());
        assert_eq!(sweep(&cas, &index, &uploads).unwrap(), Swept::default());
    }
}
