//! Why a tier copy is placed without a sync of its own. The tier is a cache
//! of the object store, and a copy the kernel has not written back yet is
//! only at risk if the machine itself stops (power loss, a kernel crash): a
//! killed or restarted process leaves the page cache, and with it every
//! placed copy, whole. So the tier records the boot in which it places
//! copies unsynced (`/proc/sys/kernel/random/boot_id`), and opened in
//! another boot it starts empty: a copy could then be torn under its
//! blob's name, and a hit is served as it lies on disk. Where the boot
//! cannot be told, every copy is synced, as it was before.
//!
//! A sync per copy was about a fifth of a replica's CPU for a cold 1 MiB
//! read (docs/PERFORMANCE.md, "Cluster mode").

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cas::sync_dir;
use crate::datadir::write_durably;

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// Holds the boot id of the run that placed copies unsynced; absent when
/// every copy in the tier was synced.
const MARKER: &str = "unsynced-in-boot";

/// The boot the tier is opened in, beside the one its copies were placed
/// in.
pub(super) struct Boot {
    dir: PathBuf,
    now: Option<String>,
    recorded: Option<String>,
}

impl Boot {
    pub fn read(dir: &Path) -> io::Result<Boot> {
        let recorded = match fs::read_to_string(dir.join(MARKER)) {
            Ok(id) => Some(id.trim().to_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let now = (fs::read_to_string(BOOT_ID).ok())
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        Ok(Boot {
            dir: dir.to_owned(),
            now,
            recorded,
        })
    }

    /// Whether the copies an earlier run left are whole: synced, or placed
    /// in this same boot.
    pub fn copies_whole(&self) -> bool {
        match &self.recorded {
            None => true,
            Some(recorded) => self.now.as_ref() == Some(recorded),
        }
    }

    /// Records that copies are placed unsynced from now on, durably before
    /// the first one is; false (copies to be synced) when the boot cannot
    /// be told. Called once the copies that were not whole are gone.
    pub fn place_unsynced(self) -> io::Result<bool> {
        let marker = self.dir.join(MARKER);
        match &self.now {
            Some(now) if self.recorded.as_ref() == Some(now) => Ok(true),
            Some(now) => {
                write_durably(&marker, now.as_bytes())?;
                Ok(true)
            }
            None => {
                if self.recorded.is_some() {
                    fs::remove_file(&marker)?;
                    sync_dir(&self.dir)?;
                }
                Ok(false)
            }
        }
    }
}
