//! The servers under test, each a child process on its own temp dir and
//! port: Larder (the binary cargo built, default config), the CNCF
//! reference registry (`docker-registry`, distribution v2) for the OCI
//! profiles, and nginx with WebDAV PUT for the HTTP-cache profiles.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::client::Speaks;
use crate::common;
use crate::nginx;

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct Server {
    pub name: String,
    pub speaks: Speaks,
    pub addr: SocketAddr,
    child: Child,
    // Kept to the end: removing the data dir under a live server would
    // measure unlink, not the server.
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `larder serve` on a fresh data dir. Its logs (info by default, as
    /// shipped) go to a file, like a log collector reading stderr would.
    pub fn larder(v: &Variant) -> Server {
        let dir = bench_tempdir("larder");
        let addr = common::free_port();
        let log = File::create(dir.path().join("larder.log")).expect("log file");
        let mut cmd = Command::new(v.bin.clone().unwrap_or_else(common::larder_bin));
        cmd.args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(dir.path().join("data"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        cmd.envs(v.env.iter().map(|(k, val)| (k, val)));
        let mut child = cmd.spawn().expect("spawn larder");
        common::wait_http_200(addr, "/readyz", &mut child, Duration::from_secs(30));
        Server {
            name: v.name.clone(),
            speaks: Speaks::All,
            addr,
            child,
            _dir: dir,
        }
    }

    /// The reference registry with filesystem storage, logging errors only.
    /// `cache` is its blob descriptor cache: "inmemory" as in the config it
    /// ships with, or "none".
    pub fn registry(cache: &str) -> Option<Server> {
        if !Path::new(REGISTRY_BIN).is_file() {
            return None;
        }
        let dir = bench_tempdir("registry");
        let addr = common::free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            registry_config(&dir.path().join("data"), addr, cache),
        )
        .expect("registry config");
        let log = File::create(dir.path().join("registry.log")).expect("log file");
        let mut child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        common::wait_http_200(addr, "/v2/", &mut child, Duration::from_secs(30));
        Some(Server {
            name: "registry".into(),
            speaks: Speaks::Oci,
            addr,
            child,
            _dir: dir,
        })
    }
}

impl Server {
    /// nginx in the foreground (`daemon off`, so its master is this child
    /// and SIGTERM on drop stops it and its workers), or `None` when it is
    /// not installed.
    pub fn nginx() -> Option<Server> {
        if !Path::new(nginx::NGINX_BIN).is_file() {
            return None;
        }
        let dir = bench_tempdir("nginx");
        let addr = common::free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("cache")).expect("nginx data dir");
        std::fs::write(
            data.join(nginx::READY_PATH.trim_start_matches('/')),
            b"ok\n",
        )
        .expect("nginx ready file");
        let as_root = unsafe { libc::geteuid() } == 0;
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx::config(dir.path(), addr, as_root)).expect("nginx.conf");
        let log = File::create(dir.path().join("stderr.log")).expect("log file");
        let mut child = Command::new(nginx::NGINX_BIN)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            // Startup errors go here too, not to /var/log/nginx.
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nginx");
        common::wait_http_200(addr, nginx::READY_PATH, &mut child, Duration::from_secs(30));
        Some(Server {
            name: "nginx".into(),
            speaks: Speaks::HttpCache,
            addr,
            child,
            _dir: dir,
        })
    }
}

/// A Larder to run: the default one, or a `--variant` beside it (another
/// binary, other settings) measured in the same interleaved run.
#[derive(Clone, Debug)]
pub struct Variant {
    pub name: String,
    pub bin: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl Variant {
    /// `NAME [KEY=VALUE]…`; the key `LARDER_BIN` names the binary, every
    /// other pair is set in Larder's environment (e.g. LARDER__LOG__LEVEL=warn).
    pub fn parse(spec: &str) -> Result<Variant, String> {
        let mut words = spec.split_whitespace();
        let name = words.next().ok_or("empty --variant")?.to_owned();
        let mut v = Variant {
            name,
            bin: None,
            env: Vec::new(),
        };
        for w in words {
            let (k, val) = w.split_once('=').ok_or(format!("{w:?} is not KEY=VALUE"))?;
            match k {
                "LARDER_BIN" => v.bin = Some(PathBuf::from(val)),
                _ => v.env.push((k.to_owned(), val.to_owned())),
            }
        }
        Ok(v)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

fn registry_config(root: &Path, addr: SocketAddr, cache: &str) -> String {
    let cache = match cache {
        "none" => String::new(),
        other => format!("  cache:\n    blobdescriptor: {other}\n"),
    };
    format!(
        "version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
{cache}  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: {addr}
health:
  storagedriver:
    enabled: false
",
        root = root.display()
    )
}

/// Under target/tmp: a real disk where fsync costs what it costs in
/// production (tmpfs would make Larder's durability free). Each server's
/// data dir lands in a block group of its own, so neither pays for files
/// the other (or an earlier run) deleted.
fn bench_tempdir(prefix: &str) -> tempfile::TempDir {
    let base: PathBuf = std::env::var_os("LARDER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    common::spread_subdirs(&base);
    tempfile::Builder::new()
        .prefix(&format!("load-{prefix}-"))
        .tempdir_in(base)
        .expect("bench temp dir")
}
