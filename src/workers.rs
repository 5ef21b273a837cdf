//! Background workers, all stopped by one shutdown signal: the recency
//! flusher, garbage collection and the evictor.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::{GcReport, Store};
use crate::config::Config;

/// How often batched recency updates are written to the index.
const ACCESS_FLUSH_EVERY: Duration = Duration::from_secs(2);
/// The evictor checks usage at least this often even without a wake-up.
const EVICT_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Running workers; `stop` ends them and waits.
pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn start(store: Arc<Store>, config: &Config) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let mut handles = Vec::new();

        handles.push(every(ACCESS_FLUSH_EVERY, stopped.clone(), {
            let store = store.clone();
            move || {
                let store = store.clone();
                async move {
                    if let Err(e) = store.flush_access().await {
                        tracing::warn!(error = %e, "flushing recency failed; will retry");
                    }
                }
            }
        }));

        handles.push(every(config.gc.interval.0, stopped.clone(), {
            let store = store.clone();
            move || {
                let store = store.clone();
                async move {
                    match store.gc().await {
                        Ok(r)
                            if r == GcReport {
                                usage_after: r.usage_after,
                                ..GcReport::default()
                            } => {}
                        Ok(report) => tracing::info!(?report, "garbage collection"),
                        Err(e) => {
                            tracing::warn!(error = %e, "garbage collection failed; will retry")
                        }
                    }
                }
            }
        }));

        // The evictor sleeps until a write crosses the high watermark (or a
        // periodic check), so usage comes back down without waiting for GC.
        handles.push(tokio::spawn({
            let mut stopped = stopped;
            async move {
                loop {
                    tokio::select! {
                        _ = store.pressure(EVICT_CHECK_EVERY) => {}
                        _ = stopped.changed() => return,
                    }
                    if let Err(e) = store.evict_if_needed().await {
                        tracing::warn!(error = %e, "eviction failed; will retry");
                    }
                }
            }
        }));
        Workers { stop, handles }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

/// Runs `job` every `period` until the stop signal; a job in progress finishes.
fn every<F, Fut>(period: Duration, mut stopped: watch::Receiver<bool>, mut job: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => job().await,
                _ = stopped.changed() => return,
            }
        }
    })
}
