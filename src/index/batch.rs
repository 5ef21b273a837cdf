//! Entry writes from concurrent requests share one index transaction and
//! one flush. sled's fixed cost per transaction (two log writes under its
//! global lock) and per flush is then paid once per batch instead of once
//! per write: an entry with ten pins costs the index ~300 µs of CPU alone,
//! ~120 µs in batches of four.
//!
//! No thread of its own: a writer that finds no batch running runs one with
//! every write queued so far, its own included; writers that arrive in the
//! meantime wait, and make up the next batch.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::entry_record::EntryWith;
use super::{BlobRecord, EntryRecord, Index, IndexError, NewEntry, PutEntryError};
use crate::cas::{Digest, SyncGroup};
use crate::metrics::Histogram;

/// An entry and what is stored with it (`EntryWith`, owned, so that another
/// thread can store it).
pub struct EntryWrite {
    pub entry: NewEntry,
    pub content: Option<BlobRecord>,
    pub alias: Option<Digest>,
    pub name: Option<(String, String)>,
    pub link: Option<String>,
    /// The shared sync that makes the content's file durable, owed before
    /// the index may record it: the batch runs it once for all its writes,
    /// so a small PUT waits for one group, not for two in turn.
    pub sync: Option<Arc<SyncGroup>>,
}

impl EntryWrite {
    fn with(&self) -> EntryWith<'_> {
        EntryWith {
            content: self.content,
            alias: self.alias.as_ref(),
            name: self.name.as_ref().map(|(s, n)| (s.as_str(), n.as_str())),
            link: self.link.as_deref(),
        }
    }
}

type Outcome = Result<EntryRecord, PutEntryError>;

pub struct EntryBatches {
    index: Index,
    /// Flush latency, for `/metrics` (shared with `GroupCommit`).
    flushes: Arc<Histogram>,
    state: Mutex<State>,
    /// Signalled whenever a batch ends.
    ended: Condvar,
}

#[derive(Default)]
struct State {
    queue: Vec<(u64, EntryWrite)>,
    running: bool,
    next_ticket: u64,
    outcomes: HashMap<u64, Outcome>,
}

impl EntryBatches {
    pub fn new(index: Index, flushes: Arc<Histogram>) -> EntryBatches {
        EntryBatches {
            index,
            flushes,
            state: Mutex::default(),
            ended: Condvar::new(),
        }
    }

    /// Stores `write` as `Index::put_entries_with` does and returns once it is
    /// durable. Blocking. The batch is stored at the `now` of the writer that
    /// runs it.
    pub fn put(&self, write: EntryWrite, now: u64) -> Outcome {
        self.put_many(vec![write], now)
            .pop()
            .unwrap_or_else(batch_failed)
    }

    /// `put` for several writes at once (a thread that gathered them), in
    /// one batch; their outcomes in order.
    pub fn put_many(&self, writes: Vec<EntryWrite>, now: u64) -> Vec<Outcome> {
        let mut state = self.lock();
        let first = state.next_ticket;
        let tickets = first..first + writes.len() as u64;
        state.next_ticket = tickets.end;
        state.queue.extend(tickets.clone().zip(writes));
        loop {
            // A batch takes the whole queue, so these tickets end together.
            if tickets.is_empty() || state.outcomes.contains_key(&first) {
                return tickets
                    .map(|t| state.outcomes.remove(&t).unwrap_or_else(batch_failed))
                    .collect();
            }
            if state.running {
                state = self.ended.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.running = true;
            let batch = std::mem::take(&mut state.queue);
            drop(state);
            let run = Running {
                batches: self,
                tickets: batch.iter().map(|(t, _)| *t).collect(),
                outcomes: None,
            };
            run.finish(self.store(&batch, now));
            state = self.lock();
        }
    }

    /// One transaction for the whole batch, then one flush.
    fn store(&self, batch: &[(u64, EntryWrite)], now: u64) -> Vec<Outcome> {
        let withs: Vec<EntryWith> = batch.iter().map(|(_, w)| w.with()).collect();
        let writes: Vec<(&NewEntry, &EntryWith)> = batch
            .iter()
            .zip(&withs)
            .map(|((_, w), with)| (&w.entry, with))
            .collect();
        // Every file of the batch was placed before its write was queued.
        let synced = match batch.iter().find_map(|(_, w)| w.sync.as_ref()) {
            Some(group) => group.sync().map_err(|e| IndexError::Storage(e.into())),
            None => Ok(()),
        };
        let stored = synced
            .and_then(|()| self.index.put_entries_with(&writes, now))
            .and_then(|outcomes| {
                let started = Instant::now();
                let flushed = self.index.flush();
                self.flushes.observe(started.elapsed());
                flushed.map(|()| outcomes)
            });
        match stored {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, "index write (or the sync of its blobs) failed; the writes of its batch are refused");
                batch
                    .iter()
                    .map(|_| Err(PutEntryError::Index(IndexError::failed_write(&e))))
                    .collect()
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A batch being stored. Ends it even if storing panics, so that no writer
/// waits for it forever.
struct Running<'a> {
    batches: &'a EntryBatches,
    tickets: Vec<u64>,
    outcomes: Option<Vec<Outcome>>,
}

impl Running<'_> {
    fn finish(mut self, outcomes: Vec<Outcome>) {
        self.outcomes = Some(outcomes);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut outcomes = self.outcomes.take().unwrap_or_default().into_iter();
        let mut state = self.batches.lock();
        for &ticket in &self.tickets {
            let outcome = outcomes.next().unwrap_or_else(batch_failed);
            state.outcomes.insert(ticket, outcome);
        }
        state.running = false;
        drop(state);
        self.batches.ended.notify_all();
    }
}

/// The answer to a write whose batch ended without one (it panicked).
fn batch_failed() -> Outcome {
    Err(PutEntryError::Index(IndexError::Unavailable(
        "the index write batch failed",
    )))
}
