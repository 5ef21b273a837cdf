//! Test harness: real Larder servers on 127.0.0.1:0 with temp data dirs,
//! either in-process (fast, for protocol tests) or as the real binary (for
//! signals, crashes and the CLI).
#![allow(dead_code)]

pub mod postgres;
pub mod process;
pub mod raw;
pub mod s3;
mod skips;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use larder::config::{Config, Overrides};
use larder::server::Server;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A runtime of its own for a test phase: dropping it ends every task and
/// handle of that phase (the group-commit flusher, sled), as a process exit
/// would, before the next phase opens the same data dir.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A config for tests: defaults, listening on an ephemeral loopback port.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::load(None, &Overrides::default()).expect("default config");
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.data_dir = data_dir.to_owned();
    config
}

/// An in-process server. Dropping it stops it (without waiting).
pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts with a fresh temp data dir after `adjust` edits the config.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::start_in(dir, config).await
    }

    async fn start_in(dir: tempfile::TempDir, config: Config) -> TestServer {
        let server = bind(&config).await;
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            config,
            stop: Some(stop),
            task: Some(task),
            dir: Some(dir),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.storage.data_dir.clone()
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop; returns once the server has flushed and released the data dir.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    /// Stops the server and starts a new one on the same data dir and config
    /// (a new port).
    pub async fn restart(mut self) -> TestServer {
        self.shutdown().await;
        let dir = self.dir.take().expect("data dir");
        let mut config = self.config.clone();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        Self::start_in(dir, config).await
    }
}

/// Binds a server on `config`. A data dir another server of this process
/// just released may still read as locked for a moment: a sibling test's
/// child process, between its fork and its exec, holds copies of this
/// process's descriptors, the lock's among them. Nothing signals that exec,
/// so the lock is tried again for a few seconds at most; any other error, or
/// a lock still held after that, fails the test.
async fn bind(config: &Config) -> Server {
    let mut tries = 0;
    loop {
        match Server::bind(config.clone()).await {
            Ok(server) => return server,
            Err(e)
                if tries < 300
                    && e.to_string()
                        .contains("is in use by another larder process") =>
            {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("server binds: {e:?}"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An HTTP client that never follows redirects and keeps connections alive.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// True when CI requires every real-client test to run rather than skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Marks the running test as skipped because `why` (a missing client or
/// privilege): counted in the binary's closing SKIPPED line locally, a
/// failure under CI=true, where every real-client test must run.
pub fn skip(why: &str) {
    assert!(!in_ci(), "{why}, and CI=true forbids skipping");
    skips::record(why);
}

/// Finds an external client program; skips the test (returns None) when it is
/// missing locally, fails when it is missing under CI=true.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = on_path(name);
    if found.is_none() {
        skip(&format!("{name} is not installed"));
    }
    found
}

/// Where `name` is on PATH, if it is.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A port no one listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
