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
    for (id, _) in index.uploads()? {
        if holds_nothing(uploads, &id) {
            index.remove_upload(&id)?;
            swept.sessions += 1;
        }
    }
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
