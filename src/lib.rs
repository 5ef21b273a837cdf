//! Larder: a persistent, content-addressed build-cache server.
//!
//! Layers, top to bottom: `api` (protocols) → `cache` (entries, blobs, LRU) →
//! `cas` (blob files) and `index` (sled). See docs/ARCHITECTURE.md.

pub mod admin_cmd;
pub mod api;
pub mod auth;
pub mod backend;
pub mod cache;
pub mod cas;
pub mod cli;
pub mod cluster;
pub mod cluster_cmd;
pub mod config;
pub mod datadir;
pub mod fsck_cmd;
pub mod healthcheck;
pub mod heap;
pub mod history;
pub mod index;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod tls_roots;
pub mod upstream;
pub mod workers;
