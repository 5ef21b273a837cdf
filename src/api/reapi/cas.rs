//! `ContentAddressableStorage`: the same `cas/<sha256>` entries as Bazel's
//! HTTP cache, verified against their digest before they are stored.

use bytes::Bytes;
use tonic::{Request, Response, Status};

use super::compress;
use super::context::{authorize, check_digest_function, ok, parse_digest, rpc_status, status};
use super::gen::build::bazel::remote::execution::v2::{
    batch_read_blobs_response, batch_update_blobs_response, compressor,
    content_addressable_storage_server::ContentAddressableStorage, BatchReadBlobsRequest,
    BatchReadBlobsResponse, BatchUpdateBlobsRequest, BatchUpdateBlobsResponse, Digest,
    FindMissingBlobsRequest, FindMissingBlobsResponse, GetTreeRequest, GetTreeResponse,
};
use super::MAX_BATCH;
use crate::api::httpcache::action_result::Needed;
use crate::api::httpcache::error::store_err;
use crate::api::httpcache::{bazel, value, Dialect};
use crate::api::AppState;
use crate::auth::{READ, WRITE};
use crate::cache::{BlobInfo, BlobWrite, NewEntry, Protocol};

const D: Dialect = Dialect::Plain;

/// The most digests one FindMissingBlobs may name (Bazel sends up to a
/// few thousand): bounds the work one request buys.
const MAX_DIGESTS: usize = 100_000;

/// The most bytes the compressed blobs of one batch update may expand to.
const MAX_EXPANDED: usize = 4 * MAX_BATCH;

#[derive(Clone)]
pub struct Cas(pub AppState);

type GetTreeStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<GetTreeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ContentAddressableStorage for Cas {
    async fn find_missing_blobs(
        &self,
        req: Request<FindMissingBlobsRequest>,
    ) -> Result<Response<FindMissingBlobsResponse>, Status> {
        let (ns, _) = authorize(&self.0, req.metadata(), &req.get_ref().instance_name, READ)?;
        let req = req.into_inner();
        check_digest_function(req.digest_function)?;
        if req.blob_digests.len() > MAX_DIGESTS {
            return Err(Status::invalid_argument(format!(
                "more than {MAX_DIGESTS} digests in one request"
            )));
        }
        let mut missing = Vec::new();
        for d in req.blob_digests {
            let n = parse_digest(Some(&d))?;
            if n.size == 0 {
                continue; // The empty blob is always there.
            }
            match bazel::find(&self.0, &ns, &n).await.map_err(status)? {
                Some(blob) => self.0.store.touch_blob(&blob),
                None => missing.push(d),
            }
        }
        Ok(Response::new(FindMissingBlobsResponse {
            missing_blob_digests: missing,
        }))
    }

    async fn batch_update_blobs(
        &self,
        req: Request<BatchUpdateBlobsRequest>,
    ) -> Result<Response<BatchUpdateBlobsResponse>, Status> {
        let (ns, _) = authorize(&self.0, req.metadata(), &req.get_ref().instance_name, WRITE)?;
        let req = req.into_inner();
        check_digest_function(req.digest_function)?;
        let total: usize = req.requests.iter().map(|r| r.data.len()).sum();
        if total > MAX_BATCH {
            return Err(over_batch(total));
        }
        // Compressed blobs are decompressed whole in memory: what they
        // expand to is bounded too, or a small request could claim gigabytes.
        let expanded = req
            .requests
            .iter()
            .filter(|r| r.compressor != compressor::Value::Identity as i32)
            .map(|r| r.digest.as_ref().map_or(0, |d| d.size_bytes.max(0) as u64))
            .fold(0u64, u64::saturating_add);
        if expanded > MAX_EXPANDED as u64 {
            return Err(Status::invalid_argument(format!(
                "the batch's compressed blobs expand to {expanded} bytes, over {MAX_EXPANDED}: use ByteStream"
            )));
        }
        let mut responses = Vec::with_capacity(req.requests.len());
        for r in req.requests {
            let stored = self
                .update(&ns, r.digest.as_ref(), r.compressor, r.data)
                .await;
            responses.push(batch_update_blobs_response::Response {
                digest: r.digest,
                status: Some(stored.map_or_else(|e| rpc_status(&e), |()| ok())),
            });
        }
        Ok(Response::new(BatchUpdateBlobsResponse { responses }))
    }

    async fn batch_read_blobs(
        &self,
        req: Request<BatchReadBlobsRequest>,
    ) -> Result<Response<BatchReadBlobsResponse>, Status> {
        let (ns, _) = authorize(&self.0, req.metadata(), &req.get_ref().instance_name, READ)?;
        let req = req.into_inner();
        check_digest_function(req.digest_function)?;
        let total = req
            .digests
            .iter()
            .map(|d| u64::try_from(d.size_bytes).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add);
        if total > MAX_BATCH as u64 {
            return Err(over_batch(usize::try_from(total).unwrap_or(usize::MAX)));
        }
        let zstd = req
            .acceptable_compressors
            .contains(&(compressor::Value::Zstd as i32));
        let mut responses = Vec::with_capacity(req.digests.len());
        for d in req.digests {
            let (data, st) = match self.read(&ns, &d).await {
                Ok(data) => (data, ok()),
                Err(e) => (Bytes::new(), rpc_status(&e)),
            };
            let (data, used) = if zstd && !data.is_empty() {
                smaller(data).await
            } else {
                (data, compressor::Value::Identity)
            };
            responses.push(batch_read_blobs_response::Response {
                digest: Some(d),
                data: data.to_vec(),
                compressor: used as i32,
                status: Some(st),
            });
        }
        Ok(Response::new(BatchReadBlobsResponse { responses }))
    }

    type GetTreeStream = GetTreeStream;

    async fn get_tree(
        &self,
        req: Request<GetTreeRequest>,
    ) -> Result<Response<GetTreeStream>, Status> {
        let (metadata, _, req) = req.into_parts();
        super::tree::get_tree(&self.0, &metadata, req)
            .await
            .map(Response::new)
    }
}

