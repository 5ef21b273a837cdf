//! A full disk: telling it from other I/O failures, refusing writes while it
//! lasts, keeping room for the deletes that end it, and noticing by itself
//! when space is back.
//!
//! `storage.disk_reserve` bytes sit in two files in the data dir while there
//! is room. When a write meets ENOSPC, the store turns read-only and deletes
//! the first: the index then has room to record deletes, purges and
//! evictions, which is how space comes back. The second is deleted only by
//! a start on a full disk, so that a server restarted before space came back
//! can still open its index (which writes) and start read-only. A watcher
//! checks the free space; once there is room for the reserve and as much
//! again, it re-creates the reserve, repairs the index if a failed write
//! broke it, and takes writes again.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::{Store, StoreError};

/// The reserve files in the data dir: the one a full disk at run time gives
/// up, and the one kept for a start on a full disk.
const RESERVE_FILES: [&str; 2] = ["reserve", "reserve-start"];
/// Free space below which resuming is pointless whatever the reserve size.
const MIN_ROOM: u64 = 1 << 20;
/// How long a repair of the index waits for the calls in flight.
const RECOVER_WAIT: Duration = Duration::from_secs(1);

pub(super) struct Disk {
    root: PathBuf,
    reserve_bytes: u64,
    full: AtomicBool,
    /// Writes that failed or were refused for lack of space.
    refusals: AtomicU64,
    /// Wakes the watcher as soon as the disk fills up.
    filled: tokio::sync::Notify,
}

impl Disk {
    /// Looks at the data dir's filesystem before anything else writes to it:
    /// on a full disk the reserve goes first, so that opening the index
    /// (which writes) can succeed, and the store starts read-only.
    pub fn open(root: &Path, reserve_bytes: u64) -> Disk {
        let disk = Disk {
            root: root.to_owned(),
            reserve_bytes,
            full: AtomicBool::new(false),
            refusals: AtomicU64::new(0),
            filled: tokio::sync::Notify::new(),
        };
        if !disk.make_reserve() {
            disk.full.store(true, Ordering::Release);
            for file in RESERVE_FILES {
                disk.release(file);
            }
            tracing::warn!(
                data_dir = %root.display(),
                free = disk.free().unwrap_or(0),
                "storage is full at start: serving reads, deletes and the admin API; writes are refused until space is freed"
            );
        }
        disk
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// Each reserve file's share of the reserve.
    fn share(&self) -> u64 {
        self.reserve_bytes.div_ceil(RESERVE_FILES.len() as u64)
    }

    /// Bytes unprivileged writers may still allocate on the filesystem.
    pub fn free(&self) -> io::Result<u64> {
        free_space(&self.root)
    }

    /// Free space (counting the reserve, which is ours to give) that lets
    /// writes resume: room for the reserve and as much again.
    fn room_to_resume(&self) -> u64 {
        self.reserve_bytes.saturating_mul(2).max(MIN_ROOM)
    }

    /// Creates the reserve if there is room for it and writes besides; false
    /// when the disk is too full for that.
    pub fn make_reserve(&self) -> bool {
        let paths = RESERVE_FILES.map(|f| self.root.join(f));
        let sizes = paths
            .clone()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
        let free = match self.free() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell the free space of the data dir");
                return true;
            }
        };
        if free.saturating_add(sizes.iter().sum()) < self.room_to_resume() {
            return false;
        }
        for (path, have) in paths.iter().zip(sizes) {
            if have >= self.share() {
                continue;
            }
            if let Err(e) = allocate(path, self.share()) {
                let _ = std::fs::remove_file(path);
                if crate::cas::is_disk_full(&e) {
                    return false;
                }
                tracing::warn!(error = %e, path = %path.display(), "cannot create the disk reserve");
            }
        }
        true
    }

    fn release(&self, file: &str) {
        match std::fs::remove_file(self.root.join(file)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(error = %e, file, "cannot release the disk reserve");
            }
            _ => {}
        }
    }

    /// Notes a failed write; a full disk makes the store read-only.
    pub fn note(&self, e: &StoreError) {
        if !e.is_disk_full() {
            return;
        }
        self.refusals.fetch_add(1, Ordering::Relaxed);
        if !self.full.swap(true, Ordering::AcqRel) {
            self.release(RESERVE_FILES[0]);
            tracing::warn!(
                error = %e,
                "storage is full: writes are refused (507) until space is freed; reads, deletes and the admin API keep working"
            );
            self.filled.notify_one();
        }
    }

    /// Refuses a write while the store is read-only.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        if self.is_full() {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::disk_full());
        }
        Ok(())
    }
}

impl Store {
    /// Why writes cannot succeed right now, if they cannot.
    pub fn disk_full_reason(&self) -> Option<String> {
        self.disk.is_full().then(|| {
            format!(
                "storage is full ({} bytes free, {} needed to resume): read-only until space is freed",
                self.disk.free().unwrap_or(0),
                self.disk.room_to_resume()
            )
        })
    }

