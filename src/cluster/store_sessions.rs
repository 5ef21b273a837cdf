//! OCI upload sessions: opened on one replica, appended to and finished on
//! any. A body is staged in parts of at most `PART_SIZE` as it arrives,
//! each its own object and row (`uploads::append`), so a layer of
//! gigabytes PATCHed in one request never sits in memory, and a slow
//! client holds no database connection between parts.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::store::{ClusterStore, Placement};
use super::uploads::{self, Appended};
use super::{now_ms, reservations, ClusterError};
use crate::cache::{BlobInfo, BlobWrite, UploadState};
use crate::cas::{CasError, Digest};

/// The most a staged part holds, and so the most of a body in memory.
pub(super) const PART_SIZE: usize = 8 << 20;

/// What a body that fails part-way leaves in its session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Partial {
    /// Nothing: the chunk must arrive whole (it was sent with its range,
    /// which the client will send again).
    Drop,
    /// What arrived before the failure, which a client can read back and
    /// resume from.
    Keep,
}

/// Why streaming a body stopped early.
enum Stop {
    /// The body failed; what arrived before is buffered or staged.
    Cut(String),
    Failed(ClusterError),
}

impl From<ClusterError> for Stop {
    fn from(e: ClusterError) -> Self {
        Stop::Failed(e)
    }
}

impl ClusterStore {
    /// Opens an OCI session for `scope` under a fresh random id, as a
    /// single node does.
    pub async fn create_upload(&self, scope: &str) -> Result<UploadState, ClusterError> {
        let id = format!("{:032x}", rand::random::<u128>());
        let client = self.pool.get().await?;
        uploads::create(&**client, &id, scope, now_ms()).await?;
        Ok(UploadState {
            id,
            scope: scope.to_owned(),
            len: 0,
        })
    }

