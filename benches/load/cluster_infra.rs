//! What a cluster runs on, started for `--cluster`: a throwaway PostgreSQL
//! (`initdb` + `pg_ctl` from /usr/lib/postgresql/*/bin, as the `postgres`
//! user when we are root, since initdb refuses root) and moto's S3 server
//! (`moto_server` on PATH) with one bucket. A trimmed copy of the tests'
//! harness (tests/cluster_support), which benches cannot import.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::common;

pub const BUCKET: &str = "larder";
const KEY_ID: &str = "larder-bench";
const SECRET: &str = "larder-bench-secret";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// The postmaster: its direct children are the sessions, so its tree
    /// CPU time is the whole server's.
    pub pid: u32,
}

impl Postgres {
    pub fn start() -> anyhow::Result<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (apt install postgresql)")?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max()
            .context("no initdb under /usr/lib/postgresql")?;
        let dir = tempfile::tempdir()?;
        if as_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        }
        let port = common::free_port().port();
        let data = dir.path().join("data").display().to_string();
        run(
            &bin,
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "larder"],
        )?;
        // fsync off: the bench measures Larder's round trips, not this
        // disk's sync latency under a database it does not ship.
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("server.log").display().to_string();
        run(
            &bin,
            "pg_ctl",
            &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
        )?;
        let pidfile = std::fs::read_to_string(Path::new(&data).join("postmaster.pid"))?;
        let pid = pidfile.lines().next().unwrap_or("").trim().parse()?;
        Ok(Postgres {
            dir,
            bin,
            port,
            pid,
        })
    }

    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=larder dbname=postgres",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = run(&self.bin, "pg_ctl", &["-D", &data, "-m", "fast", "stop"]);
        // Kept (beside the JSON results): a replica's 503 says only "db
        // error", the server's log names it. Copied, since the postgres
        // user may not write there.
        let log = common::target_dir().join("load-bench-postgres.log");
        let _ = std::fs::copy(self.dir.path().join("server.log"), log);
    }
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(bin: &Path, tool: &str, args: &[&str]) -> anyhow::Result<()> {
    let exe = bin.join(tool);
    let mut cmd = if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    let out = cmd.args(args).stdin(Stdio::null()).output()?;
    ensure!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// moto's S3 server, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub async fn start() -> anyhow::Result<Moto> {
        let addr = common::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("moto_server is not installed (pip install 'moto[server]')")?;
        let moto = Moto {
            child,
            endpoint: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            ensure!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        // moto takes unsigned requests.
        let status = reqwest::Client::new()
            .put(format!("{}/{BUCKET}", moto.endpoint))
            .send()
            .await?
            .status();
        if !status.is_success() {
            bail!("create bucket: {status}");
        }
        Ok(moto)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The store settings every replica (and the bench's own S3 client) use.
    pub fn config(&self) -> larder::config::S3Config {
        larder::config::S3Config {
            endpoint: self.endpoint.clone(),
            bucket: BUCKET.into(),
            access_key_id: Some(KEY_ID.into()),
            secret_access_key: Some(SECRET.into()),
            allow_http: true,
            request_timeout: larder::config::Span::secs(30),
            ..Default::default()
        }
    }

    /// The environment that makes `larder serve` replica `id` on these.
    pub fn replica_env(&self, db: &Postgres, id: &str) -> Vec<(String, String)> {
        [
            ("LARDER__CLUSTER__ENABLED", "true"),
            ("LARDER__CLUSTER__REPLICA_ID", id),
            ("LARDER__CLUSTER__S3__ENDPOINT", &self.endpoint),
            ("LARDER__CLUSTER__S3__BUCKET", BUCKET),
            ("LARDER__CLUSTER__S3__ALLOW_HTTP", "true"),
            ("LARDER__CLUSTER__S3__ACCESS_KEY_ID", KEY_ID),
            ("LARDER__CLUSTER__S3__SECRET_ACCESS_KEY", SECRET),
            ("LARDER__CLUSTER__POSTGRES__URL", &db.url()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
