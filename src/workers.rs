//! Background workers, all stopped by one shutdown signal: the recency
//! flusher, garbage collection, the evictor and the heap trim.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::{GcReport, Store};
use crate::config::Config;

/// How often batched recency updates are written to the index. A hot blob or
/// entry is written once per interval however often it is read, and every
/// index write is replayed at the next start (sled snapshots only when it
/// opens), so this is long; eviction and GC flush first, and a crash loses
/// at most this much recency, never data.
const ACCESS_FLUSH_EVERY: Duration = Duration::from_secs(30);
/// The evictor checks usage at least this often even without a wake-up.
const EVICT_CHECK_EVERY: Duration = Duration::from_secs(10);

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
}

impl Workers {
    pub fn start(store: Arc<Store>, config: &Config, board: Arc<WorkerBoard>) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let mut handles = Vec::new();

        let s = store.clone();
        handles.push(run(
            "recency-flusher",
            Wake::Every(ACCESS_FLUSH_EVERY),
            stopped.clone(),
            board.clone(),
            move || {
                let s = s.clone();
                async move {
                    s.flush_access()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            },
        ));

        let s = store.clone();
        handles.push(run(
            "gc",
            Wake::Every(config.gc.interval.0),
            stopped.clone(),
            board.clone(),
            move || {
                let s = s.clone();
                async move {
                    let report = s.gc().await.map_err(|e| e.to_string())?;
                    if report
                        != (GcReport {
                            usage_after: report.usage_after,
                            ..GcReport::default()
                        })
                    {
                        tracing::info!(?report, "garbage collection");
                    }
                    Ok(())
                }
            },
        ));

        handles.push(run(
            "heap-trim",
            Wake::Every(crate::heap::TRIM_EVERY),
            stopped.clone(),
            board.clone(),
            || async {
                tokio::task::spawn_blocking(crate::heap::return_free_heap)
                    .await
                    .map_err(|e| e.to_string())
            },
        ));

        // The evictor wakes when a write crosses the high watermark (and
        // periodically), so usage comes back down without waiting for GC.
        let s = store.clone();
        handles.push(run(
            "evictor",
            Wake::Pressure(store, EVICT_CHECK_EVERY),
            stopped,
            board,
            move || {
                let s = s.clone();
                async move {
                    s.evict_if_needed()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            },
        ));
        Workers { stop, handles }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

/// When a worker runs.
enum Wake {
    Every(Duration),
    /// On disk-budget pressure, or after the duration at the latest.
    Pressure(Arc<Store>, Duration),
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
            Wake::Every(d) | Wake::Pressure(_, d) => *d,
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
