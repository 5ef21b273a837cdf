//! Protocol adapters: parse the request, call `cache/`, render the protocol's
//! response. Health probes live here too.

pub mod admin;
mod app;
pub mod conditional;
pub mod gha;
mod health;
pub mod httpcache;
pub mod observe;
pub mod oci;
pub mod proxy;
pub mod range;
pub mod reapi;
pub mod request_log;
mod scrape;
mod ui;

use std::sync::Arc;

use axum::Router;

pub use app::App;

use crate::auth::Auth;
use crate::backend::Backend;
use crate::config::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Backend,
    pub auth: Arc<Auth>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub workers: Arc<crate::workers::WorkerBoard>,
    /// Which concurrent PUT of a new HTTP cache key created it.
    pub creations: Arc<httpcache::Creations>,
    /// The enabled pull-through proxies (npm, PyPI, Go).
    pub proxies: Arc<proxy::Proxies>,
}

impl AppState {
    /// The largest blob a single write may bring: `storage.max_blob_size`,
    /// and never more than the whole budget.
    pub fn blob_limit(&self) -> u64 {
        let s = &self.config.storage;
        s.max_blob_size.bytes().min(s.hard_limit())
    }
}

/// The base URL clients use to reach this server (no trailing slash):
/// `server.public_url`, else the request's Host (and, when trusted, the
/// `X-Forwarded-Proto`/`X-Forwarded-Host` of the proxy in front), https
/// when Larder itself serves TLS.
pub fn external_base(headers: &axum::http::HeaderMap, config: &Config) -> String {
    if let Some(url) = &config.server.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let trusted = config.server.trust_forwarded_headers;
    let host = trusted
        .then(|| get("x-forwarded-host"))
        .flatten()
        .or_else(|| get("host"))
        .map(str::to_owned)
        .unwrap_or_else(|| config.server.listen.to_string());
    let proto = trusted
        .then(|| get("x-forwarded-proto"))
        .flatten()
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or(if config.server.tls() { "https" } else { "http" });
    format!("{proto}://{host}")
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

/// Refuses a request whose declared body is larger than `limit`, before a
/// byte of it is read: a client announcing a terabyte is answered at once
/// instead of after filling the budget up to the limit.
pub fn refuse_declared_over(
    headers: &axum::http::HeaderMap,
    limit: u64,
) -> Result<(), crate::cache::StoreError> {
    match content_length(headers) {
        Some(n) if n > limit => Err(crate::cas::CasError::TooLarge { limit }.into()),
        _ => Ok(()),
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .route("/metrics", axum::routing::get(scrape::metrics))
        .merge(oci::routes())
        .merge(gha::routes())
        .merge(httpcache::routes())
        .merge(proxy::routes())
        .merge(admin::routes())
        .merge(ui::routes())
        .with_state(state.clone())
        .merge(reapi::routes(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state,
            request_log::log,
        ))
}
