//! Small content-and-entry writes (a 4 KiB HTTP cache value, a manifest)
//! made durable by one thread, in batches: it writes and places every
//! queued write's file, then the index batch syncs them all once and
//! records them in one transaction. A request hands its body over and
//! awaits the answer; no blocking-pool thread is woken per write, and one
//! thread, not one per request, waits for each sync. Per-write thread
//! hand-offs were the largest share of a 4 KiB PUT's CPU
//! (docs/PERFORMANCE.md, session 13).

use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::now_ms;
use super::record::{Parts, Recipe};
use super::{BlobInfo, EntryRecord, NewEntry, StoreError};
use crate::cas::{self, Digest};

pub(super) type MakeEntry = Box<dyn FnOnce(&BlobInfo) -> NewEntry + Send>;
type Answer = Result<(BlobInfo, EntryRecord), StoreError>;

/// One write: its content, checked against `expected` and `limit`.
struct Job {
    content: Bytes,
    expected: Option<Digest>,
    limit: u64,
    recipe: Recipe<MakeEntry>,
    reply: oneshot::Sender<Answer>,
}

/// Enough to share one sync among every request of a busy client, few
/// enough that a batch's file writes do not delay its first answer long.
const MAX_BATCH: usize = 64;

pub(super) struct SmallWrites {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl SmallWrites {
    pub fn start(parts: Parts) -> std::io::Result<SmallWrites> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("larder-small-writes".into())
            .spawn(move || run(&parts, &jobs))?;
        Ok(SmallWrites {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Stores `content` (checked against `expected` and `limit`) and the
    /// entry `recipe` makes of it; answers once both are durable.
    pub async fn write(
        &self,
        content: Bytes,
        expected: Option<Digest>,
        limit: u64,
        recipe: Recipe<MakeEntry>,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            content,
            expected,
            limit,
            recipe,
            reply,
        };
        let sent = self.queue.as_ref().is_some_and(|q| q.send(job).is_ok());
        if !sent {
            return Err(failed());
        }
        // The thread drops a job unanswered only if it panicked on it.
        answer.await.unwrap_or_else(|_| Err(failed()))
    }
}

impl Drop for SmallWrites {
    /// Lets the thread finish what is queued, and waits for it: it holds the
    /// index open, and a closed store must release it.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn failed() -> StoreError {
    std::io::Error::other("the small-write thread failed on this write").into()
}

fn run(parts: &Parts, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        // A panic answers this batch's requests with an error (their reply
        // senders are dropped) and leaves the thread serving the next.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(parts, batch)));
    }
}

fn commit(parts: &Parts, batch: Vec<Job>) {
    let mut verified = Vec::with_capacity(batch.len());
    for job in batch {
        match cas::ingest_bytes(&parts.cas, &job.content, job.expected.as_ref(), job.limit) {
            Ok(v) => verified.push((v, job.recipe, job.reply)),
            Err(e) => {
                let _ = job.reply.send(Err(e.into()));
            }
        }
    }
    // Every blob's lock, from publishing until the index records it, so GC
    // cannot delete a file in between (as `Parts::record`).
    let _locked = parts
        .locks
        .lock_all(verified.iter().map(|(v, ..)| &v.meta.id));
    let mut writes = Vec::with_capacity(verified.len());
    let mut published = Vec::with_capacity(verified.len());
    for (v, recipe, reply) in verified {
        match parts.publish(v, recipe) {
            Ok((blob, write)) => {
                writes.push(write);
                published.push((blob, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
    let stored = parts.batches.put_many(writes, now_ms());
    for ((blob, reply), stored) in published.into_iter().zip(stored) {
        let _ = reply.send(parts.settle(blob, stored));
    }
}
