//! `Capabilities`: what Bazel checks before it uses the cache. It refuses a
//! server without its digest function, and uploads nothing where
//! `update_enabled` is false, so that follows the caller's token.

use tonic::{Request, Response, Status};

use super::context::authorize;
use super::gen::build::bazel::remote::execution::v2::{
    capabilities_server, compressor, digest_function, symlink_absolute_path_strategy,
    ActionCacheUpdateCapabilities, CacheCapabilities, GetCapabilitiesRequest, ServerCapabilities,
};
use super::gen::build::bazel::semver::SemVer;
use super::MAX_BATCH;
use crate::api::AppState;
use crate::auth::{READ, WRITE};

#[derive(Clone)]
pub struct Capabilities(pub AppState);

fn version(minor: i32) -> Option<SemVer> {
    Some(SemVer {
        major: 2,
        minor,
        ..SemVer::default()
    })
}

#[tonic::async_trait]
impl capabilities_server::Capabilities for Capabilities {
    async fn get_capabilities(
        &self,
        req: Request<GetCapabilitiesRequest>,
    ) -> Result<Response<ServerCapabilities>, Status> {
        let (ns, caller) = authorize(&self.0, req.metadata(), &req.get_ref().instance_name, READ)?;
        let update_enabled = self.0.auth.permission(&caller, &ns) & WRITE != 0;
        let cache = CacheCapabilities {
            digest_functions: vec![digest_function::Value::Sha256 as i32],
            action_cache_update_capabilities: Some(ActionCacheUpdateCapabilities {
                update_enabled,
            }),
            cache_priority_capabilities: None,
            max_batch_total_size_bytes: MAX_BATCH as i64,
            symlink_absolute_path_strategy: symlink_absolute_path_strategy::Value::Allowed as i32,
            supported_compressors: vec![compressor::Value::Zstd as i32],
            supported_batch_update_compressors: vec![compressor::Value::Zstd as i32],
        };
        Ok(Response::new(ServerCapabilities {
            cache_capabilities: Some(cache),
            execution_capabilities: None,
            deprecated_api_version: None,
            low_api_version: version(0),
            high_api_version: version(3),
        }))
    }
}
