//! Background workers, all stopped by one shutdown signal, and what they
//! share: the board of what each last did, the schedule they run on, the
//! dashboard's history. A single node's are in `local.rs`, a cluster
//! replica's in `cluster.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::Store;
use crate::metrics::Metrics;

mod cluster;
mod local;

/// The evictor checks usage at least this often even without a wake-up.
const EVICT_CHECK_EVERY: Duration = Duration::from_secs(10);
/// The history's finest bucket is a minute.
const HISTORY_SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// What each worker last did, for `GET /admin/v1/workers`.
#[derive(Default)]
pub struct WorkerBoard(std::sync::Mutex<std::collections::BTreeMap<&'static str, WorkerStatus>>);

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WorkerStatus {
    pub runs: u64,
    pub failures: u64,
    /// Unix milliseconds.
    pub last_run: Option<u64>,
    pub last_duration_ms: Option<u64>,
    pub last_error: Option<String>,
    pub every_secs: u64,
}

impl WorkerBoard {
    fn finished(&self, name: &'static str, every: Duration, took: Duration, error: Option<String>) {
        let mut board = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let s = board.entry(name).or_default();
        s.runs += 1;
        s.every_secs = every.as_secs();
        s.last_run = Some(crate::cache::now_ms());
        s.last_duration_ms = Some(took.as_millis() as u64);
        if error.is_some() {
            s.failures += 1;
        }
        s.last_error = error;
    }

    pub fn snapshot(&self) -> std::collections::BTreeMap<&'static str, WorkerStatus> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Running workers; `stop` ends them and waits.
pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    /// Where the history is saved once more at a clean stop (and the
    /// embedded store it reads, when it is the one in use).
    history: (Option<Arc<Store>>, Arc<Metrics>, std::path::PathBuf),
    /// A replica's store, whose uses and leases in memory are written at a
    /// clean stop.
    cluster: Option<Arc<crate::cluster::store::ClusterStore>>,
}

impl Workers {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
        if let Some(store) = &self.cluster {
            if let Err(e) = store.flush_touches().await {
                tracing::warn!(error = %e, "writing the last uses and leases failed");
            }
        }
        // What happened since the last sample is kept too.
        let (store, metrics, path) = &self.history;
        let now = crate::history::now_secs();
        let reading = crate::history::Reading::take(metrics, store.as_deref());
        metrics.history.sample(reading, now);
        let per_ns = crate::history::namespaces::take(metrics, store.as_deref());
        metrics.history.sample_namespaces(per_ns, now);
        if let Err(e) = metrics.history.save(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the history");
        }
    }
}

/// The dashboard's time series: restored from the last run, then sampled
/// and saved each minute.
fn history_worker(
    store: Option<Arc<Store>>,
    path: &std::path::Path,
    metrics: &Arc<Metrics>,
    board: &Arc<WorkerBoard>,
    stopped: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    metrics.history.restore(path);
    let (m, path) = (metrics.clone(), path.to_owned());
    run(
        "history",
        Wake::Every(HISTORY_SAMPLE_EVERY),
        stopped.clone(),
        board.clone(),
        move || {
            let (s, m, path) = (store.clone(), m.clone(), path.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    let now = crate::history::now_secs();
                    let reading = crate::history::Reading::take(&m, s.as_deref());
                    m.history.sample(reading, now);
                    let per_ns = crate::history::namespaces::take(&m, s.as_deref());
                    m.history.sample_namespaces(per_ns, now);
                    m.history
                        .save(&path)
                        .map_err(|e| format!("saving {}: {e}", path.display()))
                })
                .await
                .map_err(|e| e.to_string())?
            }
        },
    )
}

/// When a worker runs.
enum Wake {
    Every(Duration),
    /// On disk-budget pressure, or after the duration at the latest.
    Pressure(Arc<Store>, Duration),
    /// When a write finds the disk full, or after the duration at the latest.
    DiskFull(Arc<Store>, Duration),
}

/// Runs `job` on its schedule until the stop signal; a run in progress
/// finishes. Each run's outcome goes on the board; failures are retried at
/// the next run.
fn run<F, Fut>(
    name: &'static str,
    wake: Wake,
    mut stopped: watch::Receiver<bool>,
    board: Arc<WorkerBoard>,
    mut job: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    tokio::spawn(async move {
        let period = match &wake {
            Wake::Every(d) | Wake::Pressure(_, d) | Wake::DiskFull(_, d) => *d,
        };
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken = async {
                match &wake {
                    Wake::Every(_) => {
                        tick.tick().await;
                    }
                    Wake::Pressure(store, max_wait) => store.pressure(*max_wait).await,
                    Wake::DiskFull(store, max_wait) => store.disk_event(*max_wait).await,
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = stopped.changed() => return,
            }
            let started = std::time::Instant::now();
            let result = job().await;
            if let Err(e) = &result {
                tracing::warn!(worker = name, error = %e, "background work failed; will retry");
            }
            board.finished(name, period, started.elapsed(), result.err());
        }
    })
}
