//! `ActionCache`: the same `ac/<sha256>` entries as Bazel's HTTP cache. A
//! result pins the blobs it names; one whose blobs are not all present is
//! NOT_FOUND, never a hit Bazel cannot use.

use std::collections::HashSet;

use bytes::Bytes;
use prost::Message;
use tonic::{Request, Response, Status};

use super::context::{authorize, check_digest_function, parse_digest, read_blob, status};
use super::gen::build::bazel::remote::execution::v2::Digest;
use super::gen::build::bazel::remote::execution::v2::{
    action_cache_server, ActionResult, GetActionResultRequest, UpdateActionResultRequest,
};
use crate::api::httpcache::error::store_err;
use crate::api::httpcache::{bazel, value, Dialect};
use crate::api::AppState;
use crate::auth::{READ, WRITE};
use crate::cache::{EntryKey, Protocol};

const D: Dialect = Dialect::Plain;

/// The most bytes inlined into one result: a quarter of the 4 MiB a gRPC
/// client accepts by default, leaving room for the result's own fields.
pub const INLINE_BUDGET: u64 = 1 << 20;

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
        let Some(entry) = value::find(state, &ac_key(&ns, &action.sha256), D)
            .await
            .map_err(status)?
        else {
            return Err(miss());
        };
        if !bazel::hit_is_whole(state, &entry).await.map_err(status)? {
            return Err(miss());
        }
        let blob = value::content(state, &entry, D).await.map_err(status)?;
        let bytes = state
            .store
            .read_content(&blob.id, blob.size)
            .await
            .map_err(|e| status(store_err(D)(e)))?;
        // Leases the outputs the entry pins, as an HTTP hit does.
        state.store.touch_entry(&entry);
        // An `ac/` value an HTTP client stored that is no ActionResult
        // (ccache's bazel layout) is no hit for Bazel.
        let mut result = ActionResult::decode(bytes).map_err(|_| miss())?;
        inline(state, &ns, &req, &mut result).await?;
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

/// Fills what the request asks to inline (`stdout_raw`, `stderr_raw`,
/// `OutputFile.contents` of the paths named exactly) from the CAS, in that
/// order, while the budget lasts: the proto lets the server leave any of
/// them to the digest, and the client then fetches the blob itself.
async fn inline(
    state: &AppState,
    ns: &str,
    req: &GetActionResultRequest,
    result: &mut ActionResult,
) -> Result<(), Status> {
    let mut budget = INLINE_BUDGET;
    let mut slot = Slot {
        state,
        ns,
        budget: &mut budget,
    };
    let r = &mut *result;
    slot.fill(
        req.inline_stdout,
        r.stdout_digest.as_ref(),
        &mut r.stdout_raw,
    )
    .await?;
    slot.fill(
        req.inline_stderr,
        r.stderr_digest.as_ref(),
        &mut r.stderr_raw,
    )
    .await?;
    let wanted: HashSet<&str> = req.inline_output_files.iter().map(String::as_str).collect();
    for file in &mut result.output_files {
        let asked = wanted.contains(file.path.as_str());
        slot.fill(asked, file.digest.as_ref(), &mut file.contents)
            .await?;
    }
    Ok(())
}

struct Slot<'a> {
    state: &'a AppState,
    ns: &'a str,
    budget: &'a mut u64,
}

impl Slot<'_> {
    /// Sets `raw` to the blob's bytes when asked and within the budget
    /// (taken from it), else to nothing: what a client stored inline is not
    /// sent unasked, as the proto says the server SHOULD NOT. Without a
    /// digest the stored bytes are the only copy and stay as they are.
    async fn fill(
        &mut self,
        asked: bool,
        digest: Option<&Digest>,
        raw: &mut Vec<u8>,
    ) -> Result<(), Status> {
        if digest.is_none() {
            return Ok(());
        }
        raw.clear();
        let Ok(n) = parse_digest(digest) else {
            return Ok(());
        };
        if !asked || n.size == 0 || n.size > *self.budget {
            return Ok(());
        }
        if let Some(bytes) = read_blob(self.state, self.ns, &n).await? {
            *self.budget -= n.size;
            *raw = bytes.to_vec();
        }
        Ok(())
    }
}
