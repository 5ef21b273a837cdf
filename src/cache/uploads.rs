//! Upload sessions: resumable, chunked writes that become a blob when
//! finished. Bytes accumulate in `uploads/<id>`; the index records the owning
//! scope so sessions survive a restart, and idle ones expire.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::{now_ms, BlobInfo, Store, StoreError};
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

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
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
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    pub async fn create_upload(&self, scope: &str) -> Result<UploadState, StoreError> {
        let id = format!("{:032x}", rand::random::<u128>());
        let now = now_ms();
        // Record first: expiry deletes files in uploads/ that no record owns.
        self.index.put_upload(
            &id,
            &UploadRecord {
                scope: scope.to_owned(),
                created: now,
                updated: now,
            },
        )?;
        tokio::fs::File::create(self.uploads.path(&id)).await?;
        self.commit.wait().await?;
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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        Ok(UploadState {
            id: id.to_owned(),
            scope: rec.scope,
            len,
        })
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
        let lock = self.uploads.lock(id);
        let _guard = lock.lock().await;
        let mut state = self.upload(scope, id).await?;
        if start.is_some_and(|s| s != state.len) {
            return Err(StoreError::UploadOffset { len: state.len });
        }
        self.write_chunk(&mut state, body, limit).await?;
        Ok(state)
    }

    /// Appends a body to a session file and makes it durable. The caller holds
    /// the session's lock.
    async fn write_chunk<S, E>(
        &self,
        state: &mut UploadState,
        body: S,
        limit: u64,
    ) -> Result<(), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(self.uploads.path(&state.id))
            .await?;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| CasError::Body(e.to_string()))?;
            if state.len + chunk.len() as u64 > limit {
                return Err(CasError::TooLarge { limit }.into());
            }
            file.write_all(&chunk).await?;
            state.len += chunk.len() as u64;
        }
        file.sync_data().await?;
        if let Some(mut rec) = self.index.upload(&state.id)? {
            rec.updated = now_ms();
            self.index.put_upload(&state.id, &rec)?;
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
    ) -> Result<BlobInfo, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let lock = self.uploads.lock(id);
        let _guard = lock.lock().await;
        let mut state = self.upload(scope, id).await?;
        let meta = if state.len == 0 {
            // The common case (BuildKit: POST, then PUT with the whole blob):
            // hash while writing instead of writing, then reading back.
            cas::ingest_stream(&self.cas, body, Some(expected.clone()), limit).await
        } else {
            match self.write_chunk(&mut state, body, limit).await {
                Ok(()) => {
                    let (cas, path, want) =
                        (self.cas.clone(), self.uploads.path(id), expected.clone());
                    tokio::task::spawn_blocking(move || cas::publish_file(&cas, &path, Some(&want)))
                        .await
                        .map_err(std::io::Error::other)?
                }
                Err(e) => {
                    self.end_upload(id).await?;
                    return Err(e);
                }
            }
        };
        self.end_upload(id).await?;
        self.record_blob(&meta?, Some(&expected), Some(scope)).await
    }

    /// Cancels a session and deletes what it received.
    pub async fn cancel_upload(&self, scope: &str, id: &str) -> Result<(), StoreError> {
        let lock = self.uploads.lock(id);
        let _guard = lock.lock().await;
        self.upload(scope, id).await?;
        self.end_upload(id).await
    }

    async fn end_upload(&self, id: &str) -> Result<(), StoreError> {
        self.index.remove_upload(id)?;
        match tokio::fs::remove_file(self.uploads.path(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.commit.wait().await?;
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
                self.end_upload(&id).await?;
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
                let _ = tokio::fs::remove_file(file.path()).await;
            }
        }
        Ok(expired)
    }
}
