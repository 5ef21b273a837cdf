//! Loading the config: the layers merged by figment, then validated, with
//! errors that name the key and the layer it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

use super::*;

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
        if let Err(why) = crate::auth::names::check_namespace(&self.reapi.default_namespace) {
            return Err(ConfigError::Value {
                key: "reapi.default_namespace",
                why,
            });
        }
        self.server.validate()?;
        self.proxy.validate()?;
        self.cluster.validate()?;
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
