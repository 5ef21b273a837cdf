//! Small writes (a 4 KiB HTTP cache value, a manifest, a small pushed blob)
//! made durable by one thread, in batches: it writes and places every
//! queued write's file, syncs them all once, and records them in one index
//! batch. A request hands its body over and awaits the answer; no
//! blocking-pool thread is woken per write, and one thread, not one per
//! request, waits for each sync. Per-write thread hand-offs were the largest
//! share of a 4 KiB PUT's CPU (docs/PERFORMANCE.md, session 13).

use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::blobs::{extra_alias, forget_unrecorded, record_blobs, Placed};
use super::record::{Parts, Recipe};
use super::{now_ms, BlobInfo, EntryRecord, NewEntry, StoreError};
use crate::cas::{self, BlobMeta, Digest};
use crate::index::IndexError;

pub(super) type MakeEntry = Box<dyn FnOnce(&BlobInfo) -> NewEntry + Send>;
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write: its content, checked against `expected` and `limit`.
struct Job {
    content: Bytes,
    expected: Option<Digest>,
    limit: u64,
    what: What,
}

enum What {
    /// The content and the entry `Recipe` makes of it.
    Entry(Recipe<MakeEntry>, Reply<(BlobInfo, EntryRecord)>),
    /// The content alone (a pushed blob), also named by `alias` and
    /// readable in `scope`.
    Blob {
        alias: Option<Digest>,
        scope: Option<String>,
        reply: Reply<BlobInfo>,
    },
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
    pub async fn write_entry(
        &self,
        content: Bytes,
        expected: Option<Digest>,
        limit: u64,
        recipe: Recipe<MakeEntry>,
    ) -> Result<(BlobInfo, EntryRecord), StoreError> {
        let (reply, answer) = oneshot::channel();
        let what = What::Entry(recipe, reply);
        self.send(content, expected, limit, what, answer).await
    }

    /// Stores `content` as a blob, as `Store::commit_blob` does; answers
    /// once it is durable.
    pub async fn write_blob(
        &self,
        content: Bytes,
        expected: Option<Digest>,
        limit: u64,
        scope: Option<String>,
    ) -> Result<BlobInfo, StoreError> {
        let (reply, answer) = oneshot::channel();
        let alias = extra_alias(expected.as_ref());
        let what = What::Blob {
            alias,
            scope,
            reply,
        };
        self.send(content, expected, limit, what, answer).await
    }

    async fn send<T>(
        &self,
        content: Bytes,
        expected: Option<Digest>,
        limit: u64,
        what: What,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let job = Job {
            content,
            expected,
            limit,
            what,
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

impl What {
    fn refuse(self, e: StoreError) {
        // A request that went away needs no answer.
        match self {
            What::Entry(_, reply) => drop(reply.send(Err(e))),
            What::Blob { reply, .. } => drop(reply.send(Err(e))),
        }
    }
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

/// A blob written alone, placed and awaiting its sync and its record.
struct PlacedBlob {
    meta: BlobMeta,
    alias: Option<Digest>,
    scope: Option<String>,
    reply: Reply<BlobInfo>,
}

fn commit(parts: &Parts, batch: Vec<Job>) {
    let mut verified = Vec::with_capacity(batch.len());
    for job in batch {
        match cas::ingest_bytes(&parts.cas, &job.content, job.expected.as_ref(), job.limit) {
            Ok(v) => verified.push((v, job.what)),
            Err(e) => job.what.refuse(e.into()),
        }
    }
    // Every blob's lock, from publishing until the index records it, so GC
    // cannot delete a file in between (as `Parts::record`).
    let _locked = parts
        .locks
        .lock_all(verified.iter().map(|(v, _)| &v.meta.id));
    let (mut writes, mut entries, mut blobs) = (Vec::new(), Vec::new(), Vec::new());
    let mut owed = None;
    for (v, what) in verified {
        match what {
            What::Entry(recipe, reply) => match parts.publish(v, recipe) {
                Ok((blob, write)) => {
                    writes.push(write);
                    entries.push((blob, reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            What::Blob {
                alias,
                scope,
                reply,
            } => match v.publish_unsynced(&parts.cas) {
                Ok((meta, sync)) => {
                    owed = owed.or(sync);
                    blobs.push(PlacedBlob {
                        meta,
                        alias,
                        scope,
                        reply,
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
        }
    }
    let synced = owed.filter(|_| !blobs.is_empty()).map(|group| group.sync());
    if let Some(Ok(())) = synced {
        // Every file of the batch was placed before that sync.
        writes.iter_mut().for_each(|w| w.sync = None);
    }
    let blobs = record_placed(parts, blobs, synced);
    let stored = parts.batches.put_many(writes, now_ms());
    for ((blob, reply), stored) in entries.into_iter().zip(stored) {
        let _ = reply.send(parts.settle(blob, stored));
    }
    if !blobs.is_empty() {
        // Makes the blob records durable (a batch above flushed already,
        // unless it failed; an index with nothing new flushes cheaply).
        let flushed = parts.index.flush();
        for b in blobs {
            let answer = match &flushed {
                Ok(()) => Ok(BlobInfo::from(b.meta)),
                Err(e) => Err(IndexError::failed_write(e).into()),
            };
            let _ = b.reply.send(answer);
        }
    }
}

/// Records placed blobs once `synced` made them durable; answers those that
/// fail and returns the others, which await the index flush.
fn record_placed(
    parts: &Parts,
    blobs: Vec<PlacedBlob>,
    synced: Option<std::io::Result<()>>,
) -> Vec<PlacedBlob> {
    if let Some(Err(e)) = synced {
        for b in blobs {
            forget_unrecorded(&parts.index, &parts.cas, &b.meta.id);
            let _ = b
                .reply
                .send(Err(std::io::Error::new(e.kind(), e.to_string()).into()));
        }
        return Vec::new();
    }
    let placed: Vec<Placed> = (blobs.iter())
        .map(|b| (&b.meta, b.alias.as_ref(), b.scope.as_deref()))
        .collect();
    let recorded = record_blobs(&parts.index, &parts.cas, &placed);
    (blobs.into_iter().zip(recorded))
        .filter_map(|(b, recorded)| match recorded {
            Ok(()) => Some(b),
            Err(e) => {
                let _ = b.reply.send(Err(e));
                None
            }
        })
        .collect()
}
