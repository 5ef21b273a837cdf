//! The real `larder` binary as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `larder serve`. Its stderr is collected; the process is killed
/// if the handle is dropped while it still runs.
pub struct LarderProcess {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    child: Child,
    log: mpsc::Receiver<String>,
    pub log_lines: Vec<String>,
}

pub fn larder_bin() -> &'static str {
    env!("CARGO_BIN_EXE_larder")
}

impl LarderProcess {
    /// Starts `larder serve --listen 127.0.0.1:0 --data-dir DIR EXTRA…` and
    /// waits for its "listening" log line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> LarderProcess {
        Self::start_env(data_dir, extra, &[])
    }

    pub fn start_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> LarderProcess {
        let mut child = Command::new(larder_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn larder");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut proc = LarderProcess {
            addr: "0.0.0.0:0".parse().unwrap(),
            data_dir: data_dir.to_owned(),
            child,
            log,
            log_lines: Vec::new(),
        };
        let line = proc
            .wait_for_log("listening", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("larder did not start; log:\n{}", proc.log_lines.join("\n")));
        let addr = listening_addr(&line).expect("listening line names addr=");
        proc.addr = addr.parse().expect("addr parses");
        proc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits for a stderr line containing `needle`; collects lines on the way.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.log_lines.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety concerns.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({sig}) failed");
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGKILL: a crash, as far as the data dir can tell.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit (up to `timeout`) and returns its status.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(line) = self.log.try_recv() {
                    self.log_lines.push(line);
                }
                return status;
            }
            // Drain the log so the child never blocks on a full pipe.
            if let Ok(line) = self.log.recv_timeout(Duration::from_millis(20)) {
                self.log_lines.push(line);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "larder did not exit in {timeout:?}; log:\n{}",
                self.log_lines.join("\n")
            );
        }
    }
}

/// The address in the "listening" line, human (`addr=…`) or JSON
/// (`"addr":"…"`).
fn listening_addr(line: &str) -> Option<&str> {
    if let Some((_, rest)) = line.split_once("\"addr\":\"") {
        return rest.split('"').next();
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
}

impl Drop for LarderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
