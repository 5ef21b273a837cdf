//! Group durability for small blobs. Making one small file durable on its
//! own costs an fsync of the file and one of its directory: two journal
//! commits, most of a small PUT's CPU and system time (docs/PERFORMANCE.md).
//! Small files are instead linked into place unsynced and then made durable
//! together by one `syncfs(2)` of the blob filesystem, shared by every write
//! that asked while the previous one ran (group commit). No write is
//! acknowledged before the sync that covers it has returned, and the index
//! records a blob only after that, so a crash in between leaves at most a
//! named file the index does not know, which the start after the crash
//! removes (`cache::leftovers`).

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex};

pub struct SyncGroup {
    /// Any descriptor on the filesystem to sync.
    fs: File,
    state: Mutex<State>,
    done: Condvar,
}

impl std::fmt::Debug for SyncGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncGroup")
    }
}

#[derive(Default)]
struct State {
    /// Tickets handed out: the writes that asked for a sync.
    asked: u64,
    /// Every ticket up to this one is covered by a finished sync.
    covered: u64,
    /// Whether a sync is running now.
    running: bool,
    /// Recent failed syncs and the tickets each was to cover: every one of
    /// them gets the error (its bytes may not be on disk). A waiter reads
    /// its answer right after its sync, long before this many more fail.
    failed: std::collections::VecDeque<Failed>,
}

struct Failed {
    tickets: std::ops::RangeInclusive<u64>,
    kind: io::ErrorKind,
    message: String,
}

const FAILURES_KEPT: usize = 64;

impl SyncGroup {
    pub fn open(dir: &Path) -> io::Result<SyncGroup> {
        Ok(SyncGroup {
            fs: File::open(dir)?,
            state: Mutex::default(),
            done: Condvar::new(),
        })
    }

    /// Returns once everything this thread wrote before calling is durable.
    /// Blocking.
    pub fn sync(&self) -> io::Result<()> {
        let mut s = self.lock();
        s.asked += 1;
        let ticket = s.asked;
        loop {
            if let Some(f) = s.failed.iter().find(|f| f.tickets.contains(&ticket)) {
                return Err(io::Error::new(f.kind, f.message.clone()));
            }
            if s.covered >= ticket {
                return Ok(());
            }
            if !s.running {
                // Lead a sync for every ticket handed out so far: each of
                // those writes finished before its ticket was taken.
                s.running = true;
                let (from, to) = (s.covered + 1, s.asked);
                drop(s);
                let began = std::time::Instant::now();
                let result = syncfs(&self.fs);
                warn_if_slow(began.elapsed());
                s = self.lock();
                s.running = false;
                s.covered = to;
                if let Err(e) = &result {
                    if s.failed.len() == FAILURES_KEPT {
                        s.failed.pop_front();
                    }
                    s.failed.push_back(Failed {
                        tickets: from..=to,
                        kind: e.kind(),
                        message: format!("syncing the blob store failed: {e}"),
                    });
                }
                self.done.notify_all();
                continue;
            }
            s = self.done.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A sync this slow is mostly other programs' dirty data on the same
/// filesystem; the operator can trade it for per-file fsyncs.
fn warn_if_slow(took: std::time::Duration) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if took >= std::time::Duration::from_secs(1) {
        WARNED.call_once(|| {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                "syncing the data dir's filesystem for small writes is slow, likely \
                 because other programs write to it too: give the data dir its own \
                 filesystem or set storage.group_sync = false"
            )
        });
    }
}

#[cfg(target_os = "linux")]
fn syncfs(fs: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a plain syscall on a descriptor `fs` owns.
    if unsafe { libc::syncfs(fs.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere there is no `syncfs`; `sync(2)` is the same promise, wider.
#[cfg(not(target_os = "linux"))]
fn syncfs(_fs: &File) -> io::Result<()> {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_writers_share_syncs_and_each_returns_after_one() {
        let dir = tempfile::tempdir().unwrap();
        let group = Arc::new(SyncGroup::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let group = group.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        group.sync().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = group.lock();
        assert_eq!(s.asked, 16 * 20);
        assert_eq!(s.covered, s.asked);
        assert!(!s.running);
    }
}