    /// Appends a chunk to session `id` of `scope`. `start`, when the client
    /// said where the chunk goes, must be the bytes received so far
    /// (`UploadOffset` otherwise), and such a chunk is kept whole or not at
    /// all; a streamed one keeps what arrived before a failure. The session
    /// may hold at most `limit` bytes (`TooLarge`, and the chunk is
    /// dropped).
    pub async fn append_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        start: Option<u64>,
        body: S,
        limit: u64,
    ) -> Result<UploadState, ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut state = self.upload(scope, id).await?;
        if start.is_some_and(|s| s != state.len) {
            return Err(ClusterError::UploadOffset { len: state.len });
        }
        let partial = if start.is_some() {
            Partial::Drop
        } else {
            Partial::Keep
        };
        let limit = limit.min(self.max_blob_size);
        state.len = (self.append_stream(id, state.len, body, limit, partial)).await?;
        Ok(state)
    }

    /// Completes session `id` of `scope` with a final (often empty) body:
    /// the whole is verified against `expected` and becomes a blob readable
    /// in `scope`, and the session ends. A final body that fails is
    /// dropped and a failed verification changes nothing: the session
    /// stays for the client to retry or cancel.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        body: S,
        expected: Digest,
        limit: u64,
        size_hint: Option<u64>,
    ) -> Result<BlobInfo, ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let state = self.upload(scope, id).await?;
        let limit = limit.min(self.max_blob_size);
        if size_hint.is_some_and(|n| state.len.saturating_add(n) > limit) {
            return Err(CasError::TooLarge { limit }.into());
        }
        if state.len == 0 {
            // The common case (BuildKit: POST, then PUT with the whole
            // blob): verified as it arrives, never staged.
            let write = BlobWrite {
                expected: Some(expected),
                limit,
                scope: Some(scope),
                size_hint,
            };
            let blob = self.put_blob(body, write).await?;
            let client = self.pool.get().await?;
            uploads::remove(&**client, &self.objects, id).await?;
            return Ok(blob);
        }
        (self.append_stream(id, state.len, body, limit, Partial::Drop)).await?;
        let verified = {
            let client = self.pool.get().await?;
            reservations::state(&**client, scope, id).await?;
            uploads::assemble(
                &**client,
                &self.objects,
                self.tier.cas(),
                id,
                Some(expected.clone()),
                limit,
            )
            .await?
        };
        let placement = Placement {
            scope: Some(scope),
            checked: Some(&expected),
            ..Placement::default()
        };
        Ok(self.finish_verified(id, verified, placement).await?.into())
    }

    /// Stages `body` at `start` of upload `id` (where its parts end) in
    /// parts of `PART_SIZE`; returns where the parts end after it. On
    /// failure the upload ends at `start` again, except that with
    /// `Partial::Keep` a body cut short keeps what arrived (and the cut is
    /// still an error), and that a conflict with another request's write
    /// is left alone.
    pub(super) async fn append_stream<S, E>(
        &self,
        id: &str,
        start: u64,
        body: S,
        limit: u64,
        partial: Partial,
    ) -> Result<u64, ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut end = start;
        let mut buf = BytesMut::new();
        let stop = match self.stage_body(id, &mut end, &mut buf, body, limit).await {
            Ok(()) => match self.stage_rest(id, &mut end, &mut buf).await {
                Ok(()) => return Ok(end),
                Err(e) => e,
            },
            Err(Stop::Cut(why)) if partial == Partial::Keep => {
                let cut = CasError::Body(why).into();
                match self.stage_rest(id, &mut end, &mut buf).await {
                    Ok(()) => return Err(cut),
                    Err(e) => e,
                }
            }
            Err(Stop::Cut(why)) => CasError::Body(why).into(),
            Err(Stop::Failed(e)) => e,
        };
        // Another request's write to this session (or its end) is not
        // ours to undo.
        if !matches!(
            stop,
            ClusterError::UploadOffset { .. } | ClusterError::UploadUnknown(_)
        ) && end > start
        {
            if let Err(undo) = self.cut_back(id, start).await {
                tracing::warn!(error = %undo, upload = id, "cannot drop a failed chunk");
            }
        }
        Err(stop)
    }

    /// Pulls `body`, staging every full part; what is left of it stays in
    /// `buf`.
    async fn stage_body<S, E>(
        &self,
        id: &str,
        end: &mut u64,
        buf: &mut BytesMut,
        body: S,
        limit: u64,
    ) -> Result<(), Stop>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Stop::Cut(e.to_string()))?;
            let total = *end + (buf.len() + chunk.len()) as u64;
            if total > limit {
                return Err(ClusterError::from(CasError::TooLarge { limit }).into());
            }
            buf.extend_from_slice(&chunk);
            while buf.len() >= PART_SIZE {
                let part = buf.split_to(PART_SIZE).freeze();
                *end = self.append_part(id, *end, part).await?;
            }
        }
        Ok(())
    }

    /// Stages what `buf` holds, if anything, as the last part.
    async fn stage_rest(
        &self,
        id: &str,
        end: &mut u64,
        buf: &mut BytesMut,
    ) -> Result<(), ClusterError> {
        if !buf.is_empty() {
            *end = self.append_part(id, *end, buf.split().freeze()).await?;
        }
        Ok(())
    }

    async fn append_part(&self, id: &str, offset: u64, bytes: Bytes) -> Result<u64, ClusterError> {
        let mut client = self.pool.get().await?;
        let appended = uploads::append(
            &mut client,
            &self.objects,
            id,
            offset,
            true,
            bytes,
            now_ms(),
        )
        .await?;
        match appended {
            Appended::Size(end) => Ok(end),
            // Another request wrote to this session meanwhile.
            Appended::Conflict { size } => Err(ClusterError::UploadOffset { len: size }),
            Appended::Unknown => Err(ClusterError::UploadUnknown(id.to_owned())),
        }
    }

    async fn cut_back(&self, id: &str, len: u64) -> Result<(), ClusterError> {
        let mut client = self.pool.get().await?;
        uploads::cut_back(&mut client, id, len, now_ms()).await
    }
}
