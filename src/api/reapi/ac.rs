//! `ActionCache`: the same `ac/<sha256>` entries as Bazel's HTTP cache. A
//! result pins the blobs it names; one whose blobs are not all present is
//! NOT_FOUND, never a hit Bazel cannot use.

use bytes::Bytes;
use prost::Message;
use tonic::{Request, Response, Status};

use super::context::{authorize, check_digest_function, parse_digest, status};
use super::gen::build::bazel::remote::execution::v2::{
    action_cache_server, ActionResult, GetActionResultRequest, UpdateActionResultRequest,
};
use crate::api::httpcache::error::store_err;
use crate::api::httpcache::{bazel, value, Dialect};
use crate::api::AppState;
use crate::auth::{READ, WRITE};
use crate::cache::{EntryKey, Protocol};

const D: Dialect = Dialect::Plain;

#[derive(Clone)]
pub struct ActionCache(pub AppState);

fn ac_key(ns: &str, hash: &[u8; 32]) -> EntryKey {
    value::entry_key(Protocol::Http, ns, &format!("ac/{}", hex::encode(hash)))
}

#[tonic::async_trait]
impl action_cache_server::ActionCache for ActionCache {
    async fn get_action_result(
        &self,
        req: Request<GetActionResultRequest>,
    ) -> Result<Response<ActionResult>, Status> {
        let (ns, _) = authorize(&self.0, req.metadata(), &req.get_ref().instance_name, READ)?;
        let req = req.into_inner();
        check_digest_function(req.digest_function)?;
        let action = parse_digest(req.action_digest.as_ref())?;
        let state = &self.0;
        let miss = || Status::not_found("no action result");
        let Some(entry) = value::find(state, &ac_key(&ns, &action.sha256), D).map_err(status)?
        else {
            return Err(miss());
        };
        if !bazel::hit_is_whole(state, &entry).await.map_err(status)? {
            return Err(miss());
        }
        let blob = value::content(state, &entry, D).map_err(status)?;
        let bytes = state
            .store
            .read_content(&blob.id, blob.size)
            .await
            .map_err(|e| status(store_err(D)(e)))?;
        // Leases the outputs the entry pins, as an HTTP hit does.
        state.store.touch_entry(&entry);
        // An `ac/` value an HTTP client stored that is no ActionResult
        // (ccache's bazel layout) is no hit for Bazel.
        let result = ActionResult::decode(bytes).map_err(|_| miss())?;
        Ok(Response::new(result))
    }

    async fn update_action_result(
        &self,
        req: Request<UpdateActionResultRequest>,
    ) -> Result<Response<ActionResult>, Status> {
        let (ns, _) = authorize(&self.0, req.metadata(), &req.get_ref().instance_name, WRITE)?;
        let req = req.into_inner();
        check_digest_function(req.digest_function)?;
        let action = parse_digest(req.action_digest.as_ref())?;
        let result = req
            .action_result
            .ok_or_else(|| Status::invalid_argument("no action_result"))?;
        let bytes = Bytes::from(result.encode_to_vec());
        bazel::store_action_result(&self.0, &ns, ac_key(&ns, &action.sha256), bytes)
            .await
            .map_err(status)?;
        Ok(Response::new(result))
    }
}
