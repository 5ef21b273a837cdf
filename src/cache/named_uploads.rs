//! Upload sessions a client names itself rather than the server (REAPI
//! ByteStream's `uploads/{uuid}/…`): the OCI session machinery (a file in
//! `uploads/`, counted in usage, synced before acknowledged, expired when
//! idle, surviving restarts), under an id derived from the scope and the
//! client's name, so nothing records the mapping and a client's name never
//! reaches the file system. Scopes of these sessions are the caller's to
//! keep apart from OCI repositories and reservations (e.g. a prefix with a
//! `:`, which repository names cannot hold).

use bytes::Bytes;
use futures_util::Stream;

use super::uploads::Partial;
use super::{BlobInfo, BlobWrite, Store, StoreError};

/// The session id of `name` in `scope`.
fn named_id(scope: &str, name: &str) -> String {
    let hash = blake3::hash(format!("larder named upload\0{scope}\0{name}").as_bytes());
    hex::encode(&hash.as_bytes()[..16])
}

/// How a write to a named session ended.
#[derive(Debug)]
pub enum NamedWrite {
    /// The session holds this many bytes, short of the size: a later write
    /// may continue from there.
    Partial(u64),
    /// The session held `size` bytes, verified, and became this blob.
    Sealed(BlobInfo),
}

impl Store {
    /// Bytes session `name` of `scope` durably holds (0 for no session). It
    /// waits for a write in flight, whose bytes are not synced yet.
    pub async fn named_upload_len(&self, scope: &str, name: &str) -> Result<u64, StoreError> {
        let id = named_id(scope, name);
        let lock = self.uploads.lock(&id);
        let _guard = lock.lock().await;
        match self.upload(scope, &id).await {
            Ok(state) => Ok(state.len),
            Err(StoreError::UploadUnknown(_)) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes `body` into session `name` of `scope` from `offset`, which
    /// must be the bytes it holds (`UploadOffset` otherwise), or 0 to start
    /// over. A body cut short keeps, durably, what arrived before the cut.
    /// Once the session holds `w.size_hint` bytes (the blob's size) it is
    /// verified against `w.expected` and ends as a blob, or ends with the
    /// mismatch.
    pub async fn write_named_upload<S, E>(
        &self,
        scope: &str,
        name: &str,
        offset: u64,
        body: S,
        w: BlobWrite<'_>,
    ) -> Result<NamedWrite, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let id = named_id(scope, name);
        let lock = self.uploads.lock(&id);
        let _guard = lock.lock().await;
        let mut state = match self.upload(scope, &id).await {
            Ok(state) => state,
            Err(StoreError::UploadUnknown(_)) if offset == 0 => {
                self.create_upload_with_id(scope, id.clone()).await?
            }
            Err(StoreError::UploadUnknown(_)) => return Err(StoreError::UploadOffset { len: 0 }),
            Err(e) => return Err(e),
        };
        if offset == 0 {
            self.truncate_upload(&mut state).await?;
        } else if offset != state.len {
            return Err(StoreError::UploadOffset { len: state.len });
        }
        let end = state.len;
        self.write_chunk(&mut state, end, body, w.limit, Partial::Keep)
            .await?;
        if w.size_hint.is_none_or(|size| state.len < size) {
            return Ok(NamedWrite::Partial(state.len));
        }
        let blob = self.seal_locked(&state, w.expected, w.scope).await?;
        Ok(NamedWrite::Sealed(blob))
    }
}
