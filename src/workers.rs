//! Background workers, all stopped by one shutdown signal: the recency
//! flusher and the periodic GC of upload sessions.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::Store;
use crate::config::Config;

/// How often batched recency updates are written to the index.
const ACCESS_FLUSH_EVERY: Duration = Duration::from_secs(2);

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

        let expiry = config.gc.upload_expiry.0;
        handles.push(every(config.gc.interval.0, stopped, move || {
            let store = store.clone();
            async move {
                match store.expire_uploads(expiry).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "removed abandoned upload sessions"),
                    Err(e) => tracing::warn!(error = %e, "expiring upload sessions failed"),
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