/// A blob zstd-compressed when that makes it smaller (IDENTITY is always
/// acceptable, and some blobs do not compress).
async fn smaller(data: Bytes) -> (Bytes, compressor::Value) {
    match compress::compress_bytes(data.clone()).await {
        Ok(z) if z.len() < data.len() => (z, compressor::Value::Zstd),
        _ => (data, compressor::Value::Identity),
    }
}

fn over_batch(total: usize) -> Status {
    Status::invalid_argument(format!(
        "the batch holds {total} bytes, over max_batch_total_size_bytes ({MAX_BATCH}): use ByteStream"
    ))
}

impl Cas {
    /// Stores one blob of a batch as the `cas/<sha256>` entry of `ns`,
    /// verified against its digest: a mismatch stores nothing.
    async fn update(
        &self,
        ns: &str,
        digest: Option<&Digest>,
        compressor: i32,
        data: Vec<u8>,
    ) -> Result<(), Status> {
        let n = parse_digest(digest)?;
        let data = if compressor == compressor::Value::Zstd as i32 {
            compress::decompress_bytes(data, n.size).await?
        } else if compressor == compressor::Value::Identity as i32 {
            data
        } else {
            return Err(Status::invalid_argument(
                "compressor not supported: IDENTITY and ZSTD are",
            ));
        };
        if data.len() as u64 != n.size {
            return Err(Status::invalid_argument(format!(
                "{} bytes where the digest says {}",
                data.len(),
                n.size
            )));
        }
        if n.size == 0 {
            return Ok(());
        }
        let state = &self.0;
        let (write, entry) = cas_write(state, ns, &n);
        state
            .store
            .put_entry_with_content(Bytes::from(data), write, entry, None)
            .await
            .map_err(|e| status(store_err(D)(e)))?;
        Ok(())
    }

    /// One blob of `ns`, as the HTTP cache's `GET cas/<sha256>` finds it.
    async fn read(&self, ns: &str, d: &Digest) -> Result<Bytes, Status> {
        let n = parse_digest(Some(d))?;
        if n.size == 0 {
            return Ok(Bytes::new());
        }
        let state = &self.0;
        let Some(blob) = bazel::find(state, ns, &n).await.map_err(status)? else {
            return Err(Status::not_found("blob not found"));
        };
        state.store.touch_blob(&blob);
        state
            .store
            .read_content(&blob.id, blob.size)
            .await
            .map_err(|e| status(store_err(D)(e)))
    }
}

/// How a CAS blob is stored whichever call brings it (a batch, a
/// ByteStream write): as the HTTP cache's `cas/<sha256>` entry in `ns`,
/// verified against its digest, so both protocols see one store.
pub(super) fn cas_write(
    state: &AppState,
    ns: &str,
    n: &Needed,
) -> (
    BlobWrite<'static>,
    impl FnOnce(&BlobInfo) -> NewEntry + Send + 'static,
) {
    let write = BlobWrite {
        expected: Some(n.digest()),
        limit: state.blob_limit(),
        scope: None,
        size_hint: Some(n.size),
    };
    (write, cas_entry(ns, n))
}

/// The `cas/<sha256>` entry of `ns` for a stored blob.
pub(super) fn cas_entry(
    ns: &str,
    n: &Needed,
) -> impl FnOnce(&BlobInfo) -> NewEntry + Send + 'static {
    let key = value::entry_key(
        Protocol::Http,
        ns,
        &format!("cas/{}", hex::encode(n.sha256)),
    );
    move |blob: &BlobInfo| value::value_entry(key, blob, Vec::new())
}
