//! What every REAPI call does first: the namespace from `instance_name`,
//! the caller from the `authorization` metadata (Bearer or Basic, as over
//! HTTP), digests checked; and errors in gRPC's codes.

use axum::http::StatusCode;
use bytes::Bytes;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::gen::build::bazel::remote::execution::v2::{digest_function, Digest};
use super::gen::google::rpc;
use crate::api::httpcache::action_result::{sha256_digest, Needed};
use crate::api::httpcache::bazel::MISSING_OUTPUT;
use crate::api::httpcache::error::store_err;
use crate::api::httpcache::{bazel, keys, Dialect, HttpCacheError};
use crate::api::AppState;
use crate::auth::{Caller, Denied};

/// Authenticates the caller and checks `permission` on the namespace named by
/// `instance` (`reapi.default_namespace` when empty: Bazel sends no instance
/// unless `--remote_instance_name` is set); returns the namespace.
pub fn authorize(
    state: &AppState,
    metadata: &MetadataMap,
    instance: &str,
    permission: u8,
) -> Result<(String, Caller), Status> {
    let namespace = if instance.is_empty() {
        state.config.reapi.default_namespace.as_str()
    } else {
        instance
    };
    keys::namespace(namespace)
        .map_err(|e| Status::invalid_argument(format!("instance_name: {e}")))?;
    let headers = metadata.clone().into_headers();
    let caller = state.auth.caller(&headers).map_err(denied)?;
    state
        .auth
        .require(&caller, namespace, permission)
        .map_err(denied)?;
    Ok((namespace.to_owned(), caller))
}

fn denied(d: Denied) -> Status {
    match d {
        Denied::Unauthenticated(why) => Status::unauthenticated(why),
        Denied::Forbidden(why) => Status::permission_denied(why),
    }
}

/// Only SHA-256 is served; a request naming no function means it.
pub fn check_digest_function(value: i32) -> Result<(), Status> {
    use digest_function::Value;
    if value == Value::Unknown as i32 || value == Value::Sha256 as i32 {
        return Ok(());
    }
    Err(Status::invalid_argument(
        "only the SHA256 digest function is supported",
    ))
}

/// A digest the store can look up: 64 lowercase hex digits, a size ≥ 0.
pub fn parse_digest(d: Option<&Digest>) -> Result<Needed, Status> {
    d.and_then(|d| sha256_digest(&d.hash, d.size_bytes))
        .ok_or_else(|| Status::invalid_argument("a digest is not a SHA-256 hash and size"))
}

/// The HTTP cache's error as gRPC's: a full disk or budget is
/// RESOURCE_EXHAUSTED, a wrong digest INVALID_ARGUMENT.
pub fn status(e: HttpCacheError) -> Status {
    let code = match e.status {
        _ if e.code == MISSING_OUTPUT => Code::FailedPrecondition,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::INSUFFICIENT_STORAGE => Code::ResourceExhausted,
        // Bazel retries UNAVAILABLE, as it should a cluster's database away.
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        s if s.is_server_error() => Code::Internal,
        _ => Code::Unavailable,
    };
    Status::new(code, e.message)
}

/// A per-blob status of a batch response.
pub fn rpc_status(s: &Status) -> rpc::Status {
    rpc::Status {
        code: s.code() as i32,
        message: s.message().to_owned(),
        details: Vec::new(),
    }
}

/// A blob of `ns` by digest, leased as any read of it is; `None` when the
/// namespace does not have it. The empty blob is always there.
pub async fn read_blob(state: &AppState, ns: &str, n: &Needed) -> Result<Option<Bytes>, Status> {
    if n.size == 0 {
        return Ok(Some(Bytes::new()));
    }
    let Some(blob) = bazel::find(state, ns, n).await.map_err(status)? else {
        return Ok(None);
    };
    state.store.touch_blob(&blob);
    let bytes = state
        .store
        .read_content(&blob.id, blob.size)
        .await
        .map_err(|e| status(store_err(Dialect::Plain)(e)))?;
    Ok(Some(bytes))
}

pub fn ok() -> rpc::Status {
    rpc::Status::default()
}
