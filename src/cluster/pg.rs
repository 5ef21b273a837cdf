//! Connections to PostgreSQL: a pool for requests and single connections
//! for what is tied to one session (the leader's advisory lock).

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::ClusterError;
use crate::config::PostgresConfig;

/// The connection settings `url` and `password_file` give, with Larder's
/// application name so that `pg_stat_activity` shows whose session is
/// whose (the leader is found that way).
pub fn settings(
    cfg: &PostgresConfig,
    application: &str,
) -> Result<tokio_postgres::Config, ClusterError> {
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
    Ok(pg)
}

pub fn pool(cfg: &PostgresConfig, application: &str) -> Result<Pool, ClusterError> {
    let manager = Manager::from_config(
        settings(cfg, application)?,
        NoTls,
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
pub async fn connect(
    settings: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, ClusterError> {
    let (client, connection) = settings.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}
