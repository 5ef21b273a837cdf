//! One leader among the replicas, for the work that must run once per
//! cluster (eviction under the global budget, GC, expiry, sweeps): whoever
//! holds a session-level PostgreSQL advisory lock. The lock lives exactly
//! as long as the holder's database session, so a replica that dies, or
//! whose connection the database loses, gives it up without anyone's help;
//! the others try for it every `retry` and one takes over within seconds.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::pg;

/// The advisory lock's key ("larder:l" as bytes; positive, see `holder`).
const LEADER_LOCK: i64 = 0x6c61_7264_6572_3a6c;

/// This replica's part in the election, running until dropped.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Leadership {
    /// Starts campaigning on a connection of its own (`settings` should
    /// carry the replica's application name: `holder` reports it).
    pub fn start(settings: pg::Settings, retry: Duration) -> Leadership {
        let (tx, leading) = watch::channel(false);
        let task = tokio::spawn(campaign(settings, retry, tx));
        Leadership { leading, task }
    }

    /// Whether this replica leads now. Leader-only work checks it before
    /// each step, so a replica that lost its session stops at the next one.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Follows leadership as it changes.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Waits until leadership becomes `leading` (true: won, false: lost).
    pub async fn changed_to(&mut self, leading: bool) {
        // The sender lives in the task, which only ends on drop.
        let _ = self.leading.wait_for(|l| *l == leading).await;
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // Dropping the task drops its client: the session ends, the lock goes.
        self.task.abort();
    }
}

async fn campaign(settings: pg::Settings, retry: Duration, leading: watch::Sender<bool>) {
    // A query that takes longer than this means the session cannot be
    // trusted to still hold the lock: step down and reconnect.
    let patience = (retry * 3).max(Duration::from_secs(5));
    loop {
        match pg::connect(&settings).await {
            Ok(client) => {
                contend(&client, retry, patience, &leading).await;
                leading.send_replace(false);
            }
            Err(e) => tracing::warn!(error = %e, "leader election: cannot reach postgres"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// Tries for the lock every `retry` and, once held, checks the session every
/// `retry`; returns when the session fails.
async fn contend(
    client: &Client,
    retry: Duration,
    patience: Duration,
    leading: &watch::Sender<bool>,
) {
    loop {
        let held = *leading.borrow();
        // Asking again for a lock the session holds would stack it, so the
        // leader checks its session with a plain query instead.
        let sql = if held {
            "SELECT true"
        } else {
            "SELECT pg_try_advisory_lock($1::bigint)"
        };
        let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] =
            if held { &[] } else { &[&LEADER_LOCK] };
        match tokio::time::timeout(patience, client.query_one(sql, params)).await {
            Ok(Ok(row)) => {
                if !held && row.get::<_, bool>(0) {
                    tracing::info!("leader election: this replica leads");
                    leading.send_replace(true);
                }
            }
            Ok(Err(e)) => {
                if held {
                    tracing::warn!(error = %e, "leader election: session lost; stepping down");
                }
                return;
            }
            Err(_) => {
                tracing::warn!("leader election: postgres did not answer; stepping down");
                return;
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// The application name of the session holding the leader lock, if any.
pub async fn holder(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Option<String>, tokio_postgres::Error> {
    // A bigint advisory key is split into classid (high half) and objid.
    let row = client
        .query_opt(
            "SELECT a.application_name FROM pg_locks l
               JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                AND ((l.classid::bigint << 32) | l.objid::bigint) = $1
              LIMIT 1",
            &[&LEADER_LOCK],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
