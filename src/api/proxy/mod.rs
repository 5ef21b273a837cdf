//! Pull-through proxies for package managers: npm at `/npm/<ns>/`, PyPI at
//! `/pypi/<ns>/simple/`, Go modules at `/go/<ns>/`. Each ecosystem module
//! parses and validates its protocol's paths and calls the shared core in
//! `cached`: immutable artifacts are fetched once (coalesced), verified
//! against the upstream's published hash, and stored as entries; metadata
//! is revalidated after `metadata_ttl` and served stale when the upstream
//! is down. The namespace segment of the path is the tenant: the caller
//! needs read permission on it, and what is fetched counts against it.

pub mod cached;
pub mod error;
mod go;
mod go_path;
mod go_sumdb;
pub mod npm;
mod pypi;
mod tee;

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::Router;

use super::AppState;
use crate::auth::{Caller, READ};
use crate::cache::{EntryRecord, Protocol};
use crate::config::{ProxyConfig, UpstreamConfig};
use crate::metrics::proxy::Event;
use crate::upstream::{Coalesce, Upstream};
pub use cached::{Artifact, Document};
pub use error::{ProxyError, Result};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(go::routes())
        .merge(npm::routes())
        .merge(pypi::routes())
}

/// Which package ecosystem a proxy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Npm,
    Pypi,
    Go,
}

impl Kind {
    /// The entries' protocol, and the `ecosystem` label of the metrics.
    pub fn protocol(self) -> Protocol {
        match self {
            Kind::Npm => Protocol::Npm,
            Kind::Pypi => Protocol::Pypi,
            Kind::Go => Protocol::Go,
        }
    }

    pub fn name(self) -> &'static str {
        self.protocol().name()
    }
}

/// One enabled proxy: its upstream and what is being fetched from it.
pub struct Ecosystem {
    pub kind: Kind,
    pub upstream: Upstream,
    pub metadata_ttl: Duration,
    /// Fetch-and-store runs in flight, by namespace and entry name.
    fetches: Coalesce<Result<EntryRecord>>,
}

impl Ecosystem {
    pub fn new(kind: Kind, c: &UpstreamConfig, limits: &ProxyConfig) -> anyhow::Result<Ecosystem> {
        Ok(Ecosystem {
            kind,
            upstream: Upstream::new(c, limits)?,
            metadata_ttl: c.metadata_ttl.0,
            fetches: Coalesce::default(),
        })
    }

    pub fn note(&self, state: &AppState, event: Event) {
        state.metrics.proxy.note(self.kind.name(), event);
    }
}

/// The enabled proxies, built once at start from `[proxy.*]`.
#[derive(Default)]
pub struct Proxies {
    pub npm: Option<Arc<Ecosystem>>,
    pub pypi: Option<Arc<Ecosystem>>,
    pub go: Option<Arc<Ecosystem>>,
}

impl Proxies {
    /// Fails (and so stops the start) when an enabled proxy's credentials
    /// cannot be read.
    pub fn new(c: &ProxyConfig) -> anyhow::Result<Proxies> {
        let build = |kind, up: &UpstreamConfig| -> anyhow::Result<_> {
            Ok(match up.enabled {
                true => Some(Arc::new(Ecosystem::new(kind, up, c)?)),
                false => None,
            })
        };
        Ok(Proxies {
            npm: build(Kind::Npm, &c.npm)?,
            pypi: build(Kind::Pypi, &c.pypi)?,
            go: build(Kind::Go, &c.go)?,
        })
    }

    /// The enabled proxy of `kind`, or the 404 that says it is off.
    pub fn get(&self, kind: Kind) -> Result<Arc<Ecosystem>> {
        let slot = match kind {
            Kind::Npm => &self.npm,
            Kind::Pypi => &self.pypi,
            Kind::Go => &self.go,
        };
        slot.clone()
            .ok_or_else(|| ProxyError::disabled(kind.name()))
    }
}

/// What every ecosystem's route does first: only GET and HEAD; the raw path
/// after `/<kind>/` (before any percent-decoding, so an escaped `/` or `.`
/// never reaches validation as something else) split into the namespace and
/// the rest; the caller allowed to read that namespace; the proxy enabled.
pub fn enter<'a>(
    state: &AppState,
    method: &axum::http::Method,
    path: &'a str,
    headers: &HeaderMap,
    kind: Kind,
) -> Result<(&'a str, &'a str, Arc<Ecosystem>)> {
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        return Err(ProxyError::method_not_allowed());
    }
    let path = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(kind.name()))
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or("");
    let (namespace, rest) = path.split_once('/').unwrap_or((path, ""));
    authorize(state, headers, namespace)?;
    Ok((namespace, rest, state.proxies.get(kind)?))
}

/// Checks the namespace's spelling and that the caller may read it: fetching
/// through a proxy stores into the namespace, but is a read for the client.
pub fn authorize(state: &AppState, headers: &HeaderMap, namespace: &str) -> Result<Caller> {
    crate::api::httpcache::keys::namespace(namespace)
        .map_err(|e| ProxyError::bad_name(format!("namespace: {e}")))?;
    state
        .auth
        .check(headers, namespace, READ)
        .map_err(ProxyError::denied)
}
