//! Protocol adapters: parse the request, call `cache/`, render the protocol's
//! response. Health probes live here too.

mod health;
pub mod oci;
pub mod range;
mod trace;

use std::sync::Arc;

use axum::Router;

use crate::cache::Store;
use crate::config::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
}

impl AppState {
    /// The largest blob a single write may bring: `storage.max_blob_size`,
    /// and never more than the whole budget.
    pub fn blob_limit(&self) -> u64 {
        let s = &self.config.storage;
        s.max_blob_size.bytes().min(s.max_size.bytes())
    }
}

/// The request's `Content-Length`, if it announced one.
pub fn content_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(oci::routes())
        .layer(trace::layer())
        .with_state(state)
}
