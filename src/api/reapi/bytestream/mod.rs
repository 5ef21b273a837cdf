//! `google.bytestream.ByteStream` for CAS blobs, as Bazel moves them:
//! `Read` of `{instance}/blobs/{hash}/{size}`, `Write` of
//! `{instance}/uploads/{uuid}/blobs/{hash}/{size}`, streamed into the same
//! `cas/<sha256>` entry the batch calls and HTTP use, verified before it is
//! acknowledged. A broken write starts over (no resume yet); a blob already
//! held is acknowledged at once, as REAPI allows.

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::context::{authorize, parse_digest, status};
use super::gen::build::bazel::remote::execution::v2::Digest;
use super::gen::google::bytestream::{
    byte_stream_server, QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest,
    ReadResponse, WriteRequest, WriteResponse,
};
use crate::api::httpcache::action_result::Needed;
use crate::api::httpcache::error::store_err;
use crate::api::httpcache::{bazel, Dialect};
use crate::api::AppState;
use crate::auth::{READ, WRITE};

const D: Dialect = Dialect::Plain;

/// The most bytes one `ReadResponse` carries.
const CHUNK: usize = 64 << 10;

#[derive(Clone)]
pub struct ByteStream(pub AppState);

/// The instance and digest of `[{instance}/]<kind>/…/{hash}/{size}[/…]`,
/// the hash `hash_after` segments after `<kind>`.
fn resource(name: &str, kind: &str, hash_after: usize) -> Result<(String, Needed), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    let bad = || Status::invalid_argument(format!("bad resource name {name:?}"));
    let at = parts.iter().position(|p| *p == kind).ok_or_else(bad)?;
    if kind == "uploads" && parts.get(at + 2) != Some(&"blobs") {
        return Err(bad());
    }
    let hash = parts.get(at + hash_after).ok_or_else(bad)?;
    let size: i64 = parts
        .get(at + hash_after + 1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let d = Digest {
        hash: (*hash).to_owned(),
        size_bytes: size,
    };
    Ok((parts[..at].join("/"), parse_digest(Some(&d))?))
}

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

#[tonic::async_trait]
impl byte_stream_server::ByteStream for ByteStream {
    type ReadStream = ReadStream;

    async fn read(&self, req: Request<ReadRequest>) -> Result<Response<ReadStream>, Status> {
        let (instance, n) = resource(&req.get_ref().resource_name, "blobs", 1)?;
        let (ns, _) = authorize(&self.0, req.metadata(), &instance, READ)?;
        let req = req.into_inner();
        let offset = u64::try_from(req.read_offset)
            .ok()
            .filter(|o| *o <= n.size)
            .ok_or_else(|| Status::out_of_range("read_offset is past the blob"))?;
        let limit = u64::try_from(req.read_limit)
            .map_err(|_| Status::invalid_argument("read_limit is negative"))?;
        let rest = n.size - offset;
        let len = if limit == 0 { rest } else { limit.min(rest) };
        if n.size == 0 || len == 0 {
            return Ok(Response::new(Box::pin(stream::empty())));
        }
        let state = &self.0;
        let Some(blob) = bazel::find(state, &ns, &n).await.map_err(status)? else {
            return Err(Status::not_found("blob not found"));
        };
        state.store.touch_blob(&blob);
        let body = state
            .store
            .read_blob(&blob, offset, len)
            .await
            .map_err(|e| status(store_err(D)(e)))?;
        let out = body.flat_map(|r| {
            stream::iter(match r {
                Ok(b) => chunks(b),
                Err(e) => vec![Err(Status::internal(format!("reading the blob: {e}")))],
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn write(
        &self,
        req: Request<Streaming<WriteRequest>>,
    ) -> Result<Response<WriteResponse>, Status> {
        let metadata = req.metadata().clone();
        let mut incoming = req.into_inner();
        let first = incoming
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("a write with no request"))?;
        let (instance, n) = resource(&first.resource_name, "uploads", 3)?;
        let (ns, _) = authorize(&self.0, &metadata, &instance, WRITE)?;
        if first.write_offset != 0 {
            return Err(Status::invalid_argument(
                "writes start at offset 0 (resuming is not supported yet)",
            ));
        }
        let state = &self.0;
        let done = || {
            Response::new(WriteResponse {
                committed_size: n.size as i64,
            })
        };
        if n.size == 0 || bazel::find(state, &ns, &n).await.map_err(status)?.is_some() {
            return Ok(done());
        }
        let (write, entry) = super::cas::cas_write(state, &ns, &n);
        state
            .store
            .put_entry_with_streamed_content(chunks_of(first, incoming, n.size), write, entry)
            .await
            .map_err(|e| status(store_err(D)(e)))?;
        Ok(done())
    }

    async fn query_write_status(
        &self,
        req: Request<QueryWriteStatusRequest>,
    ) -> Result<Response<QueryWriteStatusResponse>, Status> {
        let (instance, n) = resource(&req.get_ref().resource_name, "uploads", 3)?;
        let (ns, _) = authorize(&self.0, req.metadata(), &instance, READ)?;
        if n.size > 0
            && bazel::find(&self.0, &ns, &n)
                .await
                .map_err(status)?
                .is_none()
        {
            return Err(Status::not_found("no such upload: write it again"));
        }
        Ok(Response::new(QueryWriteStatusResponse {
            committed_size: n.size as i64,
            complete: true,
        }))
    }
}

/// The data of a write's requests, checked to be contiguous and to end at
/// `size` with `finish_write`: anything else fails the stream, and so
/// stores nothing.
fn chunks_of(
    first: WriteRequest,
    rest: Streaming<WriteRequest>,
    size: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, Status>> + Send {
    stream::unfold(
        (Some(first), rest, 0u64, false),
        move |(next, mut rest, at, finished)| async move {
            if finished {
                return None;
            }
            let msg = match next {
                Some(m) => m,
                None => match rest.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        let e = Status::invalid_argument("the write ended before finish_write");
                        return Some((Err(e), (None, rest, at, true)));
                    }
                    Err(e) => return Some((Err(e), (None, rest, at, true))),
                },
            };
            let end = at + msg.data.len() as u64;
            let err = if u64::try_from(msg.write_offset).ok() != Some(at) {
                Some("write_offset does not follow the bytes written")
            } else if end > size {
                Some("more bytes than the digest's size")
            } else if msg.finish_write && end != size {
                Some("finish_write before the digest's size")
            } else {
                None
            };
            if let Some(why) = err {
                return Some((Err(Status::invalid_argument(why)), (None, rest, at, true)));
            }
            let data = Bytes::from(msg.data);
            Some((Ok(data), (None, rest, end, msg.finish_write)))
        },
    )
}
