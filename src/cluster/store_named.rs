//! Upload sessions a client names itself (REAPI ByteStream's
//! `uploads/{uuid}/…`), on any replica: a row in `uploads` under an id
//! derived from the scope and the client's name, so every replica finds
//! the same session without a table of names, with its bytes staged as the
//! parts of an OCI session are. Same semantics as a single node's
//! (`cache::named_uploads`).

use bytes::Bytes;
use futures_util::Stream;

use super::store::{ClusterStore, Placement};
use super::store_sessions::Partial;
use super::{now_ms, reservations, uploads, ClusterError};
use crate::cache::{BlobWrite, NamedWrite};

/// The session id of `name` in `scope`: 32 hex digits, like an OCI
/// session's, and never the client's string.
fn named_id(scope: &str, name: &str) -> String {
    let hash = blake3::hash(format!("larder named upload\0{scope}\0{name}").as_bytes());
    hex::encode(&hash.as_bytes()[..16])
}

impl ClusterStore {
    /// Bytes session `name` of `scope` holds (0 when there is none).
    pub async fn named_upload_len(&self, scope: &str, name: &str) -> Result<u64, ClusterError> {
        match self.upload(scope, &named_id(scope, name)).await {
            Ok(state) => Ok(state.len),
            Err(ClusterError::UploadUnknown(_)) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes `body` into session `name` of `scope` from `offset`, which
    /// must be the bytes it holds (`UploadOffset` otherwise), or 0 to start
    /// over. A body cut short keeps what arrived before the cut. Once the
    /// session holds `w.size_hint` bytes it is verified against
    /// `w.expected` and ends, as a blob readable in `w.scope` or with the
    /// mismatch.
    pub async fn write_named_upload<S, E>(
        &self,
        scope: &str,
        name: &str,
        offset: u64,
        body: S,
        w: BlobWrite<'_>,
    ) -> Result<NamedWrite, ClusterError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let id = named_id(scope, name);
        let limit = w.limit.min(self.max_blob_size);
        match self.upload(scope, &id).await {
            Ok(_) if offset == 0 => {
                let mut client = self.pool.get().await?;
                reservations::truncate(&mut client, &id, now_ms()).await?;
            }
            Ok(state) if offset != state.len => {
                return Err(ClusterError::UploadOffset { len: state.len })
            }
            Ok(_) => {}
            Err(ClusterError::UploadUnknown(_)) if offset == 0 => {
                // Another replica may open it at the same moment: either
                // way there is one session, and its parts decide who
                // writes (a second writer from 0 meets `UploadOffset`).
                let client = self.pool.get().await?;
                uploads::create_if_absent(&**client, &id, scope, now_ms()).await?;
            }
            Err(ClusterError::UploadUnknown(_)) => {
                return Err(ClusterError::UploadOffset { len: 0 })
            }
            Err(e) => return Err(e),
        }
        let len = (self.append_stream(&id, offset, body, limit, Partial::Keep)).await?;
        if w.size_hint.is_none_or(|size| len < size) {
            return Ok(NamedWrite::Partial(len));
        }
        let verified = {
            let client = self.pool.get().await?;
            let cas = self.tier.cas();
            let assembled = uploads::assemble(
                &**client,
                &self.objects,
                cas,
                &id,
                w.expected.clone(),
                limit,
            )
            .await;
            match assembled {
                Ok(v) => v,
                Err(e @ ClusterError::Content(_)) => {
                    // Bytes that are not the blob are over, as on a single
                    // node; the client starts again from 0. (A store that
                    // failed keeps them for a retry.)
                    uploads::remove(&**client, &self.objects, &id).await?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        };
        let placement = Placement {
            scope: w.scope,
            checked: w.expected.as_ref(),
            ..Placement::default()
        };
        let blob = self.finish_verified(&id, verified, placement).await?;
        Ok(NamedWrite::Sealed(blob.into()))
    }
}
