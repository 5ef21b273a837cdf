//! ByteStream `Write` and `QueryWriteStatus`. Three ways in, one stored
//! form (the uncompressed `cas/<sha256>` entry, verified before acknowledged):
//!
//! - Small blobs (under `RESUMABLE`) stream straight into the store: a broken
//!   write starts over, which costs less than the fsyncs a durable partial
//!   upload adds to every write, and Bazel writes mostly small blobs.
//! - Larger ones go through an upload session named by (namespace, uuid,
//!   digest), so a broken write resumes: the bytes that arrived are synced
//!   before `QueryWriteStatus` reports them as `committed_size`.
//! - zstd-compressed ones are decompressed as they arrive and always start
//!   over. REAPI says a compressed write's first `write_offset` is an
//!   offset into the uncompressed bytes and the later ones count compressed
//!   bytes, and leaves `committed_size` of a partial compressed upload
//!   undefined; Bazel seeks its compressed stream to whatever it is told.
//!   The one answer every reading agrees on is 0, so that is the answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use tonic::metadata::MetadataMap;
use tonic::{Status, Streaming};

use super::super::cas::{cas_entry, cas_write};
use super::super::compress;
use super::super::context::{authorize, status};
use super::resource::{self, Encoding, Resource};
use crate::api::httpcache::action_result::Needed;
use crate::api::httpcache::error::store_err;
use crate::api::httpcache::{bazel, Dialect};
use crate::api::reapi::gen::google::bytestream::{QueryWriteStatusResponse, WriteRequest};
use crate::api::AppState;
use crate::auth::{READ, WRITE};
use crate::cache::{NamedWrite, StoreError};

const D: Dialect = Dialect::Plain;

/// The smallest blob whose write can be resumed (1 MiB).
pub const RESUMABLE: u64 = 1 << 20;

/// The upload-session scope of a namespace's ByteStream writes: the `:`
/// keeps it apart from OCI repositories, `gha:` and `stage:` scopes.
fn scope(ns: &str) -> String {
    format!("reapi:{ns}")
}

/// The session name of an upload: the client's uuid, which REAPI lets it
/// reuse for other blobs, with the digest.
fn session(uuid: &str, n: &Needed) -> String {
    format!("{uuid}/{}/{}", hex::encode(n.sha256), n.size)
}

/// The first error a client's stream gave, to report instead of what the
/// store made of it (a cut stream, not "bad body").
#[derive(Clone, Default)]
struct Failure(Arc<Mutex<Option<Status>>>);

impl Failure {
    fn watch<S>(&self, s: S) -> impl Stream<Item = Result<Bytes, Status>> + Send
    where
        S: Stream<Item = Result<Bytes, Status>> + Send,
    {
        let slot = self.clone();
        s.inspect(move |r| {
            if let Err(e) = r {
                let mut slot = slot.0.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| e.clone());
            }
        })
    }

    /// Streams `body` whole into the blob's `cas/` entry of `ns`.
    async fn store<S>(&self, state: &AppState, ns: &str, n: &Needed, body: S) -> Result<(), Status>
    where
        S: Stream<Item = Result<Bytes, Status>> + Send,
    {
        let (write, entry) = cas_write(state, ns, n);
        state
            .store
            .put_entry_with_streamed_content(self.watch(body), write, entry)
            .await
            .map_err(|e| self.or(e))?;
        Ok(())
    }

    fn or(&self, e: StoreError) -> Status {
        let noted = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        noted.unwrap_or_else(|| status(store_err(D)(e)))
    }
}

