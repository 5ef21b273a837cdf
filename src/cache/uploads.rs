//! Upload sessions: resumable, chunked writes that become a blob when
//! finished. Bytes accumulate in `uploads/<id>`; the index records the owning
//! scope so sessions survive a restart, and idle ones expire.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::OwnedMutexGuard;

use super::chunk_io::{write_at, ChunkError, WRITE_BATCH};
use super::{now_ms, BlobInfo, BlobWrite, Store, StoreError};
use crate::cas::{self, CasError, Digest};
use crate::index::UploadRecord;

pub(super) struct Uploads {
    dir: PathBuf,
    /// One writer per session at a time; chunks must not interleave.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Uploads {
    pub fn open(dir: &Path) -> std::io::Result<Uploads> {
        std::fs::create_dir_all(dir)?;
        Ok(Uploads {
            dir: dir.to_owned(),
            locks: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Bytes of every session file (counted against the budget at startup).
    pub fn bytes_on_disk(&self) -> std::io::Result<u64> {
        let mut total = 0;
        for f in std::fs::read_dir(&self.dir)? {
            total += f?.metadata()?.len();
        }
        Ok(total)
    }

    /// The lock of session `id` (any string names a lock: reservations
    /// also lock a scope while they check that nobody holds it).
    pub(super) fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(id.to_owned()).or_default().clone()
    }
}

/// Where a session stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    pub id: String,
    pub scope: String,
    /// Bytes received so far.
    pub len: u64,
}

/// Session ids are 32 lowercase hex characters; anything else is unknown
/// (and never reaches the file system).
pub(super) fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a chunk whose body fails keeps of the bytes that arrived.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Partial {
    /// Nothing: the chunk must arrive whole (it was announced with a size).
    Drop,
    /// The bytes before the failure, so a client can resume from there.
    Keep,
}

impl Store {
    pub async fn create_upload(&self, scope: &str) -> Result<UploadState, StoreError> {
        let id = format!("{:032x}", rand::random::<u128>());
        self.create_upload_with_id(scope, id).await
    }

    /// Opens a session under an id the caller chose (a valid, unused one).
    pub(super) async fn create_upload_with_id(
        &self,
        scope: &str,
        id: String,
    ) -> Result<UploadState, StoreError> {
        // Read-only: a session could never take a byte; refused up front.
        self.disk.check_writable()?;
        let now = now_ms();
        // Record first: expiry deletes files in uploads/ that no record owns.
        self.index.put_upload(
            &id,
            &UploadRecord {
                scope: scope.to_owned(),
                created: now,
                updated: now,
                size: None,
            },
        )?;
        // No file and no wait for durability: a session holds no data yet
        // (its file appears with the first chunk), and one lost in a crash
        // answers "upload unknown", which clients handle by starting over.
        // Its first chunk makes it durable.
        Ok(UploadState {
            id,
            scope: scope.to_owned(),
            len: 0,
        })
    }

    /// The session `id` of `scope`, or `UploadUnknown`.
    pub async fn upload(&self, scope: &str, id: &str) -> Result<UploadState, StoreError> {
        let unknown = || StoreError::UploadUnknown(id.to_owned());
        if !valid_id(id) {
            return Err(unknown());
        }
        let rec = self.index.upload(id)?.ok_or_else(unknown)?;
        if rec.scope != scope {
            return Err(unknown());
        }
        let len = match tokio::fs::metadata(self.uploads.path(id)).await {
            Ok(m) => m.len(),
            // No chunk yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(UploadState {
            id: id.to_owned(),
            scope: rec.scope,
            len,
        })
    }

    /// Locks session `id` of `scope` and reads where it stands; the session
    /// is the caller's alone while the guard lives.
    pub(super) async fn lock_upload(
        &self,
        scope: &str,
        id: &str,
    ) -> Result<(OwnedMutexGuard<()>, UploadState), StoreError> {
        let guard = self.uploads.lock(id).lock_owned().await;
        let state = self.upload(scope, id).await?;
        Ok((guard, state))
    }

