//! A cluster replica's workers, on the same board and stop signal as a
//! single node's: its heartbeat, the flush of the uses and leases it saw,
//! the refresh of revocations made through other replicas, the session
//! that hears the database's changes for the memo, the leader's duties
//! (run only while this replica leads) and the dashboard's history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{history_worker, run, Wake, WorkerBoard, Workers, EVICT_CHECK_EVERY};
use crate::cluster::replica::{Replica, FLUSH_INTERVAL};
use crate::cluster::replicas;
use crate::cluster::store::ClusterStore;
use crate::cluster::{listen, pg};
use crate::config::Config;
use crate::metrics::Metrics;

/// How soon revocations made through another replica take effect here.
const REVOCATIONS_EVERY: Duration = Duration::from_secs(1);

/// How soon the memo's listening session is opened again once lost.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

impl Workers {
    pub fn start_cluster(
        replica: Replica,
        config: &Config,
        board: Arc<WorkerBoard>,
        metrics: Arc<Metrics>,
    ) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let Replica {
            store,
            leadership,
            duties,
            me,
            listen,
            ..
        } = replica;
        let mut handles = Vec::new();

        let pool = store.pool.clone();
        handles.push(run(
            "heartbeat",
            Wake::Every(config.cluster.heartbeat_interval.0),
            stopped.clone(),
            board.clone(),
            move || {
                let (pool, me) = (pool.clone(), me.clone());
                async move {
                    let client = pool.get().await.map_err(|e| e.to_string())?;
                    (replicas::beat(&**client, &me).await).map_err(|e| e.to_string())
                }
            },
        ));

        let s = store.clone();
        handles.push(run(
            "touch-flusher",
            Wake::Every(FLUSH_INTERVAL),
            stopped.clone(),
            board.clone(),
            move || {
                let s = s.clone();
                async move { s.flush_touches().await.map_err(|e| e.to_string()) }
            },
        ));

        let s = store.clone();
        handles.push(run(
            "revocations",
            Wake::Every(REVOCATIONS_EVERY),
            stopped.clone(),
            board.clone(),
            move || {
                let s = s.clone();
                async move {
                    (s.refresh_revocations().await)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            },
        ));

        handles.push(memo_listener(
            store.clone(),
            listen,
            stopped.clone(),
            board.clone(),
        ));

        // Every replica runs these workers; only the leader does the work,
        // and checks again before each run, so a replica that lost its
        // session stops at the next one. Eviction runs often (a budget
        // passed must come back soon); the sweep, which lists the bucket,
        // every `gc.interval`.
        let (leadership, duties) = (Arc::new(leadership), Arc::new(duties));
        let (l, d) = (leadership.clone(), duties.clone());
        handles.push(run(
            "leader-evictor",
            Wake::Every(EVICT_CHECK_EVERY),
            stopped.clone(),
            board.clone(),
            move || {
                let (l, d) = (l.clone(), d.clone());
                async move {
                    if l.is_leader() {
                        d.evict().await.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
            },
        ));
        handles.push(run(
            "leader-sweeper",
            Wake::Every(duties.interval),
            stopped.clone(),
            board.clone(),
            move || {
                let (l, d) = (leadership.clone(), duties.clone());
                async move {
                    if l.is_leader() {
                        d.sweep().await.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
            },
        ));

        let history_path = crate::history::History::path(&config.storage.data_dir);
        handles.push(history_worker(
            None,
            &history_path,
            &metrics,
            &board,
            &stopped,
        ));
        Workers {
            stop,
            handles,
            history: (None, metrics, history_path),
            cluster: Some(store),
        }
    }
}

/// Keeps the memo hearing the database's changes: a session that lasts
/// until it fails, then another a moment later. While none is up the memo
/// is deaf and lookups ask the database.
fn memo_listener(
    store: Arc<ClusterStore>,
    settings: pg::Settings,
    mut stopped: watch::Receiver<bool>,
    board: Arc<WorkerBoard>,
) -> JoinHandle<()> {
    const NAME: &str = "memo-listener";
    tokio::spawn(async move {
        loop {
            let started = Instant::now();
            let result = listen::listen(&settings, &store.memo, stopped.clone()).await;
            if *stopped.borrow() {
                return;
            }
            if let Err(e) = &result {
                tracing::warn!(
                    worker = NAME, error = %e,
                    "not hearing the database's changes; lookups ask it until this is back"
                );
            }
            board.finished(NAME, RELISTEN_AFTER, started.elapsed(), result.err());
            tokio::select! {
                _ = tokio::time::sleep(RELISTEN_AFTER) => {}
                _ = stopped.changed() => return,
            }
        }
    })
}
