//! `[cluster]`: replicas sharing an S3-compatible object store for bytes
//! (`[cluster.s3]`) and PostgreSQL for metadata (`[cluster.postgres]`).
//! Off by default: one node on its own data dir needs neither.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Size, Span};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub enabled: bool,
    /// This replica's name in `larder cluster status` and the metrics;
    /// empty: the host name.
    pub replica_id: String,
    /// The local read-through tier of blobs this replica keeps in its data
    /// dir, least recently used dropped first. Losing it loses nothing.
    pub local_cache_size: Size,
    /// What this replica remembers of blobs, tags and entries it looked up
    /// (found or missing), in memory, so that HEADs, hits and repeated
    /// misses skip the database's lookups; forgotten as the database
    /// announces changes. 0 asks the database every time.
    pub metadata_cache_size: Size,
    /// How often a replica records that it is alive; a replica silent for
    /// three of these is shown as gone.
    pub heartbeat_interval: Span,
    pub s3: S3Config,
    pub postgres: PostgresConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            replica_id: String::new(),
            local_cache_size: Size(10 << 30),
            metadata_cache_size: Size(64 << 20),
            heartbeat_interval: Span::secs(5),
            s3: S3Config::default(),
            postgres: PostgresConfig::default(),
        }
    }
}

/// Credentials: `access_key_id` and `secret_access_key` here (or as
/// `LARDER__CLUSTER__S3__…`), else the usual `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) environment variables.
/// The secret is never printed by `larder config print`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// The store's URL (`http://minio:9000`); empty: AWS S3 for `region`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// A key prefix, so that one bucket can hold several clusters.
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
    /// Permit an `http://` endpoint (a store on the same private network).
    pub allow_http: bool,
    /// How long one request to the store may take before it is retried.
    pub request_timeout: Span,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            request_timeout: Span::secs(30),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgres://user@host:5432/larder` (key=value strings work too);
    /// keep the password out of it with `password_file`.
    pub url: String,
    /// A file holding the password (a Kubernetes Secret mounted as a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM certificates to trust for the server's TLS certificate (a
    /// private CA, a cloud provider's bundle); unset: the system's roots.
    /// Whether TLS is used is the URL's `sslmode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Connections this replica keeps open at most.
    pub pool_size: usize,
    /// How long connecting (or waiting for a pooled connection) may take
    /// before the request is answered 503.
    pub connect_timeout: Span,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: String::new(),
            password_file: None,
            ca_file: None,
            pool_size: 16,
            connect_timeout: Span::secs(5),
        }
    }
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        self.validate_postgres()?;
        let bad = |key, why: &str| {
            Err(ConfigError::Value {
                key,
                why: why.into(),
            })
        };
        let s3 = &self.s3;
        if s3.bucket.is_empty() {
            return bad("cluster.s3.bucket", "must be set when cluster.enabled");
        }
        if s3.endpoint.starts_with("http://") && !s3.allow_http {
            return bad(
                "cluster.s3.endpoint",
                "is http://: set cluster.s3.allow_http to permit it",
            );
        }
        if !(s3.endpoint.is_empty()
            || s3.endpoint.starts_with("http://")
            || s3.endpoint.starts_with("https://"))
        {
            return bad(
                "cluster.s3.endpoint",
                "must start with http:// or https:// (or be empty for AWS)",
            );
        }
        for (key, span) in [
            ("cluster.heartbeat_interval", self.heartbeat_interval),
            ("cluster.s3.request_timeout", s3.request_timeout),
        ] {
            if span.0.is_zero() {
                return bad(key, "must be greater than 0");
            }
        }
        Ok(())
    }

    /// What `larder cluster migrate` and `status` need: PostgreSQL alone,
    /// whether or not `enabled` is set yet.
    pub fn validate_postgres(&self) -> Result<(), ConfigError> {
        let bad = |key, why: &str| {
            Err(ConfigError::Value {
                key,
                why: why.into(),
            })
        };
        if self.postgres.url.is_empty() {
            return bad("cluster.postgres.url", "must be set");
        }
        if self.postgres.pool_size == 0 {
            return bad("cluster.postgres.pool_size", "must be greater than 0");
        }
        if self.postgres.connect_timeout.0.is_zero() {
            return bad("cluster.postgres.connect_timeout", "must be greater than 0");
        }
        Ok(())
    }
}
