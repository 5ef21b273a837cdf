//! Typed configuration, layered: defaults → TOML file → `LARDER__SECTION__KEY`
//! environment variables → command-line flags. Every key is documented in
//! `config/larder.toml`; an unknown key anywhere is an error.

mod proxy;
mod server;
mod units;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

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
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub proxy: ProxyConfig,
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

/// Values given on the command line; they win over every other layer.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub max_size: Option<Size>,
    pub log_format: Option<LogFormat>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("{key}: {why}")]
    Value { key: &'static str, why: String },
}

impl Config {
    /// Builds the effective config from every layer, then validates it.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let config = Self::load_unchecked(file, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Every layer merged and typed, without `validate` (for offline tools).
    pub fn load_unchecked(
        file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        if let Some(v) = &overrides.listen {
            figment = figment.merge(Serialized::default("server.listen", v));
        }
        if let Some(v) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("storage.data_dir", v));
        }
        if let Some(v) = &overrides.max_size {
            figment = figment.merge(Serialized::default("storage.max_size", v));
        }
        if let Some(v) = &overrides.log_format {
            figment = figment.merge(Serialized::default("log.format", v));
        }
        if let Some(v) = &overrides.tls_cert {
            figment = figment.merge(Serialized::default("server.tls_cert", v));
        }
        if let Some(v) = &overrides.tls_key {
            figment = figment.merge(Serialized::default("server.tls_key", v));
        }
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        if let Some(grace) = config.gc.grace.take() {
            config.gc.lease = grace;
            config.deprecated.push(format!(
                "gc.grace is deprecated: it is read as gc.lease; rename it (env {ENV_PREFIX}GC__LEASE)"
            ));
        }
        Ok(config)
    }

    /// Checks what types alone cannot, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.storage.max_size.bytes() == 0 {
            return Err(ConfigError::Value {
                key: "storage.max_size",
                why: "must be greater than 0".into(),
            });
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Value {
                key: "storage.data_dir",
                why: "must not be empty".into(),
            });
        }
        let (high, low) = (self.storage.high_watermark, self.storage.low_watermark);
        if !(0.0 < high && high <= 1.0) {
            return Err(ConfigError::Value {
                key: "storage.high_watermark",
                why: format!("{high} is not a fraction in (0, 1]"),
            });
        }
        if !(0.0 < low && low < high) {
            return Err(ConfigError::Value {
                key: "storage.low_watermark",
                why: format!("{low} must be above 0 and below storage.high_watermark ({high})"),
            });
        }
        if self.storage.hard_limit() < self.storage.max_size.bytes() {
            return Err(ConfigError::Value {
                key: "storage.hard_limit",
                why: format!(
                    "{} is below storage.max_size ({}): it must be at least the budget",
                    self.storage.hard_limit(),
                    self.storage.max_size.bytes()
                ),
            });
        }
        if self.storage.max_blob_size.bytes() == 0 {
            return Err(ConfigError::Value {
                key: "storage.max_blob_size",
                why: "must be greater than 0".into(),
            });
        }
        if self.gc.max_idle.is_some_and(|s| s.0.is_zero()) {
            return Err(ConfigError::Value {
                key: "gc.max_idle",
                why: "must be greater than 0 (leave it out to keep entries regardless of age)"
                    .into(),
            });
        }
        for (name, ns) in &self.namespaces {
            if ns.max_size.is_some_and(|s| s.bytes() == 0) {
                return Err(ConfigError::Value {
                    key: "namespaces.<name>.max_size",
                    why: format!("namespace {name:?}: must be greater than 0"),
                });
            }
        }
        if self.auth.mode == AuthMode::None
            && !self.server.listen.ip().is_loopback()
            && !self.auth.allow_anonymous
        {
            return Err(ConfigError::Value {
                key: "auth.mode",
                why: format!(
                    "refusing to serve {} without authentication: set auth.mode = \"token\" and mint \
                     tokens with `larder token create`, or set auth.allow_anonymous = true to let \
                     anyone who reaches this address read and write the cache",
                    self.server.listen
                ),
            });
        }
        if self.metrics.require_token && self.auth.mode != AuthMode::Token {
            return Err(ConfigError::Value {
                key: "metrics.require_token",
                why: "needs auth.mode = \"token\": without it no token can be checked".into(),
            });
        }
        if let Some(url) = &self.server.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Value {
                    key: "server.public_url",
                    why: format!("{url:?} must start with http:// or https://"),
                });
            }
        }
        self.server.validate()?;
        self.proxy.validate()?;
        for (key, span) in [
            (
                "storage.index_snapshot_interval",
                self.storage.index_snapshot_interval,
            ),
            ("gc.interval", self.gc.interval),
            ("gc.upload_expiry", self.gc.upload_expiry),
            ("gc.lease", self.gc.lease),
            ("gha.url_ttl", self.gha.url_ttl),
        ] {
            if span.0.is_zero() {
                return Err(ConfigError::Value {
                    key,
                    why: "must be greater than 0".into(),
                });
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Value {
                key: "log.level",
                why: format!("{:?} is not a tracing filter ({e})", self.log.level),
            });
        }
        Ok(())
    }

    /// The effective config as TOML, the same shape `config/larder.toml` documents.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// Renders figment's errors as `section.key: why (in <where>)`, one per line,
/// naming the env variable or file the bad value came from.
fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let origin = match &e.metadata {
                Some(m) if m.name.contains("environment") => {
                    format!(" (in {ENV_PREFIX}{})", e.path.join("__").to_uppercase())
                }
                Some(m) => match &m.source {
                    Some(src) => format!(" (in {src})"),
                    None => format!(" (in {})", m.name),
                },
                _ => String::new(),
            };
            if key.is_empty() {
                format!("{}{origin}", e.kind)
            } else {
                format!("{key}: {}{origin}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
