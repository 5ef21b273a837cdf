//! `[proxy]`: the pull-through proxies for npm, PyPI and Go modules
//! (`[proxy.npm]`, `[proxy.pypi]`, `[proxy.go]`), and the limits every
//! upstream fetch shares.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Size, Span};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// How long connecting to an upstream may take.
    pub connect_timeout: Span,
    /// How long an upstream may stay silent (no byte of the response) before
    /// the fetch is abandoned: an upstream that hangs is answered with 504.
    pub read_timeout: Span,
    /// The largest metadata document (packument, simple page, version list)
    /// read from an upstream; a larger one is refused with 502.
    pub max_metadata_size: Size,
    pub npm: UpstreamConfig,
    pub pypi: UpstreamConfig,
    pub go: UpstreamConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Span::secs(10),
            read_timeout: Span::secs(30),
            max_metadata_size: Size(64 << 20),
            npm: UpstreamConfig::new("https://registry.npmjs.org"),
            pypi: UpstreamConfig::new("https://pypi.org/simple"),
            go: UpstreamConfig::new("https://proxy.golang.org"),
        }
    }
}

/// One ecosystem's upstream. Credentials come from a file or an environment
/// variable, never from the config itself, so that a config file can be
/// shown (`larder config print`) without leaking them.
/// Every key is filled by the defaults layer (`ProxyConfig::default`), so
/// the table has no serde default of its own.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Serve this proxy at all. Off by default: Larder makes no outbound
    /// request unless told to.
    pub enabled: bool,
    /// The upstream's base URL (http or https).
    pub upstream: String,
    /// How long metadata (version lists, packuments, simple pages) is served
    /// from the cache before it is revalidated upstream; when the upstream
    /// is down, the stale copy is served with a `Warning` header.
    pub metadata_ttl: Span,
    /// A bearer token for the upstream, read from this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// A bearer token for the upstream, read from this environment variable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Basic credentials for the upstream: this user name, with the
    /// password from `password_file` or `password_env`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

impl UpstreamConfig {
    fn new(upstream: &str) -> UpstreamConfig {
        UpstreamConfig {
            enabled: false,
            upstream: upstream.to_owned(),
            metadata_ttl: Span::secs(5 * 60),
            token_file: None,
            token_env: None,
            username: None,
            password_file: None,
            password_env: None,
        }
    }
}

impl ProxyConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, span) in [
            ("proxy.connect_timeout", self.connect_timeout),
            ("proxy.read_timeout", self.read_timeout),
        ] {
            if span.0.is_zero() {
                return Err(ConfigError::Value {
                    key,
                    why: "must be greater than 0".into(),
                });
            }
        }
        for (key, up) in [
            ("proxy.npm", &self.npm),
            ("proxy.pypi", &self.pypi),
            ("proxy.go", &self.go),
        ] {
            up.validate(key)?;
        }
        Ok(())
    }
}

impl UpstreamConfig {
    fn validate(&self, key: &'static str) -> Result<(), ConfigError> {
        let bad = |why: String| Err(ConfigError::Value { key, why });
        if !(self.upstream.starts_with("http://") || self.upstream.starts_with("https://")) {
            return bad(format!(
                "upstream {:?} must start with http:// or https://",
                self.upstream
            ));
        }
        if self.token_file.is_some() && self.token_env.is_some() {
            return bad("set token_file or token_env, not both".into());
        }
        let password = self.password_file.is_some() || self.password_env.is_some();
        if self.password_file.is_some() && self.password_env.is_some() {
            return bad("set password_file or password_env, not both".into());
        }
        if password != self.username.is_some() {
            return bad("username needs password_file or password_env, and they need it".into());
        }
        if self.username.is_some() && (self.token_file.is_some() || self.token_env.is_some()) {
            return bad("use either a token or basic credentials, not both".into());
        }
        Ok(())
    }
}
