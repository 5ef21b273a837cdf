//! A single node's workers: the recency flusher, garbage collection, the
//! evictor, the disk watcher, the heap trim and the index snapshot.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{history_worker, run, Wake, WorkerBoard, Workers, EVICT_CHECK_EVERY};
use crate::cache::{GcReport, Store};
use crate::config::Config;
use crate::metrics::Metrics;

/// How often batched recency updates are written to the index. A hot blob or
/// entry is written once per interval however often it is read, and every
/// index write is replayed at the next start (sled snapshots only when it
/// opens), so this is long; eviction and GC flush first, and a crash loses
/// at most this much recency, never data.
const ACCESS_FLUSH_EVERY: Duration = Duration::from_secs(30);
/// How often the disk watcher looks at the free space (sooner when a write
/// just found the disk full).
const DISK_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often the index-snapshot worker looks for a quiet moment: one with no
/// request begun since its previous look.
const SNAPSHOT_CHECK_EVERY: Duration = Duration::from_secs(10);
/// Intervals after which a server that was never quiet reopens anyway.
const BUSY_SNAPSHOT_AFTER: u32 = 24;
/// How long a reopen waits for the index calls in flight before it gives up
/// until the next look.
const REOPEN_WAIT: Duration = Duration::from_millis(100);

/// When to reopen the index so that sled writes a recovery snapshot (see
/// `Index::reopen`): the interval has passed since the last one, requests
/// came since (so there are writes to replay), and none since the last look
/// (so nobody waits for it). A server never quiet that long reopens anyway
/// after `BUSY_SNAPSHOT_AFTER` intervals: requests then wait about as long
/// as a start, once, where otherwise every start would replay its whole
/// uptime.
struct SnapshotPolicy {
    interval: Duration,
    taken_at: Instant,
    requests_at_snapshot: u64,
    requests_at_last_look: u64,
}

impl SnapshotPolicy {
    fn new(interval: Duration, requests: u64, now: Instant) -> SnapshotPolicy {
        SnapshotPolicy {
            interval,
            taken_at: now,
            requests_at_snapshot: requests,
            requests_at_last_look: requests,
        }
    }

    fn due(&mut self, requests: u64, now: Instant) -> bool {
        let quiet = requests == self.requests_at_last_look;
        self.requests_at_last_look = requests;
        let since = now.duration_since(self.taken_at);
        requests != self.requests_at_snapshot
            && since >= self.interval
            && (quiet || since >= self.interval.saturating_mul(BUSY_SNAPSHOT_AFTER))
    }

    fn taken(&mut self, requests: u64, now: Instant) {
        self.taken_at = now;
        self.requests_at_snapshot = requests;
    }
}

impl Workers {
    pub fn start(
        store: Arc<Store>,
        config: &Config,
        board: Arc<WorkerBoard>,
        metrics: Arc<Metrics>,
    ) -> Workers {
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
                async move { s.flush_access().await.map(|_| ()).map_err(|e| noted(&s, e)) }
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
                    let report = s.gc().await.map_err(|e| noted(&s, e))?;
                    // Logged when it did something, not for what it found.
                    if report
                        != (GcReport {
                            usage_after: report.usage_after,
                            bytes_leased: report.bytes_leased,
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

        let history_path = crate::history::History::path(&config.storage.data_dir);
        handles.push(history_worker(
            Some(store.clone()),
            &history_path,
            &metrics,
            &board,
            &stopped,
        ));

        let interval = config.storage.index_snapshot_interval.0;
        let policy = Arc::new(Mutex::new(SnapshotPolicy::new(
            interval,
            metrics.requests_begun(),
            Instant::now(),
        )));
        let s = store.clone();
        let history = (Some(store.clone()), metrics.clone(), history_path);
        handles.push(run(
            "index-snapshot",
            Wake::Every(SNAPSHOT_CHECK_EVERY.min(interval)),
            stopped.clone(),
            board.clone(),
            move || {
                let (s, metrics, policy) = (s.clone(), metrics.clone(), policy.clone());
                async move {
                    let requests = metrics.requests_begun();
                    let due = policy
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .due(requests, Instant::now());
                    if !due {
                        return Ok(());
                    }
                    let index = s.index().clone();
                    let started = Instant::now();
                    let reopened = tokio::task::spawn_blocking(move || index.reopen(REOPEN_WAIT))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    if reopened {
                        tracing::info!(
                            took_ms = started.elapsed().as_millis() as u64,
                            "index reopened, so the next start replays little"
                        );
                        policy
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .taken(requests, Instant::now());
                    }
                    Ok(())
                }
            },
        ));

        // The evictor wakes when a write crosses the high watermark (and
        // periodically), so usage comes back down without waiting for GC.
        let s = store.clone();
        handles.push(run(
            "evictor",
            Wake::Pressure(store.clone(), EVICT_CHECK_EVERY),
            stopped.clone(),
            board.clone(),
            move || {
                let s = s.clone();
                async move {
                    s.evict_if_needed()
                        .await
                        .map(|_| ())
                        .map_err(|e| noted(&s, e))
                }
            },
        ));

        // Read-only while the disk is full, and writable again by itself.
        let s = store.clone();
        handles.push(run(
            "disk-watch",
            Wake::DiskFull(store.clone(), DISK_CHECK_EVERY),
            stopped.clone(),
            board.clone(),
            move || {
                let s = s.clone();
                async move { s.watch_disk().await.map_err(|e| e.to_string()) }
            },
        ));
        Workers {
            stop,
            handles,
            history,
            cluster: None,
        }
    }
}

/// A worker's failure in words, after the store noted a full disk in it.
fn noted(store: &Store, e: crate::cache::StoreError) -> String {
    store.note_error(&e);
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_waits_for_the_interval_for_requests_and_for_a_quiet_look_or_a_day() {
        let start = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut p = SnapshotPolicy::new(hour, 0, start);
        let at = |secs| start + Duration::from_secs(secs);

        // Quiet since the start: nothing written to replay.
        assert!(!p.due(0, at(7200)));
        // Requests came; the next look that finds none new is due.
        assert!(!p.due(5, at(7210)));
        assert!(p.due(5, at(7220)));
        p.taken(5, at(7220));
        // Busy looks are not due, within a day of the snapshot.
        assert!(!p.due(6, at(20_000)));
        assert!(!p.due(7, at(20_010)));
        assert!(p.due(7, at(20_020)));
        p.taken(7, at(20_020));
        // Requests and a quiet look, but within the interval.
        assert!(!p.due(9, at(20_030)));
        assert!(!p.due(9, at(20_040)));
        assert!(p.due(9, at(20_020 + 3600)));
        p.taken(9, at(23_620));
        // Never quiet: due once 24 intervals have passed.
        assert!(!p.due(10, at(23_620 + 23 * 3600)));
        assert!(p.due(11, at(23_620 + 24 * 3600)));
    }
}
