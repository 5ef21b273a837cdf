//! The HTTP client for proxied registries (npm, PyPI, Go): timeouts,
//! redirects to http(s) only, bounded metadata, upstream credentials, and
//! request coalescing. Nothing here knows the store or a protocol; the
//! proxies in `api/proxy/` verify and store what this fetches.

mod client;
mod coalesce;
mod credentials;

pub use client::{Fetched, Upstream, UpstreamError};
pub use coalesce::{Coalesce, Joined};

#[cfg(test)]
mod tests;
