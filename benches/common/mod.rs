//! Helpers shared by the process-level benches (`load`, `startup`): child
//! servers on free loopback ports, readiness polling, and /proc readings.
#![allow(dead_code)]

pub mod procfs;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// The `larder` binary cargo built for this bench (benches get the same
/// `CARGO_BIN_EXE_*` as integration tests), overridable for comparing builds.
pub fn larder_bin() -> PathBuf {
    std::env::var_os("LARDER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_larder")))
}

/// `target/`: where bench outputs and cached data sets live.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .to_owned()
}

/// A loopback port nothing listens on right now. The servers are separate
/// processes that take a `--listen` address, so the port is picked here and
/// released just before the child binds it (a small, acceptable race).
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// Polls `GET path` with a bare HTTP/1.1 request until it answers 200.
/// Deliberately not reqwest: the startup bench times this loop, and a raw
/// socket adds microseconds, not a client's connection-pool machinery.
pub fn wait_http_200(addr: SocketAddr, path: &str, child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if http_status(addr, path) == Some(200) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{addr}{path} not 200 within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The status of one `GET path`, or None if nothing answered.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Kills a child server and reaps it (used on drop so a panicking bench
/// leaves no server behind).
pub fn stop_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // SIGTERM first so Larder flushes and releases its data dir lock.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Asks ext4 to place each new subdirectory of `dir` in a block group of
/// its own (the `chattr +T` "top of directory hierarchy" flag). Without a
/// journal, ext4 skips inodes freed in the last minutes when it allocates
/// one, scanning them from the start of the group every time: file creation
/// next to a recently deleted data dir (an earlier run, or the other server
/// in this run) cost 0.7 ms here instead of 7 µs. Best effort: other file
/// systems have no such flag and no such cost.
pub fn spread_subdirs(dir: &Path) {
    use std::os::fd::AsRawFd;
    const FS_TOPDIR_FL: libc::c_long = 0x0002_0000;
    let Ok(file) = std::fs::File::open(dir) else {
        return;
    };
    let mut flags: libc::c_long = 0;
    // SAFETY: both ioctls read or write one c_long through a valid pointer,
    // on a descriptor that lives until the end of the function.
    unsafe {
        if libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) == 0 {
            flags |= FS_TOPDIR_FL;
            libc::ioctl(file.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags);
        }
    }
}