    /// Readiness: writes can succeed. The store is not read-only, the index
    /// answers and takes writes (a flush fails while a failed write keeps it
    /// broken), and the data dir takes a file.
    pub async fn check_ready(&self) -> Result<(), String> {
        if let Some(why) = self.disk_full_reason() {
            return Err(why);
        }
        self.index.check().map_err(|e| e.to_string())?;
        let index = self.index.clone();
        let flushed = tokio::task::spawn_blocking(move || index.flush())
            .await
            .map_err(|e| e.to_string())?;
        if let Err(e) = flushed.map_err(StoreError::from) {
            self.disk.note(&e);
            return Err(format!("the index does not take writes: {e}"));
        }
        let probe = self.cas.tmp_dir().join(".ready-probe");
        let probed = tokio::task::spawn_blocking(move || {
            std::fs::write(&probe, b"ok")?;
            std::fs::remove_file(&probe)
        })
        .await
        .map_err(|e| e.to_string())?;
        match probed.map_err(StoreError::from) {
            Ok(()) => Ok(()),
            Err(e) if e.is_disk_full() => {
                self.disk.note(&e);
                Err(self.disk_full_reason().unwrap_or_else(|| e.to_string()))
            }
            Err(e) => Err(format!("data dir is not writable: {e}")),
        }
    }

    /// Writes that failed or were refused because the storage was full.
    pub fn disk_full_refusals(&self) -> u64 {
        self.disk.refusals()
    }

    /// Records the outcome of a write: a full disk makes the store read-only.
    pub fn note_error(&self, e: &StoreError) {
        self.disk.note(e);
    }

    /// Passes a result through, noting a full disk.
    pub(super) fn noted<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r {
            self.disk.note(e);
        }
        r
    }

    /// Waits for the group commit, noting a flush that found the disk full.
    pub(super) async fn durable(&self) -> Result<(), StoreError> {
        let r = self.commit.wait().await.map_err(StoreError::from);
        self.noted(r)
    }

    /// Returns when the disk just filled up, or after `max_wait`.
    pub async fn disk_event(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.disk.filled.notified()).await;
    }

    /// The disk watcher's step. While writes are taken: turns read-only when
    /// the disk is nearly full, and repairs an index a failed write broke.
    /// While read-only: repairs the index once there is room for that, and
    /// resumes writes once there is room for the reserve and as much again.
    pub async fn watch_disk(&self) -> Result<(), StoreError> {
        let free = self.disk.free()?;
        if !self.disk.is_full() {
            // Nearly full: stop taking writes before one fails half-way.
            if free < self.disk.reserve_bytes / 2 {
                self.disk.note(&StoreError::disk_full());
                return Ok(());
            }
            // A write nobody waited for (sled's own timer flush) may have
            // broken the index: it then refuses every write until reopened.
            let index = self.index.clone();
            let flushed = tokio::task::spawn_blocking(move || index.flush())
                .await
                .map_err(io::Error::other)?;
            let Err(e) = flushed.map_err(StoreError::from) else {
                return Ok(());
            };
            if e.is_disk_full() {
                self.disk.note(&e);
                return Ok(());
            }
            tracing::error!(error = %e, "index writes fail; reopening the index");
            let index = self.index.clone();
            tokio::task::spawn_blocking(move || index.recover(RECOVER_WAIT))
                .await
                .map_err(io::Error::other)??;
            return Ok(());
        }
        // Reopening the index writes a snapshot: only try with some room
        // (the released reserve gives it).
        if free >= (self.disk.reserve_bytes / 2).max(MIN_ROOM / 4) {
            let index = self.index.clone();
            let recovered = tokio::task::spawn_blocking(move || index.recover(RECOVER_WAIT))
                .await
                .map_err(io::Error::other)??;
            if !recovered {
                return Ok(()); // busy; the next step tries again
            }
        }
        let disk = self.disk.clone();
        let made = tokio::task::spawn_blocking(move || disk.make_reserve())
            .await
            .map_err(io::Error::other)?;
        if made {
            self.disk.full.store(false, Ordering::Release);
            tracing::info!(
                free = self.disk.free().unwrap_or(0),
                "storage has room again: writes resume"
            );
        }
        Ok(())
    }
}

/// Free bytes for unprivileged writers on the filesystem holding `path`.
fn free_space(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs only writes into the zeroed struct we pass; `c` is a
    // valid NUL-terminated path that outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Writes a file of `len` bytes whose blocks are really allocated, so that
/// deleting it gives that much room back, and syncs it.
fn allocate(path: &Path, len: u64) -> io::Result<()> {
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: a plain syscall on a descriptor we own.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
        if rc == 0 {
            return file.sync_all();
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
    }
    // Without fallocate: zeros, written for real.
    use std::io::Write;
    let mut w = io::BufWriter::new(&file);
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    drop(w);
    file.sync_all()
}
