//! Replicas record that they are alive, so that `larder cluster status`
//! (and the admin API) can show who serves. Ages are computed by the
//! database's clock alone: replicas' clocks may disagree.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::task::JoinHandle;

use super::ClusterError;

#[derive(Clone, Debug, Serialize)]
pub struct Replica {
    pub id: String,
    pub version: String,
    pub address: String,
    pub up_secs: f64,
    pub seen_secs_ago: f64,
}

/// Who this replica is, as the heartbeat records it.
#[derive(Clone, Debug)]
pub struct Me {
    pub id: String,
    pub address: String,
}

/// Records `me` as alive now; the first beat also records when it started.
pub async fn beat(
    client: &impl tokio_postgres::GenericClient,
    me: &Me,
) -> Result<(), ClusterError> {
    client
        .execute(
            "INSERT INTO larder_replicas (id, version, address, started_at, seen_at)
                  VALUES ($1, $2, $3, now(), now())
             ON CONFLICT (id) DO UPDATE
                 SET version = excluded.version, address = excluded.address,
                     seen_at = now()",
            &[&me.id, &env!("CARGO_PKG_VERSION"), &me.address],
        )
        .await?;
    Ok(())
}

/// Beats every `interval` until dropped. A failed beat is logged and
/// retried at the next tick: the database being away is `/readyz`'s
/// business, not a reason to stop.
pub fn spawn_heartbeat(pool: Pool, me: Me, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let beat = async {
                let client = pool.get().await?;
                beat(&**client, &me).await
            };
            if let Err(e) = beat.await {
                tracing::warn!(error = %e, "cluster heartbeat failed");
            }
        }
    })
}

pub async fn list(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<Replica>, ClusterError> {
    let rows = client
        .query(
            "SELECT id, version, address,
                    extract(epoch FROM now() - started_at)::float8,
                    extract(epoch FROM now() - seen_at)::float8
               FROM larder_replicas ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Replica {
            id: r.get(0),
            version: r.get(1),
            address: r.get(2),
            up_secs: r.get(3),
            seen_secs_ago: r.get(4),
        })
        .collect())
}
