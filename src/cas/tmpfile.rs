//! Temp files that become blobs. Where the filesystem allows it they are
//! anonymous (`O_TMPFILE`): no name exists until the content is published
//! with `linkat`, so concurrent writers do not contend on the temp
//! directory's lock, a crash leaves nothing behind, and a failed write has no
//! name to delete. Elsewhere they are named files in `tmp/`, renamed into
//! place.
//!
//! Creating a file allocates an inode, which costs 0.3–1 ms on some
//! filesystems (ext4 without a journal scans past recently freed inodes): as
//! much as an fsync, on the critical path of every manifest PUT. Anonymous
//! files are therefore created ahead of need by a background thread, a few at
//! a time; an unused one costs nothing and vanishes at exit.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::unix::ffi::OsStrExt;
#[cfg(target_os = "linux")]
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// Anonymous files kept ready: enough for a burst of concurrent writes.
const POOL_SIZE: usize = 16;

/// A file being written or verified. Dropping it deletes its name, if it has
/// one; an anonymous file just disappears.
pub struct TempFile {
    file: File,
    /// None for an anonymous file, and once the name was moved into place.
    path: Option<PathBuf>,
}

impl TempFile {
    /// A new, empty file for a blob's bytes in `dir`.
    pub fn create(dir: &Path, anonymous: bool) -> io::Result<TempFile> {
        if anonymous {
            let file = create_anonymous(dir)?;
            return Ok(TempFile { file, path: None });
        }
        let path = dir.join(format!("{:032x}.part", rand::random::<u128>()));
        // Readable too: a verified blob is copied from it (cluster mode).
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(TempFile {
            file,
            path: Some(path),
        })
    }

    /// Takes over an existing named file (an upload session's bytes).
    pub fn adopt(path: &Path) -> io::Result<TempFile> {
        Ok(TempFile {
            file: File::open(path)?,
            path: Some(path.to_owned()),
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Writes every byte of `bufs` with as few system calls as the kernel
    /// allows: body chunks go to the file without being copied together first.
    pub fn write_all_vectored(&self, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        let mut bufs = bufs;
        IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            match (&self.file).write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Starts writing `len` bytes at `offset` to the device without waiting;
    /// only a hint, so the publishing fsync still decides durability.
    pub fn start_writeback(&self, offset: u64, len: u64) {
        #[cfg(target_os = "linux")]
        // SAFETY: a plain syscall on a descriptor this struct owns.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }

    /// Makes the bytes durable and gives them the name `target`, unless
    /// `target` already exists (same name, same content: this copy is
    /// dropped). The caller syncs `target`'s directory.
    pub fn publish(self, target: &Path) -> io::Result<()> {
        // Skips the fsync, the costly part, for content already stored.
        if target.is_file() {
            return Ok(());
        }
        self.file.sync_all()?;
        self.place(target)
    }

    /// `publish` without making the bytes durable first: for a caller that
    /// syncs the whole filesystem before anything depends on the file.
    pub fn place(mut self, target: &Path) -> io::Result<()> {
        // Never renamed over an existing name: that file may be durable and
        // indexed, and this one is not synced yet (dropping it removes it).
        if self.path.is_some() && target.is_file() {
            return Ok(());
        }
        match self.path.take() {
            Some(path) => {
                let renamed = std::fs::rename(&path, target);
                if renamed.is_err() {
                    self.path = Some(path);
                }
                renamed
            }
            // `linkat` never replaces a name, so no `statx` first.
            None => match link(&self.file, target) {
                // A concurrent writer of the same content got there first.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            },
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(target_os = "linux")]
fn create_anonymous(dir: &Path) -> io::Result<File> {
    File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o644)
        .open(dir)
}

/// `O_TMPFILE` is Linux's; elsewhere (a developer's Mac) temp files are named.
#[cfg(not(target_os = "linux"))]
fn create_anonymous(_dir: &Path) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Gives an anonymous file a name. `AT_EMPTY_PATH` would need
/// CAP_DAC_READ_SEARCH; linking the file's `/proc` entry does not.
fn link(file: &File, target: &Path) -> io::Result<()> {
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: both arguments are valid NUL-terminated strings that outlive
    // the call; linkat reads them and keeps no reference.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether anonymous temp files work in `dir`: the filesystem must support
/// `O_TMPFILE` and `/proc` must be mounted (not always so in a container).
pub fn anonymous_supported(dir: &Path) -> bool {
    let Ok(temp) = TempFile::create(dir, true) else {
        return false;
    };
    let probe = dir.join(".tmpfile-probe");
    let _ = std::fs::remove_file(&probe);
    let linked = link(&temp.file, &probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    linked
}

/// Anonymous temp files created ahead of need in one directory.
#[derive(Debug)]
pub struct TempPool {
    dir: PathBuf,
    ready: Mutex<Vec<File>>,
    /// Wakes the refill thread when a file was taken.
    taken: Condvar,
}

impl TempPool {
    /// A pool for `dir`; its refill thread runs while the pool is in use.
    pub fn start(dir: &Path) -> Arc<TempPool> {
        let pool = Arc::new(TempPool {
            dir: dir.to_owned(),
            ready: Mutex::new(Vec::with_capacity(POOL_SIZE)),
            taken: Condvar::new(),
        });
        let weak = Arc::downgrade(&pool);
        let spawned = std::thread::Builder::new()
            .name("larder-tmpfiles".into())
            .spawn(move || refill(weak));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "temp files will be created on demand");
        }
        pool
    }

    /// A ready file, or a new one when the pool ran dry.
    pub fn take(&self) -> io::Result<TempFile> {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner()).pop();
        self.taken.notify_one();
        match ready {
            Some(file) => Ok(TempFile { file, path: None }),
            None => TempFile::create(&self.dir, true),
        }
    }
}

/// Keeps the pool full until it is dropped. The periodic wake-up notices a
/// dropped pool (nothing else would wake the thread then).
fn refill(pool: Weak<TempPool>) {
    // Warn once per run of failures (a full disk), not once a second.
    let mut failing = false;
    loop {
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let missing = {
            let ready = pool.ready.lock().unwrap_or_else(|e| e.into_inner());
            let (ready, _) = pool
                .taken
                .wait_timeout_while(ready, Duration::from_secs(1), |r| r.len() >= POOL_SIZE)
                .unwrap_or_else(|e| e.into_inner());
            POOL_SIZE.saturating_sub(ready.len())
        };
        for _ in 0..missing {
            match create_anonymous(&pool.dir) {
                Ok(file) => {
                    failing = false;
                    pool.ready
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(file);
                }
                Err(e) => {
                    // Writers create their own files meanwhile, and report
                    // the error if it persists.
                    if !failing {
                        tracing::warn!(error = %e, "could not create a temp file ahead of need");
                    }
                    failing = true;
                    drop(pool);
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}