    /// Appends a chunk. `start`, when the client said where the chunk goes,
    /// must equal the bytes received so far.
    pub async fn append_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        start: Option<u64>,
        body: S,
        limit: u64,
    ) -> Result<UploadState, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let (_guard, mut state) = self.lock_upload(scope, id).await?;
        if start.is_some_and(|s| s != state.len) {
            return Err(StoreError::UploadOffset { len: state.len });
        }
        let end = state.len;
        // A chunk sent with its range is whole or nothing, as the client
        // will resend that range; a streamed one keeps what arrived, which
        // the client can read back (GET) and resume from.
        let partial = if start.is_some() {
            Partial::Drop
        } else {
            Partial::Keep
        };
        self.write_chunk(&mut state, end, body, limit, partial)
            .await?;
        Ok(state)
    }

    /// Writes a body into a session file at `offset` (its end, to append) and
    /// makes it durable. The caller holds the session's lock. The file's length
    /// counts against the budget until the session ends, including any gap a
    /// write past the end leaves, so that gap is reserved before writing.
    /// On failure the file gets its old length back, except that with
    /// `Partial::Keep` a body cut short keeps what arrived before the cut.
    pub(super) async fn write_chunk<S, E>(
        &self,
        state: &mut UploadState,
        offset: u64,
        body: S,
        limit: u64,
        partial: Partial,
    ) -> Result<(), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if offset > limit {
            return Err(CasError::TooLarge { limit }.into());
        }
        let old_len = state.len;
        let held = self.hold(Some(offset.saturating_sub(old_len))).await?;
        let path = self.uploads.path(&state.id);
        let file = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
        })
        .await
        .map_err(std::io::Error::other)?;
        let file = Arc::new(self.noted(file.map_err(StoreError::from))?);
        let body = std::pin::pin!(self.metered(body, &held).ready_chunks(WRITE_BATCH));
        let written = write_at(&file, offset, limit, body).await;
        // A body cut short whose prefix is kept: that prefix is synced and
        // recorded like a chunk, and the cut is reported after.
        let mut cut = None;
        let written = match written {
            Err(ChunkError::Body(e, at)) if partial == Partial::Keep && at > old_len => {
                cut = Some(e);
                Ok(at)
            }
            other => other,
        };
        let result = match written {
            Err(ChunkError::Body(e, _)) => Err(Self::budget_error(&held, CasError::Body(e).into())),
            Err(ChunkError::Store(e)) => Err(e),
            Ok(at) => {
                // Positioned writes report their errors (ENOSPC included) as
                // they happen; the sync then reports writeback errors. Only
                // both succeeding lets the chunk be acknowledged.
                let f = file.clone();
                // A first chunk also made the file's name, which lives in
                // the directory.
                let dir = (old_len == 0).then(|| self.uploads.dir.clone());
                tokio::task::spawn_blocking(move || {
                    f.sync_data()?;
                    dir.map_or(Ok(()), |d| crate::cas::sync_dir(&d))
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
                .map(|()| at)
                .map_err(StoreError::from)
            }
        };
        let at = match result {
            Ok(at) => at,
            Err(e) => {
                // Keep the session's length as it was before this chunk.
                let f = file.clone();
                let _ = tokio::task::spawn_blocking(move || f.set_len(old_len)).await;
                return self.noted(Err(e));
            }
        };
        state.len = old_len.max(at);
        // Counted as session bytes now; `held` releases its reservation on return.
        self.budget.add_uploads(state.len - old_len);
        self.touch_upload(&state.id)?;
        // The chunk's bytes are synced; its session record must be too
        // before the chunk is acknowledged.
        self.durable().await?;
        match cut {
            Some(e) => Err(Self::budget_error(&held, CasError::Body(e).into())),
            None => Ok(()),
        }
    }

    /// Notes that session `id` is in use, so it does not expire as idle.
    pub(super) fn touch_upload(&self, id: &str) -> Result<(), StoreError> {
        if let Some(mut rec) = self.index.upload(id)? {
            rec.updated = now_ms();
            self.index.put_upload(id, &rec)?;
        }
        Ok(())
    }

    /// Completes a session with a final (possibly empty) chunk: the content is
    /// verified against `expected` and becomes a blob readable in `scope`. The
    /// session ends whether or not verification succeeds.
    pub async fn finish_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        body: S,
        expected: Digest,
        limit: u64,
        size_hint: Option<u64>,
    ) -> Result<BlobInfo, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let (_guard, mut state) = self.lock_upload(scope, id).await?;
        if state.len == 0 {
            // The common case (BuildKit: POST, then PUT with the whole blob):
            // hash while writing instead of writing, then reading back.
            self.end_upload(id, 0).await?;
            let write = BlobWrite {
                expected: Some(expected),
                limit,
                scope: Some(scope),
                size_hint,
            };
            return self.put_blob(body, write).await;
        }
        let end = state.len;
        if let Err(e) = self
            .write_chunk(&mut state, end, body, limit, Partial::Drop)
            .await
        {
            self.end_upload(id, state.len).await?;
            return Err(e);
        }
        self.seal_locked(&state, Some(expected), Some(scope)).await
    }

    /// Hashes a complete session file into a blob (checked against
    /// `expected` when given) and ends the session, whether or not the
    /// content verifies. The caller holds the session's lock.
    pub(super) async fn seal_locked(
        &self,
        state: &UploadState,
        expected: Option<Digest>,
        scope: Option<&str>,
    ) -> Result<BlobInfo, StoreError> {
        let path = self.uploads.path(&state.id);
        let want = expected.clone();
        let empty = state.len == 0;
        let verified = tokio::task::spawn_blocking(move || {
            if empty {
                // A session that never got a chunk has no file yet.
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)?;
            }
            cas::verify_file(&path, want.as_ref())
        })
        .await
        .map_err(std::io::Error::other)?;
        let info = match verified {
            Ok(v) => self.commit_blob(v, expected.as_ref(), scope).await,
            Err(e) => Err(e.into()),
        };
        self.end_upload(&state.id, state.len).await?;
        info
    }

    /// Cancels a session and deletes what it received.
    pub async fn cancel_upload(&self, scope: &str, id: &str) -> Result<(), StoreError> {
        let (_guard, state) = self.lock_upload(scope, id).await?;
        self.end_upload(id, state.len).await
    }

    /// Removes a session and its file; `len` is what it held of the budget.
    pub(super) async fn end_upload(&self, id: &str, len: u64) -> Result<(), StoreError> {
        self.budget.sub_uploads(len);
        self.index.remove_upload(id)?;
        match tokio::fs::remove_file(self.uploads.path(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        // Not waited for: a session that reappears after a crash holds no
        // acknowledged data and simply expires; the blob it became is synced
        // by its own commit.
        Ok(())
    }

    /// Ends sessions idle for longer than `idle`, and deletes files in
    /// `uploads/` that no session owns. Returns how many sessions expired.
    pub async fn expire_uploads(&self, idle: Duration) -> Result<usize, StoreError> {
        let cutoff = now_ms().saturating_sub(idle.as_millis() as u64);
        let mut expired = 0;
        for (id, rec) in self.index.uploads()? {
            if rec.updated < cutoff {
                let lock = self.uploads.lock(&id);
                let _guard = lock.lock().await;
                let len = tokio::fs::metadata(self.uploads.path(&id))
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0);
                self.end_upload(&id, len).await?;
                expired += 1;
            }
        }
        let mut dir = tokio::fs::read_dir(&self.uploads.dir).await?;
        while let Some(file) = dir.next_entry().await? {
            let name = file.file_name();
            let owned = name
                .to_str()
                .is_some_and(|n| valid_id(n) && self.index.upload(n).ok().flatten().is_some());
            if !owned {
                let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
                if tokio::fs::remove_file(file.path()).await.is_ok() {
                    self.budget.sub_uploads(len);
                }
            }
        }
        Ok(expired)
    }
}
