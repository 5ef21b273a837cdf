//! Upload sessions as the protocols see them: an OCI session's state, and
//! the Actions cache's reservations (one per scope, numbered ids), whose
//! bytes arrive whole, as named blocks or as chunks at offsets, on any
//! replica, and end as a blob. Same semantics and errors as the single
//! node's (`cache::reservations`, `cache::chunks`).

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::store::{ClusterStore, Placement};
use super::store_sessions::{Partial, PART_SIZE};
use super::uploads::{self, Appended};
use super::{now_ms, reservations, ClusterError};
use crate::cache::{
    chunk_name, chunk_order, exact, BlobInfo, StoreError, UploadState, MAX_PART_NAME,
};
use crate::cas::CasError;

/// Reserving retries this often when its new id, not the scope, collided.
const RESERVE_ATTEMPTS: usize = 3;

fn body_error(e: String) -> ClusterError {
    CasError::Body(e).into()
}

impl ClusterStore {
    /// Session `id` of `scope` and the bytes it holds, or `UploadUnknown`.
    pub async fn upload(&self, scope: &str, id: &str) -> Result<UploadState, ClusterError> {
        let client = self.pool.get().await?;
        reservations::state(&**client, scope, id).await
    }

    /// Opens a reservation for `scope` unless one is already open
    /// (`Ok(None)`), on whichever replica. With a `size`, no chunk may end
    /// past it (`reserved_size`).
    pub async fn reserve_upload(
        &self,
        scope: &str,
        size: Option<u64>,
    ) -> Result<Option<UploadState>, ClusterError> {
        let client = self.pool.get().await?;
        for _ in 0..RESERVE_ATTEMPTS {
            if let Some(id) = reservations::reserve(&**client, scope, size, now_ms()).await? {
                return Ok(Some(UploadState {
                    id,
                    scope: scope.to_owned(),
                    len: 0,
                }));
            }
            if reservations::reserved(&**client, scope).await?.is_some() {
                return Ok(None);
            }
        }
        // Each number was an upload's own id, or the reservation that held
        // the scope ended in between: as good as taken.
        Ok(None)
    }

    /// The size reservation `id` declared it will have, if it declared one.
    pub async fn reserved_size(&self, id: &str) -> Result<Option<u64>, ClusterError> {
        let client = self.pool.get().await?;
        Ok(reservations::owner(&**client, id).await?.and_then(|o| o.1))
    }

    /// The id of the open reservation of `scope`, if any.
    pub async fn reserved_upload(&self, scope: &str) -> Result<Option<String>, ClusterError> {
        let client = self.pool.get().await?;
        reservations::reserved(&**client, scope).await
    }

    /// The scope owning session `id`, for protocols that name a session by
    /// id alone and check the owner themselves.
    pub async fn upload_owner(&self, id: &str) -> Result<Option<String>, ClusterError> {
        let client = self.pool.get().await?;
        Ok(reservations::owner(&**client, id).await?.map(|o| o.0))
    }

