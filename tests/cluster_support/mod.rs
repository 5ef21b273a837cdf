//! Real PostgreSQL and S3-protocol servers for the cluster tests: a
//! throwaway PostgreSQL cluster (`initdb` + `pg_ctl` on a free loopback
//! port, as the `postgres` user when the tests run as root) and moto's S3
//! server (`moto_server`, from PyPI's moto[server]). Each skips locally and
//! fails under CI=true when its server is missing.
#![allow(dead_code)]

pub mod serve;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use larder::cas::{ContentId, Digest};
use larder::cluster::objects::Objects;
use larder::cluster::store::ClusterStore;
use larder::cluster::tier::Tier;
use larder::cluster::touches::Touches;
use larder::cluster::{pg, schema};
use larder::config::{PostgresConfig, S3Config, Span};
use larder::index::{EntryKey, NewEntry, Protocol};
use sha2::Digest as _;

use crate::common;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn postgres_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LARDER_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// A PostgreSQL server of the test's own, stopped on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Server options beyond the port and sockets (`-c ssl=on`).
    options: String,
}

impl Postgres {
    pub fn start() -> Option<Postgres> {
        Self::start_with(None)
    }

    /// A server that offers TLS with this PEM certificate and key.
    pub fn start_tls(cert: &str, key: &str) -> Option<Postgres> {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Option<Postgres> {
        let Some(bin) = postgres_bin() else {
            common::skip("PostgreSQL's initdb is not installed (apt install postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let mut pg = Postgres {
            dir,
            bin,
            port: free_port(),
            options: String::new(),
        };
        // initdb refuses to run as root: the cluster belongs to `postgres`.
        if running_as_root() {
            chmod(pg.dir.path(), 0o777);
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "larder",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        if let Some((cert, key)) = tls {
            // The key must belong to the server's user and be private.
            let data = pg.dir.path().join("data");
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, pem).unwrap();
                chmod(&path, 0o600);
                if running_as_root() {
                    let out = Command::new("chown").arg("postgres").arg(&path).output();
                    assert!(out.is_ok_and(|o| o.status.success()), "chown {name}");
                }
            }
            pg.options = "-c ssl=on".into();
        }
        pg.start_again();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// `tool` from PostgreSQL's bin dir, as `postgres` when we are root.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again, after `stop`) on the same port and data.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
            self.port,
            self.dir.path().display(),
            self.options
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would (every session ends).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=larder dbname=postgres",
            self.port
        )
    }

    pub fn config(&self) -> PostgresConfig {
        PostgresConfig {
            url: self.url(),
            pool_size: 4,
            connect_timeout: Span::secs(5),
            ..PostgresConfig::default()
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// moto's S3 server on a free loopback port, killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    pub fn start() -> Option<S3Server> {
        let exe = common::require_tool("moto_server")?;
        let port = free_port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("create bucket")
            .status();
        assert!(status.is_success(), "create bucket {bucket}: {status}");
    }

    /// Writes (`Some`) or deletes (`None`) an object behind Larder's back,
    /// with a client of the test's own.
    pub async fn tamper(&self, bucket: &str, key: &str, bytes: Option<Vec<u8>>) {
        use object_store::ObjectStore;
        let cfg = self.config(bucket);
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&cfg.endpoint)
            .with_bucket_name(bucket)
            .with_region(&cfg.region)
            .with_access_key_id(cfg.access_key_id.unwrap())
            .with_secret_access_key(cfg.secret_access_key.unwrap())
            .with_allow_http(true)
            .build()
            .unwrap();
        let path = object_store::path::Path::from(key);
        match bytes {
            Some(b) => drop(store.put(&path, b.into()).await.expect("overwrite")),
            None => store.delete(&path).await.expect("delete"),
        }
    }

