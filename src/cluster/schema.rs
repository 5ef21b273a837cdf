//! Versioned SQL migrations, applied at start (and by `larder cluster
//! migrate`) in one transaction under an advisory lock, so that replicas
//! starting together apply each migration once. A database whose schema is
//! newer than this binary knows is refused: an old replica writing rows it
//! does not understand would corrupt what a newer one relies on.

use tokio_postgres::Client;

use super::ClusterError;

/// Every migration in order; a version's SQL never changes once released.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "metadata", include_str!("migrations/0001_metadata.sql")),
    (
        2,
        "read cache",
        include_str!("migrations/0002_read_cache.sql"),
    ),
    (3, "admin", include_str!("migrations/0003_admin.sql")),
    (4, "misses", include_str!("migrations/0004_misses.sql")),
];

/// The key of the transaction-scoped advisory lock migrations take
/// ("larder:m" as bytes).
const MIGRATION_LOCK: i64 = 0x6c61_7264_6572_3a6d;

/// The schema version this binary reads and writes.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

#[derive(Debug, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
}

/// Brings the schema to `latest()`; a no-op when it is there already.
pub async fn migrate(client: &mut Client, applied_by: &str) -> Result<Migrated, ClusterError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS larder_schema (
             version     integer PRIMARY KEY,
             name        text NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now(),
             applied_by  text NOT NULL
         )",
    )
    .await?;
    let from = current(&tx).await?;
    refuse_newer(from)?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > from) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| ClusterError::Migration {
                version: *version,
                source: e,
            })?;
        tx.execute(
            "INSERT INTO larder_schema (version, name, applied_by) VALUES ($1, $2, $3)",
            &[version, name, &applied_by],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Migrated { from, to: latest() })
}

/// The database's schema version, 0 before the first migration.
pub async fn version(client: &impl tokio_postgres::GenericClient) -> Result<i32, ClusterError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('larder_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    current(client).await
}

/// Refuses to serve on a schema other than this binary's.
pub async fn check(client: &impl tokio_postgres::GenericClient) -> Result<(), ClusterError> {
    let found = version(client).await?;
    refuse_newer(found)?;
    if found < latest() {
        return Err(ClusterError::SchemaOlder {
            found,
            binary: latest(),
        });
    }
    Ok(())
}

async fn current(client: &impl tokio_postgres::GenericClient) -> Result<i32, ClusterError> {
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM larder_schema", &[])
        .await?;
    Ok(row.get(0))
}

fn refuse_newer(found: i32) -> Result<(), ClusterError> {
    if found > latest() {
        return Err(ClusterError::SchemaNewer {
            found,
            binary: latest(),
        });
    }
    Ok(())
}
