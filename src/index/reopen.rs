//! Reopening the index while the server runs, so that a start after long
//! uptime replays little: sled 0.34 writes its recovery snapshot only when it
//! opens, and a start replays every write made since.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Index, IndexError, Trees};

impl Index {
    /// Closes the database and opens it again, so that sled writes a
    /// recovery snapshot. A start replays every index write made since the
    /// last snapshot (about 0.5 s per million), and sled 0.34 takes one only
    /// when it opens. Waits at most `wait` for the calls in flight and
    /// answers `false` if they did not finish; calls that arrive meanwhile
    /// wait for the reopen, which takes about as long as a start.
    pub fn reopen(&self, wait: Duration) -> Result<bool, IndexError> {
        let Some(mut open) = self.live.open.try_write_for(wait) else {
            return Ok(false);
        };
        let trees = open
            .take()
            .ok_or(IndexError::Unavailable("the index is being reopened"))?;
        if let Err(e) = trees.flush() {
            *open = Some(trees);
            return Err(e);
        }
        drop(trees);
        *open = Some(open_again(&self.live.dir));
        self.live.hot.clear();
        self.live.reopens.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Reopens a database that refuses every write: sled keeps the first
    /// I/O error of its log (ENOSPC on a full disk) and returns it from every
    /// later write and flush until it is opened again. Writes that were not
    /// flushed are dropped with the failed instance; none was acknowledged,
    /// since an acknowledgement waits for a successful flush. Answers
    /// `false` when the calls in flight did not finish within `wait`.
    pub fn recover(&self, wait: Duration) -> Result<bool, IndexError> {
        let Some(mut open) = self.live.open.try_write_for(wait) else {
            return Ok(false);
        };
        let trees = open
            .take()
            .ok_or(IndexError::Unavailable("the index is being reopened"))?;
        if trees.flush().is_ok() {
            // Healthy after all (the space came back before any write
            // failed): nothing to recover.
            *open = Some(trees);
            return Ok(true);
        }
        drop(trees);
        *open = Some(open_again(&self.live.dir));
        // Entries read since the failed write may be gone with it.
        self.live.hot.clear();
        self.live.recoveries.fetch_add(1, Ordering::Relaxed);
        tracing::info!("index reopened after a failed write; it takes writes again");
        Ok(true)
    }

    /// How many times `recover` reopened a database that refused writes.
    pub fn recoveries(&self) -> u64 {
        self.live.recoveries.load(Ordering::Relaxed)
    }

    /// How many times `reopen` has reopened the database.
    pub fn reopens(&self) -> u64 {
        self.live.reopens.load(Ordering::Relaxed)
    }
}

/// Opens a database that was open a moment ago. Every write was flushed
/// when it closed, so the only way forward if it fails is a restart: every
/// call would otherwise fail, and a supervisor restarts a process that exits.
fn open_again(dir: &Path) -> Trees {
    Trees::open(dir).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the index could not be reopened; exiting (every acknowledged write is on disk)");
        std::process::exit(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cas::ContentId;
    use crate::index::BlobRecord;

    fn rec() -> BlobRecord {
        BlobRecord {
            size: 10,
            sha256: [1; 32],
            created: 1,
            touched: 1,
        }
    }

    fn id(i: u32) -> ContentId {
        let mut id = [0; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        ContentId(id)
    }

    /// The log position sled's newest recovery snapshot covers: a start
    /// replays everything written after it.
    fn snapshot_lsn(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_reopen_keeps_every_record_and_snapshots_the_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        for i in 0..500 {
            index.put_blob(&id(i), &rec(), Some("oci:a/b")).unwrap();
        }
        index.flush().unwrap();
        let before = snapshot_lsn(tmp.path());

        assert!(index.reopen(Duration::from_secs(5)).unwrap());
        assert!(snapshot_lsn(tmp.path()) > before, "no newer snapshot");
        assert_eq!(index.reopens(), 1);
        assert_eq!(index.blob_count().unwrap(), 500);
        assert!(index.blob_in(&id(499), "oci:a/b").unwrap().is_some());

        // Still writable, through a clone made before the reopen.
        let clone = index.clone();
        clone.put_blob(&id(500), &rec(), None).unwrap();
        assert!(index.reopen(Duration::from_secs(5)).unwrap());
        assert_eq!(clone.reopens(), 2);
        drop((index, clone));
        let again = Index::open(tmp.path()).unwrap();
        assert_eq!(again.blob_count().unwrap(), 501);
        assert_eq!(again.all_blobs().count(), 501);
    }

    /// An iterator keeps sled's handles: closing under it would leave the
    /// database locked and the reopen failing.
    #[test]
    fn a_reopen_waits_for_a_live_iterator() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        index.put_blob(&id(1), &rec(), None).unwrap();
        let mut blobs = index.all_blobs();
        assert!(blobs.next().is_some());
        assert!(!index.reopen(Duration::from_millis(50)).unwrap());
        assert_eq!(index.reopens(), 0);
        drop(blobs);
        assert!(index.reopen(Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn calls_made_during_reopens_wait_and_succeed() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        let writers: Vec<_> = (0..2u32)
            .map(|w| {
                let index = index.clone();
                std::thread::spawn(move || {
                    for i in 0..1500 {
                        index.put_blob(&id(w * 10_000 + i), &rec(), None).unwrap();
                        assert!(index.blob(&id(w * 10_000 + i)).unwrap().is_some());
                    }
                })
            })
            .collect();
        let mut reopened = 0;
        while !writers.iter().all(|w| w.is_finished()) {
            if index.reopen(Duration::from_secs(5)).unwrap() {
                reopened += 1;
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(reopened > 0);
        assert_eq!(index.blob_count().unwrap(), 3000);
    }

    /// A lookup that arrives during a reopen waits for it without taking a
    /// runtime thread from the other tasks (here the runtime has only one).
    #[test]
    fn a_lookup_during_a_reopen_leaves_the_runtime_to_other_tasks() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        index.put_blob(&id(1), &rec(), None).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // The test thread waits with std timeouts, outside the runtime, so a
        // stalled runtime fails the test instead of hanging it.
        let reopening = index.live.open.write();
        let (started, running) = std::sync::mpsc::channel();
        let lookup = {
            let index = index.clone();
            rt.spawn(async move {
                let _ = started.send(());
                index.blob(&id(1)).unwrap().is_some()
            })
        };
        // From here the only worker is busy with the lookup until it either
        // hands the runtime over or the lock is released.
        running.recv_timeout(Duration::from_secs(10)).unwrap();
        let (done, other) = std::sync::mpsc::channel();
        rt.spawn(async move { done.send(7) });
        let other = other.recv_timeout(Duration::from_secs(10));
        drop(reopening);
        assert_eq!(other, Ok(7), "the other task did not run during the reopen");
        assert!(rt.block_on(lookup).unwrap());
    }
}