    /// The objects under `prefix` in `bucket` and their sizes, listed with
    /// a client of the test's own.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let cfg = self.config(bucket);
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&cfg.endpoint)
            .with_bucket_name(bucket)
            .with_region(&cfg.region)
            .with_access_key_id(cfg.access_key_id.unwrap())
            .with_secret_access_key(cfg.secret_access_key.unwrap())
            .with_allow_http(true)
            .build()
            .unwrap();
        let prefix = object_store::path::Path::from(prefix);
        let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect()
    }

    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            endpoint: self.endpoint(),
            bucket: bucket.into(),
            access_key_id: Some("larder-test".into()),
            secret_access_key: Some("larder-test-secret".into()),
            allow_http: true,
            request_timeout: Span::secs(2),
            ..S3Config::default()
        }
    }

    /// Freezes (true) or thaws (false) the server: connections stay open
    /// and nothing answers, as with a store that hangs.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: a signal to our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.freeze(false);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An entry of `size` bytes whose content is `content`, pinning `pins` too.
pub fn entry(
    protocol: Protocol,
    namespace: &str,
    name: &str,
    content: ContentId,
    size: u64,
    pins: &[ContentId],
) -> NewEntry {
    NewEntry {
        key: EntryKey {
            protocol,
            namespace: namespace.into(),
            name: name.into(),
        },
        content,
        size,
        pins: pins.to_vec(),
        meta: Vec::new(),
        children: Vec::new(),
    }
}

/// The `sha256:…` digest of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
        .parse()
        .unwrap()
}

/// `n` replicas' stores on one migrated database and the bucket "larder",
/// each with a local tier of `tier_size` bytes in a temp dir of its own.
pub async fn cluster_stores(
    db: &Postgres,
    s3: &S3Server,
    n: usize,
    tier_size: u64,
    hard_limit: u64,
) -> Vec<(ClusterStore, tempfile::TempDir)> {
    let mut c = pg::connect(&pg::settings(&db.config(), "t").unwrap())
        .await
        .unwrap();
    schema::migrate(&mut c, "test").await.unwrap();
    (0..n)
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            let objects = Objects::open(&s3.config("larder")).unwrap();
            let store = ClusterStore {
                pool: pg::pool(&db.config(), &format!("larder/r{i}")).unwrap(),
                tier: Tier::open(dir.path(), tier_size, objects.clone()).unwrap(),
                objects,
                touches: Touches::default(),
                max_size: hard_limit,
                hard_limit,
                max_blob_size: 64 << 20,
                lease: std::time::Duration::from_secs(900),
                quotas: Default::default(),
                revoked: Default::default(),
                upkeep: Default::default(),
                evicted: Default::default(),
            };
            (store, dir)
        })
        .collect()
}

/// Entries `{namespace}-k{i}` (protocol http) of 1 KiB each, every one with
/// a blob of its own, written to the bucket and recorded, last used at
/// `first_used + i`; returns the entries' ids.
pub async fn fill(
    writer: &mut tokio_postgres::Client,
    objects: &Objects,
    namespace: &str,
    range: std::ops::Range<u32>,
    first_used: i64,
) -> Vec<i64> {
    const KIB: usize = 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in range {
        let data = format!("{namespace}{i:08}")
            .repeat(KIB / (namespace.len() + 8) + 1)
            .into_bytes()[..KIB]
            .to_vec();
        let id = ContentId(*blake3::hash(&data).as_bytes());
        let file = dir.path().join(id.to_hex());
        std::fs::write(&file, &data).unwrap();
        objects.put_blob(&id, &file).await.unwrap();
        let used = first_used + i64::from(i);
        larder::cluster::meta::put_blob(writer, &id, KIB as u64, &[], used, u64::MAX)
            .await
            .unwrap();
        let name = format!("{namespace}-k{i}");
        let e = entry(Protocol::Http, namespace, &name, id, KIB as u64, &[]);
        let put = larder::cluster::meta::put_entry(&*writer, &e, used).await;
        ids.push(put.unwrap().expect("every pin is live"));
    }
    ids
}

/// Polls (the database, a replica: state another process changes) until
/// `done`; panics after a minute.
pub async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let wait = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("never: {what}"));
}

/// A single number the database answers `sql` with.
pub async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}
