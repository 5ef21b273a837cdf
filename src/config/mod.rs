//! Typed configuration, layered: defaults → TOML file → `LARDER__SECTION__KEY`
//! environment variables → command-line flags. Every key is documented in
//! `config/larder.toml`; an unknown key anywhere is an error.

mod cluster;
mod load;
mod proxy;
mod server;
mod units;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use cluster::{ClusterConfig, PostgresConfig, S3Config};
pub use load::{ConfigError, Overrides};
pub use proxy::{ProxyConfig, UpstreamConfig};
pub use server::ServerConfig;
pub use units::{Size, Span};

/// Prefix of environment variables that override config keys; `__` separates
/// the section from the key (`LARDER__STORAGE__MAX_SIZE=50GiB`).
pub const ENV_PREFIX: &str = "LARDER__";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub gc: GcConfig,
    pub auth: AuthConfig,
    pub gha: GhaConfig,
    pub reapi: ReapiConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub proxy: ProxyConfig,
    pub cluster: ClusterConfig,
    /// Per-namespace settings, `[namespaces.<name>]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, NamespaceConfig>,
    /// Deprecated keys the layers used, each with what replaces it; logged
    /// at start and printed by `config check`.
    #[serde(skip)]
    pub deprecated: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceConfig {
    /// Bytes this namespace's entries may pin; above it, its own least
    /// recently used entries are evicted. Unset: only the global budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<Size>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding blobs, the index and in-progress uploads.
    pub data_dir: PathBuf,
    /// Disk budget for blobs plus in-progress uploads.
    pub max_size: Size,
    /// Fraction of `max_size` above which the evictor starts.
    pub high_watermark: f64,
    /// Fraction of `max_size` the evictor frees down to.
    pub low_watermark: f64,
    /// The line no write crosses: a write that would take usage past it is
    /// refused (507). Bytes that only leases hold may keep usage between
    /// `max_size` and this for a lease period. Default: `max_size` + 10 %.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_limit: Option<Size>,
    /// The largest single blob accepted (413 above it).
    pub max_blob_size: Size,
    /// How often, at most, the index is reopened at a quiet moment so that
    /// the next start replays little; without a quiet moment, after 24 of
    /// these (see `workers`).
    pub index_snapshot_interval: Span,
    /// Space kept in two reserve files in the data dir: one given up when
    /// the disk fills, so that deletes, purges and eviction can still record
    /// what they free, the other by a start on a full disk, so that the index
    /// opens. Writes resume once twice this much is free.
    pub disk_reserve: Size,
    /// Memory for small content (values and manifests up to 256 KiB) served
    /// without touching their files; 0 turns it off.
    pub memory_cache: Size,
    /// Small blobs (up to 256 KiB) made durable by one `syncfs` shared by
    /// concurrent writes instead of two fsyncs each (Linux).
    pub group_sync: bool,
}

impl StorageConfig {
    /// `hard_limit`, or its default.
    pub fn hard_limit(&self) -> u64 {
        match self.hard_limit {
            Some(s) => s.bytes(),
            None => self
                .max_size
                .bytes()
                .saturating_add(self.max_size.bytes() / 10),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./larder-data"),
            max_size: Size(10 << 30),
            high_watermark: 0.9,
            low_watermark: 0.8,
            hard_limit: None,
            max_blob_size: Size(5 << 30),
            index_snapshot_interval: Span::secs(3600),
            disk_reserve: Size(64 << 20),
            memory_cache: Size(64 << 20),
            group_sync: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `none`: anyone may do anything (only allowed on loopback unless
    /// `allow_anonymous`); `token`: every request needs a valid token.
    pub mode: AuthMode,
    /// Permit `mode = "none"` on a non-loopback address.
    pub allow_anonymous: bool,
    /// With `mode = "token"`, let requests without a token read.
    pub anonymous_read: bool,
    /// The HS256 signing key file; default `signing.key` in the data dir,
    /// generated (mode 0600) on first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_file: Option<PathBuf>,
    /// Lifetime of tokens the registry token endpoint hands out.
    pub registry_token_ttl: Span,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::None,
            allow_anonymous: false,
            anonymous_read: false,
            signing_key_file: None,
            registry_token_ttl: Span::secs(300),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A second address serving only `/metrics`; it is always served on the
    /// main address too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Make `/metrics` on the main address answer only requests with an
    /// admin token or one granting the `metrics` permission; the `listen`
    /// address, reached only by whom the network lets in, stays open.
    pub require_token: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    None,
    Token,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// How often garbage collection runs.
    pub interval: Span,
    /// Upload sessions idle for longer than this are removed with their bytes.
    pub upload_expiry: Span,
    /// How long a lease holds blobs: reading an entry leases every blob it
    /// pins (a BuildKit import fetches layers minutes after it resolved the
    /// cache manifest), and writing, HEAD or GET of a blob leases it until
    /// an entry pins it. A leased blob is never deleted.
    pub lease: Span,
    /// The old name of `lease`: read into it at load, with a warning.
    #[serde(default, skip_serializing)]
    pub grace: Option<Span>,
    /// Entries unused for longer than this are removed even under the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle: Option<Span>,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval: Span::secs(60),
            upload_expiry: Span::secs(3600),
            lease: Span::secs(15 * 60),
            grace: None,
            max_idle: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GhaConfig {
    /// How long the signed URLs the GitHub Actions cache hands out (archive
    /// downloads, v2 uploads) stay valid.
    pub url_ttl: Span,
}

impl Default for GhaConfig {
    fn default() -> Self {
        GhaConfig {
            url_ttl: Span::secs(3600),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReapiConfig {
    /// The namespace of gRPC (REAPI) calls with an empty `instance_name`,
    /// which is what Bazel sends without `--remote_instance_name`.
    pub default_namespace: String,
}

impl Default for ReapiConfig {
    fn default() -> Self {
        ReapiConfig {
            default_namespace: "default".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` for terminals, `json` for log shippers.
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `larder=debug,larder::request=warn`, …
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[cfg(test)]
mod tests;
