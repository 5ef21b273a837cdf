//! Connections to PostgreSQL: a pool for requests and single connections
//! for what is tied to one session (the leader's advisory lock). TLS is
//! rustls: `sslmode` in the URL decides whether it is used (libpq's
//! default, `prefer`, uses it when the server offers it), and the server's
//! certificate is checked against `ca_file`, else the system's roots.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::ClusterError;
use crate::config::PostgresConfig;

/// Where and how to connect: the connection string's settings and the TLS
/// connector they use.
#[derive(Clone)]
pub struct Settings {
    pub pg: tokio_postgres::Config,
    pub(super) tls: MakeRustlsConnect,
}

/// The settings `url`, `password_file` and `ca_file` give, with Larder's
/// application name so that `pg_stat_activity` shows whose session is whose
/// (the leader is found that way).
pub fn settings(cfg: &PostgresConfig, application: &str) -> Result<Settings, ClusterError> {
    let mut pg: tokio_postgres::Config = cfg.url.parse().map_err(|e| {
        ClusterError::Config(format!(
            "cluster.postgres.url is not a connection string: {e}"
        ))
    })?;
    if let Some(file) = &cfg.password_file {
        let password = std::fs::read_to_string(file).map_err(|e| {
            ClusterError::Config(format!(
                "cluster.postgres.password_file {}: {e}",
                file.display()
            ))
        })?;
        // Secrets mounted from files usually end with a newline.
        pg.password(password.trim_end_matches(['\r', '\n']));
    }
    pg.application_name(application);
    pg.connect_timeout(cfg.connect_timeout.0);
    // A dead peer (a replica's host gone, a partitioned database) is noticed
    // by the kernel rather than at the next query's timeout.
    pg.keepalives(true);
    pg.keepalives_idle(Duration::from_secs(10));
    let roots = match &cfg.ca_file {
        Some(path) => crate::tls_roots::pem_roots(path, "cluster.postgres.ca_file")
            .map_err(ClusterError::Config)?,
        None => crate::tls_roots::system_roots(),
    };
    // ring, as for the server's TLS (see server/tls.rs).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClusterError::Config(format!("TLS to postgres: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Settings {
        pg,
        tls: MakeRustlsConnect::new(tls),
    })
}

pub fn pool(cfg: &PostgresConfig, application: &str) -> Result<Pool, ClusterError> {
    let s = settings(cfg, application)?;
    let manager = Manager::from_config(
        s.pg,
        s.tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(cfg.pool_size)
        .wait_timeout(Some(cfg.connect_timeout.0))
        .create_timeout(Some(cfg.connect_timeout.0))
        .recycle_timeout(Some(cfg.connect_timeout.0))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| ClusterError::Config(format!("cluster.postgres: {e}")))
}

/// One connection outside the pool, its driver spawned on the runtime; the
/// connection closes when the client is dropped.
pub async fn connect(settings: &Settings) -> Result<tokio_postgres::Client, ClusterError> {
    let (client, connection) = settings.pg.connect(settings.tls.clone()).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}
