//! A real small filesystem for full-disk tests: a size-limited tmpfs that
//! the test mounts and removes. Mounting needs root; without it a test
//! prints a skip, except under `CI=true`, where a skip is a failure.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use larder::config::{Config, Size};

use crate::common::{skip, TestServer};

/// The reserve the tests configure: small next to the filesystems below.
pub const RESERVE: u64 = 2 << 20;

/// A mounted tmpfs of a fixed size, unmounted (and its mount point removed)
/// when dropped.
pub struct SmallDisk {
    mount: tempfile::TempDir,
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB, or returns None after printing why the
    /// test is skipped.
    pub fn mount(mib: u64) -> Option<SmallDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip("mounting a small filesystem needs root (CI runs as root)");
            return None;
        }
        let mount = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={mib}m"))
            .arg("tmpfs")
            .arg(mount.path())
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                skip(&format!("cannot mount a tmpfs ({other:?})"));
                return None;
            }
        }
        let filler = mount.path().join("filler");
        Some(SmallDisk { mount, filler })
    }

    pub fn path(&self) -> &Path {
        self.mount.path()
    }

    /// The data dir a server on this disk uses.
    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// Fills every free byte with a file outside the data dir, as logs or
    /// another program sharing the disk would.
    pub fn fill(&self) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("filler");
        for size in [1 << 20, 4096, 1] {
            let block = vec![7u8; size];
            while f.write_all(&block).is_ok() {}
        }
        let _ = f.sync_all();
        assert_eq!(self.free(), 0, "the disk is not full");
    }

    /// Gives back what `fill` took.
    pub fn free_filler(&self) {
        std::fs::remove_file(&self.filler).expect("remove filler");
    }

    pub fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(self.path())
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a server thread of a failed test may still hold a file.
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A server whose data dir is on `disk`, with a small reserve and a budget
/// far larger than the disk (the misconfiguration the tests are about).
pub fn disk_config(disk: &SmallDisk, c: &mut Config) {
    c.storage.data_dir = disk.data_dir();
    c.storage.disk_reserve = Size(RESERVE);
    c.storage.max_size = Size(10 << 30);
}

pub async fn start_on(disk: &SmallDisk) -> TestServer {
    TestServer::start_with(|c| disk_config(disk, c)).await
}

/// Waits until `/readyz` answers `status`, returning its body.
pub async fn ready_becomes(server: &TestServer, status: u16, limit: Duration) -> String {
    let c = crate::common::client();
    let start = Instant::now();
    loop {
        let res = c.get(server.url("/readyz")).send().await.expect("readyz");
        let got = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        if got == status {
            return body;
        }
        assert!(
            start.elapsed() < limit,
            "/readyz stayed {got} ({body:?}), expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const RESUME: Duration = Duration::from_secs(20);

/// Fills the disk, runs `write` (which must meet ENOSPC itself: with no
/// reserve the server does not turn read-only ahead of it), frees the space
/// and waits until the server is ready again.
pub async fn on_full_disk<F, Fut>(disk: &SmallDisk, server: &TestServer, write: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    disk.fill();
    write().await;
    let body = ready_becomes(server, 503, RESUME).await;
    assert!(body.contains("storage is full"), "{body}");
    disk.free_filler();
    ready_becomes(server, 200, RESUME).await;
}
