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
    /// The largest blob a single write may bring: a blob larger than the
    /// whole budget could never be stored.
    pub fn blob_limit(&self) -> u64 {
        self.config.storage.max_size.bytes()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(oci::routes())
        .layer(trace::layer())
        .with_state(state)
}