pub async fn write(
    state: &AppState,
    metadata: &MetadataMap,
    mut incoming: Streaming<WriteRequest>,
) -> Result<i64, Status> {
    let first = incoming
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("a write with no request"))?;
    let res = resource::write(&first.resource_name)?;
    let (ns, _) = authorize(state, metadata, &res.instance, WRITE)?;
    let n = res.blob;
    let offset = u64::try_from(first.write_offset)
        .map_err(|_| Status::invalid_argument("write_offset is negative"))?;
    // Held already: done, as REAPI allows, with its "someone else wrote it".
    let early = match res.encoding {
        Encoding::Identity => n.size as i64,
        Encoding::Zstd => -1,
    };
    if n.size == 0 || bazel::find(state, &ns, &n).await.map_err(status)?.is_some() {
        return Ok(early);
    }
    let failure = Failure::default();
    match res.encoding {
        Encoding::Zstd => {
            if offset != 0 {
                return Err(Status::invalid_argument(
                    "compressed writes are not resumed: write from offset 0",
                ));
            }
            let sent = Arc::new(AtomicU64::new(0));
            let counted = sent.clone();
            let raw = chunks_of(first, incoming, 0, compress::compressed_bound(n.size), None)
                .inspect(move |r| {
                    if let Ok(b) = r {
                        counted.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                });
            failure
                .store(state, &ns, &n, compress::decompress(raw, n.size))
                .await?;
            // What REAPI's clients expect back: the compressed bytes taken.
            Ok(sent.load(Ordering::Relaxed) as i64)
        }
        Encoding::Identity if n.size < RESUMABLE => {
            if offset != 0 {
                return Err(Status::invalid_argument(format!(
                    "writes of blobs under {RESUMABLE} bytes are not resumed: write from offset 0"
                )));
            }
            let body = chunks_of(first, incoming, 0, n.size, Some(n.size));
            failure.store(state, &ns, &n, body).await?;
            Ok(n.size as i64)
        }
        Encoding::Identity => {
            // A task of its own: when the client goes, the handler is
            // dropped, but what arrived must still be synced and recorded.
            let state = state.clone();
            let uuid = res.uuid.unwrap_or_default();
            let task = tokio::spawn(async move {
                resumable(&state, &ns, &uuid, n, offset, first, incoming).await
            });
            task.await
                .map_err(|e| Status::internal(format!("the write failed: {e}")))?
        }
    }
}

async fn resumable(
    state: &AppState,
    ns: &str,
    uuid: &str,
    n: Needed,
    offset: u64,
    first: WriteRequest,
    incoming: Streaming<WriteRequest>,
) -> Result<i64, Status> {
    let failure = Failure::default();
    let body = failure.watch(chunks_of(first, incoming, offset, n.size, Some(n.size)));
    let (w, _) = cas_write(state, ns, &n);
    let written = state
        .store
        .write_named_upload(&scope(ns), &session(uuid, &n), offset, body, w)
        .await;
    let blob = match written {
        Ok(NamedWrite::Sealed(blob)) => blob,
        Ok(NamedWrite::Partial(len)) => {
            return Err(Status::internal(format!(
                "the write stopped at {len} bytes"
            )));
        }
        Err(StoreError::UploadOffset { len }) => {
            return Err(Status::invalid_argument(format!(
                "write_offset {offset} is not where this upload stands: {len} bytes are \
                 committed (QueryWriteStatus), or write from 0"
            )));
        }
        Err(e) => return Err(failure.or(e)),
    };
    state
        .store
        .put_entry(&cas_entry(ns, &n)(&blob))
        .await
        .map_err(|e| status(store_err(D)(e)))?;
    Ok(n.size as i64)
}

pub async fn query(
    state: &AppState,
    metadata: &MetadataMap,
    name: &str,
) -> Result<QueryWriteStatusResponse, Status> {
    let Resource {
        instance,
        uuid,
        encoding,
        blob: n,
    } = resource::write(name)?;
    let (ns, _) = authorize(state, metadata, &instance, READ)?;
    if n.size == 0 || bazel::find(state, &ns, &n).await.map_err(status)?.is_some() {
        return Ok(QueryWriteStatusResponse {
            committed_size: match encoding {
                Encoding::Identity => n.size as i64,
                Encoding::Zstd => -1,
            },
            complete: true,
        });
    }
    // An upload never seen is at 0 rather than NOT_FOUND: Bazel treats
    // NOT_FOUND here as fatal, 0 as "start over", which is what it means.
    let committed = match (encoding, uuid) {
        (Encoding::Identity, Some(uuid)) if n.size >= RESUMABLE => state
            .store
            .named_upload_len(&scope(&ns), &session(&uuid, &n))
            .await
            .map_err(|e| status(store_err(D)(e)))?,
        _ => 0,
    };
    Ok(QueryWriteStatusResponse {
        committed_size: committed as i64,
        complete: false,
    })
}

/// The data of a write's requests from `start`, checked to be contiguous
/// (`write_offset` counts what was sent), to stay within `max` bytes and,
/// with `exact`, to end there with `finish_write`: anything else fails the
/// stream, and a stream that ends without `finish_write` fails too.
fn chunks_of(
    first: WriteRequest,
    rest: Streaming<WriteRequest>,
    start: u64,
    max: u64,
    exact: Option<u64>,
) -> impl Stream<Item = Result<Bytes, Status>> + Send + 'static {
    stream::unfold(
        (Some(first), rest, start, false),
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
            } else if end > max {
                Some("more bytes than the digest's size")
            } else if msg.finish_write && exact.is_some_and(|size| end != size) {
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
