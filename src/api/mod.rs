//! Protocol adapters: parse the request, call `cache/`, render the protocol's
//! response. Health probes live here too.

mod health;
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

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .layer(trace::layer())
        .with_state(state)
}
