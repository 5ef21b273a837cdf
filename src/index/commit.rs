//! Group commit: writers that need their index records durable share one
//! flush. A writer takes a ticket after its writes; the flusher takes the
//! newest ticket, flushes (covering every write made before that ticket was
//! issued) and publishes it as done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{Index, IndexError};
use crate::metrics::Histogram;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flushed {
    /// Every ticket up to this one is durable.
    ok_through: u64,
    /// The newest ticket whose flush failed.
    failed_through: u64,
    /// Whether that flush failed for lack of space, so that its writers
    /// answer "storage is full" rather than a generic failure.
    failed_full: bool,
}

/// Handle shared by writers; the flusher task ends when it is closed or dropped.
pub struct GroupCommit {
    /// Flush latency, for `/metrics`.
    pub flushes: Arc<Histogram>,
    next_ticket: Arc<AtomicU64>,
    wake: mpsc::Sender<()>,
    done: watch::Receiver<Flushed>,
    task: tokio::task::JoinHandle<()>,
}

impl GroupCommit {
    pub fn start(index: Index) -> GroupCommit {
        let next_ticket = Arc::new(AtomicU64::new(0));
        // Capacity 1: a pending wake-up already covers every later writer.
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let (done_tx, done) = watch::channel(Flushed::default());
        let tickets = next_ticket.clone();
        let flushes = Arc::new(Histogram::default());
        let timing = flushes.clone();
        let task = tokio::spawn(async move {
            while woken.recv().await.is_some() {
                // Keep flushing while tickets were issued during the last
                // flush, so a writer whose wake-up was coalesced is covered.
                loop {
                    let target = tickets.load(Ordering::SeqCst);
                    if target <= done_tx.borrow().ok_through {
                        break;
                    }
                    let index = index.clone();
                    let started = std::time::Instant::now();
                    let result = tokio::task::spawn_blocking(move || index.flush()).await;
                    timing.observe(started.elapsed());
                    let ok = matches!(result, Ok(Ok(())));
                    let full = matches!(&result, Ok(Err(e)) if e.is_disk_full());
                    done_tx.send_modify(|f| {
                        if ok {
                            f.ok_through = target;
                        } else {
                            f.failed_through = target;
                            f.failed_full = full;
                        }
                    });
                    if !ok {
                        tracing::error!(
                            ?result,
                            "index flush failed; the writes waiting on it are refused"
                        );
                        break;
                    }
                }
            }
        });
        GroupCommit {
            flushes,
            next_ticket,
            wake,
            done,
            task,
        }
    }

    /// Stops the flusher and waits for it, so its handle on the index is gone.
    pub async fn close(self) {
        drop(self.wake);
        let _ = self.task.await;
    }

    /// Returns once every index write this task made before the call is durable.
    pub async fn wait(&self) -> Result<(), IndexError> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.done.clone();
        let _ = self.wake.try_send(());
        loop {
            let f = *done.borrow_and_update();
            if f.ok_through >= ticket {
                return Ok(());
            }
            if f.failed_through >= ticket {
                if f.failed_full {
                    return Err(IndexError::disk_full());
                }
                return Err(IndexError::Unavailable("flush failed"));
            }
            if done.changed().await.is_err() {
                return Err(IndexError::Unavailable("flusher stopped"));
            }
        }
    }
}