    /// Replaces everything session `id` holds with `body`, of exactly `len`
    /// bytes. A body that fails leaves the session empty.
    pub async fn replace_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<UploadState, ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if len > limit {
            return Err(CasError::TooLarge { limit }.into());
        }
        let mut state = self.upload(scope, id).await?;
        self.truncate(id).await?;
        // From 0, so a failure leaves the session empty.
        state.len = (self.append_stream(id, 0, exact(body, len), limit, Partial::Drop)).await?;
        Ok(state)
    }

    async fn truncate(&self, id: &str) -> Result<(), ClusterError> {
        let mut client = self.pool.get().await?;
        reservations::truncate(&mut client, id, now_ms()).await
    }

    /// Ends a session holding exactly `size` bytes as a blob. A session of
    /// another size stays open (`UploadLength`), so a client may still send
    /// what is missing.
    pub async fn seal_upload(
        &self,
        scope: &str,
        id: &str,
        size: u64,
    ) -> Result<BlobInfo, ClusterError> {
        let state = self.upload(scope, id).await?;
        let wrong = |len| ClusterError::UploadLength {
            len,
            expected: size,
        };
        if state.len != size {
            return Err(wrong(state.len));
        }
        let verified = {
            let client = self.pool.get().await?;
            let cas = self.tier.cas();
            uploads::assemble(&**client, &self.objects, cas, id, None, self.max_blob_size).await?
        };
        // A replace on another replica may have landed since the look above.
        if verified.meta.size != size {
            return Err(wrong(verified.meta.size));
        }
        let blob = self
            .finish_verified(id, verified, Placement::default())
            .await?;
        Ok(blob.into())
    }

    /// Stages part `name` (exactly `len` bytes) of reservation `id`, from
    /// any replica; staging a name again replaces that part.
    pub async fn stage_part<S, E>(
        &self,
        scope: &str,
        id: &str,
        name: &str,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<(), ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if name.is_empty() || name.len() > MAX_PART_NAME {
            return Err(body_error(format!(
                "a part name has 1 to {MAX_PART_NAME} bytes"
            )));
        }
        if len > limit {
            return Err(CasError::TooLarge { limit }.into());
        }
        self.upload(scope, id).await?;
        // A part is one object, written whole; `exact` bounds it by `len`.
        let mut body = std::pin::pin!(exact(body, len));
        let mut part = BytesMut::with_capacity(len.min(PART_SIZE as u64) as usize);
        while let Some(chunk) = body.next().await {
            part.extend_from_slice(&chunk.map_err(body_error)?);
        }
        let mut client = self.pool.get().await?;
        let staged = uploads::stage_block(
            &mut client,
            &self.objects,
            id,
            name,
            part.freeze(),
            now_ms(),
        )
        .await?;
        match staged {
            Appended::Unknown => Err(ClusterError::UploadUnknown(id.to_owned())),
            _ => Ok(()),
        }
    }

    /// Replaces the bytes of reservation `id` with its staged parts in
    /// `order`, which are then no longer staged. Fails with `PartUnknown`,
    /// changing nothing, when a part was never staged.
    pub async fn assemble_parts(
        &self,
        scope: &str,
        id: &str,
        order: &[String],
        limit: u64,
    ) -> Result<UploadState, ClusterError> {
        let mut state = self.upload(scope, id).await?;
        let mut client = self.pool.get().await?;
        state.len = reservations::adopt_blocks(&mut client, id, order, limit, now_ms()).await?;
        Ok(state)
    }

    /// Stages a chunk of exactly `len` bytes at `offset` of reservation
    /// `id`; staging the same offset again replaces that chunk.
    pub async fn stage_chunk<S, E>(
        &self,
        scope: &str,
        id: &str,
        offset: u64,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<(), ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if offset.checked_add(len).is_none_or(|end| end > limit) {
            return Err(CasError::TooLarge { limit }.into());
        }
        self.stage_part(scope, id, &chunk_name(offset), len, body, limit)
            .await
    }

    /// Makes reservation `id` hold its staged chunks in offset order, which
    /// must cover exactly `size` bytes from 0 without a gap or an overlap;
    /// otherwise nothing changes. Without staged chunks it stays as it is.
    pub async fn assemble_chunks(
        &self,
        scope: &str,
        id: &str,
        size: u64,
        limit: u64,
    ) -> Result<(), ClusterError> {
        self.upload(scope, id).await?;
        let staged = {
            let client = self.pool.get().await?;
            reservations::staged(&**client, id).await?
        };
        if staged.is_empty() {
            return Ok(());
        }
        let order = chunk_order(staged, size).map_err(|e| match e {
            StoreError::UploadGap { missing_at } => ClusterError::UploadGap { missing_at },
            StoreError::UploadLength { len, expected } => {
                ClusterError::UploadLength { len, expected }
            }
            StoreError::Cas(e) => ClusterError::Content(e),
            other => ClusterError::Corrupt(other.to_string()),
        })?;
        self.assemble_parts(scope, id, &order, limit).await?;
        Ok(())
    }

    /// Cancels a session and deletes what it received.
    pub async fn cancel_upload(&self, scope: &str, id: &str) -> Result<(), ClusterError> {
        let client = self.pool.get().await?;
        reservations::state(&**client, scope, id).await?;
        uploads::remove(&**client, &self.objects, id).await
    }
}
