//! Test harness: real Larder servers on 127.0.0.1:0 with temp data dirs,
//! either in-process (fast, for protocol tests) or as the real binary (for
//! signals, crashes and the CLI). With LARDER_TEST_CLUSTER=1 an in-process
//! `TestServer` is a cluster of two replicas behind a round-robin balancer
//! (see `cluster`), so the same tests drive both topologies.
#![allow(dead_code)]

mod balancer;
pub mod cluster;
mod node;
pub mod postgres;
pub mod process;
pub mod raw;
pub mod s3;
mod skips;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use larder::config::{ClusterConfig, Config, Overrides};

use balancer::Balancer;
use node::Node;

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

/// An in-process server: one node on its own data dir, or, clustered, two
/// replicas on one database and bucket behind a balancer. Dropping it stops
/// it (without waiting).
pub struct TestServer {
    /// Where clients connect: the node, or the balancer.
    pub addr: SocketAddr,
    /// The (first) node's config, after the test's adjustments.
    pub config: Config,
    nodes: Vec<Node>,
    balancer: Option<Balancer>,
    /// Clustered: the bucket that holds the blobs.
    bucket: Option<String>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts with a fresh temp data dir after `adjust` edits the config
    /// (clustered: every replica's config).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        if cluster::enabled() {
            Self::start_cluster(dir, config).await
        } else {
            Self::start_nodes(vec![(dir, config)], None).await
        }
    }

    /// Clustered whatever LARDER_TEST_CLUSTER says (the harness's own test).
    pub async fn start_clustered() -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = test_config(dir.path());
        Self::start_cluster(dir, config).await
    }

    /// Two replicas of `config` on a database and bucket of their own; the
    /// first keeps `dir` as its data dir.
    async fn start_cluster(dir: tempfile::TempDir, config: Config) -> TestServer {
        let backends = cluster::backends().await;
        let shared = cluster::fresh(&backends).await;
        let bucket = shared.s3.bucket.clone();
        // Tests mint tokens with data_dir()/signing.key, as `larder token
        // create --data-dir` does: both replicas sign with the first's.
        let key = larder::auth::key::key_path(&config);
        let second = tempfile::tempdir().expect("temp dir");
        let mut replicas = Vec::new();
        for (i, dir) in [dir, second].into_iter().enumerate() {
            let mut c = config.clone();
            if i > 0 {
                c.storage.data_dir = dir.path().to_owned();
            }
            c.cluster = ClusterConfig {
                replica_id: format!("r{i}"),
                ..shared.clone()
            };
            c.auth.signing_key_file = Some(key.clone());
            replicas.push((dir, c));
        }
        Self::start_nodes(replicas, Some(bucket)).await
    }

    async fn start_nodes(
        specs: Vec<(tempfile::TempDir, Config)>,
        bucket: Option<String>,
    ) -> TestServer {
        let mut nodes = Vec::new();
        // One after another: the first replica creates the signing key the
        // second reads.
        for (dir, config) in specs {
            nodes.push(Node::start(dir, config).await);
        }
        let balancer = match nodes.len() {
            1 => None,
            _ => Some(Balancer::start(nodes.iter().map(|n| n.addr).collect()).await),
        };
        TestServer {
            addr: balancer.as_ref().map_or(nodes[0].addr, |b| b.addr),
            config: nodes[0].config.clone(),
            nodes,
            balancer,
            bucket,
        }
    }

    /// Where each node listens, behind the balancer if there is one.
    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    /// True when this server is a cluster of replicas.
    pub fn clustered(&self) -> bool {
        self.bucket.is_some()
    }

    /// The data dir; clustered, the first replica's, which holds its local
    /// tier and the signing key, not the store.
    pub fn data_dir(&self) -> PathBuf {
        self.config.storage.data_dir.clone()
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The names (BLAKE3, hex) of the blobs stored: files in the data dir,
    /// or, clustered, objects in the bucket.
    pub async fn stored_blobs(&self) -> Vec<String> {
        match &self.bucket {
            Some(bucket) => {
                let backends = cluster::backends().await;
                let objects = backends.s3.list(bucket, "blobs").await;
                objects
                    .into_iter()
                    .map(|(key, _)| key.rsplit('/').next().unwrap_or_default().to_owned())
                    .collect()
            }
            None => local_blob_files(&self.data_dir())
                .into_iter()
                .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
                .collect(),
        }
    }

    /// The bytes of stored blob `name` (one of `stored_blobs`).
    pub async fn stored_blob(&self, name: &str) -> Vec<u8> {
        match &self.bucket {
            Some(bucket) => {
                let backends = cluster::backends().await;
                let key = format!("blobs/{name}");
                backends.s3.get(bucket, &key).await
            }
            None => {
                let files = local_blob_files(&self.data_dir());
                let file = files.iter().find(|p| p.ends_with(name));
                std::fs::read(file.expect("a stored blob")).expect("read blob")
            }
        }
    }

    /// The /metrics exposition, scraped from each node directly; clustered,
    /// each series summed over the replicas, as a dashboard's `sum()` over
    /// the scraped replicas shows it (each counts only what it served).
    pub async fn metrics(&self) -> String {
        let mut series: Vec<(String, f64)> = Vec::new();
        let mut text = String::new();
        for addr in self.node_addrs() {
            let url = format!("http://{addr}/metrics");
            let res = client().get(url).send().await.expect("scrape");
            text = res.text().await.expect("exposition");
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let Some((name, value)) = line.rsplit_once(' ') else {
                    continue;
                };
                let value: f64 = value.parse().unwrap_or(0.0);
                match series.iter_mut().find(|(n, _)| n == name) {
                    Some((_, sum)) => *sum += value,
                    None => series.push((name.to_owned(), value)),
                }
            }
        }
        if self.nodes.len() == 1 {
            return text;
        }
        let lines = series.iter().map(|(name, v)| format!("{name} {v}\n"));
        lines.collect()
    }

    /// Graceful stop; returns once every node has flushed and released its
    /// data dir.
    pub async fn shutdown(&mut self) {
        // No new connections while the nodes drain the ones they have.
        self.balancer = None;
        for node in &mut self.nodes {
            node.shutdown().await;
        }
    }

    /// Stops the server and starts a new one on the same data dirs, config
    /// (and, clustered, database and bucket), on a new port.
    pub async fn restart(mut self) -> TestServer {
        self.shutdown().await;
        let specs = self.nodes.drain(..).map(Node::into_parts).collect();
        Self::start_nodes(specs, self.bucket.take()).await
    }
}

/// The blob files in an embedded store's data dir (`blobs/<shard>/<name>`).
fn local_blob_files(data_dir: &Path) -> Vec<PathBuf> {
    let shards = std::fs::read_dir(data_dir.join("blobs"))
        .into_iter()
        .flatten();
    shards
        .flatten()
        .flat_map(|shard| std::fs::read_dir(shard.path()).into_iter().flatten())
        .flatten()
        .map(|f| f.path())
        .collect()
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
