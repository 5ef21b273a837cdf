//! One in-process Larder server (`Server::bind` + `run` on a task): a
//! `TestServer` is one of these, or, clustered, two behind a balancer.

use std::net::SocketAddr;

use larder::config::Config;
use larder::server::Server;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Dropping it stops the server (without waiting).
pub struct Node {
    pub addr: SocketAddr,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    dir: Option<tempfile::TempDir>,
}

impl Node {
    /// Serves `config` with `dir` (its data dir, or the temp dir holding
    /// it) kept alive as long as the node.
    pub async fn start(dir: tempfile::TempDir, config: Config) -> Node {
        let server = bind(&config).await;
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Node {
            addr,
            config,
            stop: Some(stop),
            task: Some(task),
            dir: Some(dir),
        }
    }

    /// Graceful stop; returns once the server has flushed and released the
    /// data dir.
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

    /// What a restart starts again: the same data dir and config, on a new
    /// port.
    pub fn into_parts(mut self) -> (tempfile::TempDir, Config) {
        let dir = self.dir.take().expect("data dir");
        let mut config = self.config.clone();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        (dir, config)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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
