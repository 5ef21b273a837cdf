//! Bazel's gRPC remote cache (REAPI v2) on the same store, namespaces and
//! tokens as its HTTP cache (`/cache/<ns>/ac|cas/…`): the instance name is
//! the namespace, a blob is the same `cas/<sha256>` entry and an action
//! result the same `ac/<sha256>` entry, so either protocol hits what the
//! other stored. Served on the main port: gRPC's paths
//! (`/build.bazel.remote.execution.v2.<Service>/<Method>`) are routes of
//! the one router, HTTP/2 over TLS or cleartext (h2c, `grpc://`).
//!
//! Blobs may travel zstd-compressed (ByteStream's `compressed-blobs/zstd`,
//! the batch calls' `compressor`) and are stored once, uncompressed (see
//! `compress`). Cache only: no execution.

mod ac;
mod bytestream;
mod capabilities;
mod cas;
mod compress;
mod context;
mod tree;

#[allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]
#[rustfmt::skip]
pub mod gen;

use gen::build::bazel::remote::execution::v2::action_cache_server::ActionCacheServer;
use gen::build::bazel::remote::execution::v2::capabilities_server::CapabilitiesServer;
use gen::build::bazel::remote::execution::v2::content_addressable_storage_server::ContentAddressableStorageServer;
use gen::google::bytestream::byte_stream_server::ByteStreamServer;

use tonic::server::NamedService;

use super::AppState;

/// The most blob bytes one batch request or response may carry, as
/// `max_batch_total_size_bytes` advertises: gRPC's customary 4 MiB message
/// size, which Bazel's channel accepts by default. Larger blobs go by
/// ByteStream.
pub const MAX_BATCH: usize = 4 << 20;

/// The largest gRPC message decoded or encoded: a full batch plus its
/// digests and framing.
const MESSAGE_LIMIT: usize = MAX_BATCH + (1 << 20);

/// The REAPI services, as routes to merge into the main router. Not
/// tonic's own router: its fallback would answer every unknown path.
pub fn routes(state: AppState) -> axum::Router {
    let ac = ActionCacheServer::new(ac::ActionCache(state.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    let cas = ContentAddressableStorageServer::new(cas::Cas(state.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    let bytestream = ByteStreamServer::new(bytestream::ByteStream(state.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    let caps = CapabilitiesServer::new(capabilities::Capabilities(state));
    let router = service(axum::Router::new(), caps);
    let router = service(router, ac);
    let router = service(router, cas);
    service(router, bytestream)
}

/// Routes every method of one gRPC service (`/<package.Service>/<Method>`).
fn service<S>(router: axum::Router, svc: S) -> axum::Router
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    router.route_service(&format!("/{}/{{*method}}", S::NAME), svc)
}
