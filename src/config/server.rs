//! `[server]`: the listen address, shutdown, and the limits that keep slow,
//! idle or hostile clients from holding connections (docs/ARCHITECTURE.md, Faults).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Size, Span};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// How long a shutdown waits for in-flight requests before closing them.
    pub shutdown_timeout: Span,
    /// The URL clients reach this server at (behind a proxy), used in
    /// self-referencing URLs; by default derived from each request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Believe `X-Forwarded-Proto`/`X-Forwarded-Host` (self-referencing
    /// URLs) and `X-Forwarded-For`/`X-Real-IP` (the client in request logs);
    /// only behind a proxy that sets them.
    pub trust_forwarded_headers: bool,
    /// How long a client has to send a request's headers, counted from the
    /// connection's start or from the first byte of a later request; a
    /// connection that takes longer (slowloris) is closed.
    pub header_read_timeout: Span,
    /// How long a connection may sit idle between requests before it is
    /// closed. Longer than the clients' own pool timeouts (Go and reqwest:
    /// 90 s), so that the client, not the server, closes first.
    pub keep_alive_timeout: Span,
    /// The slowest a request body may arrive, in bytes per second, averaged
    /// over `body_rate_window` of waiting for the client; a slower (or
    /// stalled) upload is cut. 0 turns the check off.
    pub min_body_rate: Size,
    /// The span over which `min_body_rate` is measured: a body that delivers
    /// nothing is cut after this long, and so is a response the client stops
    /// reading (with `min_body_rate` = 0, neither is cut).
    pub body_rate_window: Span,
    /// Connections served at once; more wait in the listen backlog until one
    /// closes. Keep it below the process's open-file limit.
    pub max_connections: usize,
    /// PEM certificate chain (leaf first) for HTTPS on `listen`; needs
    /// `tls_key`. Both files are reloaded on SIGHUP and when they change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            shutdown_timeout: Span::secs(30),
            public_url: None,
            trust_forwarded_headers: false,
            header_read_timeout: Span::secs(30),
            keep_alive_timeout: Span::secs(120),
            min_body_rate: Size(1 << 10),
            body_rate_window: Span::secs(30),
            max_connections: 1024,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl ServerConfig {
    /// Whether `listen` serves HTTPS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.shutdown_timeout.0.is_zero() {
            return Err(ConfigError::Value {
                key: "server.shutdown_timeout",
                why: "must be greater than 0 so in-flight requests can finish".into(),
            });
        }
        for (key, span) in [
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.keep_alive_timeout", self.keep_alive_timeout),
            ("server.body_rate_window", self.body_rate_window),
        ] {
            if span.0.is_zero() {
                return Err(ConfigError::Value {
                    key,
                    why: "must be greater than 0".into(),
                });
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::Value {
                    key: "server.tls_key",
                    why: "must be set with server.tls_cert".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Value {
                    key: "server.tls_cert",
                    why: "must be set with server.tls_key".into(),
                })
            }
            _ => {}
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Value {
                key: "server.max_connections",
                why: "must be greater than 0".into(),
            });
        }
        Ok(())
    }
}
