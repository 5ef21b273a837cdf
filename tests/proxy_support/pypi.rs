//! PyPI test fixtures: the test's distributions (written by pydist.py with
//! only the standard library), a real pypiserver on loopback, and pip or
//! uv installing through Larder into a fresh `--target` dir.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use larder::config::Span;
use sha2::{Digest, Sha256};

use crate::common;

pub fn pypi_proxy(upstream: String, ttl: Duration) -> impl FnOnce(&mut larder::config::Config) {
    move |c| {
        c.proxy.pypi.enabled = true;
        c.proxy.pypi.upstream = upstream;
        c.proxy.pypi.metadata_ttl = Span(ttl);
        c.proxy.read_timeout = Span(Duration::from_secs(5));
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temp dir holding larder_demo-1.0-py3-none-any.whl and
/// larder_sdist_demo-1.0.tar.gz (which requires larder-demo).
pub fn write_dists() -> tempfile::TempDir {
    let packages = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy_support/pydist.py"))
        .arg(packages.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    packages
}

/// pypiserver on a loopback port, serving `dir`; killed on drop.
pub struct PypiServer {
    port: u16,
    child: tokio::process::Child,
}

impl PypiServer {
    pub async fn start(dir: &Path) -> PypiServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = tokio::process::Command::new("python3")
            .args(["-m", "pypiserver", "run", "-i", "127.0.0.1", "-p"])
            .arg(port.to_string())
            // No authentication, and never a redirect to pypi.org for
            // what it does not have.
            .args(["-a", ".", "-P", ".", "--disable-fallback"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("pypiserver starts");
        let server = PypiServer { port, child };
        // It is ready when it answers; bounded.
        for _ in 0..300 {
            let res = common::client().get(server.url()).send().await;
            if res.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pypiserver did not answer within 30 s");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple/", self.port)
    }

    pub async fn stop(&mut self) {
        self.child.kill().await.expect("stop pypiserver");
    }
}

pub fn have_pypiserver() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-m", "pypiserver", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip("pypiserver is not installed (python3 -m pip install pypiserver)");
    }
    ok
}

/// Installs `larder-sdist-demo` (and its dependency larder-demo) into a
/// fresh `--target` dir with `pip` or `uv pip`, from `index`, and checks
/// both import.
pub async fn install(tool: &str, index: &str) -> Output {
    let target = tempfile::tempdir().unwrap();
    let mut cmd = match tool {
        "uv" => {
            let mut c = tokio::process::Command::new("uv");
            c.args(["pip", "install", "--no-cache", "--python", "python3"]);
            c
        }
        _ => {
            let mut c = tokio::process::Command::new("python3");
            c.args(["-m", "pip", "install", "--no-cache-dir"]);
            c.args(["--disable-pip-version-check", "--no-input"]);
            c
        }
    };
    let out = cmd
        .args(["--index-url", index, "--target"])
        .arg(target.path())
        .arg("larder-sdist-demo")
        .env("PIP_CONFIG_FILE", "/dev/null")
        // Only the index under test: no local wheel directory a machine's
        // environment may name.
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env_remove("UV_FIND_LINKS")
        .env_remove("UV_EXTRA_INDEX_URL")
        .env("UV_NO_CONFIG", "1")
        .output()
        .await
        .expect("installer runs");
    if !out.status.success() {
        return out;
    }
    let check = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import larder_demo, larder_sdist_demo; print(larder_sdist_demo.VALUE)",
        ])
        .env("PYTHONPATH", target.path())
        .output()
        .await
        .unwrap();
    assert!(
        check.status.success(),
        "installed packages import: {}",
        text(&check)
    );
    out
}
