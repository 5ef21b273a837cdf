//! A throwaway PostgreSQL server (`initdb` + `pg_ctl` on a free loopback
//! port, as the `postgres` user when the tests run as root), for the cluster
//! tests and for the clustered topology of `TestServer`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use larder::config::{PostgresConfig, Span};

use super::free_port;

/// PostgreSQL's server programs: `LARDER_TEST_PG_BIN`, else the newest
/// Debian install (which keeps them out of PATH).
pub fn postgres_bin() -> Option<PathBuf> {
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
            super::skip("PostgreSQL's initdb is not installed (apt install postgresql)");
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
        // Room for the replicas of every test a test binary runs at once
        // when they share this server (a clustered `TestServer`).
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 {}",
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
        self.url_for("postgres")
    }

    /// The URL of database `dbname` on this server.
    pub fn url_for(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=larder dbname={dbname}",
            self.port
        )
    }

    pub fn config(&self) -> PostgresConfig {
        self.config_for("postgres")
    }

    /// A replica's settings for database `dbname` on this server.
    pub fn config_for(&self, dbname: &str) -> PostgresConfig {
        PostgresConfig {
            url: self.url_for(dbname),
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
