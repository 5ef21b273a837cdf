//! The data dir: its layout, its format version marker and the lock that keeps
//! a second process out.
//!
//! ```text
//! <data_dir>/
//!   FORMAT        format version marker ("larder-data-dir 2")
//!   larder.lock   held (flock) by the running process; holds its pid
//!   blobs/xx/…    blob files, by BLAKE3 hex
//!   tmp/          temp files of writes in progress; emptied at startup
//!   uploads/      upload sessions (resumable across restarts, expire when idle)
//!   index/        the sled index
//!   reserve, reserve-start   space given up when the disk fills, and by a
//!                 start on a full disk (see `cache::disk`)
//!   history.json  the dashboard's time series (see `history`)
//!   running       present while a server runs: one found at open means the
//!                 last run did not stop cleanly, so its leftovers are swept
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The data dir format this build writes, and the newest it reads. Older
/// formats are upgraded when opened: the marker first, so that an older
/// larder refuses the dir before any record in it changes, then the records
/// (the index upgrades its own, resuming after a crash).
///
/// 2: pin counts moved from the `pins`/`ns_pins` trees into blob records.
pub const FORMAT_VERSION: u32 = 2;
const FORMAT_FILE: &str = "FORMAT";
const FORMAT_PREFIX: &str = "larder-data-dir ";
const LOCK_FILE: &str = "larder.lock";
const RUNNING_FILE: &str = "running";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data dir {dir} is in use by another larder process{pid}; stop it or pick another --data-dir")]
    Locked { dir: PathBuf, pid: String },
    #[error("data dir {dir} has format version {found}, but this larder reads up to version {FORMAT_VERSION}; run a newer larder")]
    TooNew { dir: PathBuf, found: u32 },
    #[error(
        "data dir {dir} has an unreadable format marker {marker:?}; is this a larder data dir?"
    )]
    BadMarker { dir: PathBuf, marker: String },
    #[error("data dir {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
}

/// An opened, locked data dir. The lock is released when this is dropped.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates or opens the data dir, takes the lock, checks the format and
    /// clears temp files of writes that never completed.
    pub fn open(root: &Path) -> Result<DataDir, DataDirError> {
        let io_err = |source| DataDirError::Io {
            dir: root.to_owned(),
            source,
        };
        fs::create_dir_all(root).map_err(io_err)?;
        let lock = take_lock(root)?;
        check_format(root)?;
        let dir = DataDir {
            root: root.to_owned(),
            _lock: lock,
        };
        clear_dir(&dir.tmp_dir()).map_err(io_err)?;
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }

    /// The marker of a server running on this dir.
    pub fn running_marker(&self) -> PathBuf {
        self.root.join(RUNNING_FILE)
    }

    /// Whether the last server on this dir stopped without a clean close (or
    /// `fsck` found leftovers for the next start to remove).
    pub fn needs_sweep(&self) -> bool {
        self.running_marker().exists()
    }

    /// Marks the dir as in use by a server until `end_run`; a crash leaves
    /// the mark for the next start to find.
    pub fn begin_run(&self) -> io::Result<()> {
        write_durably(&self.running_marker(), b"")
    }
}

/// Clears the mark of `begin_run` after a clean stop.
pub fn end_run(marker: &Path) -> io::Result<()> {
    match fs::remove_file(marker) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    match marker.parent() {
        Some(parent) => crate::cas::sync_dir(parent),
        None => Ok(()),
    }
}

/// Whether `root` holds a data dir a server has opened (its format marker):
/// offline tools that would otherwise create files there check this first,
/// so that a mistyped or missing `--data-dir` is not silently made anew.
pub fn is_initialized(root: &Path) -> bool {
    root.join(FORMAT_FILE).is_file()
}

fn take_lock(root: &Path) -> Result<File, DataDirError> {
    let path = root.join(LOCK_FILE);
    let io_err = |source| DataDirError::Io {
        dir: root.to_owned(),
        source,
    };
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let pid = fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default();
            return Err(DataDirError::Locked {
                dir: root.to_owned(),
                pid,
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    file.set_len(0).map_err(io_err)?;
    writeln!(file, "{}", std::process::id()).map_err(io_err)?;
    Ok(file)
}

fn check_format(root: &Path) -> Result<(), DataDirError> {
    let path = root.join(FORMAT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let version = text
                .trim()
                .strip_prefix(FORMAT_PREFIX)
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| DataDirError::BadMarker {
                    dir: root.to_owned(),
                    marker: text.trim().to_owned(),
                })?;
            if version > FORMAT_VERSION {
                return Err(DataDirError::TooNew {
                    dir: root.to_owned(),
                    found: version,
                });
            }
            if version == FORMAT_VERSION {
                return Ok(());
            }
            tracing::info!(from = version, to = FORMAT_VERSION, dir = %root.display(), "upgrading the data dir format");
            write_marker(root, &path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => write_marker(root, &path),
        Err(source) => Err(DataDirError::Io {
            dir: root.to_owned(),
            source,
        }),
    }
}

fn write_marker(root: &Path, path: &Path) -> Result<(), DataDirError> {
    write_durably(
        path,
        format!("{FORMAT_PREFIX}{FORMAT_VERSION}\n").as_bytes(),
    )
    .map_err(|source| DataDirError::Io {
        dir: root.to_owned(),
        source,
    })
}

/// Writes a small file so that it is either absent or complete after a crash.
pub(crate) fn write_durably(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("new");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        crate::cas::sync_dir(parent)?;
    }
    Ok(())
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut removed = 0usize;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed temp files of unfinished writes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_dir_is_refused_while_the_first_holds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDir::open(tmp.path()).unwrap();
        let err = DataDir::open(tmp.path()).unwrap_err();
        assert!(matches!(err, DataDirError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another larder process"));
        assert!(err
            .to_string()
            .contains(&format!("pid {}", std::process::id())));
        drop(first);
        DataDir::open(tmp.path()).unwrap();
    }

    #[test]
    fn a_format_marker_from_the_future_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        drop(DataDir::open(tmp.path()).unwrap());
        fs::write(tmp.path().join(FORMAT_FILE), "larder-data-dir 99\n").unwrap();
        let err = DataDir::open(tmp.path()).unwrap_err();
        assert!(
            matches!(err, DataDirError::TooNew { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("run a newer larder"));

        fs::write(tmp.path().join(FORMAT_FILE), "something else").unwrap();
        let err = DataDir::open(tmp.path()).unwrap_err();
        assert!(matches!(err, DataDirError::BadMarker { .. }), "{err}");
    }

    #[test]
    fn an_older_format_marker_is_upgraded_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(FORMAT_FILE), "larder-data-dir 1\n").unwrap();
        drop(DataDir::open(tmp.path()).unwrap());
        assert_eq!(
            fs::read_to_string(tmp.path().join(FORMAT_FILE)).unwrap(),
            format!("larder-data-dir {FORMAT_VERSION}\n")
        );
    }

    #[test]
    fn temp_files_of_unfinished_writes_are_removed_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        fs::write(dir.tmp_dir().join("abc.part"), b"half a blob").unwrap();
        drop(dir);
        let dir = DataDir::open(tmp.path()).unwrap();
        assert_eq!(fs::read_dir(dir.tmp_dir()).unwrap().count(), 0);
    }
}
