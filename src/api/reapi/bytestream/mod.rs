//! `google.bytestream.ByteStream` for CAS blobs, as Bazel moves them:
//! `Read` of `{instance}/blobs/{hash}/{size}` or
//! `{instance}/compressed-blobs/zstd/{hash}/{size}`, `Write` of the same
//! after `{instance}/uploads/{uuid}/`, all on the one uncompressed
//! `cas/<sha256>` entry the batch calls and HTTP use (see `compress` for
//! why one form, `write` for how writes arrive and resume).

mod resource;
mod write;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::compress;
use super::context::{authorize, status};
use super::gen::google::bytestream::{
    byte_stream_server, QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest,
    ReadResponse, WriteRequest, WriteResponse,
};
use crate::api::httpcache::error::store_err;
use crate::api::httpcache::{bazel, Dialect};
use crate::api::AppState;
use crate::auth::READ;
use resource::Encoding;

const D: Dialect = Dialect::Plain;

/// The most bytes one `ReadResponse` carries.
const CHUNK: usize = 64 << 10;

#[derive(Clone)]
pub struct ByteStream(pub AppState);

type ReadStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<ReadResponse, Status>> + Send + 'static>,
>;

fn chunks(b: Bytes) -> Vec<Result<ReadResponse, Status>> {
    (0..b.len())
        .step_by(CHUNK)
        .map(|i| {
            Ok(ReadResponse {
                data: b.slice(i..(i + CHUNK).min(b.len())).to_vec(),
            })
        })
        .collect()
}

/// `len` bytes from `offset` of a blob held whole (the caller checked the range).
fn part_of(whole: &Bytes, offset: u64, len: u64) -> crate::cas::BlobStream {
    let part = whole.slice(offset as usize..(offset + len) as usize);
    Box::pin(stream::once(std::future::ready(Ok(part))))
}

#[tonic::async_trait]
impl byte_stream_server::ByteStream for ByteStream {
    type ReadStream = ReadStream;

    async fn read(&self, req: Request<ReadRequest>) -> Result<Response<ReadStream>, Status> {
        let res = resource::read(&req.get_ref().resource_name)?;
        let (ns, _) = authorize(&self.0, req.metadata(), &res.instance, READ)?;
        let (req, n) = (req.into_inner(), res.blob);
        let offset = u64::try_from(req.read_offset)
            .ok()
            .filter(|o| *o <= n.size)
            .ok_or_else(|| Status::out_of_range("read_offset is past the blob"))?;
        let limit = u64::try_from(req.read_limit)
            .map_err(|_| Status::invalid_argument("read_limit is negative"))?;
        // A limit counts compressed bytes the server cannot know in
        // advance: REAPI forbids one on compressed reads.
        if res.encoding == Encoding::Zstd && limit != 0 {
            return Err(Status::invalid_argument(
                "read_limit must be 0 when reading compressed-blobs",
            ));
        }
        let rest = n.size - offset;
        let len = if limit == 0 { rest } else { limit.min(rest) };
        let state = &self.0;
        let plain: crate::cas::BlobStream = if n.size == 0 || len == 0 {
            Box::pin(stream::empty())
        } else if let Some(whole) = bazel::find_in_memory(state, &ns, &n)
            .await
            .map_err(status)?
        {
            part_of(&whole, offset, len)
        } else {
            let Some(blob) = bazel::find(state, &ns, &n).await.map_err(status)? else {
                return Err(Status::not_found("blob not found"));
            };
            state.store.touch_blob(&blob);
            if state.store.serves_from_memory(blob.size) {
                // As an HTTP hit: from memory, no file opened.
                let whole = (state.store.read_content(&blob.id, blob.size).await)
                    .map_err(|e| status(store_err(D)(e)))?;
                part_of(&whole, offset, len)
            } else {
                (state.store.read_blob(&blob, offset, len).await)
                    .map_err(|e| status(store_err(D)(e)))?
            }
        };
        let out: ReadStream = match res.encoding {
            // Even nothing goes as a zstd frame: a client decodes what it gets.
            Encoding::Zstd => Box::pin(compress::compress(plain).flat_map(|r| {
                stream::iter(match r {
                    Ok(b) => chunks(b),
                    Err(e) => vec![Err(e)],
                })
            })),
            Encoding::Identity => Box::pin(plain.flat_map(|r| {
                stream::iter(match r {
                    Ok(b) => chunks(b),
                    Err(e) => vec![Err(Status::internal(format!("reading the blob: {e}")))],
                })
            })),
        };
        Ok(Response::new(out))
    }

    async fn write(
        &self,
        req: Request<Streaming<WriteRequest>>,
    ) -> Result<Response<WriteResponse>, Status> {
        let metadata = req.metadata().clone();
        let committed_size = write::write(&self.0, &metadata, req.into_inner()).await?;
        Ok(Response::new(WriteResponse { committed_size }))
    }

    async fn query_write_status(
        &self,
        req: Request<QueryWriteStatusRequest>,
    ) -> Result<Response<QueryWriteStatusResponse>, Status> {
        let name = &req.get_ref().resource_name;
        write::query(&self.0, req.metadata(), name)
            .await
            .map(Response::new)
    }
}
